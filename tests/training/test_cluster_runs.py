"""What a cluster user meets, through the CLI: two-worker training (TF_CONFIG on two 127.0.0.1 ports) against one
process with the same global batch and seed, and W&B with an API key but no route to its service.

Both compare with one run of the same job without a logger in a single process (`baseline`)."""
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from helpers.cli import popen_cli
from helpers.wandb_records import offline_runs

JOB = ["experiment=test_tiny", "data.num_train=24", "data.num_validation=12", "data.max_length=64",
       "data.doc_stride=32", "trainer.epochs=2", "trainer.max_steps=2", "trainer.batch_size=8", "trainer.seed=3",
       "optimizer.lr=3e-3", "trainer.save_model=false"]
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
    """The variables on top of the user's environment (None: unset)."""
    return {"WANDB_MODE": None, "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
            "WANDB_DIR": str(wandb_dir),
            "WANDB_BASE_URL": f"http://127.0.0.1:{free_port()}"}  # nothing listens there: nothing leaves the machine


def two_workers(run_dir) -> list[tuple[list[str], dict]]:
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    return [([*JOB, "trainer.strategy=multi_worker", f"hydra.run.dir={run_dir}"],
             {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
            for i in range(2)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The job without a logger (the baseline) and with logger=wandb and no route to W&B, started together so that
    both meet the same load on the shared CPUs; then the same job as two workers. {name: (run dir, wall seconds,
    CompletedProcess)}; the workers share one run directory."""
    root = tmp_path_factory.mktemp("runs")
    worker_0, worker_1 = two_workers(root / "two-workers")
    results = run_together(root, {"baseline": ([*JOB, f"hydra.run.dir={root / 'baseline'}"], {}),
                                  "wandb": ([*JOB, "logger=wandb", f"hydra.run.dir={root / 'wandb'}"],
                                            wandb_without_a_route(root / "wandb-files"))})
    return {**results, **run_together(root, {"worker 0": worker_0, "worker 1": worker_1})}


def run_together(root, commands: dict) -> dict:
    started, results = time.monotonic(), {}

    def run(name, args, env):
        process = popen_cli(["-m", "qaexp", *args], env=env)
        out, err = process.communicate(timeout=900)
        run_dir = root / ("two-workers" if name.startswith("worker") else name)
        results[name] = (run_dir, time.monotonic() - started,
                         subprocess.CompletedProcess(process.args, process.returncode, out, err))

    threads = [threading.Thread(target=run, args=(name, *command)) for name, command in commands.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture(scope="module")
def baseline(runs):
    run_dir, _, result = runs["baseline"]
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_two_workers_train_like_one_process_and_only_the_chief_writes(runs, baseline):
    chief, worker = runs["worker 0"][2], runs["worker 1"][2]
    for process in (chief, worker):
        assert process.returncode == 0, process.stderr[-3000:]
    run_dir = runs["worker 0"][0]

    (scratch_line,) = [line for line in worker.stderr.splitlines() if "is not the chief" in line]
    scratch = scratch_line.split("go to ", 1)[1].split(" (", 1)[0]
    assert scratch_line.startswith("qaexp: worker 1 is not the chief") and not os.path.exists(scratch)
    assert "is not the chief" not in chief.stderr
    log_lines = (run_dir / "__main__.log").read_text().splitlines()  # written by the chief alone
    assert sum("exact_match" in line and " f1 " in line for line in log_lines) == 1

    two, one = metrics(run_dir), metrics(baseline)
    assert two["status"] == "completed" and two["optimizer_steps"] == one["optimizer_steps"] == 4
    assert two["history"]["loss"] == pytest.approx(one["history"]["loss"], rel=LOSS_RTOL)
    assert two["history"]["val_loss"] == pytest.approx(one["history"]["val_loss"], rel=LOSS_RTOL)
    assert abs(two["f1"] - one["f1"]) <= F1_TOLERANCE and abs(two["exact_match"] - one["exact_match"]) <= F1_TOLERANCE
    print("losses, two workers:", two["history"]["loss"], two["history"]["val_loss"], "one process:",
          one["history"]["loss"], one["history"]["val_loss"], "F1", two["f1"], one["f1"])


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
    assert seconds - baseline_seconds < 30  # not the 90 s wandb.init waits by itself, nor a lost run
