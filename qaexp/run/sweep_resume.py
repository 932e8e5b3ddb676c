"""A sweep continued where it stopped: the same multirun command with `trainer.resume=true` (and the same
`hydra.sweep.dir`) skips the jobs that completed, resumes the interrupted ones from their checkpoints and runs
the failed and the missing ones again. A job that submitit requeued after its preemption signal
(runtime/preemption.py) resumes from its checkpoint by itself.

Hydra rewrites a job's `.hydra/overrides.yaml` before the job starts, so each job also records the overrides it
ran with in `job.json`; a completed job counts as done only if they are the ones asked for now.
"""
from __future__ import annotations

import logging
import os
from typing import Optional

from omegaconf import DictConfig

from qaexp import rundir
from qaexp.errors import InputError
from qaexp.output.files import write_json_atomic
from qaexp.run import hydra_job
from qaexp.run.outcome import Status, read_outcome
from qaexp.runtime.preemption import in_submitit_job, preemption_signal

log = logging.getLogger(__name__)

_HOW_RUN = ("trainer.resume",)  # overrides that do not change what a job trains


def job_overrides() -> list[str]:
    """This job's overrides, less the ones that only say how it is run."""
    return sorted(o for o in hydra_job.task_overrides() if o.lstrip("+~").partition("=")[0] not in _HOW_RUN)


def _read_json(path: str) -> Optional[dict]:
    try:
        return rundir.read_json(path)
    except InputError:  # a job killed while writing it: run the job again
        return None


def completed_before(cfg: DictConfig, job_dir: str) -> Optional[dict]:
    """Prepare a sweep job: the metrics of its earlier completed run when there is nothing left to do, else None.

    Only for a sweep's job with trainer.resume=true. A job whose earlier run failed, diverged or trained other
    overrides starts afresh (trainer.resume is set to false for it); an interrupted or killed one resumes.
    """
    overrides = job_overrides()
    earlier = _read_json(os.path.join(job_dir, rundir.JOB))
    metrics = read_outcome(job_dir)
    if earlier is not None and earlier.get("overrides") != overrides:
        log.warning("job %s: its directory holds a run of other overrides (%s): starting afresh", job_dir,
                    " ".join(earlier.get("overrides") or []))
        cfg.trainer.resume = False
    elif earlier is not None and metrics and metrics.get("status") == Status.COMPLETED and "f1" in metrics:
        log.info("job %s completed before (F1 %.2f): not trained again", job_dir, metrics["f1"])
        return metrics
    elif metrics and metrics.get("status") in (Status.FAILED, Status.DIVERGED):
        log.info("job %s %s before: running it again from the start", job_dir, metrics["status"])
        cfg.trainer.resume = False
    write_json_atomic(os.path.join(job_dir, rundir.JOB), {"overrides": overrides})
    return None


def record_job(job_dir: str) -> None:
    """Note the overrides a sweep job runs with, for a later `trainer.resume=true` of the sweep."""
    write_json_atomic(os.path.join(job_dir, rundir.JOB), {"overrides": job_overrides()})


def requeued_after_preemption(metrics: Optional[dict]) -> bool:
    """Whether this process is a submitit job that was requeued after its preemption signal interrupted the run
    whose metrics.json is `metrics`."""
    return (in_submitit_job() and bool(metrics) and metrics.get("status") == Status.INTERRUPTED
            and metrics.get("signal") == preemption_signal().name)


def resume_if_requeued(cfg: DictConfig, job_dir: str) -> None:
    """A job that submitit requeued after its preemption signal continues from its checkpoint."""
    if cfg.trainer.resume:
        return
    metrics = read_outcome(job_dir)
    if not requeued_after_preemption(metrics):
        return
    cfg.trainer.resume = True
    log.warning("requeued after %s: resuming from %s", metrics["signal"], metrics.get("checkpoint") or
                "the start (no checkpoint was saved)")
