"""Multi-worker training (`trainer.strategy=multi_worker`): which process this is in TF_CONFIG's cluster, and
the outputs of the workers that are not the chief, which go to a temporary directory of their own.

Every worker runs the same command line (on Slurm: one task per worker, the same `hydra.run.dir`). The chief
(TF_CONFIG's `chief` task, else worker 0) writes the run directory; the other workers still compute everything
(TensorFlow's collectives need them to), but Hydra's files and qaexp's outputs of theirs land in a temporary
directory that is removed when they exit. A worker resuming (`trainer.resume=true`) reads the chief's checkpoints.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from typing import Optional

from qaexp.rundir import CHECKPOINTS


def task() -> Optional[tuple[str, int]]:
    """(task type, index) of this process in TF_CONFIG, or None outside a TF_CONFIG cluster."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        spec = json.loads(raw).get("task") or {}
    except (ValueError, AttributeError):
        return None  # TensorFlow reports a malformed TF_CONFIG itself, with more detail
    return str(spec.get("type", "worker")), int(spec.get("index", 0))


def slurm_tasks() -> int:
    """The number of tasks of this Slurm job step when TF_CONFIG is not set (then Slurm describes the cluster)."""
    if os.environ.get("TF_CONFIG"):
        return 0
    return int(os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS") or 0)


def is_chief() -> bool:
    """True unless TF_CONFIG (or, without it, Slurm's task rank) names this process a worker other than the chief."""
    if slurm_tasks() > 1:
        return int(os.environ.get("SLURM_PROCID", "0")) == 0
    role = task()
    if role is None:
        return True
    kind, index = role
    if kind == "chief":
        return True
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster") or {}
    return kind == "worker" and index == 0 and "chief" not in cluster


def _asked(argv: list[str], key: str) -> Optional[str]:
    for arg in argv:
        name, sep, value = arg.lstrip("+").partition("=")
        if sep and name == key:
            return value
    return None


def scratch_dir(name: str) -> str:
    """A temporary directory for a non-chief worker's outputs, removed when the process exits."""
    scratch = tempfile.mkdtemp(prefix=f"qaexp-{name}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def output_dir(strategy: str, job_dir: str) -> str:
    """Where a sweep job writes: `job_dir`, or for a non-chief multi-worker task (a Slurm job of several tasks,
    each running the same job) a temporary directory that reads the chief's checkpoints."""
    if strategy != "multi_worker" or is_chief():
        return job_dir
    scratch = scratch_dir("worker")
    os.symlink(os.path.abspath(os.path.join(job_dir, CHECKPOINTS)), os.path.join(scratch, CHECKPOINTS))
    return scratch


def worker_argv(argv: list[str]) -> list[str]:
    """`argv` with, for a non-chief multi-worker process, its outputs sent to a temporary directory."""
    if "-m" in argv or "--multirun" in argv or _asked(argv, "trainer.strategy") != "multi_worker" or is_chief():
        return argv
    kind, index = task() or ("worker", int(os.environ.get("SLURM_PROCID", "0")))
    scratch = scratch_dir(f"{kind}-{index}")
    shared = _asked(argv, "hydra.run.dir")
    if shared and str(_asked(argv, "trainer.resume")).lower() == "true":
        # read-only use: state.RunState writes a non-chief's checkpoints elsewhere and never deletes the chief's
        os.symlink(os.path.abspath(os.path.join(shared, CHECKPOINTS)), os.path.join(scratch, CHECKPOINTS))
    print(f"qaexp: {kind} {index} is not the chief: its outputs go to {scratch} (removed at exit)", file=sys.stderr)
    kept = [arg for arg in argv if arg.lstrip("+").partition("=")[0] not in ("hydra.run.dir", "hydra.output_subdir")]
    return [*kept, f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]
