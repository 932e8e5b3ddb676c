"""qaexp.model.tf_h5: tf_model.h5 read with h5py alone, under the PyTorch names transformers gave its weights.

While transformers still has TF classes (4.x), two tests pin the equivalence down: the name mapping equals
transformers' own `convert_tf_weight_name_to_pt_weight_name` on every weight of every family's TF models, and the
h5 that tests/helpers/hub_cache.py writes has the layout of TF `save_pretrained` and loads into the TF class. Without TF
classes (transformers 5) they are skipped; the round trip and the failure tests need nothing but h5py.
"""
import json

import numpy as np
import pytest

import qaexp  # noqa: F401  (KERAS_BACKEND and the quiet settings before TensorFlow)
from helpers.hub_cache import (FAMILIES, H5_FAMILIES, h5_layout, model_config, pretraining_tensors, sharded_h5,
                               tensors_by_tf, tf_h5_bytes, truncated)
from qaexp.errors import ModelLoadError
from qaexp.model.tf_h5 import pytorch_name, read_tf_h5

VOCAB = 100
SPECIAL = {"pad": 0, "bos": 1, "eos": 2}


def tf_classes():
    """transformers, or a skip where it has no TF classes any more (transformers 5)."""
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "TFAutoModelForQuestionAnswering"):
        pytest.skip(f"transformers {transformers.__version__} has no TF classes to compare with")
    return transformers


@pytest.fixture(scope="module")
def checkpoints():
    """{family: (config, PyTorch-named tensors of a base checkpoint as the hub fixture writes them)}."""
    out = {}
    for seed, family in enumerate(FAMILIES):
        config = model_config(family, VOCAB, SPECIAL)
        out[family] = (config, pretraining_tensors(family, config, seed=seed + 1))
    return out


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def assert_same_tensors(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name].dtype == np.float32, name
        np.testing.assert_array_equal(got[name], value, err_msg=name)


# ---- without TF classes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fixture_h5_reads_back_as_the_tensors_written(checkpoints, tmp_path, family):
    """Names, PyTorch layout (Linear weights (out, in)) and values: every tensor the fixture wrote, nothing else
    (DistilBERT's tied embeddings, saved twice in the file, come back once)."""
    _, tensors = checkpoints[family]
    path = write(tmp_path / "tf_model.h5", tf_h5_bytes(family, tensors))
    assert_same_tensors(read_tf_h5(path), tensors)
    assert_same_tensors(read_tf_h5(tmp_path), tensors)  # a directory holding tf_model.h5


def test_deberta_v3_repo_h5_holds_the_checkpoints_tensors(checkpoints, tmp_path):
    """microsoft/deberta-v3-*'s only readable weights: the encoder under `deberta.`, Linear weights (out, in)."""
    config, tensors = checkpoints["deberta-v2"]
    got = read_tf_h5(write(tmp_path / "tf_model.h5", tf_h5_bytes("deberta-v2", tensors)))
    query = got["deberta.encoder.layer.0.attention.self.query_proj.weight"]
    np.testing.assert_array_equal(query, tensors["deberta.encoder.layer.0.attention.self.query_proj.weight"])
    assert got["deberta.encoder.layer.1.intermediate.dense.weight"].shape == (config.intermediate_size,
                                                                              config.hidden_size)
    assert got["deberta.encoder.rel_embeddings.weight"].shape == (2 * config.position_buckets, config.hidden_size)


@pytest.mark.parametrize("family", ["bert", "deberta-v2"])
def test_sharded_h5_reads_back_through_its_index(checkpoints, tmp_path, family):
    _, tensors = checkpoints[family]
    files = sharded_h5(family, tensors, shards=3)
    for name, data in files.items():
        write(tmp_path / name, data)
    assert len([name for name in files if name.endswith(".h5")]) == 3
    assert_same_tensors(read_tf_h5(tmp_path / "tf_model.h5.index.json"), tensors)
    assert_same_tensors(read_tf_h5(tmp_path), tensors)  # a directory with only the sharded save


def test_chunked_name_lists_are_read(checkpoints, tmp_path):
    """tf-keras splits a name list over HDF5's 64 KiB attribute limit into name0, name1, ... (large models)."""
    import h5py

    _, tensors = checkpoints["bert"]
    path = write(tmp_path / "tf_model.h5", tf_h5_bytes("bert", tensors))
    with h5py.File(path, "r+") as f:
        group = f["bert"]
        names = list(group.attrs["weight_names"])
        del group.attrs["weight_names"]
        group.attrs["weight_names0"] = np.array(names[:10], dtype=h5py.string_dtype("ascii"))
        group.attrs["weight_names1"] = np.array(names[10:], dtype=h5py.string_dtype("ascii"))
    assert_same_tensors(read_tf_h5(path), tensors)


def damaged_cases(tensors, tmp_path):
    """(case, the path to read) for each damage: the file to name is that path, or the shard that is missing."""
    (tmp_path / "truncated").mkdir()
    whole = {"tf_model.h5": tf_h5_bytes("bert", tensors)}
    yield "truncated", write(tmp_path / "truncated" / "tf_model.h5", truncated(whole, "tf_model.h5")["tf_model.h5"])
    # what a clone without git-lfs leaves in place of the file
    yield "not-hdf5", write(tmp_path / "tf_model.h5", b"version https://git-lfs.github.com/spec/v1\n")
    shards = tmp_path / "sharded"
    shards.mkdir()
    files = sharded_h5("bert", tensors)
    for name, data in files.items():
        if name != "tf_model-00002-of-00002.h5":
            write(shards / name, data)
    yield "missing-shard", shards / "tf_model.h5.index.json"


