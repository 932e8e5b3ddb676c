"""qaexp's Keras 3 question-answering models give transformers 5's (PyTorch) logits on each family's small random
checkpoint, and every checkpoint tensor goes in and comes back out unchanged.

The reference logits are committed fixtures written by tests/fixtures/parity/make_fixtures.py (run in a torch
environment; its docstring says how), so this suite needs no torch.
"""
from __future__ import annotations

import functools
import json
import os

import numpy as np
import pytest

from helpers.repo import FIXTURES as TEST_FIXTURES, REPO
from qaexp.model.families import build_qa_model
from qaexp.model.families.weights import export_weights, load_weights, missing_encoder
from qaexp.model.hf_checkpoint import load_checkpoint
from qaexp.model.pretrained import read_safetensors

FIXTURES = str(TEST_FIXTURES / "parity")
FAMILIES = ["bert", "roformer", "distilbert", "roberta", "xlm-roberta", "electra", "albert", "deberta-v2", "modernbert",
            "modernbert-4x"]  # modernbert-4x: the same architecture, config.json in transformers 4.4x keys


@functools.lru_cache(maxsize=None)
def _loaded(family):
    """(model, report) of a fixture checkpoint, built once: the tests below only read the model."""
    return load_checkpoint(os.path.join(FIXTURES, family))


def _fixture(family):
    folder = os.path.join(FIXTURES, family)
    data = np.load(os.path.join(folder, "inputs_logits.npz"))
    return folder, data


@pytest.mark.parametrize("family", FAMILIES)
def test_keras_logits_equal_transformers_on_the_unpadded_positions(family):
    folder, data = _fixture(family)
    model, report = _loaded(family)
    assert report.new == [] and report.unused == []
    inputs = model.select_inputs({k: data[k].astype("int32") for k in ("input_ids", "attention_mask",
                                                                       "token_type_ids") if k in data})
    out = model(inputs)
    real = data["attention_mask"].astype(bool)
    for name in ("start_logits", "end_logits"):
        got = np.asarray(out[name])
        assert got.dtype == np.float32
        np.testing.assert_allclose(got[real], data[name][real], atol=1e-4, rtol=0, err_msg=f"{family} {name}")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_checkpoint_tensor_is_loaded_and_saved_back_bit_for_bit(family):
    folder, _ = _fixture(family)
    tensors = read_safetensors(folder)
    model, report = _loaded(family)
    assert sorted(report.loaded) == sorted(tensors)
    exported = export_weights(model)
    assert sorted(exported) == sorted(tensors)
    for name, value in tensors.items():
        assert exported[name].shape == value.shape, name
        assert np.array_equal(exported[name], value), name


@pytest.mark.parametrize("family", FAMILIES)
def test_the_model_takes_token_type_ids_only_where_the_family_has_them(family):
    folder, data = _fixture(family)
    model, _ = _loaded(family)
    assert ("token_type_ids" in model.input_names) == ("token_type_ids" in data)
    batch = {k: data[k].astype("int32") for k in ("input_ids", "attention_mask")}
    batch["token_type_ids"] = np.zeros_like(batch["input_ids"])
    assert set(model.select_inputs(batch)) == set(model.input_names)
    if "token_type_ids" not in model.input_names:
        with pytest.raises(ValueError, match="token_type_ids"):
            model(batch)


def test_an_encoder_checkpoint_without_a_head_gets_a_new_head_and_nothing_else_missing():
    folder, _ = _fixture("bert")
    encoder_only = {name.removeprefix("bert."): value for name, value in read_safetensors(folder).items()
                    if not name.startswith("qa_outputs.")}
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        model = build_qa_model(json.load(f))
    report = load_weights(model, encoder_only)
    assert sorted(report.new) == ["qa_outputs.bias", "qa_outputs.weight"]
    assert missing_encoder(report) == [] and report.unused == []


