"""End to end through the real CLI: train, evaluate, save, reload, predict; and the offline errors."""
import json

import pytest

from helpers.cli import run_cli

from helpers.shared_runs import TINY_RUN

# The shared tiny run's data (conftest.tiny_run: 300 training and 40 evaluation questions, 2 epochs).
EVALUATE_LIKE_THE_TINY_RUN = [arg for arg in TINY_RUN if not arg.startswith("trainer.epochs=")]


@pytest.fixture(scope="module")
def trained_run(trained_tiny_model):
    return trained_tiny_model


@pytest.mark.slow
def test_run_writes_metrics_predictions_and_model(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["train_examples"] == 300 and metrics["eval_examples"] == 40
    assert metrics["train_windows"] >= 300 and metrics["eval_windows"] >= 40
    assert len(metrics["history"]["loss"]) == 2
    assert metrics["history"]["loss"][1] < metrics["history"]["loss"][0], "training did not reduce the loss"
    assert 0 <= metrics["exact_match"] <= metrics["f1"] <= 100
    # trainer.keep_best (default): the final model is the epoch with the best validation F1
    assert max(metrics["history"]["val_f1"]) == pytest.approx(metrics["f1"])
    predictions = json.loads((trained_run / "predictions.json").read_text())
    assert len(predictions) == 40 and all(isinstance(v, str) for v in predictions.values())
    assert (trained_run / ".hydra" / "config.yaml").exists()
    assert (trained_run / "model" / "config.json").exists()
    assert (trained_run / "model" / "tokenizer.json").exists()
    assert not (trained_run / "checkpoints").exists()  # removed once model/ is saved (keep_checkpoints=false)


@pytest.mark.slow
def test_saved_model_reloads_with_the_same_predictions(trained_run, tmp_path):
    result = run_cli(["-m", "qaexp", *EVALUATE_LIKE_THE_TINY_RUN, f"model.checkpoint={trained_run / 'model'}",
                      "trainer.epochs=0", "trainer.verbose=0", f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-3000:]
    original = json.loads((trained_run / "predictions.json").read_text())
    reloaded = json.loads((tmp_path / "predictions.json").read_text())
    assert reloaded == original
    assert json.loads((tmp_path / "metrics.json").read_text())["f1"] == pytest.approx(
        json.loads((trained_run / "metrics.json").read_text())["f1"])


@pytest.mark.slow
def test_predict_cli_answers_from_the_context(trained_run):
    context = "Marla Venkot was born in 1871. She grew up in Dresmouth and later became a sculptor."
    result = run_cli(["-m", "qaexp.predict", str(trained_run / "model"), "--question",
                      "In which year was Marla Venkot born?", "--context", context, "--top-k", "3", "--json"])
    assert result.returncode == 0, result.stderr[-3000:]
    candidates = json.loads(result.stdout.strip().splitlines()[-1])
    assert 1 <= len(candidates) <= 3
    assert all(c["text"] in context for c in candidates)
    assert sorted((c["probability"] for c in candidates), reverse=True) == [c["probability"] for c in candidates]


def test_unreachable_checkpoint_fails_with_one_clear_line(tmp_path):
    result = run_cli(["-m", "qaexp", "model=distilbert-base-cased", "data=synthetic", "data.num_train=20",
                      "data.num_validation=5", f"hydra.run.dir={tmp_path}"])
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "distilbert-base-cased" in result.stderr and "cannot be downloaded" in result.stderr
    assert "model=tiny" in result.stderr
    assert not (tmp_path / "predictions.json").exists()


def test_unreachable_dataset_fails_with_one_clear_line(tmp_path):
    result = run_cli(["-m", "qaexp", "model=tiny", "data=squad", f"hydra.run.dir={tmp_path}"])
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "'rajpurkar/squad'" in result.stderr and "experiment=quickstart" in result.stderr


@pytest.mark.parametrize("layout", ["empty", "missing", "unknown_config", "run_directory"])
def test_a_checkpoint_directory_that_is_not_a_model_fails_with_one_clear_line(tmp_path, layout):
    checkpoint = tmp_path / "checkpoint"
    if layout != "missing":
        checkpoint.mkdir()
    if layout == "unknown_config":
        (checkpoint / "config.json").write_text("{}")
    if layout == "run_directory":  # a run's directory given for its model: the line names RUN/model
        (checkpoint / "model").mkdir()
        (checkpoint / "model" / "config.json").write_text('{"model_type": "bert"}')
    result = run_cli(["-m", "qaexp", "experiment=quickstart", f"model.checkpoint={checkpoint}",
                      f"hydra.run.dir={tmp_path / 'run'}"])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("qaexp: error:")]
    assert len(error) == 1 and str(checkpoint) in error[0] and len(error[0]) < 500
    expected = {"empty": "has no config.json", "missing": "not an existing directory",
                "unknown_config": "model_type",
                "run_directory": f"is a qaexp run directory, not a model directory; its model is "
                                 f"model.checkpoint={checkpoint / 'model'}"}[layout]
    assert expected in error[0]
