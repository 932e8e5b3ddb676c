"""What a `model.checkpoint` names: a model on the Hugging Face hub, or a directory on this machine."""
from __future__ import annotations

import os

PACKAGE_SCHEME = "pkg:"  # pkg:MODULE/SUBDIR: a checkpoint shipped inside an installed Python package


def looks_like_local_path(checkpoint: str) -> bool:
    """Hub names are "name" or "org/name"; anything else with a path's shape (or a `pkg:` checkpoint) is local."""
    return checkpoint.startswith((PACKAGE_SCHEME, ".", "~", os.sep)) or checkpoint.count("/") > 1


def is_hub_id(checkpoint: str) -> bool:
    """A name the hub resolves: neither shaped like a local path nor an existing directory."""
    return not looks_like_local_path(checkpoint) and not os.path.isdir(os.path.expanduser(checkpoint))
