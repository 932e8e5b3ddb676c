"""The one way the tests start Python as a user would: `run_cli` (wait for it) and `popen_cli` (run beside it).

`args` follow the interpreter: `["-m", "qaexp", ...]`, `["-m", "qaexp.predict", ...]`, a script path or `-c`.
The environment policy lives here and nowhere else (user_environment): the user's environment, minus what this
test process set for itself, plus this checkout's qaexp first on the import path.

A qaexp command (`-m qaexp...`, a benchmarks/ script) whose start-up is not what the test checks runs as a fork of
a process that has already imported TensorFlow, Keras and transformers (helpers/forkserver.py: the import is half
of a tiny run's CPU), or, when it sets Hugging Face variables of its own (a cache, offline, an endpoint), of a lean
one that has imported TensorFlow and Keras only. `fresh=True`, or QAEXP_TEST_FRESH=1 for the whole session, starts
a new interpreter instead; `server_for` says which commands cannot go through a fork server.
"""
from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings

from helpers.repo import REPO

FORKSERVER = pathlib.Path(__file__).with_name("forkserver.py")
# Variables the commands read only while they run (never while the servers' libraries import): a request may
# differ from the fork server's environment in these and still be forked. TF_CONFIG: TensorFlow reads it when a
# strategy is made; WANDB_*: wandb, which no server imports. Any other difference (KERAS_BACKEND, MPLCONFIGDIR,
# TF_CPP_MIN_LOG_LEVEL, QAEXP_VERBOSE, XLA_FLAGS, CUDA_VISIBLE_DEVICES, PYTHONPATH, ...) starts a new interpreter.
RUN_TIME_ONLY = ("PYTEST_CURRENT_TEST", "QAEXP_STAGE_HOOK", "SUBMITIT_PREEMPT_SIGNAL", "TF_CONFIG",
                 "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
RUN_TIME_ONLY_PREFIXES = ("WANDB_",)
# What the Hugging Face libraries read as they import (huggingface_hub.constants, datasets.config, transformers'
# hub settings): a command whose environment differs from the server's in these alone (HF_HOME, HF_HUB_OFFLINE,
# HF_ENDPOINT, ...) is forked from the lean server, which has not imported those libraries (forkserver.py checks).
HUB_PREFIXES = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_")
# What this test process's own imports set in its environment (TensorFlow's and JAX's import, wandb's service,
# tests/fixtures/squad_reference's TQDM_DISABLE); not passed on unless the user had set it before the session.
PROCESS_SET = ("TF2_BEHAVIOR", "HDF5_PLUGIN_PATH", "TPU_ML_PLATFORM", "TPU_ML_PLATFORM_VERSION",
               "ENABLE_RUNTIME_UPTIME_TELEMETRY", "TPU_SKIP_MDS_QUERY", "WANDB_SERVICE", "TQDM_DISABLE")
_USERS_OWN = {key for key in PROCESS_SET if key in os.environ}  # (this module loads before any of them)


def user_environment(extra: dict | None = None) -> dict:
    """The environment a user runs the CLI in, with `extra` on top (a None value removes that variable).

    Without the quiet settings this test process got from importing qaexp (a child would take them for the
    user's own choice and, e.g., show TensorFlow's level-2 notices), without what this process's imports set in it
    (PROCESS_SET: a user's shell does not have them) and without HYDRA_FULL_ERROR (Hydra would add the
    traceback the tests assert is absent). This checkout's qaexp comes first on PYTHONPATH, so a command
    started outside the repository (cwd elsewhere) still runs the code under test, not an installed copy."""
    from qaexp.quiet import QUIET_DEFAULTS, VERBOSE_ENV

    unset = {*QUIET_DEFAULTS, VERBOSE_ENV, "HYDRA_FULL_ERROR", *(set(PROCESS_SET) - _USERS_OWN)}
    environment = {key: value for key, value in os.environ.items() if key not in unset}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *[entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]])
    for key, value in (extra or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return environment


def run_cli(args, *, cwd=REPO, env: dict | None = None, timeout: float = 600, fresh: bool = False, **options):
    """Run `python ARGS` to the end; returns the CompletedProcess. Output is captured as text unless `options`
    send stdout or stderr elsewhere (`stdout=log_file`). `fresh`: a new interpreter, never the fork server."""
    if "stdout" not in options and "stderr" not in options:
        options.setdefault("capture_output", True)
    options.setdefault("text", True)
    args = [str(arg) for arg in args]
    environment = user_environment(env)
    return subprocess.run(_command(args, environment, options, fresh), cwd=cwd, env=environment, timeout=timeout,
                          **options)


def popen_cli(args, *, cwd=REPO, env: dict | None = None, fresh: bool = False, **options) -> subprocess.Popen:
    """Start `python ARGS` and return at once (signals, servers, runs started together); stdout and stderr are
    text pipes unless `options` say otherwise. `fresh`: a new interpreter, never the fork server."""
    options.setdefault("stdout", subprocess.PIPE)
    options.setdefault("stderr", subprocess.PIPE)
    options.setdefault("text", True)
    args = [str(arg) for arg in args]
    environment = user_environment(env)
    return subprocess.Popen(_command(args, environment, options, fresh), cwd=cwd, env=environment, **options)


def server_for(args: list[str], environment: dict, options: dict) -> str | None:
    """Which fork server may run `python ARGS` ("full" or "lean"), None for a new interpreter: a qaexp module or
    a benchmarks/ script, with no interpreter flag, no backend chosen on its command line (Keras' backend is fixed
    at import), no process group or pre-exec set-up of its own; "full" for the servers' environment bar
    RUN_TIME_ONLY, "lean" where it differs in Hugging Face variables too."""
    if os.environ.get("QAEXP_TEST_FRESH", "") not in ("", "0"):
        return None
    if args[:1] == ["-m"]:
        if not (args[1] == "qaexp" or args[1].startswith("qaexp.")):
            return None
    elif not (args and args[0].endswith(".py") and pathlib.Path(args[0]).resolve().parent == REPO / "benchmarks"):
        return None
    if any("backend" in arg for arg in args) or {"preexec_fn", "start_new_session", "executable"} & set(options):
        return None
    base = _server_environment()
    differing = {key for key in set(base) | set(environment) if base.get(key) != environment.get(key)
                 and key not in RUN_TIME_ONLY and not key.startswith(RUN_TIME_ONLY_PREFIXES)}
    if not differing:
        return "full"
    return "lean" if all(key.startswith(HUB_PREFIXES) for key in differing) else None


def _command(args: list[str], environment: dict, options: dict, fresh: bool) -> list[str]:
    kind = None if fresh else server_for(args, environment, options)
    path = _fork_server(kind) if kind else None
    if path is not None:
        return [sys.executable, str(FORKSERVER), "--client", path, *args]
    return [sys.executable, *args]


_server: dict = {}  # "environment"; per kind started: kind -> its socket (None: it failed), ("process", kind)
_starting = threading.Lock()  # tests start commands from threads too (test_signals): one server of a kind


def _stop(process: subprocess.Popen, folder: str) -> None:
    """End the server and wait for it, so that its commands' CPU time counts in this process's (time, rusage)."""
    process.terminate()
    process.wait()
    shutil.rmtree(folder, ignore_errors=True)


def _server_environment() -> dict:
    if "environment" not in _server:
        _server["environment"] = user_environment()
    return _server["environment"]


def _fork_server(kind: str = "full") -> str | None:
    """The socket of this test process's fork server of `kind`, started on first use (about 6 CPU s of imports
    for "full", 4 for "lean"); None, with a warning, if it could not start (the commands then run in new
    interpreters)."""
    with _starting:
        if kind not in _server:
            _server[kind] = _start_fork_server(kind)
    return _server[kind]


def _start_fork_server(kind: str = "full") -> str | None:
    folder = tempfile.mkdtemp(prefix="qaexp-forkserver-")
    path, log = os.path.join(folder, "socket"), os.path.join(folder, "server.log")
    with open(log, "w") as errors:
        process = subprocess.Popen([sys.executable, str(FORKSERVER), path, kind], cwd=REPO,
                                   env=_server_environment(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=errors)
    atexit.register(_stop, process, folder)
    _server["process", kind] = process
    deadline = time.monotonic() + 300
    while not os.path.exists(path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not os.path.exists(path):
        process.kill()
        warnings.warn(f"the tests' fork server did not start (its log: {log}); commands run in new interpreters")
        path = None
    return path


def without_packages(*packages: str) -> dict:
    """The `env` of a run_cli/popen_cli whose interpreter behaves as if `packages` were not installed
    (tests/helpers/hidden_packages/), with this checkout's qaexp still first on the import path."""
    hider = REPO / "tests" / "helpers" / "hidden_packages"
    return {"PYTHONPATH": os.pathsep.join([str(hider), str(REPO)]), "HIDDEN_PACKAGES": ",".join(packages)}


def imported_tensorflow(stderr: str) -> bool:
    """From `-X importtime` output (every module Python imports, one line each on stderr)."""
    return any(line.split("|")[-1].strip().startswith("tensorflow") for line in stderr.splitlines()
               if line.startswith("import time:"))
