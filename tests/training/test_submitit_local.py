"""A sweep through hydra-submitit-launcher's `submitit_local`, which runs each job as on Slurm, as local
processes: a failing job is recorded and the sweep goes on; a job that receives submitit's preemption signal
(here SIGUSR1, via SUBMITIT_PREEMPT_SIGNAL=USR1) saves a checkpoint, is requeued and resumes by itself."""
import csv
import glob
import json
import os
import signal
import time

import pytest
import yaml

from helpers.cli import popen_cli
from qaexp.tools import report
from helpers.kill_at_checkpoint import saved_step

JOB = ["experiment=test_tiny", "data.num_train=16", "data.num_validation=8", "data.max_length=64",
       "data.doc_stride=32", "trainer.epochs=1", "trainer.batch_size=8", "trainer.checkpoint_every_steps=2",
       "trainer.save_model=false"]


def task_pid(job_dir) -> int | None:
    """The pid of the submitit task process running the sweep job in `job_dir` (its hydra.job.id is submitit's)."""
    hydra_yaml = job_dir / ".hydra" / "hydra.yaml"
    if not hydra_yaml.exists():
        return None
    job_id = str(yaml.safe_load(hydra_yaml.read_text())["hydra"]["job"]["id"])
    for proc in glob.glob("/proc/[0-9]*"):
        try:
            cmdline = open(f"{proc}/cmdline", "rb").read().decode(errors="replace")
            environ = open(f"{proc}/environ", "rb").read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "submitit.core._submit" in cmdline and f"SUBMITIT_LOCAL_JOB_ID={job_id}" in environ:
            return int(os.path.basename(proc))
    return None


@pytest.mark.slow
def test_submitit_local_sweep_with_a_failing_and_a_preempted_job(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep = popen_cli(["-m", "qaexp", "-m", "hydra/launcher=submitit_local", *JOB, "optimizer.lr=-1,3e-3",
                       f"hydra.sweep.dir={sweep_dir}"], env={"SUBMITIT_PREEMPT_SIGNAL": "USR1"},
                      start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while saved_step(sweep_dir / "1") == 0:
            assert sweep.poll() is None and time.monotonic() < deadline, "job 1 saved no checkpoint"
            time.sleep(0.05)
        pid = task_pid(sweep_dir / "1")
        assert pid is not None, "no submitit task process for job 1"
        os.kill(pid, signal.SIGUSR1)
        _, stderr = sweep.communicate(timeout=600)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait()
    assert sweep.returncode == 0, stderr[-3000:]

    failed = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    assert failed["status"] == "failed" and "optimizer.lr=-1.0 must be > 0" in failed["error"]
    requeued = json.loads((sweep_dir / "1" / "metrics.json").read_text())
    assert requeued["status"] == "completed" and requeued["resumed"] is True
    job_logs = "".join(open(path).read() for path in glob.glob(str(sweep_dir / ".submitit" / "*" / "*_log.*")))
    assert "SIGUSR1 received: saving a checkpoint" in job_logs and "Requeued job" in job_logs
    assert f"requeued after SIGUSR1: resuming from {sweep_dir / '1' / 'checkpoints'}" in job_logs

    assert report.main([str(sweep_dir)]) == 0
    with open(sweep_dir / "results.csv", newline="") as f:
        assert [(row["job"], row["status"]) for row in csv.DictReader(f)] == [("1", "completed"), ("0", "failed")]
