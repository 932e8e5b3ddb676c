"""A Hugging Face model directory as qaexp writes one (`families.weights.save_checkpoint`) read back into a Keras
model: the config through pretrained.py's checks, the weights through `families.weights.load_weights`."""
from __future__ import annotations

from qaexp.errors import ModelLoadError, first_line
from qaexp.model.families.weights import load_weights
from qaexp.model.pretrained import model_from_config, read_safetensors


def load_checkpoint(directory: str):
    """(model, LoadReport) for a directory with `config.json` and PyTorch-named safetensors (sharded or not, fp32,
    fp16 or bf16), as `families.weights.save_checkpoint` writes one. A config qaexp cannot build, or weights that
    do not fit it, is a one-line ModelLoadError."""
    model = model_from_config(directory)
    try:
        return model, load_weights(model, read_safetensors(directory))
    except ValueError as err:
        raise ModelLoadError(f"{directory}: {first_line(err, limit=300)}") from err
