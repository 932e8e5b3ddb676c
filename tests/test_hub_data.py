"""data=squad / data=squad_v2 through the real `datasets.load_dataset`: the canonical hub ids, read offline from a
cache `datasets` prepared itself (tests/hub_dataset_cache.py), each split cut to its max_*_samples before its
records are converted and checked; and the one line for a dataset the hub says does not exist."""
import time

import pytest

import datasets
from conftest import run_cli
from hub_cache import FakeHub
from hub_dataset_cache import write_hub_dataset
from qaexp.data.squad import load_eval_set, load_splits
from qaexp.errors import DataError
from test_config import composed

CONTEXT = "Ada grew up in Lyon. She moved to Paris in 1990."


def record(n: int, split: str) -> dict:
    return {"id": f"{split}-{n}", "title": "Ada", "context": CONTEXT, "question": f"Where did Ada grow up? ({n})",
            "answers": {"text": ["Lyon"], "answer_start": [15]}}


def squad_cache(tmp_path, monkeypatch, train: list[dict], validation: list[dict]):
    """A prepared rajpurkar/squad (plain_text) that this process's `datasets` reads, offline (conftest)."""
    home = tmp_path / "hf_home"
    write_hub_dataset(home, "rajpurkar/squad", "plain_text", {"train": train, "validation": validation})
    # datasets read HF_HOME when first imported; load_dataset takes the cache folder from this setting at each call
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    return home


def malformed(n: int, split: str) -> dict:
    """Valid for the feature schema, refused when converted: two offsets for one answer text."""
    bad = record(n, split)
    bad["answers"] = {"text": ["Lyon"], "answer_start": [15, 15]}
    return bad


def test_squad_config_names_the_canonical_hub_ids():
    for option, repo_id, config_name in [("squad", "rajpurkar/squad", "plain_text"),
                                         ("squad_v2", "rajpurkar/squad_v2", "squad_v2")]:
        data = composed(["model=tiny", f"data={option}"]).data
        assert (data.name, data.config_name) == (repo_id, config_name)


def test_hub_split_is_cut_to_its_limit_before_its_records_are_converted(tmp_path, monkeypatch):
    train = [record(n, "train") for n in range(4)] + [malformed(4, "train")]
    validation = [record(n, "validation") for n in range(3)] + [malformed(3, "validation")]
    squad_cache(tmp_path, monkeypatch, train, validation)
    data = composed(["model=tiny", "data=squad"]).data

    with pytest.raises(DataError, match=r"rajpurkar/squad train row 4: answers have 1 'text' but 2 'answer_start'"):
        load_splits(data)  # unlimited, the malformed row is converted

    data.max_train_samples, data.max_eval_samples = 4, 3
    splits = load_splits(data)
    assert splits.train == train[:4] and splits.validation == validation[:3]
    assert isinstance(splits.train[0]["answers"]["answer_start"][0], int)


def test_extra_eval_hub_set_is_cut_to_its_limit_before_conversion(tmp_path, monkeypatch):
    validation = [record(n, "validation") for n in range(2)] + [malformed(2, "validation")]
    squad_cache(tmp_path, monkeypatch, [record(0, "train")], validation)
    entry = "{name:dev,source:hub,dataset:rajpurkar/squad,config_name:plain_text,split:validation,max_eval_samples:2}"
    data = composed(["model=tiny", "data=squad", f"data.extra_eval=[{entry}]"]).data
    assert load_eval_set(data.extra_eval[0], "error") == validation[:2]


def test_a_dataset_the_hub_does_not_have_is_one_line_of_its_own(tmp_path):
    with FakeHub(gated={}) as hub:  # answers 401 + X-Error-Code: RepoNotFound, as huggingface.co does
        env = {"HF_HOME": str(tmp_path / "empty_home"), "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
               "HF_ENDPOINT": hub.url}
        started = time.monotonic()
        result = run_cli(["-m", "qaexp", "model=tiny", "data=squad", "data.name=rajpurkar/squadd",
                          f"hydra.run.dir={tmp_path / 'run'}"], env=env, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert time.monotonic() - started < 60
    assert any("/datasets/rajpurkar/squadd/" in request for request in hub.requests), hub.requests
    lines = result.stderr.strip().splitlines()
    assert lines == ["qaexp: error: dataset 'rajpurkar/squadd' does not exist on the Hugging Face hub (or it is "
                     "private or gated: set HF_TOKEN): check data.name"], result.stderr[-3000:]
