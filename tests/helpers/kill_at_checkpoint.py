"""A qaexp command killed with SIGKILL as soon as a run directory holds its first step checkpoint.

The resume tests use it for a single run (the process) and for a sweep (its whole process group)."""
from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import time

from helpers.cli import popen_cli


def saved_step(run_dir) -> int:
    """The step of the last checkpoint (checkpoints are numbered by optimizer step), 0 if there is none."""
    state = pathlib.Path(run_dir) / "checkpoints" / "latest" / "checkpoint"
    if not state.exists():
        return 0
    match = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', state.read_text())
    return int(match.group(1)) if match else 0


def kill_at_first_checkpoint(argv: list[str], run_dir, timeout: float, process_group: bool = False) -> int:
    """Run `python ARGV`, SIGKILL it (or its process group) once `run_dir` has a checkpoint; the step saved."""
    process = popen_cli(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=process_group)

    def kill() -> None:
        os.killpg(process.pid, signal.SIGKILL) if process_group else process.kill()

    try:
        deadline = time.monotonic() + timeout
        while saved_step(run_dir) == 0:
            assert process.poll() is None, f"the command ended before {run_dir} held its first checkpoint"
            assert time.monotonic() < deadline, f"no checkpoint appeared in {run_dir} within {timeout} s"
            time.sleep(0.05)
        kill()
    finally:
        if process.poll() is None:
            kill()
        process.wait()
    return saved_step(run_dir)
