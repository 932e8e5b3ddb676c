"""A run's outcome on disk: metrics.json says completed, failed, diverged or interrupted, whatever ends it (the
signals that interrupt a run: runtime/signals.py).

Progress holds what a run has built so far, so that an interrupted run can save its training state and a
failed one keeps its timings (and its results, if only a later step failed).
"""
from __future__ import annotations

import logging
import os
import signal
from enum import Enum
from dataclasses import dataclass, field
from typing import Any, Optional

from qaexp import rundir
from qaexp.errors import InputError, QAExpError, TrainingDiverged
from qaexp.output.files import write_json_atomic
from qaexp.runtime.timer import StageTimer

log = logging.getLogger(__name__)

class Status(str, Enum):
    """A run's `status` in metrics.json (`incomplete`: a job directory without one, as the report sees it)."""

    COMPLETED = "completed"
    FAILED = "failed"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    INCOMPLETE = "incomplete"

    def __str__(self) -> str:
        return self.value


def status_of(error: BaseException) -> Status:
    """The status of a run that `error` ended."""
    if isinstance(error, KeyboardInterrupt):
        return Status.INTERRUPTED
    return Status.DIVERGED if isinstance(error, TrainingDiverged) else Status.FAILED


@dataclass
class Progress:
    """What a run has built so far: an interrupted run saves its training state, a failed one its timings."""

    timer: StageTimer = field(default_factory=StageTimer)
    run_state: Any = None  # training.state.RunState once training has started
    summary: Optional[dict] = None  # the results, once complete: kept in metrics.json if a later step fails


def record_interrupted(run_dir: str, progress: Progress, signum: int) -> None:
    name = signal.Signals(signum).name
    outcome = {"status": Status.INTERRUPTED.value, "signal": name, "checkpoint": None, "seconds": progress.timer.seconds}
    state = progress.run_state
    if state is not None and state.latest is not None:
        log.warning("%s received: saving a checkpoint at step %d in %s", name, state.step, state.directory)
        try:
            state.save()  # may decline (an epoch not yet evaluated): the previous checkpoint then stays the latest
        except QAExpError as err:
            log.error("%s", err)
        if state.checkpoint_step is not None:
            outcome.update(checkpoint=state.latest.latest_checkpoint, optimizer_steps=state.checkpoint_step,
                           resume=f"trainer.resume=true hydra.run.dir={run_dir}")
    write_outcome(run_dir, outcome)


def record_failure(run_dir: str, progress: Progress, err: Exception) -> None:
    message = str(err) if isinstance(err, QAExpError) else f"{type(err).__name__}: {err}"
    write_outcome(run_dir, {**(progress.summary or {}), "status": status_of(err).value, "error": message,
                             "seconds": progress.timer.seconds})


def load_outcome(run_dir: str) -> dict:
    """What metrics.json in `run_dir` holds; rundir.damaged's one line when it cannot be read."""
    return rundir.read_json(os.path.join(run_dir, rundir.METRICS))


def read_outcome(run_dir: str) -> Optional[dict]:
    """What metrics.json in `run_dir` holds; None when it is absent or unreadable (a run killed while writing)."""
    try:
        return load_outcome(run_dir)
    except InputError:
        return None


def write_outcome(run_dir: str, outcome: dict) -> None:
    try:
        write_json_atomic(os.path.join(run_dir, rundir.METRICS), outcome)
    except QAExpError as err:  # e.g. disk full: keep the error that ended the run as the one reported
        log.error("could not record the run's outcome: %s", err)
