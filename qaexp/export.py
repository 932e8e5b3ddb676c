"""Export a saved model for deployment, and verify the export by scoring it beside the original.

    python -m qaexp.export MODEL_DIR --format saved_model|tflite|onnx --output OUT [--quantize]
                           [--eval-file DATA] [--max-questions N]

saved_model: a TensorFlow SavedModel directory whose serving_default signature takes int32 input_ids,
attention_mask and (where the model takes them) token_type_ids of shape (batch, length) and returns float32
start_logits and end_logits (TF Serving, tf.saved_model.load). tflite: the same signature as a TensorFlow Lite
file, float32, or with --quantize dynamic-range int8 weights. onnx: the same graph through tf2onnx (pip install
tf2onnx onnxruntime), run with onnxruntime.

Every export is then verified: the questions of DATA (SQuAD JSON or JSON lines with answers), or of a built-in
sample of qaexp's synthetic questions, are split into the same windows and post-processed the same way with
the original and with the exported model; EM/F1 of both are printed. float32 exports must give identical answers
(exit status 1 otherwise); quantised ones report the EM/F1 change, file size and latency ratio. The tokenizer
is not part of an export: use the model directory's.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import warnings

import numpy as np

from qaexp.errors import QAExpError
from qaexp.serving.settings import add_setting_flags, answer_settings, describe, setting_overrides

FORMATS = ("saved_model", "tflite", "onnx")
ONNX_PACKAGES = ("tf2onnx", "onnxruntime")
ONNX_OPSET = 17
SAMPLE_SEED = 0


class VerificationFailed(Exception):
    """The export was written but does not compute what the original does (exit status 1)."""


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="qaexp export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a model directory written by a qaexp run (RUN_DIR/model)")
    parser.add_argument("--format", required=True, help="saved_model, tflite or onnx")
    parser.add_argument("--output", required=True, help="the SavedModel directory, or the .tflite / .onnx file")
    parser.add_argument("--quantize", action="store_true", help="tflite: dynamic-range int8 weights")
    parser.add_argument("--eval-file", help="verify on this SQuAD / JSON-lines file (default: a built-in sample)")
    parser.add_argument("--max-questions", type=int, help="verify on the first N questions of --eval-file")
    parser.add_argument("--sample-size", type=int, default=40, help="questions in the built-in sample")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--json", action="store_true", help="print the verification report as JSON")
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    if args.quantize and args.format != "tflite":
        parser.error("--quantize applies to --format tflite only")
    if min(args.sample_size, args.batch_size, args.max_questions or 1) < 1:
        parser.error("--sample-size, --batch-size and --max-questions must be >= 1")
    return args


def check_format(name: str) -> None:
    if name not in FORMATS:
        raise QAExpError(f"unknown format {name!r}: choose saved_model, tflite or onnx")
    if name == "onnx":
        missing = [package for package in ONNX_PACKAGES if not _importable(package)]
        if missing:
            raise QAExpError(f"--format onnx needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'}"
                             f" not installed: pip install {' '.join(ONNX_PACKAGES)} (or qaexp[onnx])")


def _importable(package: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


# ---- the serving function --------------------------------------------------------------------------------


def input_names(tokenizer, model) -> list[str]:
    """The tokenizer's inputs that the model takes, in the tokenizer's order (no token_type_ids for RoBERTa)."""
    return [name for name in tokenizer.model_input_names if name in model.input_signature]


def serving_function(model, names: list[str]):
    """A tf.function from int32 (batch, length) inputs to float32 start_logits and end_logits."""
    import tensorflow as tf

    spec = [tf.TensorSpec([None, None], tf.int32, name=name) for name in names]

    @tf.function(input_signature=spec)
    def serve(*inputs):
        out = model(dict(zip(names, inputs)), training=False)
        return {"start_logits": tf.cast(out.start_logits, tf.float32),
                "end_logits": tf.cast(out.end_logits, tf.float32)}

    return serve


def _weights_module(model):
    """A tf.Module that tracks only the model's variables: saving it needs no tracing of every Keras layer."""
    import tensorflow as tf

    module = tf.Module()
    module.model_variables = list(model.variables)
    return module


# ---- writing each format ---------------------------------------------------------------------------------


def write_saved_model(model, names: list[str], output: str) -> None:
    import tensorflow as tf

    if os.path.isdir(output) and os.listdir(output) and not os.path.exists(os.path.join(output, "saved_model.pb")):
        raise QAExpError(f"{output} is a directory with other files in it: give a new or empty directory, "
                         "or an earlier SavedModel export to replace")
    module = _weights_module(model)
    module.serve = serving_function(model, names)
    tf.saved_model.save(module, output, signatures={"serving_default": module.serve})


def write_tflite(model, names: list[str], output: str, quantize: bool) -> None:
    import tensorflow as tf

    module = _weights_module(model)
    concrete = serving_function(model, names).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic-range int8
    try:
        flat = converter.convert()
    except Exception as err:  # ConverterError: "... error: 'tf.X' op is neither a custom op nor a flex op"
        reason = re.search(r"error: (.+)", str(err))
        raise QAExpError("TensorFlow Lite cannot convert this model with its built-in ops: "
                         f"{reason.group(1) if reason else _first_line(err)}") from err
    with open(output, "wb") as f:
        f.write(flat)


