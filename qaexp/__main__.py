"""`python -m qaexp [overrides]`: compose the config with Hydra, run one experiment (or a sweep with -m)."""
import logging
from importlib import resources
import sys
from pathlib import Path
from typing import Iterable, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import qaexp.config  # noqa: F401  (registers the config schemas)
from qaexp.config.plugins import plugin_problem
from qaexp.config.suggestions import (bare_word_problem, for_overrides, override_problem, override_words,
                                      parse_overrides, value_key_problem)
from qaexp.config.validation import architecture_override_problem
from qaexp.errors import QAExpError, first_line, report_error
from qaexp.run import hydra_job, sweep_resume
from qaexp.rundir import METRICS
from qaexp.runtime import distributed, preemption, signals
from qaexp.tools import TOOLS, run_named_tool

log = logging.getLogger("qaexp")

PACKAGE_CONF = "pkg://"
HYDRA_ERROR_EXIT = 1  # Hydra's exit status for a config it cannot compose


def config_path() -> str:
    """Where Hydra reads qaexp's configs: a source checkout's conf/ (editable install or none), else the copy
    an installed wheel ships as the package qaexp.conf. Either way, from any working directory."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "conf" / "config.yaml").is_file():
        return str(checkout / "conf")
    return PACKAGE_CONF + "qaexp.conf"


_started = False  # whether Hydra got as far as running main() (a job of the sweep, or the single run)


@hydra.main(version_base="1.3", config_path=config_path(), config_name="config")
def main(cfg: DictConfig) -> float:
    from qaexp.run.experiment import run

    global _started
    _started = True
    if cfg.trainer.threads is None:
        cfg.trainer.threads = hydra_job.threads_per_job()
    job_dir = HydraConfig.get().runtime.output_dir
    try:
        done = _sweep_job_done(cfg, job_dir)
        if done is not None:
            return done["f1"]
        from qaexp import backend

        backend.activate(cfg.trainer.backend, cfg.trainer.cpu_devices)  # before anything imports Keras
        backend.report(cfg.trainer.backend)
        with preemption.checkpoint_and_requeue():
            return run(cfg, _output_dir(cfg, job_dir))["f1"]
    except Exception as err:
        if hydra_job.is_multirun():  # sys.exit would end the whole sweep: record the failure and let it go on
            return _failed_job(err)
        if not isinstance(err, QAExpError):
            raise
        _log_to_file_only(str(err))
        sys.exit(report_error(err))
    except KeyboardInterrupt as err:  # RunInterrupted for SIGTERM too; metrics.json says status: interrupted
        sys.exit(signals.report_interrupted(err, detail=": metrics.json in the run directory says status: "
                                            "interrupted and, once training had started, how to resume from its "
                                            "checkpoint"))


def _log_to_file_only(message: str) -> None:
    """An error line for the run's log file (__main__.log) only: the terminal gets it once, as the stderr line."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


def _sweep_job_done(cfg: DictConfig, job_dir: str) -> Optional[dict]:
    """A sweep job's earlier metrics when a resumed sweep (trainer.resume=true) has nothing left to do for it."""
    sweep_resume.resume_if_requeued(cfg, job_dir)
    if not hydra_job.is_multirun():
        return None
    if cfg.trainer.resume:
        return sweep_resume.completed_before(cfg, job_dir)
    sweep_resume.record_job(job_dir)
    return None


def _output_dir(cfg: DictConfig, job_dir: str) -> str:
    """A single run's non-chief workers were sent elsewhere by entry(); a sweep job's are sent here."""
    return distributed.output_dir(cfg.trainer.strategy, job_dir) if hydra_job.is_multirun() else job_dir


def entry() -> None:
    """`python -m qaexp` and the `qaexp` console script: a one-line error for a mistyped key or group option and
    for an unusable output directory, before Hydra makes a run directory."""
    created = None
    try:
        with signals.signals_as_interrupts():  # a signal while Hydra sets up is one line too
            problem = _override_problem(sys.argv[1:])
            if problem is None:
                problem, created = hydra_job.make_output_root(sys.argv[1:])
            if problem:
                hydra_job.remove_if_empty(created)
                sys.exit(report_error(problem))
            sys.argv[1:] = distributed.worker_argv(sys.argv[1:])  # multi-worker: only the chief writes the run dir
            main()
    except SystemExit as stop:
        if stop.code == HYDRA_ERROR_EXIT:  # Hydra printed its error: add the nearest valid spelling, if any
            _print_suggestion(sys.argv[1:])
        raise
    except KeyboardInterrupt as err:  # before the run began (main() reports the ones during a run)
        sys.exit(signals.report_interrupted(err, detail=signals.BEFORE_THE_RUN))
    finally:
        if not _started:  # Hydra stopped before the run began (e.g. a value of the wrong type): leave no directory
            hydra_job.remove_unused_sweep_dir(created)
            hydra_job.remove_if_empty(created)


def _print_suggestion(overrides: list[str]) -> None:
    hint = for_overrides(overrides, group_options, config_groups())
    if hint:
        print(f"qaexp: {hint}", file=sys.stderr)


# Flags after which nothing is composed or run: Hydra answers them whatever the overrides.
NOT_RUNNING = ("--help", "-h", "--hydra-help", "--info", "-i", "--version", "--shell-completion", "-sc")
# Hydra's modes: one per command line (Hydra itself stops on two with a traceback). Flag -> what it does.
MODES = {("-m", "--multirun"): "runs a sweep", ("-r", "--run"): "runs one experiment",
         ("-c", "--cfg"): "prints the composed config without running",
         ("-i", "--info"): "prints Hydra's information without running",
         ("-sc", "--shell-completion"): "installs shell completion"}
