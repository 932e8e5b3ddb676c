"""A sweep's jobs as `qaexp report` reads them: the run directories below the given directories, and each job's
config choices, overrides and metrics.json outcome (a job without metrics.json is `incomplete`)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

from omegaconf import OmegaConf

from qaexp import rundir
from qaexp.errors import ReportError
from qaexp.run.outcome import Status, load_outcome


@dataclass
class Job:
    path: str
    name: str
    model: str
    lr: Optional[float]
    overrides: dict[str, str] = field(default_factory=dict)
    status: str = Status.INCOMPLETE
    exact_match: Optional[float] = None
    f1: Optional[float] = None
    val_loss: Optional[float] = None
    train_seconds: Optional[float] = None
    train_windows: Optional[int] = None
    epochs: Optional[int] = None
    error: Optional[str] = None
    extra_eval: dict = field(default_factory=dict)  # data.extra_eval: set name -> its metrics.json table

    @property
    def windows_per_second(self) -> Optional[float]:
        """Training throughput: windows trained on (per epoch, times epochs) per second of training."""
        if not self.train_seconds or not self.train_windows or not self.epochs:
            return None
        return self.train_windows * self.epochs / self.train_seconds

    @property
    def completed(self) -> bool:
        return self.status == Status.COMPLETED and self.f1 is not None


def find_job_dirs(paths: list[str]) -> list[str]:
    found = []
    for path in paths:
        if not os.path.isdir(path):
            raise ReportError(f"{path} is not a directory")
        for root, dirs, _ in os.walk(path):
            if rundir.is_run_directory(root):
                found.append(root)
                dirs.clear()  # a job directory holds no further jobs
            else:
                dirs.sort(key=natural_key)
    if not found:
        raise ReportError(f"no job directories (with {rundir.CONFIG}) under {', '.join(paths)}")
    return found


def natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def load_job(path: str, root: str) -> Job:
    config = rundir.read_config(path)
    lr = OmegaConf.select(config, "optimizer.lr", throw_on_resolution_failure=False)
    job = Job(path=path, name=os.path.relpath(path, root) if path != root else os.path.basename(path),
              model=_model_name(path, config), lr=float(lr) if lr is not None else None,
              overrides=_read_overrides(os.path.join(path, rundir.OVERRIDES)))
    metrics_path = os.path.join(path, rundir.METRICS)
    if os.path.isfile(metrics_path):
        metrics = load_outcome(path)
        job.status = metrics.get("status", Status.COMPLETED)
        job.exact_match, job.f1, job.val_loss = metrics.get("exact_match"), metrics.get("f1"), metrics.get("val_loss")
        job.train_seconds = (metrics.get("seconds") or {}).get("train")
        job.train_windows, job.epochs = metrics.get("train_windows"), metrics.get("epochs")
        job.error = metrics.get("error")
        job.extra_eval = metrics.get("extra_eval") or {}
    return job


def _model_name(path: str, config) -> str:
    """The model config group chosen (hydra.yaml), else the checkpoint."""
    hydra_yaml = os.path.join(path, rundir.HYDRA)
    if os.path.isfile(hydra_yaml):
        choice = OmegaConf.select(rundir.read_yaml(hydra_yaml), "hydra.runtime.choices.model",
                                  throw_on_resolution_failure=False)
        if choice:
            return str(choice)
    checkpoint = OmegaConf.select(config, "model.checkpoint", throw_on_resolution_failure=False)
    return str(checkpoint) if checkpoint else "from_scratch"


def _read_overrides(path: str) -> dict[str, str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not os.path.isfile(path):
        return {}
    parsed = OverridesParser.create().parse_overrides(list(rundir.read_yaml(path, "list")))
    return {o.key_or_group: o.get_value_element_as_str() if not o.is_delete() else "~" for o in parsed}
