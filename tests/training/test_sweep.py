"""Sweeps: isolated jobs, failures that do not stop a sweep, launcher and search presets, W&B runs, reports."""
import csv
import json
import math

import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from matplotlib.image import imread
from omegaconf import open_dict

from helpers.config import compose
from helpers.cli import popen_cli, run_cli
from qaexp.run import hydra_job as jobs
from qaexp.tools import report
from helpers.wandb_records import offline_runs

# The smallest useful job: a one-layer tiny BERT on a little synthetic data, one epoch.
SMALL = ["experiment=test_tiny", "trainer.threads=null", "data.num_train=150", "data.num_validation=30",
         "data.max_length=128", "data.doc_stride=32", "trainer.epochs=1", "trainer.save_model=false"]


@pytest.fixture
def hydra_job():
    """Make the composed config the current Hydra job's, as a launcher does; undone afterwards."""
    def set_job(overrides, mode="MULTIRUN"):
        cfg = compose(overrides, hydra=True)
        with open_dict(cfg):
            cfg.hydra.mode = mode
            cfg.hydra.overrides.task = [o for o in overrides if not o.startswith("hydra")]
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield set_job
    HydraConfig.instance().cfg = None


def job_dirs(sweep_dir):
    return sorted((d for d in sweep_dir.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))


def metrics(job_dir):
    return json.loads((job_dir / "metrics.json").read_text())


