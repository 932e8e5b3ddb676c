"""Shared test set-up: offline, quiet TensorFlow, the real SQuAD files from ../shared when present, and the
session-wide runs (tiny_run, v2_run, reference_run). What tests import lives in tests/helpers/ (never here).

Layout, by what a test exercises: unit/ one module or rule (in process, bar a CLI check of the same line);
cli/ a command as a user runs it (predict, evaluate, report, analyze, serve, export, hub, install, benchmarks);
training/ training runs (steps, backends, parity, resume, sweeps, launchers, clusters); faults/ bad input, damaged
state, signals, secrets, concurrency; hub/ checkpoints and datasets from a hub cache. Folders have no __init__.py,
so a test module's basename must be unique across them (pytest imports it by that name).

CLI commands start through helpers/cli.py: a qaexp command whose start-up is not what the test checks runs as a fork
of a process that has imported TensorFlow, Keras and transformers once (helpers/forkserver.py);
QAEXP_TEST_FRESH=1 runs every command in a new interpreter instead."""
import atexit
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

from helpers.cli import run_cli
from helpers.repo import shared_file
from helpers.shared_runs import TINY_RUN, once_per_session

# The hub-cache fixtures (hub_build, hub_home) for every test that names them.
pytest_plugins = ["helpers.hub_cache"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["HF_HUB_OFFLINE"] = "1"  # fail at once instead of retrying the (unreachable) hub
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
if "QAEXP_CACHE_DIR" not in os.environ:  # tests share one window cache, not the user's ~/.cache/qaexp
    os.environ["QAEXP_CACHE_DIR"] = tempfile.mkdtemp(prefix="qaexp-test-cache-")
    atexit.register(shutil.rmtree, os.environ["QAEXP_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def squad_v1_dev() -> pathlib.Path:
    return shared_file("dev-v1.1.json")


@pytest.fixture
def squad_v2_dev() -> pathlib.Path:
    return shared_file("dev-v2.0-part.json")


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> pathlib.Path:
    """The directory of one tiny-model run through the CLI as a user starts it (TINY_RUN, their environment, an
    empty window cache of its own, stdout and stderr both written to one file as `> run.log 2>&1` or a Slurm job
    does), and matplotlib's font cache empty as on a user's first run (MPLCONFIGDIR: the analysis plots build it):
    `<dir>/run` is its run directory (its saved model in `run/model`), `<dir>/console.log` what it printed,
    `<dir>/cache` its window cache, `<dir>/status` its exit status.

    Made once per session (across pytest-xdist workers too) and shared by the tests that need some trained model
    and by those that check what a run prints and writes (tests/cli/test_cli.py, test_quiet.py, test_everyday.py).
    Read-only: copy it to change it."""
    def make(root: pathlib.Path) -> None:
        with open(root / "console.log", "w") as console:
            result = run_cli(["-m", "qaexp", *TINY_RUN, f"data.cache_dir={root / 'cache'}",
                              f"hydra.run.dir={root / 'run'}"], stdout=console, stderr=subprocess.STDOUT,
                             env={"MPLCONFIGDIR": str(root / "matplotlib")})
        (root / "status").write_text(str(result.returncode))
        assert result.returncode == 0, (root / "console.log").read_text()[-3000:]

    return once_per_session(tmp_path_factory, "tiny_run", make)


@pytest.fixture(scope="session")
def trained_tiny_model(tiny_run) -> pathlib.Path:
    """The run directory of the shared tiny run (its saved model is in `<dir>/model`). Read-only."""
    return tiny_run / "run"


@pytest.fixture(scope="session")
def v2_run(tmp_path_factory) -> pathlib.Path:
    """A quick tiny-model SQuAD v2 run (30% unanswerable synthetic questions) whose no-answer threshold is tuned
    on half its evaluation questions, with one extra evaluation set, `hard` (v1, a JSON-lines file).

    Returns the run directory; `<run dir>/validation.jsonl` holds its evaluation questions as a file. Made once
    per session (across pytest-xdist workers too); read-only."""
    def make(root: pathlib.Path) -> None:
        import json

        from omegaconf import OmegaConf

        from qaexp.data.squad import load_splits
        from qaexp.data.synthetic import generate_examples

        hard = generate_examples(30, seed=5, difficulty="hard", split="validation")
        (root / "hard.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hard))
        run_dir = root / "run"
        result = run_cli(["-m", "qaexp", "experiment=quickstart", "data.num_train=400", "data.num_validation=60",
                          "data.unanswerable_fraction=0.3", "data.version_2_with_negative=true",
                          "data.null_threshold_tuning=split",
                          f"data.extra_eval=[{{name:hard,file:'{root / 'hard.jsonl'}',version_2_with_negative:false}}]",
                          "trainer.epochs=1", "trainer.verbose=0", f"hydra.run.dir={run_dir}"])
        assert result.returncode == 0, result.stderr[-3000:]
        config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        validation = load_splits(config.data, with_train=False).validation
        (run_dir / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))

    return once_per_session(tmp_path_factory, "v2", make) / "run"


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> pathlib.Path:
    """A completed helpers.state_runs.RUN that kept its checkpoints and started with an empty cache of its own,
    shared by the damaged-state and concurrency tests: `<root>/run` is its run directory, `<root>/cache` its
    window and tokenizer cache. Read-only: copy it to damage it."""
    from helpers.state_runs import RUN

    def make(root: pathlib.Path) -> None:
        result = run_cli(["-m", "qaexp", *RUN, "trainer.keep_checkpoints=true", f"data.cache_dir={root / 'cache'}",
                          f"hydra.run.dir={root / 'run'}"])
        assert result.returncode == 0, result.stderr[-3000:]

    return once_per_session(tmp_path_factory, "reference_run", make)
