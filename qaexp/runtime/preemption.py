"""Slurm time limits and preemption, through submitit (`hydra/launcher=slurm` or `submitit_local`).

Before a job's time limit (`signal_delay_s` ahead) or when it is preempted, submitit sends the job its
preemption signal: SIGUSR2 by default, SUBMITIT_PREEMPT_SIGNAL=USR1 makes it SIGUSR1. While a run lasts, that
signal interrupts it like SIGTERM does: the training state is saved as a checkpoint and metrics.json says
`status: interrupted`. Then submitit's own handler runs: the hydra-submitit launcher's `checkpoint` hands
submitit the same job again, which requeues it (on Slurm with `scontrol requeue`; `submitit_local` starts it
again). The requeued job finds that metrics.json and resumes from the checkpoint (`trainer.resume`) by itself
(run/sweep_resume.resume_if_requeued, which reads the outcome).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from qaexp.errors import RunInterrupted
from qaexp.runtime import signals

log = logging.getLogger(__name__)


def in_submitit_job() -> bool:
    """True in a job that submitit started (it sets both variables before running the job)."""
    return bool(os.environ.get("SUBMITIT_EXECUTOR")) and "SUBMITIT_FOLDER" in os.environ


def preemption_signal() -> signal.Signals:
    """The signal submitit sends before a time limit or on preemption (its JobEnvironment.USR_SIG)."""
    import submitit

    return signal.Signals[f"SIG{submitit.JobEnvironment.USR_SIG}"]


@contextmanager
def checkpoint_and_requeue() -> Iterator[None]:
    """In a submitit job: the preemption signal interrupts the run (which saves a checkpoint), then submitit
    requeues the job (its handler exits the process). Elsewhere: nothing changes."""
    if not in_submitit_job() or threading.current_thread() is not threading.main_thread():
        yield
        return
    signum = preemption_signal()

    submitits_handler = signal.signal(signum, lambda received, frame: signals.interrupt(received))
    try:
        yield
    except RunInterrupted as err:
        if err.signum != signum or not callable(submitits_handler):
            raise
        log.warning("%s: the checkpoint is saved; asking submitit to requeue the job", signum.name)
        submitits_handler(signum, None)  # requeues and exits; returns only on a task other than the first
        raise
    finally:
        signal.signal(signum, submitits_handler)

