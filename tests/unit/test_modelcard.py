"""Model cards: the Hub's YAML header (read back with yaml.safe_load), results, hyperparameters, versions."""
import json

import pytest
import yaml

from helpers.config import compose
from qaexp.output.modelcard import render_model_card, write_model_card

SUMMARY = {"exact_match": 47.6123, "f1": 60.4987, "eval_examples": 1589, "train_examples": 8981,
           "train_windows": 9305, "history": {"loss": [2.5, 1.25], "val_loss": [1.9, 1.7],
                                              "val_exact_match": [40.0, 47.6123], "val_f1": [55.0, 60.4987]}}


def config(*overrides):
    return compose(overrides)


def split_card(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def test_pretrained_card_header_has_base_model_license_and_model_index():
    cfg = config("model=minilm", "data=squad", "hub.repo_id=me/minilm-squad")
    meta, body = split_card(render_model_card(cfg, SUMMARY))
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["license"] == "apache-2.0"
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "question-answering"
    assert meta["datasets"] == ["rajpurkar/squad"]
    assert "question-answering" in meta["tags"] and "qaexp" in meta["tags"]
    (entry,) = meta["model-index"]
    assert entry["name"] == "me/minilm-squad"
    (result,) = entry["results"]
    assert result["task"]["type"] == "question-answering"
    assert result["dataset"] == {"name": "rajpurkar/squad", "type": "rajpurkar/squad", "config": "plain_text",
                                 "split": "validation"}
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"exact_match": 47.61, "f1": 60.5}
    assert body.startswith("\n# me/minilm-squad\n")


def test_body_has_results_hyperparameters_epoch_table_and_versions():
    cfg = config("model=minilm", "data=squad", "optimizer.lr=3e-5", "trainer.batch_size=16")
    _, body = split_card(render_model_card(cfg, SUMMARY))
    assert "fine-tuned from [sentence-transformers/all-MiniLM-L6-v2]" in body
    assert "on rajpurkar/squad (train split) (8981 questions), evaluated on rajpurkar/squad (validation" in body
    assert "| 47.61 | 60.50 |" in body
    assert "- optimizer: adam (lr 3e-05, constant schedule" in body and "- batch size: 16" in body
    assert "| Epoch | Training loss | Validation loss | Exact match | F1 |" in body
    assert "| 1 | 2.5000 | 1.9000 | 40.00 | 55.00 |" in body and "| 2 | 1.2500 | 1.7000 | 47.61 | 60.50 |" in body
    assert "- transformers: 5." in body and "- tensorflow: 2." in body and "- keras: 3." in body
    assert "tf-keras" not in body and "framework=" not in body  # transformers 5 has no TensorFlow pipeline
    resolved = body.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(resolved)["trainer"]["batch_size"] == 16


def test_scratch_model_card_has_no_base_model_and_local_data_no_hub_dataset():
    cfg = config("experiment=quickstart", "data=json", "data.train_file=/data/train.json",
                 "data.validation_file=/data/dev.json")
    meta, body = split_card(render_model_card(cfg, {**SUMMARY, "history": {}}))
    assert "base_model" not in meta and "license" not in meta and "datasets" not in meta
    assert meta["model-index"][0]["results"][0]["dataset"]["name"] == "dev.json"
    # trained on the training file, evaluated on the validation file: each named for what it was used for
    assert "on train.json (8981 questions), evaluated on dev.json (validation split)" in body
    assert "randomly initialised weights" in body and "## Training results" not in body


def test_random_init_baseline_is_not_described_as_pretrained():
    meta, body = split_card(render_model_card(config("model=minilm", "model.random_init=true"), SUMMARY))
    assert "base_model" not in meta and "randomly initialised" in body


def test_secret_looking_config_values_are_masked():
    cfg = config("experiment=quickstart", "+model.architecture.hub_token=hf_abcdef_secret")
    text = render_model_card(cfg, SUMMARY)
    assert "hf_abcdef_secret" not in text and "hub_token: '***'" in text


def test_written_card_loads_with_huggingface_hub(tmp_path):
    from huggingface_hub import ModelCard

    path = write_model_card(str(tmp_path), config("model=minilm", "data=squad"), SUMMARY)
    card = ModelCard.load(path)
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert sorted((r.metric_type, r.metric_value) for r in card.data.eval_results) == [
        ("exact_match", 47.61), ("f1", 60.5)]


@pytest.mark.slow
def test_a_run_writes_a_card_that_matches_its_metrics(trained_tiny_model):
    metrics = json.loads((trained_tiny_model / "metrics.json").read_text())
    meta, body = split_card((trained_tiny_model / "model" / "README.md").read_text())
    values = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert values == {"exact_match": round(metrics["exact_match"], 2), "f1": round(metrics["f1"], 2)}
    epochs = len(metrics["history"]["loss"])
    assert epochs == 2  # the shared tiny run (conftest.tiny_run): one row per epoch
    assert all(body.count(f"\n| {epoch} | ") == 1 for epoch in range(1, epochs + 1))
    assert f"\n| {epochs + 1} | " not in body
