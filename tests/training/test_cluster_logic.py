"""In-process checks of the cluster paths' decisions: who is the chief, where a non-chief writes, which sweep
jobs a resumed sweep skips, when a requeued job resumes, and trackers that fail without failing the run."""
import json
import logging
import os
import socket
import time

import pytest
from omegaconf import OmegaConf

from qaexp.run import sweep_resume, tracking
from qaexp.runtime import distributed, preemption, reachability
from helpers.config import compose

CLUSTER = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


def tf_config(monkeypatch, task, cluster=CLUSTER):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch):
    for name in ("TF_CONFIG", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SUBMITIT_EXECUTOR",
                 "SUBMITIT_FOLDER"):
        monkeypatch.delenv(name, raising=False)


def test_the_chief_is_the_chief_task_else_worker_0_else_slurm_rank_0(monkeypatch):
    assert distributed.is_chief()  # no cluster: a single process
    tf_config(monkeypatch, {"type": "worker", "index": 0})
    assert distributed.is_chief()
    tf_config(monkeypatch, {"type": "worker", "index": 1})
    assert not distributed.is_chief()
    tf_config(monkeypatch, {"type": "worker", "index": 0}, {**CLUSTER, "chief": ["127.0.0.1:3"]})
    assert not distributed.is_chief()
    monkeypatch.delenv("TF_CONFIG")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert distributed.slurm_tasks() == 2 and not distributed.is_chief()
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert distributed.is_chief()


def test_a_non_chief_worker_writes_to_a_scratch_directory_and_reads_the_chiefs_checkpoints(monkeypatch, tmp_path):
    argv = ["model=tiny", "trainer.strategy=multi_worker", f"hydra.run.dir={tmp_path}", "trainer.resume=true"]
    tf_config(monkeypatch, {"type": "worker", "index": 0})
    assert distributed.worker_argv(argv) == argv
    tf_config(monkeypatch, {"type": "worker", "index": 1})
    rewritten = distributed.worker_argv(argv)
    scratch = rewritten[-2].split("=", 1)[1]
    assert rewritten == [*argv[:2], "trainer.resume=true", f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]
    assert os.readlink(os.path.join(scratch, "checkpoints")) == str(tmp_path / "checkpoints")
    assert distributed.worker_argv(["-m", *argv]) == ["-m", *argv]  # a sweep's jobs: see output_dir
    assert distributed.output_dir("default", str(tmp_path)) == str(tmp_path)
    assert distributed.output_dir("multi_worker", str(tmp_path)) != str(tmp_path)


def test_the_slurm_multi_worker_preset_runs_one_task_per_worker_on_two_nodes():
    cfg = compose(["data=synthetic", "hydra/launcher=slurm_multi_worker", "trainer.strategy=multi_worker"],
                         hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and (launcher.nodes, launcher.tasks_per_node) == (2, 1)
    assert launcher.signal_delay_s > 0 and cfg.trainer.strategy == "multi_worker"


def job(tmp_path, monkeypatch, overrides, metrics=None, recorded=None):
    monkeypatch.setattr(sweep_resume.hydra_job, "task_overrides", lambda: overrides)
    if metrics is not None:
        (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    if recorded is not None:
        (tmp_path / "job.json").write_text(json.dumps({"overrides": sorted(recorded)}))
    return OmegaConf.create({"trainer": {"resume": True}})


def test_a_resumed_sweep_skips_completed_jobs_reruns_failed_ones_and_resumes_the_rest(tmp_path, monkeypatch):
    asked = ["optimizer.lr=0.001", "trainer.seed=1", "trainer.resume=true"]
    done = {"status": "completed", "f1": 61.5}
    cfg = job(tmp_path, monkeypatch, asked, done, recorded=["optimizer.lr=0.001", "trainer.seed=1"])
    assert sweep_resume.completed_before(cfg, str(tmp_path)) == done and cfg.trainer.resume
    cfg = job(tmp_path, monkeypatch, asked, done, recorded=["optimizer.lr=0.003", "trainer.seed=1"])
    assert sweep_resume.completed_before(cfg, str(tmp_path)) is None and not cfg.trainer.resume  # other overrides
    assert json.loads((tmp_path / "job.json").read_text())["overrides"] == ["optimizer.lr=0.001", "trainer.seed=1"]
    cfg = job(tmp_path, monkeypatch, asked, {"status": "failed", "error": "x"})
    assert sweep_resume.completed_before(cfg, str(tmp_path)) is None and not cfg.trainer.resume
    cfg = job(tmp_path, monkeypatch, asked, {"status": "interrupted", "signal": "SIGTERM"})
    assert sweep_resume.completed_before(cfg, str(tmp_path)) is None and cfg.trainer.resume


def test_a_requeued_submitit_job_resumes_after_the_preemption_signal_only(tmp_path, monkeypatch):
    signal_name = preemption.preemption_signal().name
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "interrupted", "signal": signal_name,
                                                        "checkpoint": "ckpt-4"}))
    cfg = OmegaConf.create({"trainer": {"resume": False}})
    sweep_resume.resume_if_requeued(cfg, str(tmp_path))
    assert not cfg.trainer.resume  # not a submitit job
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_FOLDER", str(tmp_path))
    sweep_resume.resume_if_requeued(cfg, str(tmp_path))
    assert cfg.trainer.resume
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "interrupted", "signal": "SIGINT"}))
    cfg = OmegaConf.create({"trainer": {"resume": False}})
    sweep_resume.resume_if_requeued(cfg, str(tmp_path))
    assert not cfg.trainer.resume  # a user's Ctrl-C is not a requeue


def test_a_closed_port_is_found_unreachable_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    problem = reachability.unreachable(f"http://127.0.0.1:{port}")
    assert problem is not None and f"127.0.0.1:{port}" in problem and time.monotonic() - started < 3


def test_a_failing_tracker_stops_tracking_but_not_the_run(caplog):
    class Broken(tracking.KerasLoggingTracker):
        calls = 0

        def log(self, metrics, step):
            Broken.calls += 1
            raise ConnectionError("service gone")

    guarded = tracking.FailSafe(Broken())
    with caplog.at_level(logging.WARNING):
        guarded.log({"loss": 1.0}, 1)
        guarded.log({"loss": 0.5}, 2)
        guarded.finish(None)
    assert Broken.calls == 1 and guarded.callbacks() == []
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "Broken failed (ConnectionError: service gone): tracking stops, the run goes on" == warning
