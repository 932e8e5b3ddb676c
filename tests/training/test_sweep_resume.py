"""A sweep killed with SIGKILL (the whole process group) during its third job, continued with the same command
and trainer.resume=true: the completed jobs are not trained again, the killed one resumes from its checkpoint,
the last one runs, and the results equal those of uninterrupted runs.

The sweep's second key, trainer.verbose=0,2, changes nothing that is trained: jobs 2 and 3 (killed and resumed,
never started) are twins of jobs 0 and 1 (uninterrupted), and must end with exactly their scores and losses.
"""
import json

import pytest

from helpers.cli import run_cli
from helpers.kill_at_checkpoint import kill_at_first_checkpoint
from qaexp.tools import report

JOB = ["experiment=test_tiny", "trainer.threads=null", "data.num_train=16", "data.num_validation=8",
       "data.max_length=64", "data.doc_stride=32", "trainer.epochs=1", "trainer.batch_size=8",
       "trainer.checkpoint_every_steps=2", "trainer.save_model=false"]
SWEEP = ["trainer.verbose=0,2", "trainer.seed=1,2"]  # jobs: (0, 1), (0, 2), (2, 1), (2, 2)


def command(sweep_dir, *extra):
    return ["-m", "qaexp", "-m", *JOB, *SWEEP, f"hydra.sweep.dir={sweep_dir}", *extra]


def kill_group_during_job(sweep_dir, job: int) -> None:
    kill_at_first_checkpoint(command(sweep_dir), sweep_dir / str(job), timeout=400, process_group=True)


def metrics(job_dir):
    return json.loads((job_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_a_killed_sweep_resumes_where_it_stopped(tmp_path):
    sweep_dir = tmp_path / "sweep"
    kill_group_during_job(sweep_dir, 2)
    assert [metrics(sweep_dir / str(n))["status"] for n in (0, 1)] == ["completed", "completed"]
    assert not (sweep_dir / "2" / "metrics.json").exists() and not (sweep_dir / "3").exists()
    finished = {n: (sweep_dir / str(n) / "metrics.json").stat().st_mtime_ns for n in (0, 1)}

    resumed = run_cli(command(sweep_dir, "trainer.resume=true"), timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for n in (0, 1):  # not trained again: their metrics.json is the one the first sweep wrote
        assert (sweep_dir / str(n) / "metrics.json").stat().st_mtime_ns == finished[n]
        assert f"job {sweep_dir / str(n)} completed before" in resumed.stdout + resumed.stderr
    killed, fresh = metrics(sweep_dir / "2"), metrics(sweep_dir / "3")
    assert killed["status"] == fresh["status"] == "completed"
    assert killed["resumed"] is True and fresh["resumed"] is False
    assert f"resuming from {sweep_dir / '2' / 'checkpoints'}" in resumed.stdout + resumed.stderr

    assert report.main([str(sweep_dir)]) == 0
    for twin, original in ((2, 0), (3, 1)):
        resumed_run, uninterrupted = metrics(sweep_dir / str(twin)), metrics(sweep_dir / str(original))
        # (not train_loss: Keras' running mean over the epoch restarts with the resumed process)
        for key in ("exact_match", "f1", "val_loss", "optimizer_steps"):
            assert resumed_run[key] == uninterrupted[key], (twin, key)
