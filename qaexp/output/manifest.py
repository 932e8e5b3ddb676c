"""A directory's files checked against what was written: each file's size and SHA-256, recorded in a manifest.

Cache entries (data/cache_store.py) list all their files; a saved model/ lists its weights and its tokenizer's
files, so that a truncated or corrupted weights file (HDF5 has no checksums of its own) or a missing tokenizer.json
(transformers then falls back to a tokenizer that knows only the special tokens) is an error when the model is
loaded, not a model that silently answers wrongly.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, Iterable, Optional

from qaexp.output.files import write_json_atomic

MANIFEST = "qaexp-manifest.json"
FORMAT = 1


class ManifestMismatch(Exception):
    """A listed file is missing or differs from what was written, or the manifest itself is unreadable."""


def write_manifest(directory: str, names: Optional[Iterable[str]] = None) -> None:
    """Record `names` (paths relative to `directory`; default: every file in it) in the directory's manifest."""
    if names is None:
        names = [os.path.relpath(os.path.join(root, name), directory)
                 for root, _, files in os.walk(directory) for name in files if name != MANIFEST]
    files = {name: {"size": os.path.getsize(os.path.join(directory, name)),
                    "sha256": file_digest(os.path.join(directory, name))} for name in sorted(names)}
    write_json_atomic(os.path.join(directory, MANIFEST), {"format": FORMAT, "files": files})


def verify_manifest(directory: str, *, required: bool = True, only: Optional[Callable[[str], bool]] = None) -> None:
    """Raise ManifestMismatch unless every listed file has its recorded size and SHA-256.

    required=False: a directory without a manifest (not written by qaexp, or by an older version) passes.
    only: check the listed names it accepts, and no others (a loader checks the files it is about to read, so that
    a large weights file is hashed once per load, not once per reader).
    """
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        if required:
            raise ManifestMismatch(f"{MANIFEST} is missing: it was not written completely")
        return
    try:
        with open(path, encoding="utf-8") as f:
            files = json.load(f)["files"]
        expected_sizes = {name: int(entry["size"]) for name, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ManifestMismatch(f"{MANIFEST} is unreadable ({err})") from err
    for name, size in expected_sizes.items():
        if only is not None and not only(name):
            continue
        file_path = os.path.join(directory, name)
        if not os.path.isfile(file_path):
            raise ManifestMismatch(f"{name} is missing")
        if os.path.getsize(file_path) != size:
            raise ManifestMismatch(f"{name} has {os.path.getsize(file_path)} bytes, not the {size} written")
        if file_digest(file_path) != files[name]["sha256"]:
            raise ManifestMismatch(f"{name} differs from what was written (its SHA-256 does not match)")


def file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
