"""data=squad / data=squad_v2 through the real `datasets.load_dataset`: the canonical hub ids, read offline from a
cache `datasets` prepared itself (tests/helpers/hub_dataset_cache.py), each split cut to its max_*_samples before its
records are converted and checked; the one line for a dataset the hub says does not exist, the one for a bare
name (`squad`) that huggingface_hub >= 1.16 refuses, for a config name the dataset lacks, and for a dataset that
needs a loading script (datasets >= 4 runs none)."""
import hashlib
import json
import time

import pytest

import datasets
import huggingface_hub.errors
from helpers.cli import run_cli
from helpers.hub_cache import FakeHub, HubRequest, LoopbackHub
from helpers.config import compose
from helpers.hub_dataset_cache import write_hub_dataset
from qaexp.data.squad import load_eval_set, load_splits
from qaexp.errors import DataError

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
        data = compose(["model=tiny", f"data={option}"]).data
        assert (data.name, data.config_name) == (repo_id, config_name)


def test_hub_split_is_cut_to_its_limit_before_its_records_are_converted(tmp_path, monkeypatch):
    train = [record(n, "train") for n in range(4)] + [malformed(4, "train")]
    validation = [record(n, "validation") for n in range(3)] + [malformed(3, "validation")]
    squad_cache(tmp_path, monkeypatch, train, validation)
    data = compose(["model=tiny", "data=squad"]).data

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
    data = compose(["model=tiny", "data=squad", f"data.extra_eval=[{entry}]"]).data
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


class LegacyNameHub(LoopbackHub):
    """A local HF_ENDPOINT holding one dataset under a bare name (as the hub still redirects `squad`): its card
    is served, every other file is missing. huggingface_hub >= 1.16 downloads the card, then refuses the name
    when `datasets` makes an hf:// URI of it."""

    COMMIT = "7b6d24c440a36b6815f21b70d25016731768db1f"
    CARD = b"---\nlicense: cc-by-sa-4.0\n---\n# squad\n"
    ETAG = hashlib.sha1(b"blob %d\0" % len(CARD) + CARD).hexdigest()  # the git blob sha1, as the hub sends

    def __init__(self, name: str):
        self.name = name

    def answer(self, request: HubRequest, path: str, body: bool) -> None:
        if path.startswith(f"/datasets/{self.name}/resolve/") and path.endswith("/README.md"):
            request.reply(200, self.CARD, {"X-Repo-Commit": self.COMMIT, "ETag": f'"{self.ETAG}"'}, body)
        else:
            request.reply(404, b'{"error":"Entry not found"}',
                          {"X-Repo-Commit": self.COMMIT, "X-Error-Code": "EntryNotFound"}, body)


@pytest.mark.skipif(not hasattr(huggingface_hub.errors, "HfUriError"),
                    reason="this huggingface_hub follows the hub's redirect for a bare dataset name")
def test_a_bare_dataset_name_the_installed_huggingface_hub_refuses_points_to_its_owner_name_id(tmp_path):
    with LegacyNameHub("squad") as hub:
        env = {"HF_HOME": str(tmp_path / "empty_home"), "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
               "HF_ENDPOINT": hub.url}
        result = run_cli(["-m", "qaexp", "model=tiny", "data=squad", "data.name=squad",
                          f"hydra.run.dir={tmp_path / 'run'}"], env=env, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        f"qaexp: error: dataset 'squad' is named without its owner, which huggingface_hub "
        f"{huggingface_hub.__version__} refuses: use data.name=rajpurkar/squad"], result.stderr[-3000:]


def test_an_unknown_config_name_names_the_configs_in_the_cache_offline(tmp_path, monkeypatch):
    squad_cache(tmp_path, monkeypatch, [record(0, "train")], [record(0, "validation")])
    data = compose(["model=tiny", "data=squad", "data.config_name=plain"]).data
    with pytest.raises(DataError) as raised:
        load_splits(data)
    assert str(raised.value) == ("dataset 'rajpurkar/squad' has no config 'plain'; the cache (offline) has: "
                                 "plain_text: set data.config_name to one of them")


def card_folder(folder, config_names: list[str]):
    """A dataset folder as on the hub: a card declaring configs (all over one JSON-lines validation split)."""
    folder.mkdir()
    (folder / "validation.jsonl").write_text(json.dumps(record(0, "validation")) + "\n")
    configs = "".join(f"- config_name: {name}\n  data_files:\n  - split: validation\n    path: validation.jsonl\n"
                      for name in config_names)
    (folder / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")
    return folder


def test_an_unknown_or_missing_config_of_an_extra_eval_set_names_the_entry_and_the_dataset_s_configs(tmp_path):
    # datasets builds the folder's configs from its card and refuses the name as it does for a hub repo
    folder = card_folder(tmp_path / "cards", ["plain_text", "hard"])
    entry = f"{{name:dev,source:hub,dataset:'{folder}',config_name:easy,split:validation}}"
    data = compose(["model=tiny", "data=squad", f"data.extra_eval=[{entry}]"]).data
    with pytest.raises(DataError) as raised:
        load_eval_set(data.extra_eval[0], "error")
    assert str(raised.value) == (f"dataset '{folder}' has no config 'easy'; it has: plain_text, hard: set "
                                 "config_name to one of them in data.extra_eval entry 'dev'")
    data.extra_eval[0].config_name = None
    with pytest.raises(DataError) as raised:
        load_eval_set(data.extra_eval[0], "error")
    assert str(raised.value) == (f"dataset '{folder}' has several configs and none is chosen; it has: plain_text, "
                                 "hard: set config_name to one of them in data.extra_eval entry 'dev'")
    data.extra_eval[0].config_name = "hard"
    assert load_eval_set(data.extra_eval[0], "error") == [record(0, "validation")]


def test_a_dataset_with_a_loading_script_is_one_line_before_tensorflow_loads(tmp_path):
    folder = tmp_path / "scripted"  # as a script-only hub repo: SCRIPTED.py beside its data
    folder.mkdir()
    (folder / "scripted.py").write_text("import datasets  # a builder datasets >= 4 no longer runs\n")
    # -X importtime: Python lists every module it imports on stderr, so the test sees that TensorFlow was not
    result = run_cli(["-X", "importtime", "-m", "qaexp", "model=tiny", "data=squad", f"data.name={folder}",
                      f"hydra.run.dir={tmp_path / 'run'}"], timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    imports = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert imports and not any(line.split("|")[-1].strip().startswith("tensorflow") for line in imports)
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("import time:")]
    assert lines == [f"qaexp: error: dataset '{folder}' needs its loading script (scripted.py), which the installed "
                     f"datasets {datasets.__version__} no longer runs: convert the data to SQuAD JSON or JSON lines "
                     "and use data=json data.train_file=... data.validation_file=... (an extra_eval entry: source "
                     "json, file=...), or use a Parquet version of the dataset on the hub; check data.name"], \
        result.stderr[-3000:]
