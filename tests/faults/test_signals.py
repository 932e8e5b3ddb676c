"""SIGINT and SIGTERM at every stage of a run, through the CLI: exit status 128 + signal, metrics.json says
`interrupted`, no traceback, nothing that looks complete, and what was saved before is intact. Also the
seconds before a run (its modules loading) and a tool's work (qaexp predict answering a file).

The run announces the stage through the QAEXP_STAGE_HOOK test hook (qaexp/runtime/timer.py): on entering the stage
it writes a marker file and waits; the test sends the signal once the marker exists, so the signal arrives in
that stage whatever the machine's speed. Interrupting training (SIGINT and SIGTERM, with the same checks as here
and the checkpoint it saves) is tests/faults/test_errors.py's test_interrupted_run_saves_a_checkpoint_and_says_so.
"""
from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.cli import popen_cli
from helpers.state_runs import RUN, metrics

pytestmark = pytest.mark.slow

# stage -> (signal, extra overrides). epochs=0 runs evaluate the untrained model: an "evaluate" and a
# "save_model" stage without the cost of training.
STAGES = {
    "load_data": (signal.SIGTERM, []),
    "tokenizer": (signal.SIGINT, []),
    "windows": (signal.SIGTERM, []),
    "build_model": (signal.SIGINT, []),
    "evaluate": (signal.SIGINT, ["trainer.epochs=0"]),
    "save_model": (signal.SIGTERM, ["trainer.epochs=0"]),
}


def interrupt_at(stage: str, root: Path):
    """Run until `stage` begins, send its signal; returns (exit status, stdout, stderr)."""
    signum, overrides = STAGES[stage]
    run_dir, marker = root / "run", root / "reached"
    process = popen_cli(["-m", "qaexp", *RUN, *overrides, f"data.cache_dir={root / 'cache'}",
                         f"hydra.run.dir={run_dir}"], env={"QAEXP_STAGE_HOOK": f"{stage}:{marker}"})
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # polling for the marker, not guessing the stage's timing
        assert marker.exists(), f"the run never reached {stage}"
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    return process.returncode, stdout, stderr


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    roots = {}

    def run_keeping_root(stage):
        roots[stage] = tmp_path_factory.mktemp(stage)
        return interrupt_at(stage, roots[stage])

    with ThreadPoolExecutor(2) as pool:
        outcomes = dict(zip(STAGES, pool.map(run_keeping_root, STAGES)))
    return {stage: (roots[stage], *outcomes[stage]) for stage in STAGES}


@pytest.mark.parametrize("stage", STAGES)
def test_a_signal_in_any_stage_is_an_orderly_interruption(interrupted, stage):
    root, status, stdout, stderr = interrupted[stage]
    signum = STAGES[stage][0]
    run_dir = root / "run"
    assert status == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stdout + stderr, (stdout + stderr)[-3000:]
    assert f"qaexp: interrupted by {signum.name}" in stderr.strip().splitlines()[-1]
    outcome = metrics(run_dir)
    assert outcome["status"] == "interrupted" and outcome["signal"] == signum.name
    assert stage not in outcome["seconds"], "the interrupted stage was recorded as finished"
    assert not list(run_dir.rglob(".tmp-*")), "a temporary file or directory was left behind"
    # No model directory, whole or partial (an interrupted save_model leaves none: it is written atomically). A run
    # into a directory that already held a model is refused before it starts (tests/faults/test_existing_run.py);
    # the atomic replacement of an existing directory is tests/faults/test_errors.py's save_directory_atomic test.
    assert not (run_dir / "model").exists()
    if stage != "save_model":  # save_model is reached after the answers are written
        assert not (run_dir / "predictions.json").exists()


def test_a_signal_while_the_command_loads_is_one_line_even_where_sigint_was_ignored(tmp_path):
    """A background job of a shell without job control starts with SIGINT ignored: the run used to ignore a
    Ctrl-C sent while Hydra and its modules loaded (it then trained to the end, exit 0), and obey one sent later.
    `-X importtime` reports each import as it completes: the signal goes once omegaconf (Hydra's) has loaded,
    while Hydra itself still loads."""
    run_dir = tmp_path / "run"
    process = popen_cli(["-X", "importtime", "-m", "qaexp", *RUN, f"hydra.run.dir={run_dir}"],
                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        for line in process.stderr:
            if "omegaconf" in line:
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    stderr = "".join(line for line in stderr.splitlines(keepends=True) if not line.startswith("import time:"))
    assert process.returncode == 130, stderr[-3000:]
    assert (stdout, stderr) == ("", "qaexp: interrupted by SIGINT before the run started\n")
    assert not run_dir.exists()


def test_a_signal_while_predict_answers_is_one_line_and_writes_no_output(trained_tiny_model, tmp_path):
    """qaexp predict --file used to end in a KeyboardInterrupt traceback (or, with SIGINT ignored, to run on)."""
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{n}", "context": "Ada Lovelace wrote the first program.",
                                             "question": "Who wrote the first program?"}) + "\n" for n in range(3)))
    out, marker = tmp_path / "out", tmp_path / "reached"
    process = popen_cli(["-m", "qaexp", "predict", trained_tiny_model / "model", "--file", questions,
                         "--output", out / "answers.json", "--official-output", out / "official.json"],
                        env={"QAEXP_STAGE_HOOK": f"answer:{marker}"})
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "predict never began answering"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stdout + stderr and stdout == ""
    assert stderr.strip().splitlines()[-1].startswith("qaexp predict: interrupted by SIGINT before it finished")
    assert not out.exists() or not list(out.iterdir()), "an output file (or a temporary one) was left"
