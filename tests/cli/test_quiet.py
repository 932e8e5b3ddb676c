"""Quiet by default (qaexp/quiet.py): a small run and `qaexp predict` through the CLI print none of the
libraries' start-up notices; QAEXP_VERBOSE=1 brings them back. qaexp's own progress lines stay."""

import os
import signal

import pytest

from helpers.cli import run_cli

NOISE = ["cuInit", "absl::InitializeLog", "Sharding callback duration", "oneDNN", "cudart", "cuda drivers",
         "CPU instructions", "TensorFlow and JAX classes are deprecated", "All model checkpoint layers were used",
         "newly initialized", "fontManager"]
SMALL_RUN = ["experiment=quickstart", "data.num_train=64", "data.num_validation=16"]


def user_cli(args, extra_env=None):
    """The CLI in a user's environment (helpers.cli.user_environment)."""
    return run_cli(["-m", *args], timeout=300, env=extra_env)


def noise_in(text: str) -> list[str]:
    return [words for words in NOISE if words in text]


@pytest.mark.slow  # the shared tiny run (conftest.tiny_run): a short training run through the CLI
def test_a_small_run_prints_no_library_notices_but_its_own_progress(tiny_run):
    printed = (tiny_run / "console.log").read_text()  # its stdout and stderr
    assert (tiny_run / "status").read_text() == "0", printed[-3000:]
    assert noise_in(printed) == [], printed[-3000:]
    assert "epoch 1: val_loss" in printed and "exact_match" in printed


@pytest.mark.slow
def test_predict_prints_only_the_answer(trained_tiny_model):
    result = user_cli(["qaexp.predict", str(trained_tiny_model / "model"), "--question", "Who was born in 1901?",
                       "--context", "Marla Venkot was born in 1901."])
    assert result.returncode == 0, result.stderr[-3000:]
    assert noise_in(result.stdout + result.stderr) == [] and result.stderr.strip() == "", result.stderr[-3000:]
    assert len(result.stdout.strip().splitlines()) == 1


@pytest.mark.slow
def test_qaexp_verbose_shows_the_library_notices(tmp_path):
    # trainer.epochs=0: the notices come with loading TensorFlow and building the model, not with training
    result = user_cli(["qaexp", *SMALL_RUN, "trainer.epochs=0", f"hydra.run.dir={tmp_path}"], {"QAEXP_VERBOSE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    # TensorFlow's start-up notices (transformers 5 has no TF-deprecation warning left to show)
    assert "oneDNN custom operations" in result.stderr or "cuda drivers" in result.stderr, result.stderr[-3000:]
    assert "absl::InitializeLog" in result.stderr  # TensorFlow's loading notices, dropped by default


def test_a_signal_while_tensorflow_loads_still_drops_its_loading_notices(capfd):
    """A Ctrl-C while TensorFlow's libraries load used to let their notices (absl, oneDNN, "Could not find cuda
    drivers") through, above the interrupted line; an import that fails keeps them (they may say why)."""
    from qaexp.errors import RunInterrupted
    from qaexp.quiet import LOAD_NOTICES, _stderr_filtered

    notice = b"I0000 00:00:1.0  4106 port.cc:153] oneDNN custom operations are on.\n"
    with pytest.raises(RunInterrupted), _stderr_filtered(LOAD_NOTICES):
        os.write(2, notice + b"a line of qaexp's own\n")
        raise RunInterrupted(signal.SIGINT)
    assert capfd.readouterr().err == "a line of qaexp's own\n"
    with pytest.raises(ImportError), _stderr_filtered(LOAD_NOTICES):
        os.write(2, notice)
        raise ImportError("libcudart.so.12: cannot open shared object file")
    assert capfd.readouterr().err == notice.decode()
