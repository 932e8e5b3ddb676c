"""Writing a QA model as a SavedModel, a TensorFlow Lite file or an ONNX file, and running each of them.

Every format takes int32 input_ids, attention_mask and (where the model takes them) token_type_ids of shape
(batch, length) and returns float32 start_logits and end_logits.
"""
from __future__ import annotations

import contextlib
import os
import re
import warnings

import numpy as np

from qaexp import extras
from qaexp.errors import QAExpError, first_line
from qaexp.output.files import save_directory_atomic, write_bytes_atomic
from qaexp.quiet import notices_hidden

FORMATS = ("saved_model", "tflite", "onnx")
ONNX_PACKAGES = ("tf2onnx", "onnxruntime")
ONNX_OPSET = 17
def check_saved_model_directory(output: str, overwrite: bool) -> None:
    """What an existing SavedModel --output may be (files.check_outputs' rule is for files): a new or empty
    directory, or an earlier SavedModel with --overwrite, never a directory of other files."""
    if not os.path.lexists(output):
        return
    if not os.path.isdir(output):
        raise QAExpError(f"--output {output} is a file: a SavedModel is a directory, give a new or empty one")
    if not os.listdir(output):
        return
    if not os.path.exists(os.path.join(output, "saved_model.pb")):
        raise QAExpError(f"--output {output} is a directory with other files in it: give a new or empty directory, "
                         "or an earlier SavedModel export to replace (with --overwrite)")
    if not overwrite:
        raise QAExpError(f"--output {output} holds an earlier SavedModel export: give a new path, or add --overwrite "
                         "to replace it")


def check_format(name: str) -> None:
    if name not in FORMATS:
        raise QAExpError(f"unknown format {name!r}: choose saved_model, tflite or onnx")
    if name == "onnx":
        extras.require("--format onnx", ONNX_PACKAGES, f"pip install {' '.join(ONNX_PACKAGES)} (or qaexp[onnx])")


# ---- the serving function --------------------------------------------------------------------------------


def input_names(tokenizer, model) -> list[str]:
    """The tokenizer's inputs that the model takes, in the tokenizer's order (no token_type_ids for RoBERTa)."""
    return [name for name in tokenizer.model_input_names if name in model.input_names]


def serving_function(model, names: list[str]):
    """A tf.function from int32 (batch, length) inputs to float32 start_logits and end_logits."""
    import tensorflow as tf

    spec = [tf.TensorSpec([None, None], tf.int32, name=name) for name in names]

    @tf.function(input_signature=spec)
    def serve(*inputs):
        out = model(dict(zip(names, inputs)), training=False)
        return {"start_logits": tf.cast(out["start_logits"], tf.float32),
                "end_logits": tf.cast(out["end_logits"], tf.float32)}

    return serve


def _weights_module(model):
    """A tf.Module that tracks only the model's variables: saving it needs no tracing of every Keras layer."""
    import tensorflow as tf

    module = tf.Module()
    # The tf.Variables inside Keras 3's variables (`.value`, outside a layer call never autocast): TensorFlow Lite's
    # converter does not freeze a Keras 3 Variable it reaches through the module, and left them as resource
    # variables it never initialises (every logit NaN).
    module.model_variables = [getattr(variable, "value", variable) for variable in model.variables]
    return module


# ---- writing each format ---------------------------------------------------------------------------------


def write_saved_model(model, names: list[str], output: str) -> None:
    import tensorflow as tf

    module = _weights_module(model)
    module.serve = serving_function(model, names)
    # whole or not at all (an interrupted export leaves no half-written SavedModel, nor harms an earlier one)
    save_directory_atomic(output, lambda directory: tf.saved_model.save(
        module, directory, signatures={"serving_default": module.serve}))


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
                         f"{reason.group(1) if reason else first_line(err)}") from err
    write_bytes_atomic(output, flat)  # with --overwrite, a failed write leaves the earlier export whole


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
        raise QAExpError(f"tf2onnx {tf2onnx.__version__} cannot convert this model: {first_line(err)}") from err
    write_bytes_atomic(output, proto.SerializeToString())  # what onnx.save writes (one protobuf, under 2 GB)


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
    calls = 0

    def run(batch: dict):
        nonlocal calls
        calls += 1
        # the first call creates TF Lite's XNNPACK delegate, whose INFO line goes straight to stderr: hidden
        with notices_hidden() if calls == 1 else contextlib.nullcontext():
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
