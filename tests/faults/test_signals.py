"""SIGINT and SIGTERM at every stage of a run, through the CLI: exit status 128 + signal, metrics.json says
`interrupted`, no traceback, nothing that looks complete, and what was saved before is intact.

The run announces the stage through the QAEXP_STAGE_HOOK test hook (qaexp/runtime/timer.py): on entering the stage
it writes a marker file and waits; the test sends the signal once the marker exists, so the signal arrives in
that stage whatever the machine's speed. Interrupting training (SIGINT and SIGTERM, with the same checks as here
and the checkpoint it saves) is tests/faults/test_errors.py's test_interrupted_run_saves_a_checkpoint_and_says_so.
"""
from __future__ import annotations

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
EARLIER_MODEL = "a model saved by an earlier run into this directory"


def interrupt_at(stage: str, root: Path):
    """Run until `stage` begins, send its signal; returns (exit status, stdout, stderr)."""
    signum, overrides = STAGES[stage]
    run_dir, marker = root / "run", root / "reached"
    if stage == "save_model":  # the interrupted save must leave what was saved there before as it was
        (run_dir / "model").mkdir(parents=True)
        (run_dir / "model" / "earlier.txt").write_text(EARLIER_MODEL)
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
    if stage == "save_model":
        assert [p.name for p in (run_dir / "model").iterdir()] == ["earlier.txt"]
        assert (run_dir / "model" / "earlier.txt").read_text() == EARLIER_MODEL
    else:
        assert not (run_dir / "model").exists() and not (run_dir / "predictions.json").exists()
