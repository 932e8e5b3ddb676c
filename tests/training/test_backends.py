"""trainer.backend: the same experiment on TensorFlow or JAX (issue 26).

The test process itself runs Keras on TensorFlow; what runs on JAX runs in subprocesses whose path holds a
sitecustomize that refuses `import tensorflow` and records every attempt (tests/helpers/no_tensorflow/), so
that "nothing imports TensorFlow under JAX" is checked, not assumed.
"""
import json
import logging
import math
import os

import pytest

from helpers.repo import REPO
from helpers.config import compose
from helpers.cli import run_cli, without_packages
from qaexp import backend, extras
from qaexp.errors import ConfigError

HELPERS = REPO / "tests" / "helpers"

jax_installed = pytest.mark.skipif(bool(backend.missing_packages("jax")),
                                   reason='jax is not installed (pip install "qaexp[jax]")')


def composed(overrides):
    return compose(["experiment=quickstart", *overrides])


@pytest.fixture
def no_user_backend(monkeypatch):
    """The environment of a user who named no backend: KERAS_BACKEND is qaexp's own default."""
    monkeypatch.setenv(backend.ENV, backend.DEFAULT)
    monkeypatch.setenv(backend.DEFAULT_NOTE, backend.DEFAULT)


def test_trainer_backend_chooses_the_backend_unless_the_user_set_keras_backend(no_user_backend, monkeypatch):
    assert backend.effective("jax") == ("jax", "trainer.backend=jax")
    assert backend.effective("tensorflow") == ("tensorflow", "trainer.backend=tensorflow")
    monkeypatch.setenv(backend.ENV, "jax")  # the user's own KERAS_BACKEND wins over the config
    assert backend.effective("tensorflow") == ("jax", "KERAS_BACKEND=jax from the environment")
    monkeypatch.delenv(backend.DEFAULT_NOTE)  # without qaexp's note even "tensorflow" is the user's choice
    monkeypatch.setenv(backend.ENV, "tensorflow")
    assert backend.effective("jax") == ("tensorflow", "KERAS_BACKEND=tensorflow from the environment")


def test_the_run_log_says_which_backend_and_why(monkeypatch, caplog):
    monkeypatch.setenv(backend.ENV, "jax")
    monkeypatch.delenv(backend.DEFAULT_NOTE, raising=False)
    with caplog.at_level(logging.INFO, logger="qaexp.backend"):
        backend.report("tensorflow")
    assert ("Keras backend: jax (KERAS_BACKEND=jax from the environment; trainer.backend=tensorflow is overridden "
            "by it)") in caplog.text


def test_a_backend_cannot_change_once_keras_runs_in_the_process(no_user_backend):
    import keras  # noqa: F401  (on TensorFlow, as everywhere in this process)

    assert backend.activate("tensorflow") == "tensorflow"  # this process's Keras is TensorFlow's
    with pytest.raises(ConfigError, match="trainer.backend=jax, but Keras was already imported in this process "
                                          "with the tensorflow backend"):
        backend.activate("jax")


@pytest.mark.parametrize("override, expected", [
    ("trainer.strategy=mirrored", "trainer.strategy=mirrored is a tf.distribute strategy: on JAX use "
                                  "trainer.strategy=data_parallel"),
    ("precision=mixed_float16", "precision.policy=mixed_float16 needs loss scaling, which qaexp does on TensorFlow "
                                "only: on JAX use precision=mixed_bfloat16"),
    ("logger=tensorboard", "logger.name=tensorboard writes through TensorFlow's summary writer"),
])
def test_what_only_tensorflow_does_is_refused_under_jax_in_one_line(no_user_backend, override, expected):
    from qaexp.config.validation import validate

    with pytest.raises(ConfigError, match=expected) as refused:
        validate(composed(["trainer.backend=jax", override]))
    assert "\n" not in str(refused.value) and "(the backend is jax: trainer.backend=jax)" in str(refused.value)
    validate(composed([override]))  # the same setting on TensorFlow is fine


def test_data_parallel_is_refused_on_tensorflow_with_its_equivalent(no_user_backend):
    from qaexp.config.validation import validate

    with pytest.raises(ConfigError, match="trainer.strategy=data_parallel is keras.distribution's, which qaexp uses "
                                          "on JAX: on TensorFlow use trainer.strategy=mirrored"):
        validate(composed(["trainer.strategy=data_parallel"]))


def test_a_backend_whose_package_is_missing_is_one_line_and_leaves_no_run_directory(tmp_path):
    root = tmp_path / "outputs"
    result = run_cli(["-m", "qaexp", "experiment=quickstart", "trainer.backend=jax", f"hydra.run.dir={root}/run"],
                     env={**without_packages("jax", "jaxlib"), backend.ENV: backend.DEFAULT,
                          backend.DEFAULT_NOTE: backend.DEFAULT})
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == ('qaexp: error: trainer.backend=jax needs jax and jaxlib, which are not '
                                     f'installed: {extras.install_command("jax")}')
    assert not root.exists()


