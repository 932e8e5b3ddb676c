"""Cache entries shared between processes: written once under a lock, read whole and verified, or rebuilt.

An entry is a directory. Its files are written into a temporary directory, then a manifest listing every file's
size and SHA-256 is written last, and the directory is renamed into place. Readers check the manifest against
the files, so a truncated or corrupted entry (a full disk, a crash of an older version, a bad copy) is noticed:
it is rebuilt, with one warning, never used. Building and publishing happen under a per-entry file lock
(`filelock`, an flock the OS releases if the holder dies), so two runs that start at once build an entry once
and both use that one; the second waits for the first instead of doing the same work again.

What is verified when: on every read, before the entry is used, the manifest must exist and parse, and every
file it lists must exist with its recorded size and SHA-256 (the whole file is hashed: about 0.2 CPU s per 300 MB,
small beside tokenising again); the reader's own failure (a bad .npy header) counts as damage too. Right after
an entry is written under the lock, it is read back without hashing again (the hashes were just computed from it).
`cached` holds the value in memory while writing it; `written_in_place` lets the writer stream an entry too
large for memory (the window cache's columns) and reads it back from disk.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from typing import Callable, Iterator, Optional, TypeVar

from qaexp.output.files import save_directory_atomic
from qaexp.output.manifest import verify_manifest, write_manifest

log = logging.getLogger(__name__)

T = TypeVar("T")


def cached(path: str, what: str, build: Callable[[], T], write: Callable[[T, str], None],
           read: Callable[[str], T]) -> T:
    """The value stored in entry `path`, or `build()` stored there (write(value, directory)) and returned.

    `what` names the cache in messages ("window cache"). A damaged entry is rebuilt with one warning; a cache
    that cannot be written (read-only, full) costs only the cache, with one warning.
    """
    with _entry_lock(path, what) as locked:
        value = _read_verified(path, what, read)
        if value is not None:
            return value
        value = build()
        if locked:
            try:
                save_directory_atomic(path, lambda directory: _write_with_manifest(value, directory, write))
            except Exception as err:  # noqa: BLE001  StorageError, OSError: the cache is optional
                log.warning("could not write the %s entry %s: %s", what, path, err)
        return value


def written_in_place(path: str, what: str, write: Callable[[str], None], read: Callable[[str], T],
                     fallback: Callable[[], T]) -> T:
    """The value read from entry `path`; if it is absent or damaged, `write(directory)` makes it first.

    For entries too large to hold in memory: `write` streams the files into a temporary directory, the manifest is
    written last, the directory is renamed into place, and the value is read back from it. When the entry cannot
    be written (read-only, full disk) the value is `fallback()`, with one warning.
    """
    with _entry_lock(path, what) as locked:
        value = _read_verified(path, what, read)
        if value is not None:
            return value
        if locked:
            try:
                publish(path, write)
            except Exception as err:  # noqa: BLE001  StorageError, OSError: the cache is optional
                log.warning("could not write the %s entry %s: %s", what, path, err)
            else:
                return read(path)  # just written whole, under the lock
        return fallback()


def publish(path: str, write: Callable[[str], None]) -> None:
    """Make entry `path` with `write(directory)`: in a temporary directory, manifest last, renamed into place."""
    save_directory_atomic(path, lambda directory: (write(directory), write_manifest(directory)))


def _read_verified(path: str, what: str, read: Callable[[str], T]) -> Optional[T]:
    if not os.path.isdir(path):
        if os.path.exists(path):  # a file where an entry directory belongs (an older cache format, a bad copy)
            _discard(path, what, "it is not a cache entry directory")
        return None
    try:
        verify_manifest(path)  # the manifest is written last: without it, the entry is incomplete
        return read(path)
    except Exception as err:  # noqa: BLE001  any reader's failure on a damaged entry means: rebuild it
        _discard(path, what, str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None


def _discard(path: str, what: str, reason: str) -> None:
    log.warning("ignoring the damaged %s entry %s (%s): rebuilding it", what, path, reason)
    with contextlib.suppress(OSError):
        shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)


def _write_with_manifest(value, directory: str, write: Callable) -> None:
    write(value, directory)
    write_manifest(directory)


# Directories whose entries cannot be locked, which the user has been told of once (by the first entry that
# failed there, or by the run's config check: config/limits.py's warning for a read-only data.cache_dir).
_told_unlockable: set[str] = set()


def told_unlockable(directory: str) -> None:
    """Entries in `directory` (and below it) cannot be locked and the user has been told: no warning per entry."""
    _told_unlockable.add(os.path.abspath(os.path.expanduser(directory)))


@contextlib.contextmanager
def _entry_lock(path: str, what: str) -> Iterator[bool]:
    """Hold `path`.lock; yields False (read only, never write) when the lock cannot be made (a read-only cache)."""
    from filelock import FileLock

    lock = FileLock(f"{path}.lock")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        lock.acquire()
    except OSError as err:
        entry = os.path.abspath(path)
        if any(entry.startswith(directory + os.sep) for directory in _told_unlockable):
            log.debug("cannot lock the %s entry %s (%s): using it without sharing it", what, path, err)
        else:  # every other entry there fails alike: one warning for the directory, not one per entry
            log.warning("cannot lock the %s entry %s (%s): using it and the other entries in %s without sharing "
                        "them", what, path, err, os.path.dirname(entry))
            told_unlockable(os.path.dirname(entry))
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
