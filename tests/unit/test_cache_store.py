"""Cache entries: damaged ones are rebuilt with one warning, concurrent builders agree on one entry."""
import logging
import multiprocessing
import os
import time

import numpy as np
import pytest

from qaexp.data import cache_store
from qaexp.output.manifest import MANIFEST, verify_manifest


def write_array(value, directory):
    np.save(os.path.join(directory, "values.npy"), value, allow_pickle=False)


def read_array(directory):
    return np.load(os.path.join(directory, "values.npy"), allow_pickle=False)


def store(path, value, builds=None):
    def build():
        if builds is not None:
            builds.append(1)
        return value
    return cache_store.cached(str(path), "test cache", build, write_array, read_array)


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


# (name, how the entry is damaged). Each must be noticed: the entry is rebuilt with one warning.
DAMAGE = {
    "truncated file": lambda entry: truncate(entry / "values.npy"),
    "flipped byte": lambda entry: flip_a_byte(entry / "values.npy"),
    "file missing": lambda entry: (entry / "values.npy").unlink(),
    "no manifest (half-written)": lambda entry: (entry / MANIFEST).unlink(),
    "manifest garbage": lambda entry: (entry / MANIFEST).write_text("{not json"),
    "a file where the entry belongs": lambda entry: (__import__("shutil").rmtree(entry), entry.write_bytes(b"x")),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_entry_is_rebuilt_with_one_warning(tmp_path, caplog, damage):
    entry = tmp_path / "key"
    value = np.arange(1000, dtype=np.int32)
    store(entry, value)
    DAMAGE[damage](entry)
    builds = []
    with caplog.at_level(logging.WARNING, logger="qaexp.data.cache_store"):
        again = store(entry, value, builds)
    np.testing.assert_array_equal(again, value)
    assert builds == [1], "a damaged entry was used instead of rebuilt"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "ignoring the damaged test cache entry" in warnings[0] and str(entry) in warnings[0]
    verify_manifest(str(entry))  # rebuilt whole
    builds.clear()
    np.testing.assert_array_equal(store(entry, None, builds), value)
    assert builds == [], "the rebuilt entry was not used"


def test_a_reader_failure_is_damage_too(tmp_path, caplog):
    entry = tmp_path / "key"
    store(entry, np.arange(3))

    def unusable(directory):
        raise ValueError("cannot reshape")

    with caplog.at_level(logging.WARNING):
        value = cache_store.cached(str(entry), "test cache", lambda: np.arange(3), write_array, unusable)
    np.testing.assert_array_equal(value, np.arange(3))
    assert "cannot reshape" in caplog.text


def test_an_unwritable_cache_costs_only_the_cache(tmp_path, caplog):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        with caplog.at_level(logging.WARNING):
            value = store(root / "key", np.arange(4))
    finally:
        root.chmod(0o700)
    np.testing.assert_array_equal(value, np.arange(4))
    assert "test cache" in caplog.text and os.listdir(root) == []


def test_entries_that_cannot_be_locked_give_one_warning_for_their_directory(tmp_path, caplog, monkeypatch):
    """Each entry a run uses (tokenizer, train and evaluation windows) used to warn on its own: three lines."""
    monkeypatch.setattr(cache_store, "_told_unlockable", set())
    for name in "abc":
        (tmp_path / f"{name}.lock").mkdir()  # a lock file that cannot be opened (IsADirectoryError) for each entry
    with caplog.at_level(logging.WARNING):
        for n, name in enumerate("abc"):
            np.testing.assert_array_equal(store(tmp_path / name, np.arange(n + 1)), np.arange(n + 1))
    assert caplog.text.count("cannot lock") == 1 and f"the other entries in {tmp_path} without sharing" in caplog.text


def build_slowly_and_store(args):
    path, value, log_path = args

    def build():
        with open(log_path, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough for every other process to arrive while this one builds
        return np.full(100_000, value, dtype=np.int32)

    return int(cache_store.cached(path, "test cache", build, write_array, read_array)[0])


def test_concurrent_processes_build_once_and_agree(tmp_path):
    entry, builds = str(tmp_path / "key"), tmp_path / "builds.log"
    # Each process would store its own value: whoever builds first wins, and all must then read that entry.
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        values = pool.map(build_slowly_and_store, [(entry, n, str(builds)) for n in range(4)])
    assert len(builds.read_text().split()) == 1, "the entry was built more than once"
    assert len(set(values)) == 1
    verify_manifest(entry)
    assert sorted(os.listdir(tmp_path)) == ["builds.log", "key", "key.lock"]  # no temporary directory left
