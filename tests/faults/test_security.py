"""No pickle where user data, models or caches are read; trust_remote_code off unless set; tokens and keys in the
environment reach no file or log that the tools write (the run itself: tests/faults/test_errors.py's sentinel test)."""
from __future__ import annotations

import ast
import re
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.repo import REPO
from helpers.cli import popen_cli, run_cli
from helpers.config import compose
from helpers.secret_values import SECRETS

SOURCES = sorted((REPO / "qaexp").rglob("*.py"))
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal", "torch"}


def dotted(node: ast.AST) -> str | None:
    """`keras.saving` for the expression keras.saving; None for anything but a chain of names."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = dotted(node.value)
        return None if owner is None else f"{owner}.{node.attr}"
    return None


def calls(tree: ast.AST):
    """(owner, attribute, node) of each method-style call: owner is the dotted name before the attribute
    (`np`, `keras.saving`, `tf.keras.models`), None when it is not a plain chain of names."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield dotted(node.func.value), node.func.attr, node


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(REPO)) for p in SOURCES])
def test_no_pickle_when_reading(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not {name.split(".")[0] for name in names} & UNSAFE_MODULES, f"{path}:{node.lineno} imports {names}"
    for owner, attr, node in calls(tree):
        if owner in ("np", "numpy") and attr == "load":
            keywords = {k.arg: k.value for k in node.keywords}
            flag = keywords.get("allow_pickle")
            assert isinstance(flag, ast.Constant) and flag.value is False, \
                f"{path}:{node.lineno}: np.load without allow_pickle=False"
        # pandas' read_pickle; a Keras model file (keras.saving.load_model, keras.models.load_model,
        # tf.keras.models.load_model, tf_keras'): legacy formats may deserialise code. qaexp reads weights only.
        root = (owner or "").split(".")[0]
        assert attr not in ("read_pickle", "load_model") or root not in ("pd", "pandas", "tf_keras", "keras", "tf"), \
            f"{path}:{node.lineno}: {owner}.{attr} may unpickle"


def model_options() -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))


def test_trust_remote_code_is_off_unless_set():
    for option in model_options():
        assert compose([f"model={option}"]).model.trust_remote_code is False, option
    for experiment in sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")):
        assert compose([f"experiment={experiment}"]).model.trust_remote_code is False, experiment
    # The tools that load a saved model (predict, serve, export) never pass it on as true.
    for path in (REPO / "qaexp" / "tools").glob("*.py"):
        assert not re.search(r"trust_remote_code\W+True", path.read_text()), path


# ---- the secret sentinels against the tools' outputs -----------------------------------------------------------

def serve_once(model_dir: Path) -> str:
    """Start `qaexp serve` with request logging, ask one question, stop it; returns everything it printed."""
    process = popen_cli(["-m", "qaexp.serve", model_dir, "--port", "0", "--access-log", "--log-level", "debug"],
                        stderr=subprocess.STDOUT, env=SECRETS)
    printed = []
    try:
        for line in process.stdout:
            printed.append(line)
            found = re.search(r"listening on (http://\S+?)/ ", line)
            if found:
                import httpx

                reply = httpx.post(f"{found.group(1)}/predict", timeout=60,
                                   json={"inputs": {"question": "Where?", "context": "Ada grew up in Lyon."}})
                assert reply.status_code == 200, reply.text
                process.send_signal(signal.SIGTERM)
                break
        printed.append(process.communicate(timeout=60)[0])
    finally:
        process.kill()
    assert process.returncode == 0, "".join(printed)[-2000:]
    return "".join(printed)


@pytest.mark.slow
def test_secrets_reach_no_report_export_or_serve_log(trained_tiny_model, tmp_path):
    pytest.importorskip("uvicorn")
    model_dir = trained_tiny_model / "model"
    exported, report = tmp_path / "exported", tmp_path / "report"
    with ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(run_cli, ["-m", "qaexp.report", trained_tiny_model, "--out", report], env=SECRETS),
                pool.submit(run_cli, ["-m", "qaexp.export", model_dir, "--format", "saved_model", "--output", exported,
                                      "--sample-size", "8"], env=SECRETS),
                pool.submit(serve_once, model_dir)]
        report_run, export_run, serve_log = [job.result() for job in jobs]
    for run in (report_run, export_run):
        assert run.returncode == 0, run.stderr[-3000:]
    written = [p for p in [*report.rglob("*"), *exported.rglob("*")] if p.is_file()]
    assert (report / "results.csv") in written and any(p.name == "saved_model.pb" for p in written), written
    assert "POST /predict" in serve_log  # the access log was on: the check sees what a request logs
    texts = [report_run.stdout, report_run.stderr, export_run.stdout, export_run.stderr, serve_log]
    for secret in SECRETS.values():
        assert not any(secret in text for text in texts), secret
        for path in written:
            assert secret.encode() not in path.read_bytes(), f"{secret} leaked into {path}"
