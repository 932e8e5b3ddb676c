"""The one way the tests start Python as a user would: `run_cli` (wait for it) and `popen_cli` (run beside it).

`args` follow the interpreter: `["-m", "qaexp", ...]`, `["-m", "qaexp.predict", ...]`, a script path or `-c`.
The environment policy lives here and nowhere else (user_environment): the user's environment, minus what this
test process set for itself, plus this checkout's qaexp first on the import path.
"""
from __future__ import annotations

import os
import subprocess
import sys

from helpers.repo import REPO


def user_environment(extra: dict | None = None) -> dict:
    """The environment a user runs the CLI in, with `extra` on top (a None value removes that variable).

    Without the quiet settings this test process got from importing qaexp (a child would take them for the
    user's own choice and, e.g., show TensorFlow's level-2 notices) and without HYDRA_FULL_ERROR (Hydra would add
    the traceback the tests assert is absent). This checkout's qaexp comes first on PYTHONPATH, so a command
    started outside the repository (cwd elsewhere) still runs the code under test, not an installed copy."""
    from qaexp.quiet import QUIET_DEFAULTS, VERBOSE_ENV

    unset = {*QUIET_DEFAULTS, VERBOSE_ENV, "HYDRA_FULL_ERROR"}
    environment = {key: value for key, value in os.environ.items() if key not in unset}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *[entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]])
    for key, value in (extra or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return environment


def run_cli(args, *, cwd=REPO, env: dict | None = None, timeout: float = 600, **options):
    """Run `python ARGS` to the end; returns the CompletedProcess. Output is captured as text unless `options`
    send stdout or stderr elsewhere (`stdout=log_file`)."""
    if "stdout" not in options and "stderr" not in options:
        options.setdefault("capture_output", True)
    options.setdefault("text", True)
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=user_environment(env), timeout=timeout,
                          **options)


def popen_cli(args, *, cwd=REPO, env: dict | None = None, **options) -> subprocess.Popen:
    """Start `python ARGS` and return at once (signals, servers, runs started together); stdout and stderr are
    text pipes unless `options` say otherwise."""
    options.setdefault("stdout", subprocess.PIPE)
    options.setdefault("stderr", subprocess.PIPE)
    options.setdefault("text", True)
    return subprocess.Popen([sys.executable, *map(str, args)], cwd=cwd, env=user_environment(env), **options)


def without_packages(*packages: str) -> dict:
    """The `env` of a run_cli/popen_cli whose interpreter behaves as if `packages` were not installed
    (tests/helpers/hidden_packages/), with this checkout's qaexp still first on the import path."""
    hider = REPO / "tests" / "helpers" / "hidden_packages"
    return {"PYTHONPATH": os.pathsep.join([str(hider), str(REPO)]), "HIDDEN_PACKAGES": ",".join(packages)}


def imported_tensorflow(stderr: str) -> bool:
    """From `-X importtime` output (every module Python imports, one line each on stderr)."""
    return any(line.split("|")[-1].strip().startswith("tensorflow") for line in stderr.splitlines()
               if line.startswith("import time:"))
