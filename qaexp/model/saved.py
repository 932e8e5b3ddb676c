"""A saved model as the tools use it: its tokenizer and its Keras model, loaded from a model directory.

`qaexp predict`, `qaexp serve` and `qaexp export` all start here (the inference settings that go with the model,
model/qaexp.json, are read by serving.settings). A model directory is RUN_DIR/model or any directory written by
save_pretrained whose model_type qaexp has a Keras 3 model for.
"""
from __future__ import annotations

import os

from qaexp.errors import QAExpError


def load_saved(model_dir: str):
    """(tokenizer, model) of `model_dir`; one line (QAExpError) when it is not a model directory."""
    from omegaconf import OmegaConf

    from qaexp.model import build
    from qaexp.quiet import import_tensorflow

    if not os.path.isdir(model_dir):
        raise QAExpError(f"{model_dir} is not a directory: give the model directory of a qaexp run (RUN_DIR/model) "
                         "or any directory written by save_pretrained")
    model_cfg = OmegaConf.create({"checkpoint": model_dir, "padding_side": "right", "trust_remote_code": False})
    from qaexp.backend import current

    if current() == "tensorflow":  # under KERAS_BACKEND=jax the model runs on JAX, without TensorFlow
        import_tensorflow()  # before transformers: its libraries' loading notices are dropped
    tokenizer = build.build_tokenizer(model_cfg)
    return tokenizer, build.build_model(model_cfg, tokenizer)
