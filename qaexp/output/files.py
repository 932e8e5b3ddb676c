"""Writing results: every file and directory a run or a tool writes appears whole or not at all.

A file is written to a temporary name beside it (unique, so concurrent writers never share one) and renamed over
the target; a directory is saved into a temporary directory that is then swapped in. A reader therefore sees
the old content or the new, never a partial file, and a failed write leaves the old content in place.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from typing import IO, Any, Callable, Iterator

from qaexp.errors import StorageError

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
