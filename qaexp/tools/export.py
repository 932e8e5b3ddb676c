"""Export a saved model for deployment, and verify the export by scoring it beside the original.

    python -m qaexp.export MODEL_DIR --format saved_model|tflite|onnx --output OUT [--overwrite] [--quantize]
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

--output must be new (a SavedModel may also go into an empty directory): an existing file, or a directory holding
an earlier SavedModel, is refused before anything runs unless --overwrite is given; a directory of other files, the
model directory's files and --eval-file are never written over.
"""
from __future__ import annotations

import json
import os
import sys

from qaexp import tools
from qaexp.errors import QAExpError
from qaexp.evaluation.export_check import VerificationFailed, timed, verify
from qaexp.output.export_formats import (check_format, check_saved_model_directory, input_names, write_onnx,
                                         write_saved_model, write_tflite)
from qaexp.output.files import OVERWRITE_HELP, check_outputs
from qaexp.model.saved import answer_settings, describe
from qaexp.tools.setting_flags import add_setting_flags, setting_overrides

SAMPLE_SEED = 0


def parse_args(argv):
    parser = tools.parser("export", __doc__, model_dir=True)
    parser.add_argument("--format", required=True, help="saved_model, tflite or onnx")
    parser.add_argument("--output", required=True, help="the SavedModel directory, or the .tflite / .onnx file")
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
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


def size_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(path) for name in files)


def original_weights_bytes(model_dir: str) -> int:
    weights = [name for name in os.listdir(model_dir) if name.endswith((".h5", ".safetensors", ".bin", ".keras"))]
    return sum(os.path.getsize(os.path.join(model_dir, name)) for name in weights)


# ---- the command -----------------------------------------------------------------------------------------


def export(args) -> dict:
    from qaexp.model.saved import load_saved

    check_format(args.format)
    # The tools' output rule (files.check_outputs; a SavedModel's directory has its own), before the model loads.
    directory = args.format == "saved_model"
    check_outputs({"--output": args.output}, {"the model directory": args.model_dir, "--eval-file": args.eval_file},
                  overwrite=args.overwrite, directories=("--output",) if directory else ())
    if directory:
        check_saved_model_directory(args.output, args.overwrite)
    settings = answer_settings(args.model_dir, setting_overrides(args))
    records, source = verification_records(args, settings)  # a bad --eval-file fails before any conversion
    saved = load_saved(args.model_dir, settings)
    tokenizer, model = saved.tokenizer, saved.model
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


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from qaexp.backend import current

    if current() != "tensorflow":  # SavedModel, TFLite and tf2onnx all start from a TensorFlow graph
        print(f"qaexp export: error: --format {args.format} is written through TensorFlow, but KERAS_BACKEND="
              f"{current()}: run qaexp export with KERAS_BACKEND unset or tensorflow (a model trained on JAX is the "
              "same Hugging Face directory and exports the same way)", file=sys.stderr)
        return 2
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