@pytest.mark.parametrize("tool", ["predict", "serve", "export"])
def test_the_tools_under_keras_backend_jax_without_jax_are_one_line(tool, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    args = {"predict": ["--question", "Who?", "--context", "Ada did."], "serve": ["--port", "0"],
            "export": ["--format", "tflite", "--output", str(tmp_path / "m.tflite")]}[tool]
    # The user's own KERAS_BACKEND (no note that qaexp set it), on a machine without jax.
    result = run_cli(["-m", "qaexp", tool, str(tmp_path), *args],
                     env={**without_packages("jax", "jaxlib"), backend.ENV: "jax", backend.DEFAULT_NOTE: None})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    if tool == "export":  # every format is written through TensorFlow: jax would not help, the line says what does
        assert "written through TensorFlow, but KERAS_BACKEND=jax" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    else:  # training's line for the same environment (qaexp/backend.py)
        assert result.stderr.strip() == (f'qaexp {tool}: error: KERAS_BACKEND=jax from the environment needs jax and '
                                         f'jaxlib, which are not installed: {extras.install_command("jax")}')


# The end-to-end run on JAX: test_end_to_end.py's small seeded run (its figures and floor), through the CLI, in a
# process where TensorFlow cannot be imported.
from helpers.small_run import COMMON, STEPS_PER_EPOCH, relative  # noqa: E402

# Measured 2026-12-06 on the 2-core Intel Xeon VM (JAX 0.10.2, Keras 3.15.1): EM 15.00 / F1 23.44 after 3 epochs
# (F1 17.08, 13.81, 23.44; train loss 2.723, 1.863, 1.683), where TensorFlow's run of the same config gives F1 27.98
# (loss 2.759, 1.933, 1.693). Each backend draws the initial weights and dropout masks from its own generator, so the
# two are two samples of the same training, not the same numbers; a model that does not learn scores F1 3 to 8 here.
JAX_MIN_F1 = 15.0


def jax_env(tmp, **extra) -> dict:
    """A JAX process without TensorFlow: the user named no backend, every `import tensorflow` fails and is logged."""
    return {"PYTHONPATH": os.pathsep.join([str(HELPERS / "no_tensorflow"), str(REPO)]),
            backend.ENV: backend.DEFAULT, backend.DEFAULT_NOTE: backend.DEFAULT,
            "NO_TENSORFLOW_LOG": str(tmp / "tensorflow_imports.log"), **extra}


def tensorflow_imports(tmp) -> str:
    log = tmp / "tensorflow_imports.log"
    return log.read_text() if log.exists() else ""


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """Three epochs on JAX through the CLI (as test_end_to_end.py's float32 run on TensorFlow), model saved."""
    tmp = tmp_path_factory.mktemp("jax_run")
    result = run_cli(["-m", "qaexp", *COMMON, "trainer.save_model=true", "trainer.analyze=false", "trainer.epochs=3",
                      "trainer.backend=jax", f"data.cache_dir={tmp / 'cache'}", f"hydra.run.dir={tmp / 'run'}"],
                     env=jax_env(tmp))
    return tmp, result


@jax_installed
@pytest.mark.slow
def test_jax_trains_through_the_cli_to_the_stated_f1_without_importing_tensorflow(jax_run, trained_tiny_model):
    tmp, result = jax_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert tensorflow_imports(tmp) == ""  # not one attempt, caught or not
    assert "Keras backend: jax (trainer.backend=jax)" in result.stdout + result.stderr
    metrics = json.loads((tmp / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["backend"] == "jax"
    assert metrics["f1"] >= JAX_MIN_F1, f"F1 {metrics['f1']:.2f} < {JAX_MIN_F1} on JAX"
    assert metrics["optimizer_steps"] == 3 * STEPS_PER_EPOCH
    history = metrics["history"]
    assert history["val_f1"][-1] > history["val_f1"][0] and history["loss"][-1] < history["loss"][0]
    # The saved model is the same files whichever backend trained it (the Hugging Face layout).
    assert sorted(os.listdir(tmp / "run" / "model")) == sorted(os.listdir(trained_tiny_model / "model"))
    config = json.loads((tmp / "run" / "model" / "config.json").read_text())
    assert config["architectures"] == ["RoFormerForQuestionAnswering"]


def predict_args(tmp, name: str) -> list[str]:
    """`qaexp predict` of 30 synthetic validation questions with the model trained on JAX."""
    questions = tmp / "questions.jsonl"
    if not questions.exists():
        from qaexp.data.synthetic import generate_examples

        records = generate_examples(30, seed=0, split="validation")
        questions.write_text("".join(json.dumps({k: r[k] for k in ("id", "context", "question")}) + "\n"
                                     for r in records))
    return [str(tmp / "run" / "model"), "--file", str(questions), "--official-output", str(tmp / f"{name}.json")]


def small_run(tmp, *overrides) -> list[str]:
    return ["experiment=test_tiny", "trainer.threads=null", "data.num_train=240", "data.num_validation=30",
            "data.max_length=128", "data.doc_stride=48", "trainer.batch_size=8", "trainer.checkpoint_every_steps=7",
            "trainer.keep_checkpoints=true", "trainer.save_model=false", "trainer.analyze=false",
            "precision=mixed_bfloat16", "trainer.backend=jax", f"data.cache_dir={tmp / 'cache'}", *overrides]


@pytest.fixture(scope="module")
def jax_checks(jax_run, trained_tiny_model):
    """On JAX with two host devices, in one process: the same run as jax_run's first epoch with
    trainer.strategy=data_parallel, and the logits of the JAX-trained and the TensorFlow-trained model."""
    import numpy as np

    tmp, result = jax_run
    assert result.returncode == 0, result.stderr[-3000:]
    rng = np.random.default_rng(0)
    lengths = np.array([64, 50, 37, 64, 20, 58])
    mask = (np.arange(64)[None, :] < lengths[:, None]).astype(np.int32)
    inputs = {"input_ids": (rng.integers(5, 200, (6, 64)) * mask).astype(np.int32), "attention_mask": mask,
              "token_type_ids": ((np.arange(64)[None, :] > 12) * mask).astype(np.int32)}
    np.savez(tmp / "inputs.npz", **inputs)
    models = [str(tmp / "run" / "model"), str(trained_tiny_model / "model")]
    data_parallel = [*COMMON, "trainer.epochs=1", "trainer.analyze=false", "trainer.backend=jax",
                     "trainer.strategy=data_parallel", f"data.cache_dir={tmp / 'cache'}"]
    spec = {"runs": [{"directory": str(tmp / "data_parallel"), "overrides": data_parallel},
                     # bfloat16, a checkpoint every 7 steps, then resumed for 2 more epochs with early stopping
                     {"directory": str(tmp / "resumed"), "overrides": small_run(tmp, "trainer.epochs=1")},
                     {"directory": str(tmp / "resumed"),
                      "overrides": small_run(tmp, "trainer.epochs=3", "trainer.resume=true",
                                             "trainer.early_stopping_patience=1")}],
            "logits": {"models": models, "inputs": str(tmp / "inputs.npz"), "output": str(tmp / "jax_logits.npz")},
            "predict": predict_args(tmp, "jax")}
    (tmp / "spec.json").write_text(json.dumps(spec))
    done = run_cli([str(HELPERS / "jax_checks.py"), str(tmp / "spec.json")],
                   env=jax_env(tmp, XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert tensorflow_imports(tmp) == ""
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return tmp, report, inputs, models, dict(np.load(tmp / "jax_logits.npz")), done.stdout + done.stderr


@jax_installed
@pytest.mark.slow
def test_a_model_gives_the_same_logits_on_either_backend_whichever_trained_it(jax_checks):
    import numpy as np

    from qaexp.evaluation.inference import _forward_function
    from qaexp.model.hf_checkpoint import load_checkpoint

    _, report, inputs, models, jax_logits, _ = jax_checks
    assert report["backend"] == "jax"
    for number, directory in enumerate(models):  # trained on JAX, then on TensorFlow; evaluated here on TensorFlow
        model, _ = load_checkpoint(directory)
        start, end, _ = _forward_function(model, with_loss=False)(inputs)
        real = inputs["attention_mask"].astype(bool)
        for name, ours in (("start_logits", start), ("end_logits", end)):
            theirs = jax_logits[f"{number}/{name}"]
            assert np.abs(np.asarray(ours) - theirs)[real].max() < 1e-4, (directory, name)
            assert (np.asarray(ours).argmax(axis=1) == theirs.argmax(axis=1)).all()


@jax_installed
@pytest.mark.slow
def test_qaexp_predict_gives_the_same_answers_on_either_backend(jax_checks):
    from qaexp.tools.predict import main as predict

    tmp, *_ = jax_checks
    assert predict(predict_args(tmp, "tensorflow")) == 0  # this process: TensorFlow
    on_jax, on_tensorflow = (json.loads((tmp / f"{name}.json").read_text()) for name in ("jax", "tensorflow"))
    assert len(on_jax) == 30 and on_jax == on_tensorflow


@jax_installed
@pytest.mark.slow
def test_data_parallel_on_two_host_devices_trains_like_one_device(jax_checks):
    tmp, report, *_, stderr = jax_checks
    reference = json.loads((tmp / "run" / "metrics.json").read_text())
    metrics = report["metrics"][0]
    assert report["devices"] == 2 and "trainer.strategy=data_parallel: 2 device(s)" in stderr
    assert metrics["optimizer_steps"] == STEPS_PER_EPOCH  # batch_size is the global batch: the same steps
    # The batch is split over the devices and the loss reduced over all of it: the single device's steps.
    assert relative(metrics["history"]["loss"][0], reference["history"]["loss"][0]) < 1e-4
    assert relative(metrics["val_loss"], reference["history"]["val_loss"][0]) < 1e-4
    assert metrics["f1"] == pytest.approx(reference["history"]["val_f1"][0], abs=2.5)


@jax_installed
@pytest.mark.slow
def test_on_jax_bfloat16_checkpoints_resume_early_stopping_and_the_best_epoch_work(jax_checks):
    tmp, report, *_, output = jax_checks
    first, resumed = report["metrics"][1:]
    steps = -(-first["train_windows"] // 8)
    assert first["optimizer_steps"] == steps and not first["resumed"]
    checkpoints = tmp / "resumed" / "checkpoints"
    assert f"resuming from {checkpoints}/latest/ckpt-{steps} at step {steps} of {3 * steps}" in output
    assert resumed["resumed"] is True
    # Checkpoints every 7 steps (saved from inside Keras' JAX fit, its variables synced for each), then at each
    # epoch's end: the last one is the last step trained; `best` holds the best epoch's weights.
    assert sorted(os.listdir(checkpoints / "latest")) == ["checkpoint", f"ckpt-{resumed['optimizer_steps']}.npz"]
    history = resumed["history"]
    assert history["val_f1"][0] == first["history"]["val_f1"][0]  # epoch 1's record came back from the checkpoint
    assert all(math.isfinite(loss) for loss in history["loss"]) and history["loss"][-1] < history["loss"][0]
    epochs = len(history["loss"])
    assert resumed["optimizer_steps"] == steps * epochs
    best = max(range(epochs), key=lambda epoch: history["val_f1"][epoch])
    # Patience 1: training stops after the first epoch without a better F1, and ends with the best epoch's weights.
    stale = epochs > best + 1
    assert resumed["early_stopped"] is stale and (epochs == 3 or stale)
    assert resumed["best_epoch"] == best + 1 and resumed["f1"] == pytest.approx(history["val_f1"][best])


def test_jax_checkpoint_archives_round_trip_and_a_damaged_one_is_one_line(tmp_path):
    """training/array_checkpoints.py (the JAX backend's checkpoints) works on plain values, so it is checked here."""
    import numpy as np

    from qaexp.training.array_checkpoints import ArrayCheckpoint, ArrayCheckpointManager, Value, readable

    weights, records = Value(np.arange(6.0).reshape(2, 3), "float32"), Value('{"loss": [1.5]}')
    manager = ArrayCheckpointManager(ArrayCheckpoint(model=lambda: {"w": weights}, records=lambda: {"h": records}),
                                     str(tmp_path / "latest"))
    manager.save(checkpoint_number=3)
    weights.assign(np.zeros((2, 3)))
    manager.save(checkpoint_number=7)  # replaces ckpt-3: one archive kept
    assert sorted(os.listdir(tmp_path / "latest")) == ["checkpoint", "ckpt-7.npz"]
    weights.assign(np.ones((2, 3)))
    records.assign("{}")
    path = readable(str(tmp_path / "latest"), "resume from", "FIX")
    assert path == manager.latest_checkpoint == str(tmp_path / "latest" / "ckpt-7")
    manager.checkpoint.restore(path)
    assert (weights.numpy() == 0).all() and json.loads(records.numpy().decode()) == {"loss": [1.5]}
    other = ArrayCheckpoint(model=lambda: {"w": Value(np.zeros((3, 3)), "float32")})
    with pytest.raises(ValueError, match="of another shape, e.g. model/w"):
        other.restore(path)
    archive = tmp_path / "latest" / "ckpt-7.npz"
    archive.write_bytes(archive.read_bytes()[:-40])  # truncated: a save cut short
    with pytest.raises(ConfigError.__base__, match=r"cannot resume from .*ckpt-7 \(\.npz\): the checkpoint is "
                                                   r"damaged or incomplete \(.*\): FIX$"):
        readable(str(tmp_path / "latest"), "resume from", "FIX")
    assert readable(str(tmp_path / "empty"), "resume from", "FIX") is None
