"""trainer.backend: the same experiment on TensorFlow or JAX (issue 26).

The test process itself runs Keras on TensorFlow; what runs on JAX runs in subprocesses whose path holds a
sitecustomize that refuses `import tensorflow` and records every attempt (tests/helpers/no_tensorflow/), so
that "nothing imports TensorFlow under JAX" is checked, not assumed.
"""
import json
import logging
import os
import pathlib

import pytest

from conftest import REPO, run_cli
from qaexp import backend
from qaexp.errors import ConfigError

HELPERS = REPO / "tests" / "helpers"

jax_installed = pytest.mark.skipif(bool(backend.missing_packages("jax")),
                                   reason='jax is not installed (pip install "qaexp[jax]")')


def composed(overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=quickstart", *overrides])


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
    from qaexp.config import validate

    with pytest.raises(ConfigError, match=expected) as refused:
        validate(composed(["trainer.backend=jax", override]))
    assert "\n" not in str(refused.value) and "(the backend is jax: trainer.backend=jax)" in str(refused.value)
    validate(composed([override]))  # the same setting on TensorFlow is fine


def test_data_parallel_is_refused_on_tensorflow_with_its_equivalent(no_user_backend):
    from qaexp.config import validate

    with pytest.raises(ConfigError, match="trainer.strategy=data_parallel is keras.distribution's, which qaexp uses "
                                          "on JAX: on TensorFlow use trainer.strategy=mirrored"):
        validate(composed(["trainer.strategy=data_parallel"]))


def test_a_backend_whose_package_is_missing_is_one_line_and_leaves_no_run_directory(tmp_path):
    root = tmp_path / "outputs"
    result = run_cli(["-m", "qaexp", "experiment=quickstart", "trainer.backend=jax", f"hydra.run.dir={root}/run"],
                     env={"PYTHONPATH": str(HELPERS / "no_jax"), backend.ENV: backend.DEFAULT,
                          backend.DEFAULT_NOTE: backend.DEFAULT})
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == ('qaexp: error: trainer.backend=jax needs jax and jaxlib, which are not '
                                     'installed: pip install "qaexp[jax]"')
    assert not root.exists()