# Flags that choose another primary config: its schema and groups are not qaexp's to check here.
OTHER_PRIMARY = ("--config-name", "-cn", "--config-path", "-cp")


def _override_problem(argv: list[str]) -> Optional[str]:
    """The one line for an override naming a key qaexp's closed schema lacks or a group option that no config
    folder holds (suggestions.override_problem), found before Hydra composes the config or makes a directory."""
    flags = {arg.split("=", 1)[0] for arg in argv if arg.startswith("-")}
    modes = [(names, does) for names, does in MODES.items() if flags & set(names)]
    if len(modes) > 1:
        given = [names[-1] for names, _ in modes]
        return (f"{', '.join(given[:-1])} and {given[-1]} cannot be given together ("
                + ", ".join(f"{names[-1]} {does}" for names, does in modes) + "): keep one of them")
    if flags & {*NOT_RUNNING, *OTHER_PRIMARY}:
        return None
    bare = bare_word_problem(argv, TOOLS)
    if bare:
        return bare
    extra = _user_config_dirs(argv)
    problem = override_problem(argv, lambda group: group_options(group, extra or []), config_groups(),
                               check_options=extra is not None)
    if problem:
        return problem
    parsed, problem = parse_overrides(override_words(argv))
    if problem:
        return problem
    return (plugin_problem(parsed, lambda path: _config_file(path, extra or []))
            or value_key_problem(parsed)
            or architecture_override_problem(parsed, lambda overrides: _compose(overrides, argv, extra)))


def _compose(overrides: list[str], argv: list[str], extra: Optional[list[Path]]):
    """The config Hydra composes from `overrides` with this command line's config folders (for checks made before
    Hydra runs)."""
    from hydra import compose, initialize_config_dir, initialize_config_module

    root = config_path()
    if extra:  # --config-dir and hydra.searchpath's folders, as one search path
        overrides = [o for o in overrides if not o.lstrip("+").startswith("hydra.searchpath=")]
        overrides.append(f"hydra.searchpath=[{','.join('file://' + str(folder) for folder in extra)}]")
    init = (initialize_config_module(root[len(PACKAGE_CONF):], version_base="1.3") if root.startswith(PACKAGE_CONF)
            else initialize_config_dir(root, version_base="1.3"))
    with init:
        return compose("config", overrides=overrides)


def _config_file(path: str, extra_dirs: Iterable[Path]):
    """The text of config `path` (e.g. hydra/launcher/slurm.yaml) from qaexp's conf/ or `extra_dirs`; None if none."""
    for conf in [*extra_dirs, _conf_root()]:
        candidate = conf.joinpath(*path.split("/"))
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    return None


def _user_config_dirs(argv: list[str]) -> Optional[list[Path]]:
    """The folders the command line adds to the config search path (--config-dir/-cd, hydra.searchpath's file://
    entries); None when one of them is not a folder this check can list (pkg://), leaving the options to Hydra."""
    folders: list[Path] = []
    for n, arg in enumerate(argv):
        name, sep, value = arg.partition("=")
        if name in ("--config-dir", "-cd"):
            value = value if sep else (argv[n + 1] if n + 1 < len(argv) else "")
            folders.append(Path(value).expanduser())
        elif name.lstrip("+") == "hydra.searchpath":
            for entry in value.strip("[]").split(","):
                entry = entry.strip().strip("'\"")
                if not entry.startswith("file://"):
                    return None
                folders.append(Path(entry[len("file://"):]).expanduser())
    return folders


def _conf_root():
    root = config_path()
    return resources.files(root[len(PACKAGE_CONF):]) if root.startswith(PACKAGE_CONF) else Path(root)


def config_groups() -> list[str]:
    """The root config groups qaexp ships (model, data, ..., experiment, hparams_search); Hydra's own not included."""
    return sorted(entry.name for entry in _conf_root().iterdir()
                  if entry.is_dir() and entry.name != "hydra" and any(f.name.endswith(".yaml") for f in entry.iterdir()))


def group_options(group: str, extra_dirs: Iterable[Path] = ()) -> list[str]:
    """The options of config group `group` (conf/GROUP/*.yaml, and GROUP/*.yaml in `extra_dirs`); [] when there
    is no such group."""
    options: set[str] = set()
    for conf in [_conf_root(), *extra_dirs]:
        folder = conf.joinpath(*group.split("/"))
        if folder.is_dir():
            options.update(entry.name[:-len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))
    return sorted(options)


def _failed_job(err: Exception) -> float:
    """The worst F1 there is, -inf, for the sweeper: the sweep goes on and Optuna ranks the trial last.

    Not NaN: hydra-optuna-sweeper 1.3 crashes on it (it tells Optuna a failed trial together with its value).
    """
    hydra_cfg = HydraConfig.get()
    job = hydra_cfg.job.num
    if isinstance(err, QAExpError):
        _log_to_file_only(f"job {job} failed: {err}")
    else:  # a bug, not a user error: keep the traceback in the job's log
        log.exception("job %s failed", job)
    print(f"qaexp: job {job} failed ({hydra_cfg.runtime.output_dir}/{METRICS}): {first_line(err)}",
          file=sys.stderr)
    return float("-inf")


if __name__ == "__main__":
    run_named_tool(sys.argv)  # as the console script does: `python -m qaexp predict ...` is `qaexp predict ...`
    entry()
