"""What a cluster user meets, through the CLI: two-worker training (TF_CONFIG on two 127.0.0.1 ports) against one
process with the same global batch and seed, and W&B with an API key but no route to its service.

Both compare with one run of the same job without a logger in a single process (`baseline`)."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO
from helpers.wandb_records import offline_runs

JOB = ["model=tiny", "data=synthetic", "model.architecture.hidden_size=32", "model.architecture.intermediate_size=64",
       "model.architecture.num_hidden_layers=1", "data.num_train=24", "data.num_validation=12", "data.max_length=64",
       "data.doc_stride=32", "trainer.epochs=2", "trainer.max_steps=2", "trainer.batch_size=8", "trainer.seed=3",
       "optimizer.lr=3e-3", "trainer.verbose=0", "trainer.save_model=false", "trainer.threads=1"]
# Two workers all-reduce the same gradients in another order: float32 sums agree to about 1e-7 relative.
LOSS_RTOL = 1e-4
F1_TOLERANCE = 100 / 12  # at most one of the 12 validation questions may flip on a near-tie of two spans


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def wandb_without_a_route(wandb_dir) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    env.update(WANDB_API_KEY="0123456789abcdef0123456789abcdef01234567", WANDB_DIR=str(wandb_dir),
               WANDB_BASE_URL=f"http://127.0.0.1:{free_port()}")  # nothing listens there: nothing leaves the machine
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The job without a logger (the baseline) and with logger=wandb and no route to W&B, started together so
    that both meet the same load on the shared CPUs: (run dir, wall seconds, CompletedProcess) for each."""
    root = tmp_path_factory.mktemp("runs")
    commands = {"baseline": ([*JOB], dict(os.environ)),
                "wandb": ([*JOB, "logger=wandb"], wandb_without_a_route(root / "wandb-files"))}
    started, processes = time.monotonic(), {}
    for name, (overrides, env) in commands.items():
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "qaexp", *overrides, f"hydra.run.dir={root / name}"], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=600)
        results[name] = (root / name, time.monotonic() - started, subprocess.CompletedProcess(
            process.args, process.returncode, out, err))
    return results


@pytest.fixture(scope="module")
def baseline(runs):
    run_dir, _, result = runs["baseline"]
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_two_workers_train_like_one_process_and_only_the_chief_writes(baseline, tmp_path):
    single_dir = baseline
    run_dir = tmp_path / "run"
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = [subprocess.Popen(
        [sys.executable, "-m", "qaexp", *JOB, "trainer.strategy=multi_worker", f"hydra.run.dir={run_dir}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]

    (scratch_line,) = [line for line in outputs[1][1].splitlines() if "is not the chief" in line]
    scratch = scratch_line.split("go to ", 1)[1].split(" (", 1)[0]
    assert scratch_line.startswith("qaexp: worker 1 is not the chief") and not os.path.exists(scratch)
    assert "is not the chief" not in outputs[0][1]
    log_lines = (run_dir / "__main__.log").read_text().splitlines()  # written by the chief alone
    assert sum("exact_match" in line and " f1 " in line for line in log_lines) == 1

    two, one = metrics(run_dir), metrics(single_dir)
    assert two["status"] == "completed" and two["optimizer_steps"] == one["optimizer_steps"] == 4
    assert two["history"]["loss"] == pytest.approx(one["history"]["loss"], rel=LOSS_RTOL)
    assert two["history"]["val_loss"] == pytest.approx(one["history"]["val_loss"], rel=LOSS_RTOL)
    assert abs(two["f1"] - one["f1"]) <= F1_TOLERANCE and abs(two["exact_match"] - one["exact_match"]) <= F1_TOLERANCE


@pytest.mark.slow
def test_wandb_with_a_key_but_no_route_trains_and_logs_offline(runs, baseline):
    run_dir, seconds, result = runs["wandb"]
    assert result.returncode == 0, result.stderr[-3000:]
    _, baseline_seconds, _ = runs["baseline"]

    tracked = metrics(run_dir)
    assert tracked["status"] == "completed" and tracked["f1"] == metrics(baseline)["f1"]
    output = result.stdout + result.stderr
    (notice,) = [line for line in output.splitlines() if "W&B unreachable" in line]
    wandb_dir = run_dir.parent / "wandb-files"
    assert "127.0.0.1" in notice and f"wandb sync {wandb_dir}" in notice and "Traceback" not in output
    (run,) = offline_runs(str(wandb_dir))  # WANDB_DIR honoured: the offline run is there, with the results
    assert run.summary["f1"] == pytest.approx(tracked["f1"]) and run.exit_code == 0
    print(f"wall time: {seconds:.1f} s with logger=wandb and no route, {baseline_seconds:.1f} s without a logger")
    assert seconds - baseline_seconds < 20  # not the 90 s wandb.init waits by itself, nor a lost run
