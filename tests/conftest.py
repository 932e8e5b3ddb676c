"""Shared test set-up: offline, quiet TensorFlow, and the real SQuAD files from ../shared when present."""
import atexit
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["HF_HUB_OFFLINE"] = "1"  # fail at once instead of retrying the (unreachable) hub
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
if "QAEXP_CACHE_DIR" not in os.environ:  # tests share one feature cache, not the user's ~/.cache/qaexp
    os.environ["QAEXP_CACHE_DIR"] = tempfile.mkdtemp(prefix="qaexp-test-cache-")
    atexit.register(shutil.rmtree, os.environ["QAEXP_CACHE_DIR"], ignore_errors=True)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_SQUAD = REPO.parent / "shared" / "data" / "squad"


def shared_file(name: str) -> pathlib.Path:
    path = SHARED_SQUAD / name
    if not path.exists():
        pytest.skip(f"real SQuAD data not available: {path} is absent (it lives in ../shared beside the repo)")
    return path


@pytest.fixture
def squad_v1_dev() -> pathlib.Path:
    return shared_file("dev-v1.1.json")


@pytest.fixture
def squad_v2_dev() -> pathlib.Path:
    return shared_file("dev-v2.0-part.json")


def run_cli(args, cwd=REPO, timeout=600, env=None):
    """Run `python -m ...` as a user would; returns the CompletedProcess (text mode)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def trained_tiny_model(tmp_path_factory) -> pathlib.Path:
    """The run directory of a quick tiny-model run through the CLI (its saved model is in `<dir>/model`).

    Session-scoped: tests that only need some trained model share this one (about half a minute idle)."""
    run_dir = tmp_path_factory.mktemp("trained_tiny")
    result = run_cli(["-m", "qaexp", "experiment=quickstart", "data.num_train=300", "data.num_validation=40",
                      "trainer.epochs=1", "trainer.verbose=0", f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="session")
def v2_eval_run(trained_tiny_model, tmp_path_factory) -> pathlib.Path:
    """An evaluation-only SQuAD v2 run of the shared tiny model (no training data: its data.train_file does not
    exist) with the no-answer threshold tuned on half the questions and one extra evaluation set, `hard`.

    Returns the run directory; its .hydra/config.yaml names the data files (data.validation_file, data.extra_eval)."""
    import json

    from qaexp.data.synthetic import generate_examples

    data_dir = tmp_path_factory.mktemp("v2_eval_data")
    sets = {"validation": generate_examples(60, seed=0, split="validation", unanswerable_fraction=0.3),
            "hard": generate_examples(30, seed=5, difficulty="hard", split="validation")}
    for name, records in sets.items():
        (data_dir / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run_dir = tmp_path_factory.mktemp("v2_eval_run")
    result = run_cli(["-m", "qaexp", "experiment=quickstart", f"model.checkpoint={trained_tiny_model / 'model'}",
                      "data=json", f"data.train_file={data_dir / 'missing-train.json'}",
                      f"data.validation_file={data_dir / 'validation.jsonl'}", "data.max_length=256",
                      "data.doc_stride=96", "data.version_2_with_negative=true", "data.null_threshold_tuning=split",
                      f"data.extra_eval=[{{name:hard,file:'{data_dir / 'hard.jsonl'}',version_2_with_negative:false}}]",
                      "trainer.epochs=0", "trainer.verbose=0", f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir
