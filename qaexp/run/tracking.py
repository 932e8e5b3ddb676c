"""Experiment tracking, one small class per backend (`logger=wandb|tensorboard|none`) behind one interface.

experiment.run opens a tracker with `start(cfg, run_dir)`; its Keras callback logs the per-step training loss
and learning rate and the per-epoch validation loss, EM and F1; the final metrics go to the run summary.
metrics.json (rundir.METRICS) is written by experiment.run whatever the backend.
"""
from __future__ import annotations

import logging
import netrc
import os
from contextlib import contextmanager
from typing import Any, Iterator, Optional
from urllib.parse import urlparse

from omegaconf import DictConfig

from qaexp.run import hydra_job
from qaexp.run.outcome import status_of
from qaexp.runtime import reachability
from qaexp.config.schema import LoggerMode, LoggerName
from qaexp.extras import install_command, require
from qaexp.errors import ConfigError, first_line
from qaexp.output.shared_config import plain_config

log = logging.getLogger(__name__)

# Summary entries worth a place in a run's summary: the final scores, losses and status.
_SUMMARY_KEYS = ("status", "exact_match", "f1", "val_loss", "train_loss", "epochs")


class Tracker:
    """The interface experiment.run uses; this base class records nothing (`logger=none`)."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_results(self, summary: dict, model_dir: Optional[str]) -> None:
        pass

    def finish(self, error: Optional[BaseException]) -> None:
        pass

    def callbacks(self) -> list:
        return []


class KerasLoggingTracker(Tracker):
    """A tracker fed by a Keras callback; list it after the EM/F1 evaluator so epoch logs include val_f1."""

    def callbacks(self) -> list:
        return [make_metrics_callback(self)]


class WandbTracker(KerasLoggingTracker):
    def __init__(self, cfg: DictConfig, run_dir: str):
        import wandb

        logger = cfg.logger
        directory = _log_dir(logger, run_dir)
        settings = dict(
            project=logger.project, entity=logger.entity, group=logger.group or hydra_job.sweep_group(cfg.experiment_name),
            job_type=logger.job_type, tags=list(logger.tags), name=hydra_job.run_name(cfg.experiment_name),
            config=plain_config(cfg), dir=directory, reinit="finish_previous")
        mode = wandb_mode(logger.mode, directory)
        problem = reachability.unreachable(reachability.wandb_url()) if mode == LoggerMode.online else None
        try:
            self._run = wandb.init(**settings, mode=LoggerMode.offline.value if problem else mode)
        except wandb.errors.Error as err:  # e.g. the service accepted the connection but never answered
            if mode != LoggerMode.online:
                raise
            problem = first_line(err, named=True)
            self._run = wandb.init(**settings, mode=LoggerMode.offline.value)
        if problem:
            log.warning("W&B unreachable (%s): logging offline; upload later with `wandb sync %s`", problem,
                        getattr(self._run.settings, "sync_dir", None) or os.path.join(directory, "wandb"))
        self._log_model = logger.log_model

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log(metrics, step=step)

    def log_results(self, summary: dict, model_dir: Optional[str]) -> None:
        self._run.summary.update(summary_scalars(summary))
        if self._log_model:
            self._log_model_artifact(model_dir)

    def _log_model_artifact(self, model_dir: Optional[str]) -> None:
        import wandb

        if model_dir is None:
            log.warning("logger.log_model=true but no model was saved (trainer.save_model=false): nothing uploaded")
            return
        artifact = wandb.Artifact(name=f"model-{self._run.id}", type="model")
        artifact.add_dir(model_dir)
        self._run.log_artifact(artifact)

    def finish(self, error: Optional[BaseException]) -> None:
        if error is not None:
            self._run.summary.update({"status": status_of(error).value, "error": first_line(error, named=True)})
        self._run.finish(exit_code=0 if error is None else 1)


class TensorBoardTracker(KerasLoggingTracker):
    def __init__(self, cfg: DictConfig, run_dir: str):
        require("logger=tensorboard", ["tensorboard"], install_command("tensorboard"))
        self._dir = cfg.logger.log_dir or os.path.join(run_dir, "tensorboard")
        self._writer = None  # created at the first scalar: TensorFlow fixes its thread settings at its first op
        self._last_step = 0

    def log(self, metrics: dict[str, float], step: int) -> None:
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self._dir)
        self._last_step = step
        with self._writer.as_default():
            for name, value in metrics.items():
                tf.summary.scalar(name, value, step=step)

    def log_results(self, summary: dict, model_dir: Optional[str]) -> None:
        scalars = {k if k.startswith("eval/") else f"final/{k}": v for k, v in summary_scalars(summary).items()
                   if isinstance(v, (int, float))}
        self.log(scalars, self._last_step)

    def finish(self, error: Optional[BaseException]) -> None:
        if self._writer is not None:
            self._writer.close()
            log.info("TensorBoard logs: tensorboard --logdir %s", self._dir)


BACKENDS = {LoggerName.none.value: Tracker, LoggerName.wandb.value: WandbTracker,
            LoggerName.tensorboard.value: TensorBoardTracker}


@contextmanager
def start(cfg: DictConfig, run_dir: str) -> Iterator[Tracker]:
    """The tracker named by `logger.name`, finished when the block ends: as failed if it raised."""
    backend = BACKENDS.get(cfg.logger.name)
    if backend is None:
        raise ConfigError(f"logger.name={cfg.logger.name!r} is not one of {', '.join(BACKENDS)}")
    tracker = FailSafe(backend() if backend is Tracker else backend(cfg, run_dir))
    try:
        yield tracker
    except BaseException as err:
        tracker.finish(err)
        raise
    tracker.finish(None)


class FailSafe(Tracker):
    """A tracker whose failures never cost the run: the first one is logged in one line, then it records nothing."""

    def __init__(self, inner: Tracker):
        self._inner = inner

    def _call(self, method: str, *args) -> None:
        if self._inner is None:
            return
        try:
            getattr(self._inner, method)(*args)
        except Exception as err:
            log.warning("%s failed (%s): tracking stops, the run goes on", type(self._inner).__name__,
                        first_line(err, named=True))
            self._inner = None

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._call("log", metrics, step)

    def log_results(self, summary: dict, model_dir: Optional[str]) -> None:
        self._call("log_results", summary, model_dir)

    def finish(self, error: Optional[BaseException]) -> None:
        self._call("finish", error)

    def callbacks(self) -> list:
        return [make_metrics_callback(self)] if isinstance(self._inner, KerasLoggingTracker) else []


def make_metrics_callback(tracker: Tracker):
    """A Keras callback: training loss and learning rate after each step, every epoch-end log after each epoch.

    `train/loss` is Keras' running mean over the epoch so far, the number its progress bar shows.
    """
    import keras

    class MetricsLogger(keras.callbacks.Callback):
        def _step(self) -> int:
            # The optimizer's step (1 after the first batch), not Keras' batch index, which restarts at 0 in the
            # shorter fit that finishes an epoch a run was resumed in.
            return int(self.model.optimizer.iterations.numpy())

        def on_train_batch_end(self, batch, logs=None):
            metrics = {"train/learning_rate": current_learning_rate(self.model.optimizer)}
            if logs and "loss" in logs:
                metrics["train/loss"] = float(logs["loss"])
            tracker.log(metrics, self._step())

        def on_epoch_end(self, epoch, logs=None):
            metrics = {epoch_metric_name(k): float(v) for k, v in (logs or {}).items() if _is_number(v)}
            metrics["epoch"] = epoch + 1
            tracker.log(metrics, self._step())

    return MetricsLogger()


def current_learning_rate(optimizer) -> float:
    """The rate the optimizer's last update used (its rate now, before any update)."""
    import keras

    # Keras 3's `learning_rate` evaluates a schedule at the step to come; the last update used the one before.
    # The schedule itself is only reachable as `_learning_rate` (of the inner optimizer under loss scaling).
    schedule = getattr(getattr(optimizer, "inner_optimizer", optimizer), "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        step = max(int(keras.ops.convert_to_numpy(optimizer.iterations)) - 1, 0)
        return float(keras.ops.convert_to_numpy(schedule(step)))
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def epoch_metric_name(key: str) -> str:
    """Keras epoch-log keys as tracked: `val_f1` -> `val/f1`, `loss` -> `train/epoch_loss`."""
    return f"val/{key[4:]}" if key.startswith("val_") else f"train/epoch_{key}"


def wandb_mode(requested: str, directory: str) -> str:
    """`online` unless WANDB_MODE asks for less, or no API key is configured (then offline, said once)."""
    from_env = os.environ.get("WANDB_MODE", "").lower()
    if requested == LoggerMode.online and from_env in ("offline", "dryrun", "disabled"):
        return LoggerMode.disabled.value if from_env == "disabled" else LoggerMode.offline.value
    if requested == LoggerMode.online and not has_wandb_api_key():
        log.warning("W&B: no API key (WANDB_API_KEY or `wandb login`): logging offline; upload later with "
                    "`wandb sync %s`", os.path.join(directory, "wandb", "offline-run-*"))
        return LoggerMode.offline.value
    return requested


def has_wandb_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        return os.path.exists(path) and netrc.netrc(path).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def summary_scalars(summary: dict) -> dict:
    scalars = {key: summary[key] for key in _SUMMARY_KEYS if summary.get(key) is not None}
    train_seconds = (summary.get("seconds") or {}).get("train")
    if train_seconds is not None:
        scalars["train_seconds"] = train_seconds
    for name, scores in (summary.get("extra_eval") or {}).items():  # data.extra_eval: eval/<name>/f1 and /exact_match
        scalars.update({f"eval/{name}/{key}": scores[key] for key in ("f1", "exact_match")})
    return scalars


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _log_dir(logger: DictConfig, run_dir: str) -> str:
    directory = logger.log_dir or os.environ.get("WANDB_DIR") or run_dir  # WANDB_DIR: W&B's own convention
    os.makedirs(directory, exist_ok=True)
    return directory
