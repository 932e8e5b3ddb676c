"""Result files, written atomically so that a file that exists is complete."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Iterator

from qaexp.errors import StorageError


def write_json_atomic(path: str, payload: Any) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    with storage_errors(path):
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, indent=2, ensure_ascii=False)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def storage_errors(path: str, also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """OSError (or one of `also`, e.g. TensorFlow's file errors) while writing `path` -> StorageError naming it."""
    try:
        yield
    except (OSError, *also) as err:
        reason = getattr(err, "strerror", None) or getattr(err, "message", None) or str(err)
        if getattr(err, "errno", None) == errno.ENOSPC or "No space left" in reason:
            raise StorageError(f"no space left on the device while writing {path}: free some space and rerun "
                               "(anything saved there before is unchanged)") from err
        raise StorageError(f"cannot write {path}: {reason}") from err


def save_directory_atomic(path: str, save: Callable[[str], None]) -> None:
    """Call `save(tmp_dir)`, then swap tmp_dir in for `path`: a failed save leaves the old `path` intact."""
    parent = os.path.dirname(os.path.abspath(path))
    with storage_errors(path):
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(path)}-", dir=parent)
        try:
            save(tmp)
            old = f"{tmp}.old"
            if os.path.exists(path):
                os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


OUTPUT_DIR_KEYS = {"run": "hydra.run.dir", "sweep": "hydra.sweep.dir"}
DEFAULT_OUTPUT_ROOT = "outputs"


def output_root_problem(argv: list[str]) -> str | None:
    """Why the run (or sweep) directory that the command line asks for cannot be created, or None.

    Hydra creates it before qaexp runs and reports a failure with a traceback; checked first, it gets one line.
    Only the part before the first ${...} interpolation is created here (Hydra creates the rest).
    """
    if any(flag in argv for flag in ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i")):
        return None
    key = OUTPUT_DIR_KEYS["sweep" if ("-m" in argv or "--multirun" in argv) else "run"]
    value = DEFAULT_OUTPUT_ROOT
    for arg in argv:
        name, sep, given = arg.lstrip("+").partition("=")
        if sep and name == key:
            value = given
    root = os.path.expanduser(value.split("${", 1)[0]) or "."
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as err:
        reason = err.strerror or str(err)
        return f"cannot create the output directory {root} ({reason}): set {key} to a writable directory"
    if not os.access(root, os.W_OK):
        return f"cannot write in the output directory {root} (permission denied): set {key} to a writable directory"
    return None