def write_onnx(model, names: list[str], output: str) -> None:
    import onnx
    import tensorflow as tf
    import tf2onnx

    serve = serving_function(model, names)
    spec = [tf.TensorSpec([None, None], tf.int32, name=name) for name in names]
    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=ONNX_OPSET,
                                                 custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, ["Erf"])})
        onnx.checker.check_model(proto, full_check=True)  # tf2onnx only logs the ops it could not convert
    except Exception as err:
        raise QAExpError(f"tf2onnx {tf2onnx.__version__} cannot convert this model: {_first_line(err)}") from err
    onnx.save(proto, output)


def _erfc_as_one_minus_erf(graph, node, name, args):
    """tf2onnx 1.17 has no handler for TensorFlow's Erfc (exact GELU): erfc(x) = 1 - erf(x).

    tf2onnx has already turned the node into ONNX Erf (the op name given with the handler); a Sub follows it.
    """
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(graph.get_dtype(node.output[0]))
    one = graph.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype=dtype))
    graph.insert_new_node_on_output("Sub", node.output[0], inputs=[one.output[0], node.output[0]])


# ---- running each format ---------------------------------------------------------------------------------


def saved_model_runner(path: str, names: list[str]):
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures["serving_default"]

    def run(batch: dict):
        out = signature(**{name: tf.constant(batch[name]) for name in names})
        return out["start_logits"].numpy(), out["end_logits"].numpy()

    return run


def tflite_runner(path: str, names: list[str]):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TensorFlow's own, deprecated in favour of ai_edge_litert but still shipped
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=path)
    signature = interpreter.get_signature_runner("serving_default")

    def run(batch: dict):
        out = signature(**{name: batch[name] for name in names})  # resizes the inputs to each batch's shape
        return out["start_logits"], out["end_logits"]

    return run


def onnx_runner(path: str, names: list[str]):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    def run(batch: dict):
        start, end = session.run(["start_logits", "end_logits"], {name: batch[name] for name in names})
        return start, end

    return run


RUNNERS = {"saved_model": saved_model_runner, "tflite": tflite_runner, "onnx": onnx_runner}


def exported_logits(run, windows, batch_size: int, pad_id: int):
    """Start/end logits of every window, batched and padded exactly as inference.predict_logits does."""
    from qaexp.evaluation.inference import FILL_LOGIT
    from qaexp.training.batching import Batcher

    width = int(windows.lengths.max())
    start = np.full((len(windows), width), FILL_LOGIT, dtype=np.float32)
    end = np.full_like(start, FILL_LOGIT)
    batcher = Batcher(windows, batch_size, padding="bucketed", max_length=width, pad_id=pad_id,
                      with_labels=False, bucket_window=10**9)
    for idx, batch in batcher.batches():
        s, e = run(batch)
        start[idx, : s.shape[1]] = s
        end[idx, : e.shape[1]] = e
    padding = ~inside_windows(windows, width)  # never part of an answer
    start[padding] = end[padding] = FILL_LOGIT
    return start, end


def inside_windows(windows, width: int) -> np.ndarray:
    """(windows, width) mask of the positions that hold a window's tokens, not padding."""
    return np.arange(width)[None, :] < windows.lengths[:, None]


def check_finite(start: np.ndarray, end: np.ndarray, fmt: str) -> None:
    broken = np.flatnonzero(~(np.isfinite(start) & np.isfinite(end)).all(axis=1))
    if len(broken):
        raise VerificationFailed(f"the {fmt} export gives NaN or infinite logits for {len(broken)} of {len(start)} "
                                 f"windows (the first: window {broken[0]}): it does not compute what the original "
                                 "does, so it is not usable for this model")


# ---- verification ----------------------------------------------------------------------------------------


def verification_records(args, settings) -> tuple[list[dict], str]:
    if args.eval_file:
        from qaexp.data.squad import read_records

        records = read_records(args.eval_file)[: args.max_questions]
        return records, f"{len(records)} questions of {args.eval_file}"
    from qaexp.data.synthetic import generate_examples

    unanswerable = 0.3 if settings.version_2_with_negative else 0.0
    records = generate_examples(args.sample_size, seed=SAMPLE_SEED, difficulty="easy", split="validation",
                                unanswerable_fraction=unanswerable)
    return records, f"the built-in sample of {len(records)} synthetic questions"


def timed(function, *args):
    began = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - began


def score(records, windows, start, end, settings) -> tuple[dict, dict]:
    from qaexp.evaluation.inference import answer
    from qaexp.evaluation.metrics import squad_metrics

    predictions = answer(records, windows, start, end, settings).predictions
    metrics = squad_metrics(records, predictions, version_2=settings.version_2_with_negative)
    return predictions, {"exact_match": metrics["exact_match"], "f1": metrics["f1"]}