def sweep(sweep_dir, *overrides, env=None):
    result = run_cli(["-m", "qaexp", "-m", *SMALL, *overrides, f"hydra.sweep.dir={sweep_dir}"], env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def assert_valid_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000
    height, width, _ = imread(path).shape
    assert width >= 600 and height >= 400


# --- presets and job context (no training) ---

def test_slurm_preset_extends_the_submitit_launcher():
    launcher = compose(["data=synthetic", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                              hydra=True).hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.array_parallelism) == ("gpu", 1, 8)
    assert launcher.timeout_min > 0 and launcher.submitit_folder.endswith("/.submitit/%j")  # in the sweep dir


def test_joblib_launcher_is_available():
    launcher = compose(["data=synthetic", "hydra/launcher=joblib"], hydra=True).hydra.launcher
    assert launcher._target_.endswith("joblib_launcher.JoblibLauncher")


def test_optuna_preset_maximises_f1_over_lr_warmup_and_batch_size():
    cfg = compose(["data=synthetic", "hparams_search=optuna", "hydra.sweeper.n_trials=3"], hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("optuna_sweeper.OptunaSweeper")
    assert sweeper.direction == "maximize" and sweeper.n_trials == 3
    assert set(sweeper.params) == {"optimizer.lr", "optimizer.warmup_ratio", "trainer.batch_size"}
    assert cfg.optimizer.name == "adamw" and cfg.optimizer.schedule == "linear"  # so warmup takes effect


def test_parallel_joblib_jobs_share_the_cpus(hydra_job, monkeypatch):
    monkeypatch.setattr(jobs, "available_cpus", lambda: 8)
    hydra_job(["data=synthetic", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    assert (jobs.parallel_jobs(), jobs.threads_per_job()) == (2, 4)
    hydra_job(["data=synthetic", "hydra/launcher=joblib", "hydra.launcher.n_jobs=-1"])
    assert (jobs.parallel_jobs(), jobs.threads_per_job()) == (8, 1)
    hydra_job(["data=synthetic"])  # basic launcher: one job at a time, TensorFlow decides
    assert (jobs.parallel_jobs(), jobs.threads_per_job()) == (1, None)


def test_run_name_is_the_jobs_overrides_and_group_the_sweep(hydra_job, tmp_path):
    hydra_job(["data=synthetic", "optimizer.lr=0.001", "logger=wandb", "hparams_search=optuna",
               f"hydra.sweep.dir={tmp_path / 'lr-sweep'}"])
    assert jobs.run_name("default") == "data=synthetic,optimizer.lr=0.001"
    assert jobs.sweep_group("quickstart") == "quickstart-lr-sweep"
    hydra_job(["logger=wandb"], mode="RUN")
    assert jobs.run_name("default") == "default" and jobs.sweep_group("quickstart") == "quickstart"


def test_single_runs_started_together_get_their_own_directories():
    command = ["-m", "qaexp", "data=synthetic", "--cfg", "hydra", "--resolve"]
    processes = [popen_cli(command, stderr=None) for _ in range(2)]
    run_dirs = [yaml.safe_load(p.communicate(timeout=300)[0])["hydra"]["run"]["dir"] for p in processes]
    assert run_dirs[0] != run_dirs[1]


def test_thread_limit_is_applied_before_tensorflow_starts_and_kept_after(cli):
    code = ("import logging; logging.basicConfig(); from qaexp.runtime.process import limit_threads; import tensorflow as tf; "
            "limit_threads(1); tf.constant(1) + 1; limit_threads(1); limit_threads(2); t = tf.config.threading; "
            "print(t.get_intra_op_parallelism_threads(), t.get_inter_op_parallelism_threads())")
    result = cli(["-c", code])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1", "1"]
    assert "trainer.threads=2 ignored: TensorFlow already started" in result.stderr


# --- real training ---

@pytest.mark.slow
def test_jobs_in_one_process_do_not_leak_into_each_other(tmp_path, monkeypatch):
    """What Hydra's basic launcher does: several runs in one process. A run in between, failing inside the
    mixed-precision scope, must leave neither its policy nor anything else behind: a rerun repeats exactly."""
    import keras

    from qaexp.model import build
    from qaexp.run import experiment

    # model=tiny trains its tokenizer, and the WordPiece trainer's vocabulary varies from call to call:
    # reuse the first tokenizer so that any difference comes from leaked state.
    tokenizers = {}
    build_tokenizer = build.build_tokenizer
    monkeypatch.setattr(build, "build_tokenizer",
                        lambda cfg, texts=None: tokenizers.setdefault("first", build_tokenizer(cfg, texts)))
    cfg = compose(SMALL)
    first = experiment.run(cfg, str(tmp_path / "first"))

    def fail_in_mixed_precision(*args):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        raise RuntimeError("out of memory")

    with monkeypatch.context() as patch:
        patch.setattr(build, "build_model", fail_in_mixed_precision)
        with pytest.raises(RuntimeError, match="out of memory"):
            experiment.run(compose([*SMALL, "precision=mixed_bfloat16", "trainer.seed=7"]),
                           str(tmp_path / "failed"))
    assert keras.config.dtype_policy().name == "float32"
    assert metrics(tmp_path / "failed")["status"] == "failed"

    again = experiment.run(cfg, str(tmp_path / "again"))
    assert again["history"] == first["history"] and again["f1"] == first["f1"]


@pytest.mark.slow
def test_a_sweep_with_wandb_records_every_job_and_a_failing_job_does_not_stop_it(tmp_path):
    """Three learning rates (the first invalid) by two seeds: the two jobs of lr=-1 fail with one line each and
    the sweep goes on; the other four are W&B runs grouped by the sweep, and the report ranks them and lists the
    failures."""
    sweep_dir = tmp_path / "sweep"
    fake_key = "0123456789abcdef0123456789abcdef01234567"
    result = sweep(sweep_dir, "optimizer.lr=-1,1e-3,3e-3", "trainer.seed=1,2", "logger=wandb",
                   env={"WANDB_MODE": "offline", "WANDB_API_KEY": fake_key})
    assert "Traceback" not in result.stderr

    jobs = job_dirs(sweep_dir)
    assert len(jobs) == 6
    for job_dir in jobs[:2]:  # lr=-1, seeds 1 and 2
        failed = metrics(job_dir)
        assert failed["status"] == "failed" and "optimizer.lr=-1.0 must be > 0" in failed["error"]
        assert f"qaexp: job {job_dir.name} failed ({job_dir}/metrics.json): optimizer.lr=-1.0 must be > 0" \
            in result.stderr
    job_settings = []
    for job_dir in jobs[2:]:
        result = metrics(job_dir)
        assert result["status"] == "completed" and 0 <= result["f1"] <= 100
        (run,) = offline_runs(str(job_dir))
        assert run.summary["f1"] == pytest.approx(result["f1"])
        assert run.summary["status"] == "completed" and run.exit_code == 0
        assert any("train/loss" in row and "train/learning_rate" in row for row in run.history)
        assert any(row.get("val/f1") == pytest.approx(result["f1"]) for row in run.history)
        assert run.config["model"]["architecture"]["hidden_size"] == 32
        assert run.run.run_group == "default-sweep"
        job_settings.append((run.config["optimizer"]["lr"], run.config["trainer"]["seed"], run.run.display_name))
    assert sorted(s[:2] for s in job_settings) == [(1e-3, 1), (1e-3, 2), (3e-3, 1), (3e-3, 2)]
    assert len({name for *_, name in job_settings}) == 4
    assert all("optimizer.lr=" in name and "logger" not in name for *_, name in job_settings)

    for path in sweep_dir.rglob("*"):  # the API key is never written anywhere
        if path.is_file():
            assert fake_key.encode() not in path.read_bytes(), path

    assert report.main([str(sweep_dir)]) == 0
    with open(sweep_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    completed = [row for row in rows if row["status"] == "completed"]
    assert len(completed) == 4 and rows[:4] == completed  # the completed jobs first, best F1 first
    assert [float(row["f1"]) for row in completed] == sorted((float(row["f1"]) for row in completed), reverse=True)
    assert {row["trainer.seed"] for row in completed} == {"1", "2"}
    assert sorted((row["job"], row["status"]) for row in rows[4:]) == [("0", "failed"), ("1", "failed")]
    markdown = (sweep_dir / "results.md").read_text()
    assert "## Failed jobs" in markdown
    for job, seed in (0, 1), (1, 2):
        assert f"job {job} (model=tiny, lr=-1, trainer.seed={seed}): failed: optimizer.lr=-1.0" in markdown
    assert_valid_png(sweep_dir / "f1_vs_lr.png")


@pytest.mark.slow
def test_optuna_search_runs_its_trials_and_reports_the_best(tmp_path):
    sweep_dir = tmp_path / "search"
    sweep(sweep_dir, "hparams_search=optuna", "hydra.sweeper.n_trials=2")

    trials = job_dirs(sweep_dir)
    assert len(trials) == 2
    f1s = []
    for job_dir in trials:
        assert metrics(job_dir)["status"] == "completed"
        f1s.append(metrics(job_dir)["f1"])
        chosen = dict(o.split("=", 1) for o in yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()))
        assert 1e-5 <= float(chosen["optimizer.lr"]) <= 3e-3
        assert 0.0 <= float(chosen["optimizer.warmup_ratio"]) <= 0.2
        assert chosen["trainer.batch_size"] in {"16", "32", "64"}
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert math.isclose(best["best_value"], max(f1s))
