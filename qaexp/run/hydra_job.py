"""What Hydra says about the running job: single run or sweep member, its overrides, its share of the CPUs;
and, before Hydra starts, whether the output directory the command line asks for can be made.

Every function also works outside a Hydra app (tests, notebooks), where a run is a single run with no overrides.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Optional

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from qaexp import backend
from qaexp.errors import ConfigError, report_error

# Overrides that say how a job was chosen or recorded, not what it trained: left out of run names.
_NOT_NAMING = ("logger", "hydra.", "hparams_search", "trainer.verbose", "trainer.threads")


def _hydra() -> Optional[DictConfig]:
    return HydraConfig.get() if HydraConfig.initialized() else None


def is_multirun() -> bool:
    hydra = _hydra()
    return hydra is not None and hydra.mode == RunMode.MULTIRUN


def task_overrides() -> list[str]:
    hydra = _hydra()
    return list(hydra.overrides.task) if hydra is not None else []


def run_name(default: str) -> str:
    """The job's own overrides, e.g. `model=tiny,optimizer.lr=0.001`: what tells a sweep's runs apart."""
    naming = [o for o in task_overrides() if not o.lstrip("+~").startswith(_NOT_NAMING)]
    return ",".join(naming) or default


def sweep_group(experiment_name: str) -> str:
    """`experiment_name` for a single run; for a sweep's jobs, that name plus the sweep's directory name."""
    hydra = _hydra()
    if hydra is None or hydra.mode != RunMode.MULTIRUN:
        return experiment_name
    return f"{experiment_name}-{os.path.basename(os.path.normpath(hydra.sweep.dir))}"


def available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parallel_jobs() -> int:
    """How many jobs of this sweep run at once on this machine (joblib launcher), 1 otherwise."""
    hydra = _hydra()
    if hydra is None or hydra.mode != RunMode.MULTIRUN or "Joblib" not in str(hydra.launcher.get("_target_")):
        return 1
    n_jobs = hydra.launcher.get("n_jobs") or 1
    cpus = available_cpus()
    return max(1, n_jobs if n_jobs > 0 else cpus + 1 + n_jobs)  # joblib: -1 is all CPUs, -2 all but one


def threads_per_job() -> Optional[int]:
    """TensorFlow threads per job so parallel jobs share the CPUs instead of oversubscribing them; None: TF decides."""
    jobs = parallel_jobs()
    return None if jobs == 1 else max(1, available_cpus() // jobs)


OUTPUT_DIR_KEYS = {"run": "hydra.run.dir", "sweep": "hydra.sweep.dir"}
DEFAULT_OUTPUT_ROOT = "outputs"


def output_root_problem(argv: list[str]) -> str | None:
    """Why the run (or sweep) directory that the command line asks for cannot be created, or None."""
    return make_output_root(argv)[0]


def make_output_root(argv: list[str]) -> tuple[Optional[str], Optional[str]]:
    """(why the run or sweep directory the command line asks for cannot be created, or None; the topmost
    directory this call created, or None when it created none).

    Hydra creates it before qaexp runs and reports a failure with a traceback; checked first, it gets one line.
    Only the part before the first ${...} interpolation is created here (Hydra creates the rest).
    """
    if any(flag in argv for flag in ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i")):
        return None, None
    key = OUTPUT_DIR_KEYS["sweep" if ("-m" in argv or "--multirun" in argv) else "run"]
    value = _given_value(argv, key) or DEFAULT_OUTPUT_ROOT
    home = unexpanded_home_problem(key, value)
    if home:
        return home, None
    root = value.split("${", 1)[0] or "."
    created = _topmost_missing(root)
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as err:
        reason = err.strerror or str(err)
        return f"cannot create the output directory {root} ({reason}): set {key} to a writable directory", None
    if not os.access(root, os.W_OK):
        return (f"cannot write in the output directory {root} (permission denied): set {key} to a writable "
                "directory", created)
    return None, created


def unexpanded_home_problem(key: str, value: str) -> Optional[str]:
    """The one line for an output directory that starts with '~': Hydra does not expand it, and would make a
    folder named '~' in the current directory."""
    if value != "~" and not value.startswith("~/"):
        return None
    return (f"{key}={value}: Hydra does not expand '~' (the run would go to a folder named '~' in {os.getcwd()}): "
            f"write {key}=$HOME{value[1:]} on the command line (the shell expands it), or "
            f"${{oc.env:HOME}}{value[1:]} in a config file")


def output_directory(config: DictConfig, key: str) -> str:
    """The directory `key` names as Hydra will make it, for the callbacks that run before it does: ${hydra:...}
    (hydra.run.dir=out/${hydra:job.name}) resolves only while HydraConfig holds the config, which Hydra's run_job
    sets just after the callbacks; set here for the lookup and put back. Resolving ${now:...} caches it in
    `config`, the object Hydra then reads: the same path. A value under '~' (from a config file: the command
    line's is refused before) is one line and exit 2, as Hydra would not expand it."""
    instance = HydraConfig.instance()
    previous = instance.cfg
    instance.set_config(config)
    try:
        value = str(OmegaConf.select(config, key))
    finally:
        instance.cfg = previous
    problem = unexpanded_home_problem(key, value)
    if problem:
        sys.exit(report_error(problem))
    return os.path.abspath(value)


def _given_value(argv: list[str], key: str) -> Optional[str]:
    """The value the command line gives `key`, as Hydra reads it (quotes and escapes undone, interpolations kept),
    the last one winning as in Hydra; None when it gives none."""
    from qaexp.config.suggestions import parse_overrides

    value = None
    for arg in argv:
        if arg.lstrip("+~").partition("=")[0] != key:
            continue
        parsed, problem = parse_overrides([arg])
        if problem is None and parsed and not parsed[0].is_delete():
            value = str(parsed[0].value())
    return value


def sweep_dir_problem(value: str) -> Optional[str]:
    """The one line for a hydra.sweep.dir that uses ${hydra:...}: Hydra's sweeper resolves the sweep directory
    before that resolver can work and fails with a traceback; the plain interpolation of the same key works."""
    if "${hydra:" not in value:
        return None
    key = OUTPUT_DIR_KEYS["sweep"]
    return (f"{key}={value}: Hydra makes the sweep directory before ${{hydra:...}} can be resolved; write it as a "
            f"plain interpolation of the same key: {key}={value.replace('${hydra:', '${hydra.')}")


def _topmost_missing(path: str) -> Optional[str]:
    """The highest directory on `path` that does not exist yet (what makedirs would create first), or None."""
    path = os.path.abspath(path)
    missing = None
    while not os.path.exists(path):
        missing, parent = path, os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def remove_if_empty(directory: Optional[str]) -> None:
    """Remove `directory` (one make_output_root created) if nothing was written in it: a run that Hydra stopped
    before it began leaves no empty run directory. Only empty directories are removed (os.rmdir)."""
    if directory is None:
        return
    for path, _, _ in os.walk(directory, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(path)


MULTIRUN_RECORD = "multirun.yaml"  # what Hydra's basic sweeper writes in the sweep directory before any job runs


class SweepDirWatch(Callback):
    """Notes the sweep directory before Hydra makes it (conf/config.yaml, hydra.callbacks), so that a sweep stopped
    by a config error before its first job leaves nothing behind (remove_unused_sweep_dir)."""
    sweep_dir: Optional[str] = None  # this command's sweep directory, once the sweep began
    created: Optional[str] = None  # the topmost directory on that path the sweep was about to create, if any
    record_existed = False  # whether a multirun.yaml was there before (an earlier sweep's): never removed

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        problem = sweep_dir_problem(str(OmegaConf.to_container(config.hydra.sweep, resolve=False)["dir"]))
        if problem:  # on the command line or in a config file: Hydra has made no directory yet
            sys.exit(report_error(problem))
        sweep_dir = output_directory(config, OUTPUT_DIR_KEYS["sweep"])
        SweepDirWatch.sweep_dir = sweep_dir
        SweepDirWatch.created = _topmost_missing(sweep_dir)
        SweepDirWatch.record_existed = os.path.exists(os.path.join(sweep_dir, MULTIRUN_RECORD))


def remove_unused_sweep_dir(created: Optional[str]) -> None:
    """Undo what a sweep stopped before its first job wrote (call only when no job has started): the multirun.yaml
    Hydra wrote for this command, then the directories this command created (by the sweep, or make_output_root:
    `created`) if that left them empty. A directory that existed before keeps whatever it held."""
    sweep_dir = SweepDirWatch.sweep_dir
    if sweep_dir is None or SweepDirWatch.record_existed:
        return
    with contextlib.suppress(OSError):
        os.remove(os.path.join(sweep_dir, MULTIRUN_RECORD))
    for top in (SweepDirWatch.created, created):
        if top is not None and os.path.commonpath([os.path.abspath(top), sweep_dir]) == os.path.abspath(top):
            remove_if_empty(top)


class BackendCheck(Callback):
    """Refuses a Keras backend whose packages are not installed (trainer.backend=jax without jax) with one line,
    before Hydra makes the run directory (conf/config.yaml, hydra.callbacks). A sweep's jobs that choose another
    backend than its base config are checked as each job starts (qaexp/__main__.py)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _check_backend_installed(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _check_backend_installed(config)


class KeyCheck(Callback):
    """Refuses a key the config may not hold (one added with `+` or by a config file of the user's; a
    model.architecture key its model type does not take) with one line, before Hydra makes the run or sweep
    directory (conf/config.yaml, hydra.callbacks). A sweep's jobs are checked again as each starts (validate)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _check_keys(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _check_keys(config)


def _check_keys(config: DictConfig) -> None:
    from qaexp.config.validation import check_no_unknown_keys

    try:
        check_no_unknown_keys(config)
    except ConfigError as err:
        sys.exit(report_error(err))


def _check_backend_installed(config: DictConfig) -> None:
    try:
        backend.check_installed(*backend.effective(config.trainer.backend))
    except ConfigError as err:
        sys.exit(report_error(err))
