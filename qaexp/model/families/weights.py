"""PyTorch-named tensors <-> a Keras 3 question-answering model's variables, torch-free.

`load_weights` fills the model from {PyTorch name: NumPy array} (as `qaexp.model.pretrained.read_safetensors`
returns them) and reports what was loaded, what the model had to initialise itself and what it had no place for;
`export_weights` is the inverse, the tensors `...ForQuestionAnswering.save_pretrained` would write, so loading then
exporting gives back every loaded tensor bit for bit.

`save_checkpoint` writes a model as a Hugging Face directory (`config.json` naming the family's
`...ForQuestionAnswering`, `model.safetensors` in PyTorch names) that transformers 5 (PyTorch) loads with no weight
newly initialised, and `model/hf_checkpoint.load_checkpoint` reads that same directory back: one weight format
for qaexp and the ecosystem (tests/fixtures/parity/check_saved_models.py checks the transformers side).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np


# The task head's top-level names, outside the encoder prefix: `qa_outputs` for the BERT-like families,
# ModernBERT's prediction head `head.{dense,norm}` and its start/end Linear `classifier`. A checkpoint may lack
# them (they then start fresh, as in transformers); for any other family they are simply not model weights.
HEAD_PREFIXES = ("qa_outputs.", "head.", "classifier.")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


# Names older PyTorch checkpoints still carry (google-bert/bert-base-uncased's model.safetensors among them):
# LayerNorm parameters saved as TensorFlow called them. transformers renames them on load; so does qaexp.
LEGACY_SUFFIXES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}


def _canonical(name: str, prefix: str) -> str:
    """A checkpoint name in the `...ForQuestionAnswering` layout: a bare encoder checkpoint (`BertModel`, e.g. the
    MiniLM sentence-transformers weights) names `embeddings.word_embeddings.weight` without the `bert.` prefix;
    a legacy LayerNorm name (`gamma`, `beta`) is today's (`weight`, `bias`)."""
    for old, new in LEGACY_SUFFIXES.items():
        if name.endswith(old):
            name = name[: -len(old)] + new
    if name.startswith(f"{prefix}.") or name.startswith(HEAD_PREFIXES):
        return name
    return f"{prefix}.{name}"


@dataclass
class LoadReport:
    loaded: list[str]  # checkpoint keys copied into the model
    new: list[str]  # model weights not in the checkpoint (the task head)
    unused: list[str] = field(default_factory=list)  # checkpoint keys the model has no place for


def load_weights(model, tensors: dict) -> LoadReport:
    """Copy `tensors` into `model`. A missing task head (see HEAD_PREFIXES) keeps its fresh initialisation; a missing encoder tensor
    is listed in `report.new` too (see `missing_encoder`): the caller refuses a model whose encoder is random.
    A shape mismatch is a ValueError naming the tensor."""
    wanted = model.hf_weights()
    by_canonical = {}
    unused = []
    for name in tensors:
        canonical = _canonical(name, model.prefix)
        if canonical in wanted:
            by_canonical[canonical] = name
        else:
            unused.append(name)
    loaded = []
    for canonical, (variable, transpose) in wanted.items():
        if canonical not in by_canonical:
            continue
        source = by_canonical[canonical]
        value = np.asarray(tensors[source], dtype="float32")
        value = value.T if transpose else value
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"checkpoint tensor {source} has shape {tuple(tensors[source].shape)}, the "
                             f"{model.family} model expects {tuple(variable.shape)} there (a config.json that "
                             "does not match the weights)")
        variable.assign(value)
        loaded.append(source)
    new = [name for name in wanted if name not in by_canonical]
    return LoadReport(loaded=loaded, new=new, unused=sorted(unused))


def missing_encoder(report: LoadReport) -> list[str]:
    """The model weights a checkpoint did not provide, apart from the task head (which may start untrained)."""
    return [name for name in report.new if not name.startswith(HEAD_PREFIXES)]


def export_weights(model) -> dict:
    """{PyTorch name: float32 NumPy array} in the `...ForQuestionAnswering` layout (Linear weights (out, in))."""
    out = {}
    for name, (variable, transpose) in model.hf_weights().items():
        value = np.asarray(variable.numpy(), dtype="float32")
        out[name] = np.ascontiguousarray(value.T if transpose else value)
    return out


def saved_config(model) -> dict:
    """The config.json of a saved model: the config it was built from, naming the family's `...ForQuestionAnswering`
    (a checkpoint loaded from a bare encoder says `BertModel` there, which transformers would build without the
    head) and its model_type (which AutoModelForQuestionAnswering dispatches on)."""
    config = dict(model.hf_config)
    config["architectures"] = [model.architecture]
    config["model_type"] = model.family
    return config


def save_checkpoint(model, directory: str) -> None:
    """Write `model` into `directory` as `config.json` + `model.safetensors` (float32, PyTorch names with the
    encoder prefix, e.g. `bert.` even where the loaded checkpoint had none), each file atomically. Other files in
    `directory` (tokenizer, qaexp.json, the card) are left alone; a caller that wants the directory to appear whole
    wraps this in `qaexp.output.files.save_directory_atomic`."""
    from safetensors.numpy import save

    from qaexp.output.files import write_bytes_atomic, write_json_atomic

    tensors = export_weights(model)
    # {"format": "pt"}: what transformers' save_pretrained writes; qaexp's reader (pretrained._safetensors_format)
    # and transformers 4.x tell PyTorch layout from a TF model's safetensors by it.
    write_bytes_atomic(os.path.join(directory, WEIGHTS_FILE), save(tensors, metadata={"format": "pt"}))
    write_json_atomic(os.path.join(directory, CONFIG_FILE), saved_config(model))