def test_damaged_checkpoint_is_one_line_naming_the_file(checkpoints, tmp_path):
    _, tensors = checkpoints["bert"]
    for case, path in damaged_cases(tensors, tmp_path):
        with pytest.raises(ModelLoadError) as info:
            read_tf_h5(path)
        message = str(info.value)
        assert len(message.splitlines()) == 1, (case, message)
        assert "download or copy" in message, (case, message)
        named = path if case != "missing-shard" else path.parent / "tf_model-00002-of-00002.h5"
        assert str(named) in message, (case, message)


def test_directory_without_a_tf_checkpoint_is_one_line(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError) as info:
        read_tf_h5(tmp_path)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "tf_model.h5" in message and str(tmp_path) in message, message


def test_name_rules():
    """The rules one by one (the TF-class test below checks them against transformers on real models)."""
    scope = "tf_bert_for_masked_lm"
    assert pytorch_name(f"{scope}/bert/encoder/layer_._11/output/dense/kernel:0", 2) == \
        ("bert.encoder.layer.11.output.dense.weight", True)
    assert pytorch_name(f"{scope}/mlm___cls/predictions/transform/LayerNorm/gamma:0", 1) == \
        ("cls.predictions.transform.LayerNorm.weight", False)
    assert pytorch_name(f"{scope}/bert/embeddings/position_embeddings/embeddings:0", 2) == \
        ("bert.embeddings.position_embeddings.weight", False)
    assert pytorch_name(f"{scope}/bert/embeddings/LayerNorm/beta:0", 1) == ("bert.embeddings.LayerNorm.bias", False)
    assert pytorch_name("tf_deberta_v2_model/deberta/encoder/rel_embeddings.weight:0", 2) == \
        ("deberta.encoder.rel_embeddings.weight", False)


# ---- against transformers' TF classes, while they exist ------------------------------------------------------


def tf_model(transformers, class_name: str, config):
    """A TF model with its default scope: Keras numbers a second model of a class `..._1` unless its session is
    cleared, and save_pretrained writes that scope into every weight name."""
    from transformers.modeling_tf_utils import keras

    keras.backend.clear_session()
    model = getattr(transformers, class_name)(config)
    model(model.dummy_inputs, training=False)
    return model


@pytest.mark.parametrize("family", H5_FAMILIES)  # ModernBERT never had a TF class
def test_mapping_equals_transformers_tf_to_pytorch_names(family):
    """Every weight of the family's TF pretraining and QA models: same PyTorch name, same transpose decision."""
    transformers = tf_classes()
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    config = model_config(family, VOCAB, SPECIAL)
    checked = 0
    qa_class = transformers.TFAutoModelForQuestionAnswering.from_config(config).__class__.__name__
    for class_name in ("TF" + FAMILIES[family].architecture, qa_class):
        model = tf_model(transformers, class_name, config)
        for weight in model.weights:
            expected, transpose = convert_tf_weight_name_to_pt_weight_name(weight.name,
                                                                           tf_weight_shape=weight.shape)
            assert transpose in (TransposeType.NO, TransposeType.SIMPLE), weight.name
            assert pytorch_name(weight.name, len(weight.shape)) == (expected, transpose == TransposeType.SIMPLE), \
                weight.name
            checked += 1
    assert checked > 40


@pytest.mark.parametrize("family", H5_FAMILIES)
def test_fixture_h5_has_the_layout_of_tf_save_pretrained_and_loads_into_the_tf_class(checkpoints, tmp_path, family):
    """Same layers, weight names, dataset paths, shapes and string storage as the TF class's own save; loading the
    fixture's file into that class gives it exactly the fixture's tensors (pooler tensors, which the TF
    pretraining class has no place for, are left out of the comparison: real checkpoints carry them too)."""
    transformers = tf_classes()
    config, tensors = checkpoints[family]
    tensors = {name: value for name, value in tensors.items() if ".pooler." not in name}
    class_name = "TF" + FAMILIES[family].architecture
    model = tf_model(transformers, class_name, config)
    model.save_pretrained(str(tmp_path / "tf"))
    ours = tf_h5_bytes(family, tensors)
    assert h5_layout(ours) == h5_layout(tmp_path / "tf" / "tf_model.h5")

    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "tf_model.h5").write_bytes(ours)
    (tmp_path / "ours" / "config.json").write_text(json.dumps(config.to_dict()))
    loaded = getattr(transformers, class_name).from_pretrained(str(tmp_path / "ours"))
    # keyed without the model's scope, which Keras numbers (`..._1`) for a second model of the class
    expected = {name.split("/", 1)[1]: value for name, value in tensors_by_tf(family, tensors).items()}
    assert len(loaded.weights) == len(expected)
    for weight in loaded.weights:
        key = weight.name.split("/", 1)[1]
        np.testing.assert_array_equal(weight.numpy(), expected[key], err_msg=weight.name)
