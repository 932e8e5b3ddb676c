"""A command never overwrites a run that is already there: what a user trained or measured is not lost.

A single run whose `hydra.run.dir` already holds a qaexp run (its metrics.json, model/ or checkpoints/) is
refused, unless it resumes that run (`trainer.resume=true`) with the run's own settings; resuming a completed
run has nothing to do and changes nothing. A sweep whose `hydra.sweep.dir` already holds jobs is refused unless
it resumes them (run/sweep_resume.py decides job by job).

A command also holds its run or sweep directory for as long as it runs (an exclusive flock on the directory
itself, which the kernel releases however the process ends, SIGKILL included): a second command started there
meanwhile, the same command twice or a resume of a run that is still going, is refused before it looks at what
the directory holds, since two processes writing one run's checkpoints and metrics would leave neither run whole.
A file system that does not lock (some network mounts) gets no such guard, silently, as before.

Hydra writes `<run dir>/.hydra/*.yaml` before qaexp's task function runs, so the check is a Hydra callback
(RunDirCheck, in conf/config.yaml's hydra.callbacks) that sees the composed config before Hydra makes or writes
the job's directory: a refused command leaves every file there as it was. TensorFlow-free.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from qaexp import rundir
from qaexp.config.schema import NOT_CONFIGURING
from qaexp.errors import QAExpError, report_error
from qaexp.run.hydra_job import output_directory
from qaexp.run.outcome import Status, read_outcome

try:
    import fcntl
except ImportError:  # not on POSIX: no directory locks
    fcntl = None

ALREADY_COMPLETE_EXIT = 0  # resuming a completed run: the run the user asked for exists, as the sweep's skip
# directory -> the descriptor this process holds it locked by, open until the process ends (a later run of this
# same process in that directory, from Python, is not "another command": no lock is taken against itself)
_held: dict[str, int] = {}


def hold(directory: str, key: str) -> Optional[str]:
    """Lock `directory` (when it exists) for the rest of this process; the one line when another process holds it."""
    real = os.path.realpath(directory)
    if fcntl is None or real in _held:
        return None
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)  # not inherited by the processes qaexp starts
    except OSError:
        return None  # not there yet (Hydra makes it): nothing in it to guard
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return (f"{key}={directory} is in use by another qaexp command that is running now: wait for it to end "
                f"(then resume or rerun as its line says), or choose another {key}")
    except OSError:
        os.close(fd)  # no locks on this file system
        return None
    _held[real] = fd
    return None


@dataclass(frozen=True)
class EarlierRun:
    """The run found in a directory: its metrics.json (None when absent or unreadable)."""

    directory: str
    metrics: Optional[dict]

    @classmethod
    def of(cls, directory: str) -> "EarlierRun":
        return cls(directory, read_outcome(directory))

    @property
    def completed(self) -> bool:
        return bool(self.metrics) and self.metrics.get("status") == Status.COMPLETED

    def describe(self) -> str:
        """What the run is, in a few words: `a completed run (EM 12.50, F1 20.31)`, `an interrupted run (...)`."""
        metrics = self.metrics
        if metrics is None:
            if os.path.exists(os.path.join(self.directory, rundir.METRICS)):
                return f"a run whose {rundir.METRICS} cannot be read"
            if os.path.lexists(os.path.join(self.directory, rundir.CHECKPOINTS)):
                return f"an unfinished run ({rundir.CHECKPOINTS}/ but no {rundir.METRICS}: it was killed)"
            return f"a run's saved {rundir.MODEL}/ (no {rundir.METRICS})"
        status = metrics.get("status")
        if self.completed:
            scores = [f"{name} {metrics[key]:.2f}" for name, key in (("EM", "exact_match"), ("F1", "f1"))
                      if isinstance(metrics.get(key), (int, float))]
            return f"a completed run ({', '.join(scores)})" if scores else "a completed run"
        if status == Status.INTERRUPTED:
            step = metrics.get("optimizer_steps")
            saved = f"checkpoint at step {step}" if metrics.get("checkpoint") and step else "no checkpoint"
            return f"an interrupted run ({metrics.get('signal') or 'a signal'}, {saved})"
        if status in (Status.FAILED, Status.DIVERGED):
            return f"a {status} run"
        return f"a run with status {status!r}"


def single_run_problem(cfg: DictConfig, run_dir: str, key: str = "hydra.run.dir") -> Optional[tuple[str, int]]:
    """(the one line, the exit status) when this single run must not start in `run_dir`; None when it may."""
    if not os.path.isdir(run_dir) or not rundir.holds_run(run_dir):
        return None
    earlier = EarlierRun.of(run_dir)
    where = f"{key}={run_dir} already holds {earlier.describe()}"
    if not cfg.trainer.resume:
        if not earlier.completed and _requeued(earlier):
            return None  # submitit requeued this command: sweep_resume.resume_if_requeued resumes it
        if earlier.completed:
            return (f"{where}: a new run there would overwrite it; choose another {key}, or remove {run_dir} "
                    "first", 2)
        return (f"{where}: continue it with trainer.resume=true, choose another {key}, or remove {run_dir} to "
                "start again there", 2)
    changed = changed_settings(cfg, run_dir)
    if changed:
        shown = ", ".join(f"{name}={new} (the run's: {old})" for name, new, old in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        further = (f"; to train it further, start a new run from its model (model.checkpoint={run_dir}/"
                   f"{rundir.MODEL}) in another {key}" if earlier.completed else "")
        return (f"trainer.resume=true with settings other than the run's in {run_dir}/{rundir.CONFIG}: {shown}"
                f"{more}: resume with the run's own settings, or start a new run in another {key}{further}", 2)
    if earlier.completed:
        return f"{run_dir} holds {earlier.describe()}: nothing to resume; nothing was changed", ALREADY_COMPLETE_EXIT
    return None


def changed_settings(cfg: DictConfig, run_dir: str) -> list[tuple[str, object, object]]:
    """(key, value asked for now, the run's value) for each setting that differs from the run's saved config;
    keys that only say how a run is run (NOT_CONFIGURING) and keys one of the two lacks (another qaexp version's
    schema) are left out. Nothing when the run has no saved config to compare with."""
    try:
        saved = rundir.read_config(run_dir, optional=True)
    except QAExpError:
        return []  # damaged: the resumed run's own checks speak for the checkpoint
    if saved is None:
        return []
    ours = _flat(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True, throw_on_missing=False))
    theirs = _flat(OmegaConf.to_container(saved, resolve=False, enum_to_str=True, throw_on_missing=False))
    # Compared as written, then as resolved: `optimizer.lr=0.001` and the run's `${model.lr}` that was 0.001 agree.
    differing = [key for key in sorted(ours.keys() & theirs.keys())
                 if ours[key] != theirs[key] and not key.startswith(NOT_CONFIGURING)]
    resolved = [(key, _resolved(cfg, key, ours[key]), _resolved(saved, key, theirs[key])) for key in differing]
    return [(key, new, old) for key, new, old in resolved if new != old]


def _resolved(config: DictConfig, key: str, written):
    """The value of `key` with its interpolations resolved, or as written when they cannot be resolved here (one
    only Hydra's job can resolve, ${hydra:...}, or a missing value)."""
    try:
        value = OmegaConf.select(config, key, throw_on_resolution_failure=True, throw_on_missing=True)
    except Exception:
        return written
    return str(value) if isinstance(value, Enum) else value


def _flat(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict = {}
    for name, value in tree.items():
        if name == "hydra":
            continue
        flat.update(_flat(value, f"{prefix}{name}.") if isinstance(value, dict) and value else
                    {f"{prefix}{name}": value})
    return flat


def sweep_problem(cfg: DictConfig, sweep_dir: str, key: str = "hydra.sweep.dir") -> Optional[str]:
    """The one line when a sweep without trainer.resume would run its jobs over an earlier sweep's; None when
    it may start."""
    if cfg.trainer.resume or not os.path.isdir(sweep_dir):
        return None
    jobs = []
    for root, dirs, _ in os.walk(sweep_dir):
        if root != sweep_dir and rundir.holds_run(root):
            jobs.append(EarlierRun.of(root))
            dirs.clear()  # a job's own folders (model/, checkpoints/) hold no further jobs
        else:
            dirs[:] = [name for name in dirs if not name.startswith(".")]  # .hydra, .submitit
    if not jobs:
        return None
    completed = sum(job.completed for job in jobs)
    counts = ", ".join(part for part in (f"{completed} completed" if completed else "",
                                         f"{len(jobs) - completed} unfinished" if len(jobs) > completed else "")
                       if part)
    return (f"{key}={sweep_dir} already holds an earlier sweep's jobs ({counts}): continue that sweep with "
            f"trainer.resume=true (the same command; completed jobs are skipped), choose another {key}, or remove "
            f"{sweep_dir} first")


def _requeued(earlier: EarlierRun) -> bool:
    from qaexp.run.sweep_resume import requeued_after_preemption

    return requeued_after_preemption(earlier.metrics)


def _non_chief_worker(cfg: DictConfig) -> bool:
    """A multi-worker run's other workers write to a temporary directory, never the run directory."""
    from qaexp.runtime import distributed

    return cfg.trainer.strategy == "multi_worker" and not distributed.is_chief()


class RunDirCheck(Callback):
    """Refuses a command that would overwrite a run already in its directory, before Hydra writes anything
    there (conf/config.yaml, hydra.callbacks)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        if _non_chief_worker(config):
            return
        try:  # ${now:...} is cached once resolved, so Hydra makes the same directory from this config afterwards
            run_dir = output_directory(config, "hydra.run.dir")
        except Exception:  # an interpolation that cannot resolve: Hydra reports it when it makes the directory
            return
        busy = hold(run_dir, "hydra.run.dir")
        if busy:
            sys.exit(report_error(busy))
        problem = single_run_problem(config, run_dir)
        if problem is None:
            return
        line, status = problem
        if status == ALREADY_COMPLETE_EXIT:
            print(f"qaexp: {line}", file=sys.stderr)
            sys.exit(status)
        sys.exit(report_error(line))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = output_directory(config, "hydra.sweep.dir")
        problem = hold(sweep_dir, "hydra.sweep.dir") or sweep_problem(config, sweep_dir)
        if problem is not None:
            sys.exit(report_error(problem))
