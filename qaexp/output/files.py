"""Writing results: every file and directory a run or a tool writes appears whole or not at all.

A file is written to a temporary name beside it (unique, so concurrent writers never share one) and renamed over
the target; a directory is saved into a temporary directory that is then swapped in. A reader therefore sees
the old content or the new, never a partial file, and a failed write leaves the old content in place.

The tools' outputs follow one rule (`check_outputs`), checked before they start: a new path, or an existing one
with --overwrite, and never one of their inputs.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from typing import IO, Any, Callable, Iterator

from qaexp.errors import InputError, StorageError

# mkstemp makes files readable by their owner only; results get the permissions open() would give them.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "w") -> Iterator[IO]:
    """A file object ("w": UTF-8 text, "wb": bytes) whose content replaces `path` when the block completes.

    OSError propagates as it is (callers for which a failed write is not an error, e.g. caches, catch it);
    the write_*_atomic functions turn it into a StorageError naming the path.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.path.basename(path)}-", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str, data: bytes) -> None:
    with storage_errors(path), atomic_file(path, "wb") as f:
        f.write(data)


def write_text_atomic(path: str, text: str) -> None:
    with storage_errors(path), atomic_file(path, "w") as f:
        f.write(text)


def write_json_atomic(path: str, payload: Any) -> None:
    with storage_errors(path), atomic_file(path, "w") as f:
        json.dump(payload, f, indent=2, ensure_ascii=False)
        f.write("\n")


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
        if getattr(err, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):  # read-only, not permitted
            raise StorageError(f"cannot write {path}: {reason}: choose a location you can write to (a tool's "
                               "--out/--output, a run's hydra.run.dir), or fix its permissions") from err
        raise StorageError(f"cannot write {path}: {reason}") from err


# ---- what a tool may write over (qaexp predict's and qaexp export's outputs) ------------------------------------

OVERWRITE_HELP = "replace an output that already exists (never an input file, nor a file of the model directory)"


def same_path(a: str, b: str) -> bool:
    """Whether `a` and `b` are one file or directory: the same inode (hard links too) or, while either is missing,
    the same path once links and `..` are resolved."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs: dict[str, str | None], inputs: dict[str, str | None], *, overwrite: bool,
                  directories: tuple[str, ...] = ()) -> None:
    """The rule for a tool's outputs, checked before the tool reads or computes anything (InputError, one line):
    an output is never one of the inputs (flag or name -> path; for a directory input, any file in it), two
    outputs are never one file, and an output that exists is replaced only with --overwrite. `directories`: the
    output flags whose value is a directory (SavedModel), whose own rule for an existing one is the writer's."""
    given = [(flag, path) for flag, path in outputs.items() if path]
    for flag, path in given:
        for name, source in inputs.items():
            if not source:
                continue
            if same_path(path, source):
                raise InputError(f"{flag} {path} is {name} {source} itself: writing there would replace it "
                                 "(--overwrite never replaces an input): give another path")
            if os.path.isdir(source) and os.path.lexists(path) and _inside(path, source):
                raise InputError(f"{flag} {path} is part of {name} {source}: writing there would change it "
                                 "(--overwrite never replaces an input): give a path outside it")
    for number, (flag, path) in enumerate(given):
        for other_flag, other in given[number + 1:]:
            if same_path(path, other):
                raise InputError(f"{flag} and {other_flag} name the same file, {path}: give each its own path")
    for flag, path in given:
        if flag in directories:
            continue
        if os.path.isdir(path):
            raise InputError(f"{flag} {path} is a directory: give the path of a file")
        if os.path.lexists(path) and not overwrite:
            raise InputError(f"{flag} {path} already exists: give a new path, or add --overwrite to replace it")


def _inside(path: str, directory: str) -> bool:
    return os.path.realpath(path).startswith(os.path.join(os.path.realpath(directory), ""))