def verify(tokenizer, model, names, fmt: str, output: str, records, settings, batch_size: int) -> dict:
    from qaexp.data.windows import tokenize_windows
    from qaexp.evaluation.inference import predict_logits

    windows = tokenize_windows(records, tokenizer, settings.max_length, settings.doc_stride, progress=False)
    pad_id = tokenizer.pad_token_id
    predict_logits(model, windows, batch_size, pad_id)  # traces the forward pass: the timed run is warm
    (original_start, original_end, _), original_seconds = timed(predict_logits, model, windows, batch_size, pad_id)
    run = RUNNERS[fmt](output, names)
    exported_logits(run, windows, batch_size, pad_id)  # first-call set-up (allocation, graph optimisation)
    (start, end), export_seconds = timed(exported_logits, run, windows, batch_size, pad_id)
    check_finite(start, end, fmt)
    original_answers, original_scores = score(records, windows, original_start, original_end, settings)
    export_answers, export_scores = score(records, windows, start, end, settings)
    differing = [qid for qid, text in original_answers.items() if export_answers[qid] != text]
    return {"questions": len(records), "windows": len(windows), "original": original_scores,
            "export": export_scores, "identical_answers": len(records) - len(differing),
            "differing_ids": differing[:5], "original_seconds": original_seconds, "export_seconds": export_seconds,
            "latency_ratio": export_seconds / original_seconds,
            "max_logit_difference": _largest_difference(windows, (start, end), (original_start, original_end))}


def _largest_difference(windows, logits: tuple, original_logits: tuple) -> float:
    inside = inside_windows(windows, logits[0].shape[1])
    return float(max(np.abs(mine - theirs)[inside].max() for mine, theirs in zip(logits, original_logits)))


def size_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(path) for name in files)


def original_weights_bytes(model_dir: str) -> int:
    weights = [name for name in os.listdir(model_dir) if name.endswith((".h5", ".safetensors", ".bin", ".keras"))]
    return sum(os.path.getsize(os.path.join(model_dir, name)) for name in weights)


# ---- the command -----------------------------------------------------------------------------------------


def export(args) -> dict:
    from qaexp.tools.predict import load_saved

    check_format(args.format)
    settings = answer_settings(args.model_dir, setting_overrides(args))
    records, source = verification_records(args, settings)  # a bad --eval-file fails before any conversion
    tokenizer, model = load_saved(args.model_dir)
    names = input_names(tokenizer, model)
    _make_parent(args.output)
    writers = {"saved_model": lambda: write_saved_model(model, names, args.output),
               "tflite": lambda: write_tflite(model, names, args.output, args.quantize),
               "onnx": lambda: write_onnx(model, names, args.output)}
    _, conversion_seconds = timed(writers[args.format])
    report = verify(tokenizer, model, names, args.format, args.output, records, settings, args.batch_size)
    report.update(format=args.format + (" int8 (dynamic range)" if args.quantize else " float32"),
                  output=args.output, inputs=names, settings=describe(settings), verified_on=source,
                  conversion_seconds=conversion_seconds, size_bytes=size_bytes(args.output),
                  original_bytes=original_weights_bytes(args.model_dir), quantized=args.quantize)
    return report


def _make_parent(output: str) -> None:
    parent = os.path.dirname(os.path.abspath(output))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as err:
        raise QAExpError(f"cannot create {parent} for --output: {err.strerror}") from err


def report_lines(report: dict) -> list[str]:
    original, exported = report["original"], report["export"]
    size_ratio = report["size_bytes"] / report["original_bytes"] if report["original_bytes"] else float("nan")
    lines = [f"exported {report['format']} -> {report['output']} in {report['conversion_seconds']:.1f} s "
             f"(inputs: {', '.join(report['inputs'])} -> start_logits, end_logits)",
             f"size {_megabytes(report['size_bytes'])} vs the original weights' "
             f"{_megabytes(report['original_bytes'])} ({size_ratio:.2f}x)",
             f"verified on {report['verified_on']} ({report['windows']} windows; {report['settings']}):",
             f"  original  EM {original['exact_match']:6.2f}  F1 {original['f1']:6.2f}  "
             f"forward {report['original_seconds']:.3f} s",
             f"  export    EM {exported['exact_match']:6.2f}  F1 {exported['f1']:6.2f}  "
             f"forward {report['export_seconds']:.3f} s ({report['latency_ratio']:.2f}x the original's time)",
             f"  answers identical for {report['identical_answers']} of {report['questions']} questions; "
             f"largest logit difference {report['max_logit_difference']:.2g}"]
    if report["quantized"]:
        lines.append(f"  quantisation changed EM by {exported['exact_match'] - original['exact_match']:+.2f} and "
                     f"F1 by {exported['f1'] - original['f1']:+.2f}")
    return lines


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        report = export(args)
    except QAExpError as err:
        print(f"qaexp export: error: {err}", file=sys.stderr)
        return 2
    except VerificationFailed as err:
        print(f"qaexp export: error: verification failed: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report) if args.json else "\n".join(report_lines(report)), flush=True)
    if not args.quantize and report["identical_answers"] != report["questions"]:
        print(f"qaexp export: error: verification failed: the float32 export changed "
              f"{report['questions'] - report['identical_answers']} answers (first ids: "
              f"{', '.join(report['differing_ids'])})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
