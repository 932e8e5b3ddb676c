"""The hub pre-flight (qaexp/run/hub_needs.py) through the real CLI: with the hub unreachable (HF_ENDPOINT at a
closed local port) a run that needs uncached hub files stops at once with one line naming all of them; a run
whose hub files are cached proceeds from the cache without retry noise."""
import json
import time

import pytest

from helpers.cli import run_cli
from helpers.hub_cache import FakeHub, closed_port
from helpers.hub_dataset_cache import write_hub_dataset

OFFLINE_ERROR_SECONDS = 10
MAX_STDERR_LINES = 3
RETRY_NOISE = ("Retrying in", "MaxRetryError", "thrown while requesting")


def network_down(home) -> dict:
    """A user whose Hugging Face cache is `home` and whose network cannot reach the hub."""
    return {"HF_HOME": str(home), "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
            "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}


def timed_run(overrides, env, tmp_path):
    started = time.monotonic()
    result = run_cli(["-m", "qaexp", *overrides, f"hydra.run.dir={tmp_path / 'run'}"], env=env, timeout=300)
    return result, time.monotonic() - started


@pytest.mark.parametrize("overrides, named, not_named", [
    (["model=roberta-base"], ["model 'FacebookAI/roberta-base'", "dataset 'rajpurkar/squad' (config plain_text)",
                              "data=json"], []),
    (["model=roberta-base", "data=synthetic"], ["model 'FacebookAI/roberta-base'"], ["squad", "data=json"]),
    (["model=tiny", "data=squad"], ["dataset 'rajpurkar/squad'", "data=json"], ["model=minilm"]),
])
def test_unreachable_hub_and_nothing_cached_is_one_quick_line(tmp_path, overrides, named, not_named):
    result, seconds = timed_run(overrides, network_down(tmp_path / "empty_home"), tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert seconds < OFFLINE_ERROR_SECONDS, seconds
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= MAX_STDERR_LINES, result.stderr
    assert lines[-1].startswith("qaexp: error: ") and "hub cannot be reached" in lines[-1], result.stderr
    for words in [*named, "experiment=quickstart"]:
        assert words in lines[-1], f"{words!r} not in {lines[-1]}"
    for words in not_named:
        assert words not in lines[-1], f"{words!r} in {lines[-1]}"
    assert not any(noise in result.stderr for noise in RETRY_NOISE)


def test_hub_offline_names_every_need_without_probing(tmp_path):
    with FakeHub(gated={}) as hub:  # answers anything: a probe would find the hub reachable and be recorded
        env = {"HF_HOME": str(tmp_path / "empty_home"), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": hub.url}
        result, seconds = timed_run(["model=roberta-base"], env, tmp_path)
    assert hub.requests == []
    assert result.returncode == 2 and seconds < OFFLINE_ERROR_SECONDS, (seconds, result.stderr[-3000:])
    assert "HF_HUB_OFFLINE=1" in result.stderr and "'FacebookAI/roberta-base'" in result.stderr
    assert "'rajpurkar/squad'" in result.stderr


@pytest.fixture(scope="module")
def cached_run(hub_home, tmp_path_factory):
    """One run with the hub unreachable whose model (model=roberta-base, from the hub cache fixture) and dataset
    (data=squad, from a cache `datasets` prepared) are both cached in its HF_HOME: it goes offline and trains on
    the first max_train_samples rows; the malformed row after them is never converted (it would stop the run).
    Returns (result, run directory)."""
    import shutil

    from qaexp.data.synthetic import generate_examples

    root = tmp_path_factory.mktemp("cached_run")
    home = root / "hf_home"
    repo = "models--FacebookAI--roberta-base"  # the model's repo as huggingface_hub left it (relative symlinks)
    shutil.copytree(hub_home / "hub" / repo, home / "hub" / repo, symlinks=True)
    train = generate_examples(17, seed=1, difficulty="easy", split="train", unanswerable_fraction=0.0)
    train[16]["answers"]["answer_start"].append(0)  # one offset too many: refused when converted
    validation = generate_examples(9, seed=2, difficulty="easy", split="validation", unanswerable_fraction=0.0)
    validation[8]["context"] = " "  # an empty context: refused when checked
    write_hub_dataset(home, "rajpurkar/squad", "plain_text", {"train": train, "validation": validation})
    result, _ = timed_run(["model=roberta-base", "data=squad", "data.max_train_samples=16", "data.max_eval_samples=8",
                           "data.max_length=128", "data.doc_stride=48", "trainer.epochs=1", "trainer.verbose=0"],
                          network_down(home), root)
    return result, root / "run"


@pytest.mark.slow  # builds the hub cache fixture and trains one epoch of a tiny roberta
def test_cached_model_and_unreachable_hub_run_from_the_cache(cached_run):
    result, run = cached_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert not any(noise in result.stderr + result.stdout for noise in RETRY_NOISE), result.stderr[-3000:]
    assert "cannot be reached" in result.stdout and "using the cached model 'FacebookAI/roberta-base'" in result.stdout
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"


@pytest.mark.slow  # the same run (cached_run)
def test_cached_dataset_and_unreachable_hub_run_from_the_cache(cached_run):
    result, run = cached_run
    assert result.returncode == 0, result.stderr[-3000:]
    # the one line names every cached need, the model first
    assert ("using the cached model 'FacebookAI/roberta-base' and dataset 'rajpurkar/squad' (config plain_text)"
            in result.stdout), result.stdout[-3000:]
    assert not any(noise in result.stderr + result.stdout for noise in RETRY_NOISE), result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["train_examples"] == 16, metrics
    assert metrics["eval_examples"] == 8, metrics


@pytest.mark.slow  # the hub_home fixture builds a model of every family once per session
def test_only_what_is_not_cached_is_named(hub_home, tmp_path):
    result, seconds = timed_run(["model=roberta-base"], network_down(hub_home), tmp_path)
    assert result.returncode == 2 and seconds < OFFLINE_ERROR_SECONDS, (seconds, result.stderr[-3000:])
    last = result.stderr.strip().splitlines()[-1]
    assert "dataset 'rajpurkar/squad'" in last and "roberta-base" not in last, last


def test_dataset_cache_lookup_agrees_with_datasets_offline_mode(tmp_path, monkeypatch):
    """dataset_cached finds exactly the folders `datasets` loads from offline (its packaged `cache` module)."""
    from datasets.packaged_modules.cache.cache import _find_hash_in_cache

    from qaexp.run.hub_needs import dataset_cached

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))

    def datasets_finds(name):
        try:
            _find_hash_in_cache(name, None, str(tmp_path), {}, None)
            return True
        except ValueError:
            return False

    prepared = tmp_path / "rajpurkar___squad" / "plain_text" / "0.0.0" / "0123abcd"
    prepared.mkdir(parents=True)
    (prepared / "dataset_info.json").write_text(json.dumps({"config_name": "plain_text"}))
    (tmp_path / "squad_v2").mkdir()  # a folder left without a prepared config
    for name, cached in [("rajpurkar/squad", True), ("squad_v2", False), ("squad", False)]:
        assert dataset_cached(name, None) is cached is datasets_finds(name), name
    assert dataset_cached("rajpurkar/squad", "plain_text") and not dataset_cached("rajpurkar/squad", "other")
