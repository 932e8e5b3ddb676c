"""What a `model.checkpoint` names: a model on the Hugging Face hub, or a directory on this machine."""
from __future__ import annotations

import os

from qaexp import rundir
from qaexp.errors import ModelLoadError

PACKAGE_SCHEME = "pkg:"  # pkg:MODULE/SUBDIR: a checkpoint shipped inside an installed Python package


def looks_like_local_path(checkpoint: str) -> bool:
    """Hub names are "name" or "org/name"; anything else with a path's shape (or a `pkg:` checkpoint) is local."""
    return checkpoint.startswith((PACKAGE_SCHEME, ".", "~", os.sep)) or checkpoint.count("/") > 1


def is_hub_id(checkpoint: str) -> bool:
    """A name the hub resolves: neither shaped like a local path nor an existing directory."""
    return not looks_like_local_path(checkpoint) and not os.path.isdir(os.path.expanduser(checkpoint))


def without_config(what: str, directory: str) -> ModelLoadError:
    """The line for a local model directory without config.json; a qaexp run's directory given for its model is
    named as such, with the path to give instead."""
    model = rundir.saved_model_in(os.path.expanduser(directory))
    if model:
        return ModelLoadError(f"cannot load {what} from {directory!r}: it is a qaexp run directory, not a model "
                              f"directory; its model is model.checkpoint={model}")
    return ModelLoadError(f"cannot load {what} from local directory {directory!r}: it has no config.json, so it was "
                          "not written by save_pretrained (a qaexp run saves one in <run dir>/model)")
