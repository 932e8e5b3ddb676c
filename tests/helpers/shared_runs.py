"""What the session-wide runs share: the tiny run's overrides (conftest's `tiny_run` fixture, and tests that
compare against it) and `once_per_session`, which makes such a run once across pytest-xdist workers."""
from __future__ import annotations

import os
import pathlib
import shutil

# The shared tiny run: 300 questions in batches of 16 (19 steps per epoch), two epochs, default verbosity.
TINY_RUN = ["experiment=quickstart", "data.num_train=300", "data.num_validation=40", "trainer.epochs=2"]


def once_per_session(tmp_path_factory, name: str, make) -> pathlib.Path:
    """The directory `make(directory)` fills, made once per test session even across pytest-xdist workers.

    A session-scoped fixture runs once per worker; this one runs `make` in the first worker that asks and lets the
    others wait on a file lock and then use its directory (pytest-xdist's documented pattern). Tests must not
    change what is there: copy it into tmp_path first to damage it."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # one process: the basetemp's parent is not this session's
        directory = tmp_path_factory.mktemp(name, numbered=False)
        make(directory)
        return directory
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # pytest-N/, shared by this session's workers
    directory, done = shared / name, shared / f"{name}.done"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(directory, ignore_errors=True)  # what a worker that failed half-way left
            directory.mkdir()
            make(directory)
            done.touch()
    return directory