def test_missing_and_unexpected_encoder_tensors_are_reported():
    folder, _ = _fixture("bert")
    tensors = read_safetensors(folder)
    del tensors["bert.encoder.layer.1.output.dense.weight"]
    tensors["cls.predictions.bias"] = np.zeros(99, dtype=np.float32)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        model = build_qa_model(json.load(f))
    report = load_weights(model, tensors)
    assert missing_encoder(report) == ["bert.encoder.layer.1.output.dense.weight"]
    assert report.unused == ["cls.predictions.bias"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_half_precision_checkpoint_loads_widened_to_float32(tmp_path, dtype):
    import ml_dtypes
    from safetensors.numpy import save_file

    folder, _ = _fixture("bert")
    tensors = read_safetensors(folder)
    narrow = {name: value.astype(np.float16 if dtype == "float16" else ml_dtypes.bfloat16)
              for name, value in tensors.items()}
    save_file(narrow, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(open(os.path.join(folder, "config.json"), encoding="utf-8").read())
    model, report = load_checkpoint(str(tmp_path))
    assert sorted(report.loaded) == sorted(tensors)
    exported = export_weights(model)
    for name, value in narrow.items():
        assert exported[name].dtype == np.float32
        assert np.array_equal(exported[name], value.astype(np.float32)), name


@pytest.mark.parametrize("family", FAMILIES)
def test_a_transformers_config_object_builds_the_same_model_as_the_json(family):
    from transformers import AutoConfig

    folder, _ = _fixture(family)
    from_object = build_qa_model(AutoConfig.from_pretrained(folder))
    from_json, _ = _loaded(family)  # built from the parsed config.json
    assert from_object.input_names == from_json.input_names
    shapes = {name: tuple(var.shape) for name, (var, _) in from_json.hf_weights().items()}
    assert {name: tuple(var.shape) for name, (var, _) in from_object.hf_weights().items()} == shapes


def test_weights_that_do_not_fit_the_config_are_one_error_line(tmp_path):
    from qaexp.errors import ModelLoadError

    folder, _ = _fixture("bert")
    config = json.load(open(os.path.join(folder, "config.json"), encoding="utf-8"))
    (tmp_path / "config.json").write_text(json.dumps(dict(config, hidden_size=64)))
    (tmp_path / "model.safetensors").write_bytes(open(os.path.join(folder, "model.safetensors"), "rb").read())
    with pytest.raises(ModelLoadError, match="has shape .* expects") as err:
        load_checkpoint(str(tmp_path))
    assert "\n" not in str(err.value)


def test_an_unsupported_model_type_names_the_supported_ones(tmp_path):
    from qaexp.errors import ModelLoadError

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelLoadError, match="model_type 'gpt2' has no Keras 3 model.*supported: bert"):
        load_checkpoint(str(tmp_path))


def test_a_sharded_checkpoint_loads_every_shard(tmp_path):
    from safetensors.numpy import save_file

    folder, data = _fixture("roberta")
    tensors = read_safetensors(folder)
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for shard, part in halves.items():
        save_file({name: tensors[name] for name in part}, str(tmp_path / shard))
    index = {"metadata": {}, "weight_map": {name: shard for shard, part in halves.items() for name in part}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text(open(os.path.join(folder, "config.json"), encoding="utf-8").read())
    model, report = load_checkpoint(str(tmp_path))
    assert sorted(report.loaded) == names and report.new == []
    out = model(model.select_inputs({k: data[k].astype("int32") for k in ("input_ids", "attention_mask")}))
    real = data["attention_mask"].astype(bool)
    np.testing.assert_allclose(np.asarray(out["start_logits"])[real], data["start_logits"][real], atol=1e-4, rtol=0)


def test_a_tensor_of_the_wrong_shape_is_refused_by_name():
    folder, _ = _fixture("bert")
    tensors = read_safetensors(folder)
    tensors["bert.embeddings.word_embeddings.weight"] = np.zeros((98, 32), dtype=np.float32)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        model = build_qa_model(json.load(f))
    with pytest.raises(ValueError, match="word_embeddings.weight has shape \\(98, 32\\)"):
        load_weights(model, tensors)


# deberta-v2: the most arithmetic between mask and softmax; modernbert: rotary tables that Keras hands to a layer at
# the compute dtype while the rotation runs in float32
@pytest.mark.parametrize("family", ["deberta-v2", "modernbert"])
@pytest.mark.parametrize("policy, atol", [("mixed_float16", 0.02), ("mixed_bfloat16", 0.2)])
def test_under_mixed_precision_the_logits_stay_float32_and_finite(policy, atol, family):
    import keras

    folder, data = _fixture(family)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model, _ = load_checkpoint(folder)
        out = model(model.select_inputs({k: data[k].astype("int32") for k in ("input_ids", "attention_mask")}))
    finally:
        keras.config.set_dtype_policy(previous)
    real = data["attention_mask"].astype(bool)
    for name in ("start_logits", "end_logits"):
        got = np.asarray(out[name])
        assert got.dtype == np.float32 and np.isfinite(got).all()
        # Half precision costs ~3e-3 (float16) and ~5e-2 (bfloat16) here; a mask fill that overflows gives NaN/inf.
        np.testing.assert_allclose(got[real], data[name][real], atol=atol, rtol=0)


def test_the_model_modules_import_neither_tensorflow_nor_tf_keras():
    # Backend-neutral by construction: keras.ops only, so the models run on JAX (next test).
    import re

    folder = str(REPO / "qaexp" / "model" / "families")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            source = open(os.path.join(folder, name), encoding="utf-8").read()
            assert not re.search(r"^\s*(import|from)\s+(tensorflow|tf_keras)\b", source, re.M), name


@pytest.mark.slow
def test_every_family_matches_transformers_on_the_jax_backend_without_tensorflow():
    pytest.importorskip("jax")
    from helpers.cli import run_cli

    script = (
        "import sys, numpy as np, keras\n"
        "from qaexp.model.hf_checkpoint import load_checkpoint\n"
        "assert keras.backend.backend() == 'jax'\n"
        f"for family in {FAMILIES!r}:\n"
        f"    folder = {FIXTURES!r} + '/' + family\n"
        "    data = np.load(folder + '/inputs_logits.npz')\n"
        "    model, _ = load_checkpoint(folder)\n"
        "    names = ('input_ids', 'attention_mask', 'token_type_ids')\n"
        "    out = model(model.select_inputs({k: data[k].astype('int32') for k in names if k in data}))\n"
        "    real = data['attention_mask'].astype(bool)\n"
        "    for name in ('start_logits', 'end_logits'):\n"
        "        np.testing.assert_allclose(np.asarray(out[name])[real], data[name][real], atol=1e-4, rtol=0)\n"
        "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
    )
    done = run_cli(["-c", script], env={"KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tensorflow imported: False" in done.stdout


@pytest.mark.parametrize("family", FAMILIES)
def test_every_trainable_weight_gets_a_gradient(family):
    # A variable that is loaded but never used (a wrong branch, a shared layer run twice by mistake instead of
    # its own) would match no transformers weight's role: it gets no gradient.
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradients taken with TensorFlow's tape here")
    import tensorflow as tf

    folder, data = _fixture(family)
    model, _ = _loaded(family)
    inputs = model.select_inputs({k: data[k].astype("int32") for k in ("input_ids", "attention_mask",
                                                                       "token_type_ids") if k in data})
    with tf.GradientTape() as tape:
        out = model(inputs, training=False)
        loss = tf.reduce_sum(out["start_logits"][:, 1]) + tf.reduce_sum(out["end_logits"][:, 2])
    gradients = tape.gradient(loss, model.trainable_variables)
    ungraded = [v.path for v, g in zip(model.trainable_variables, gradients)
                if g is None or not np.any(np.asarray(tf.convert_to_tensor(g)))]
    assert ungraded == []


@pytest.mark.parametrize("family", ["bert", "roformer"])
def test_a_new_model_starts_from_transformers_truncated_normal_initialisation(family):
    folder, _ = _fixture(family)
    import keras

    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = dict(json.load(f), initializer_range=0.05)
    keras.utils.set_random_seed(0)  # the draw no longer depends on which tests ran before in this process
    model = build_qa_model(config)
    weights = {name: np.asarray(variable.numpy()) for name, (variable, _) in model.hf_weights().items()}
    # A normal truncated at 2 sigma = 0.1 has a standard deviation of 0.044. The bounds leave room for the sample
    # deviation of the small qa_outputs matrix (2 x hidden values: ~0.004), and fail transformers' default 0.02 or
    # a Glorot initialiser (~0.24 for it); the maximum tells a truncated normal from an untruncated one.
    words, outputs = weights[f"{family}.embeddings.word_embeddings.weight"], weights["qa_outputs.weight"]
    assert np.abs(words).max() <= 2 * 0.05 + 1e-6 and 0.03 < words.std() < 0.05
    assert np.abs(outputs).max() <= 2 * 0.05 + 1e-6 and 0.03 < outputs.std() < 0.06
    assert not weights["qa_outputs.bias"].any()
    assert np.all(weights[f"{family}.embeddings.LayerNorm.weight"] == 1)
    if family == "roformer":  # the sinusoid table is not a learned weight
        table = weights["roformer.encoder.embed_positions.weight"]
        np.testing.assert_array_equal(table, read_safetensors(folder)["roformer.encoder.embed_positions.weight"])


def test_modernbert_fixture_rows_are_longer_than_the_sliding_window_and_the_window_matters():
    # With a window wide enough to see every token, the same weights give other logits: the fixture exercises
    # the local layers' masks, not just global attention.
    folder, data = _fixture("modernbert")
    config = json.load(open(os.path.join(folder, "config.json"), encoding="utf-8"))
    real = data["attention_mask"].astype(bool)
    assert real.sum(axis=1).max() > config["local_attention"]
    wide = build_qa_model(dict(config, local_attention=4 * real.shape[1]))
    load_weights(wide, read_safetensors(folder))
    out = wide(wide.select_inputs({k: data[k].astype("int32") for k in ("input_ids", "attention_mask")}))
    assert np.abs(np.asarray(out["start_logits"])[real] - data["start_logits"][real]).max() > 1e-2


def test_both_modernbert_config_styles_give_the_same_layer_types_and_thetas():
    from qaexp.model.families.modernbert import attention_layout

    old = {"num_hidden_layers": 5, "global_attn_every_n_layers": 2, "global_rope_theta": 5000.0,
           "local_rope_theta": 100.0}
    new = {"num_hidden_layers": 5,
           "layer_types": ["full_attention", "sliding_attention", "full_attention", "sliding_attention",
                           "full_attention"],
           "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 5000.0},
                               "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}}}
    assert attention_layout(old) == attention_layout(new) == (new["layer_types"],
                                                              {"full_attention": 5000.0, "sliding_attention": 100.0})
    # transformers 5 writes both styles' pattern keys (and its 4.x reads the new keys as extras): the new ones win
    both = dict(new, global_attn_every_n_layers=3, global_rope_theta=160000.0)
    assert attention_layout(both) == attention_layout(new)
    # neither: transformers' defaults (every 3rd layer global from layer 0, thetas 160k / 10k)
    assert attention_layout({"num_hidden_layers": 4}) == (
        ["full_attention", "sliding_attention", "sliding_attention", "full_attention"],
        {"full_attention": 160000.0, "sliding_attention": 10000.0})


@pytest.mark.parametrize("change, message", [
    ({"rope_parameters": {"full_attention": {"rope_type": "yarn", "rope_theta": 1.0}}}, "rope_type 'yarn'"),
    ({"layer_types": ["full_attention", "chunked_attention", "full_attention"]}, "layer_types"),
    ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling"),
])
def test_a_modernbert_config_qaexp_cannot_follow_is_one_error_line(tmp_path, change, message):
    from qaexp.errors import ModelLoadError

    folder, _ = _fixture("modernbert")
    config = json.load(open(os.path.join(folder, "config.json"), encoding="utf-8"))
    (tmp_path / "config.json").write_text(json.dumps(dict(config, **change)))
    (tmp_path / "model.safetensors").write_bytes(open(os.path.join(folder, "model.safetensors"), "rb").read())
    with pytest.raises(ModelLoadError, match=message) as err:
        load_checkpoint(str(tmp_path))
    assert "\n" not in str(err.value)


def test_a_modernbert_masked_lm_checkpoint_fills_the_prediction_head_and_only_the_classifier_is_new():
    # ModernBERT-base / mmBERT are published as ModernBertForMaskedLM: `head.{dense,norm}` are the same names in
    # the QA model (transformers loads them there too), `decoder` has no place.
    folder, _ = _fixture("modernbert")
    tensors = read_safetensors(folder)
    mlm = {name: value for name, value in tensors.items() if not name.startswith("classifier.")}
    mlm["decoder.bias"] = np.zeros(99, dtype=np.float32)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        model = build_qa_model(json.load(f))
    report = load_weights(model, mlm)
    assert sorted(report.new) == ["classifier.bias", "classifier.weight"]
    assert report.unused == ["decoder.bias"] and missing_encoder(report) == []
    exported = export_weights(model)
    assert np.array_equal(exported["head.dense.weight"], tensors["head.dense.weight"])


def test_a_bare_modernbert_encoder_checkpoint_loads_with_a_fresh_task_head():
    folder, _ = _fixture("modernbert")
    encoder = {name.removeprefix("model."): value for name, value in read_safetensors(folder).items()
               if name.startswith("model.")}
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        model = build_qa_model(json.load(f))
    report = load_weights(model, encoder)
    assert sorted(report.new) == ["classifier.bias", "classifier.weight", "head.dense.weight", "head.norm.weight"]
    assert missing_encoder(report) == [] and report.unused == []
    assert "model.layers.0.attn_norm.weight" not in model.hf_weights()  # transformers' layer 0 has no attn_norm
# --- saved models: the Hugging Face directory qaexp writes and reads back ------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_a_saved_model_loads_back_bit_for_bit_with_the_same_logits(tmp_path, family):
    from safetensors import safe_open

    from qaexp.model.families.weights import save_checkpoint

    folder, data = _fixture(family)
    model, _ = _loaded(family)
    save_checkpoint(model, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]  # no temporary file left behind
    config = json.loads((tmp_path / "config.json").read_text())
    # model_type as the fixture's config.json has it (modernbert-4x is a fixture name, its model_type modernbert)
    with open(os.path.join(folder, "config.json")) as f:
        model_type = json.load(f)["model_type"]
    assert config["architectures"] == [model.architecture] and config["model_type"] == model_type
    assert model.architecture.endswith("ForQuestionAnswering")
    with safe_open(str(tmp_path / "model.safetensors"), framework="numpy") as f:
        assert f.metadata() == {"format": "pt"}
    reloaded, report = load_checkpoint(str(tmp_path))
    assert report.new == [] and report.unused == []
    original = export_weights(model)
    again = export_weights(reloaded)
    assert sorted(again) == sorted(original)
    for name, value in original.items():
        assert again[name].dtype == np.float32 and np.array_equal(again[name], value), name
    inputs = model.select_inputs({k: data[k].astype("int32") for k in ("input_ids", "attention_mask",
                                                                       "token_type_ids") if k in data})
    before, after = model(inputs), reloaded(inputs)
    for name in ("start_logits", "end_logits"):
        np.testing.assert_array_equal(np.asarray(after[name]), np.asarray(before[name]))


def test_a_bare_encoder_checkpoint_is_saved_with_the_prefix_and_head_transformers_expects(tmp_path):
    # MiniLM's sentence-transformers weights are a BertModel: no `bert.` prefix, no head, architectures BertModel.
    from qaexp.model.families.weights import save_checkpoint

    folder, _ = _fixture("bert")
    bare = {name.removeprefix("bert."): value for name, value in read_safetensors(folder).items()
            if not name.startswith("qa_outputs.")}
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        model = build_qa_model(dict(json.load(f), architectures=["BertModel"]))
    load_weights(model, bare)
    save_checkpoint(model, str(tmp_path))
    saved = read_safetensors(str(tmp_path))
    # the names BertForQuestionAnswering.save_pretrained writes
    assert sorted(saved) == sorted(read_safetensors(folder))
    assert all(name.startswith(("bert.", "qa_outputs.")) for name in saved)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]


def test_saving_over_an_unwritable_directory_is_one_storage_error_line(tmp_path):
    from qaexp.errors import StorageError
    from qaexp.model.families.weights import save_checkpoint

    model, _ = _loaded("distilbert")
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot write") as err:
        save_checkpoint(model, str(blocked / "model"))
    assert "\n" not in str(err.value)


# --- the padding row of the embeddings -------------------------------------------------------------------------

def _loss_gradients(model, data, variables, over_padding: bool = False) -> list:
    """Gradients (dense arrays) of qaexp's training loss on the fixture's right-padded batch, answers at real
    positions; `over_padding`: the softmax over every position, padding included, as transformers' loss takes it."""
    import tensorflow as tf

    from qaexp.training.loss import per_window_loss

    inputs = model.select_inputs({k: data[k].astype("int32") for k in ("input_ids", "attention_mask",
                                                                       "token_type_ids") if k in data})
    labels = {"start_positions": tf.constant([1, 2, 3]), "end_positions": tf.constant([2, 4, 3])}
    if not over_padding:
        labels["attention_mask"] = tf.constant(data["attention_mask"].astype("int32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(per_window_loss(labels, model(inputs, training=False)))
    return [np.asarray(tf.convert_to_tensor(g)) for g in tape.gradient(loss, variables)]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_padding_row_gets_no_gradient_as_in_transformers(family):
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradients taken with TensorFlow's tape here")
    _, data = _fixture(family)
    model, _ = _loaded(family)
    tables = [layer for layer in model._flatten_layers() if getattr(layer, "padding_idx", None) is not None]
    # RoBERTa's position table has a padding row too (padded positions get position id pad_token_id).
    # ModernBERT names its token table tok_embeddings (transformers' embeddings.tok_embeddings).
    words = "tok_embeddings" if family.startswith("modernbert") else "word_embeddings"
    expected = (["position_embeddings", words] if family in ("roberta", "xlm-roberta") else [words])
    assert sorted(layer.name for layer in tables) == expected
    for layer, grad in zip(tables, _loss_gradients(model, data, [layer.embeddings for layer in tables])):
        assert not grad[layer.padding_idx].any(), layer.name
        assert np.count_nonzero(np.abs(grad).sum(axis=1)) > 1, layer.name  # the other rows in the batch do learn


def test_without_the_padding_row_rule_a_loss_over_padding_would_train_that_row():
    # Why the rule exists: in transformers' loss the padded positions' logits are inside the softmax, so the
    # padding token's embedding gets a gradient through them, although attention never reads a padded key.
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradients taken with TensorFlow's tape here")
    _, data = _fixture("bert")
    model, _ = _loaded("bert")
    table = model.backbone.word_embeddings
    table.padding_idx = None
    try:
        grad, = _loss_gradients(model, data, [table.embeddings], over_padding=True)
        masked, = _loss_gradients(model, data, [table.embeddings])
    finally:
        table.padding_idx = 0
    assert grad[0].any()
    # qaexp's own loss leaves the padding out (training/loss.per_window_loss): no gradient reaches the row
    # even without the rule, and the real rows still learn.
    assert not masked[0].any() and np.count_nonzero(np.abs(masked).sum(axis=1)) > 1


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_the_padding_row_cannot_change_the_logits_of_real_positions(family):
    # Attention gives padded keys an exact 0 weight, so whatever the padding row holds (trained or not), the real
    # positions' logits, the only ones qaexp's post-processing reads, are the same bit for bit. (DeBERTa multiplies
    # its embeddings by the attention mask, so there not even the padded positions see the row.)
    folder, data = _fixture(family)
    model, _ = load_checkpoint(folder)
    inputs = model.select_inputs({k: data[k].astype("int32") for k in ("input_ids", "attention_mask",
                                                                       "token_type_ids") if k in data})
    before = model(inputs)
    table = model.backbone.word_embeddings
    values = np.asarray(table.embeddings.numpy())
    values[table.padding_idx] = np.random.default_rng(0).normal(size=values.shape[1]) * 10
    table.embeddings.assign(values)
    after = model(inputs)
    real = data["attention_mask"].astype(bool)
    for name in ("start_logits", "end_logits"):
        np.testing.assert_array_equal(np.asarray(after[name])[real], np.asarray(before[name])[real])
        assert not np.array_equal(np.asarray(after[name])[~real], np.asarray(before[name])[~real])
