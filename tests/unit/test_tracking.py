"""Tracking backends: W&B mode choice, what an offline W&B run records, TensorBoard scalars, the Keras callback."""
import glob
import os

import pytest
from omegaconf import OmegaConf

from qaexp.run import tracking
from helpers.wandb_records import offline_runs


def logger_config(name: str, **overrides) -> dict:
    return {"name": name, "project": "qaexp-tests", "entity": None, "group": None, "job_type": "train",
            "tags": ["unit"], "mode": "online", "log_model": False, "log_dir": None, **overrides}


def experiment_config(name: str = "wandb", **logger) -> OmegaConf:
    return OmegaConf.create({"experiment_name": "exp", "logger": logger_config(name, **logger),
                             "model": {"lr": 0.003}, "optimizer": {"name": "adam", "lr": "${model.lr}"}})


@pytest.fixture
def no_wandb_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_without_an_api_key_wandb_runs_offline_and_says_so_once(no_wandb_credentials, caplog):
    with caplog.at_level("WARNING", logger="qaexp.run.tracking"):
        assert tracking.wandb_mode("online", "/runs/job0") == "offline"
    assert len(caplog.records) == 1
    assert "wandb sync /runs/job0/wandb/offline-run-*" in caplog.text


def test_an_api_key_in_netrc_or_the_environment_keeps_wandb_online(no_wandb_credentials, monkeypatch, caplog):
    no_wandb_credentials.write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")
    assert tracking.wandb_mode("online", "/runs/job0") == "online"
    no_wandb_credentials.write_text("machine other.example.org login user password x\n")
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    assert tracking.wandb_mode("online", "/runs/job0") == "online"
    assert not caplog.records


def test_explicit_modes_and_wandb_mode_variable_win(no_wandb_credentials, monkeypatch):
    assert tracking.wandb_mode("disabled", "/runs/job0") == "disabled"
    assert tracking.wandb_mode("offline", "/runs/job0") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.wandb_mode("online", "/runs/job0") == "disabled"


def test_tracked_config_is_resolved_and_secret_values_are_masked():
    cfg = OmegaConf.create({"model": {"lr": 0.1, "tokenizer_vocab_size": 4000, "pad_token_id": 0},
                            "optimizer": {"lr": "${model.lr}"},
                            "hub": {"api_key": "sk-live-123", "hf_token": "hf_abc", "token": None}})
    plain = tracking.plain_config(cfg)
    assert plain["optimizer"]["lr"] == 0.1
    assert plain["model"] == {"lr": 0.1, "tokenizer_vocab_size": 4000, "pad_token_id": 0}
    assert plain["hub"] == {"api_key": "***", "hf_token": "***", "token": None}


def test_epoch_logs_are_named_by_split():
    assert tracking.epoch_metric_name("val_f1") == "val/f1"
    assert tracking.epoch_metric_name("val_loss") == "val/loss"
    assert tracking.epoch_metric_name("loss") == "train/epoch_loss"


class RecordingTracker(tracking.KerasLoggingTracker):
    def __init__(self):
        self.logged: list[tuple[int, dict]] = []

    def log(self, metrics, step):
        self.logged.append((step, dict(metrics)))


def test_keras_callback_logs_each_step_and_each_epoch_after_the_evaluator():
    import numpy as np
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    schedule = keras.optimizers.schedules.PolynomialDecay(0.1, decay_steps=8, end_learning_rate=0.0)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")

    class FakeEvaluator(keras.callbacks.Callback):  # stands for train.make_epoch_evaluator
        def on_epoch_end(self, epoch, logs=None):
            logs["val_f1"] = 10.0 * (epoch + 1)

    tracker = RecordingTracker()
    x = np.arange(32, dtype="float32").reshape(16, 2) / 32
    model.fit(x, x[:, :1], batch_size=4, epochs=2, verbose=0, callbacks=[FakeEvaluator(), *tracker.callbacks()])

    step_logs = [(step, m) for step, m in tracker.logged if "epoch" not in m]
    epoch_logs = [(step, m) for step, m in tracker.logged if "epoch" in m]
    assert [step for step, _ in step_logs] == list(range(1, 9))
    assert all(np.isfinite(m["train/loss"]) for _, m in step_logs)
    # the rate each update used: the schedule at the step before it
    assert [m["train/learning_rate"] for _, m in step_logs] == pytest.approx([0.1 * (1 - k / 8) for k in range(8)])
    assert [(step, m["epoch"], m["val/f1"]) for step, m in epoch_logs] == [(4, 1, 10.0), (8, 2, 20.0)]
    assert all("train/epoch_loss" in m for _, m in epoch_logs)


def test_learning_rate_of_a_constant_optimizer():
    import keras

    assert tracking.current_learning_rate(keras.optimizers.Adam(0.003)) == pytest.approx(0.003)


def test_tensorboard_tracker_writes_scalars_under_the_run_directory(tmp_path):
    import tensorflow as tf

    with tracking.start(experiment_config("tensorboard"), str(tmp_path)) as tracker:
        tracker.log({"train/loss": 1.5, "train/learning_rate": 0.001}, 1)
        tracker.log({"val/f1": 42.0, "epoch": 1}, 2)
        tracker.log_results({"status": "completed", "f1": 42.0, "exact_match": 30.0, "seconds": {"train": 3.0}}, None)

    scalars = {}
    for path in glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                scalars[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    assert scalars["train/loss"] == (1, 1.5)
    assert scalars["val/f1"] == (2, 42.0)
    assert scalars["final/f1"] == (2, 42.0)
    assert scalars["final/train_seconds"] == (2, 3.0)


def test_wandb_offline_run_holds_resolved_config_metrics_summary_and_model(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    with tracking.start(experiment_config(log_model=True), str(tmp_path)) as tracker:
        tracker.log({"train/loss": 2.0, "train/learning_rate": 0.003}, 1)
        tracker.log({"val/f1": 55.5, "epoch": 1}, 1)
        tracker.log_results({"status": "completed", "f1": 55.5, "exact_match": 50.0, "history": {"loss": [2.0]}},
                            str(model_dir))

    (run,) = offline_runs(str(tmp_path))
    assert run.config["optimizer"] == {"name": "adam", "lr": 0.003}
    assert run.config["logger"]["name"] == "wandb"
    assert run.history[0]["train/loss"] == 2.0 and run.history[0]["val/f1"] == 55.5
    assert run.summary["f1"] == 55.5 and run.summary["status"] == "completed" and "history" not in run.summary
    assert run.run.run_group == "exp" and run.run.job_type == "train" and list(run.run.tags) == ["unit"]
    assert run.artifacts == [(f"model-{run.run.run_id}", "model", ["config.json"])]
    assert run.exit_code == 0


def test_wandb_run_of_a_failed_job_finishes_with_the_error(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.start(experiment_config(log_dir=str(tmp_path / "elsewhere")), str(tmp_path / "run")):
            raise RuntimeError("boom")

    assert not os.path.exists(tmp_path / "run" / "wandb")
    (run,) = offline_runs(str(tmp_path / "elsewhere"))
    assert run.summary["status"] == "failed" and run.summary["error"] == "RuntimeError: boom"
    assert run.exit_code == 1
