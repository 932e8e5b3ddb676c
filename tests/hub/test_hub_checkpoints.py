"""Hub checkpoints, the path every real user takes: files in a Hugging Face cache exactly as huggingface_hub
leaves them (tests/helpers/hub_cache.py), offline, loaded by qaexp's real resolution and loading code.

* every hub entry of the model group trains, evaluates and saves through the CLI (one multirun);
* the loaded encoder weights are the tensors the checkpoint files were written from (tf_model.h5, PyTorch
  safetensors, sharded either way, bf16 and fp16), for every family;
* a checkpoint that has a QA head keeps it; `model.revision` picks the snapshot;
* every failure (not cached, missing or gated repo, unknown revision, pytorch_model.bin only, truncated file,
  weights that do not match config.json) is one line.
"""
import json
import os
import pathlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

import qaexp  # noqa: F401  (KERAS_BACKEND and the quiet settings before TensorFlow)
from helpers.cli import run_cli
from helpers.hub_cache import (FAMILIES, H5_FAMILIES, FakeHub, HubCache, bfloat16_bits_to_float32, closed_port,
                               float32_to_bfloat16_bits, hub_entries, tensors_of_shapes, read_safetensors_file,
                               safetensors_bytes, safetensors_header, sharded_h5, sharded_safetensors, tf_h5_bytes,
                               truncated, with_config_change, with_qa_head)

ENTRIES = hub_entries()  # conf/model/*.yaml: an entry of an unknown family fails here, at collection
FAMILY_NAMES = sorted({entry.family for entry in ENTRIES})
SOURCE_KEYS = sorted({entry.source_key for entry in ENTRIES})
SMALL_DATA = ["data=synthetic", "data.num_train=64", "data.num_validation=16", "data.max_length=128",
              "data.doc_stride=48", "trainer.verbose=0"]
# The sweep's data: each entry's job is mostly fixed cost (building the model, tracing its training step), so it
# gets as little data as still trains: 8 questions are one or two optimizer steps at every entry's batch size.
SWEEP_TRAIN, SWEEP_EVAL = 8, 4
SWEEP_DATA = ["data=synthetic", f"data.num_train={SWEEP_TRAIN}", f"data.num_validation={SWEEP_EVAL}",
              "data.max_length=128", "data.doc_stride=48", "trainer.verbose=0", "trainer.epochs=1",
              "trainer.analyze=false",  # the error analysis is not what these jobs are asserted on
              "trainer.threads=1"]  # a 2-layer model of width 32 gains nothing from more (measured: ~10% less CPU)


def hub_env(home: pathlib.Path, offline: bool = True) -> dict:
    """The environment of a user whose Hugging Face cache is `home`/hub: HF_HOME, as huggingface_hub's default
    (HF_HUB_CACHE only if the environment running the tests sets it, which would override HF_HOME)."""
    env = {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1" if offline else "0"}
    if {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} & set(os.environ):
        env.update(HF_HUB_CACHE=str(home / "hub"), HUGGINGFACE_HUB_CACHE=str(home / "hub"))
    return env


def model_cfg(checkpoint: str, revision: str | None = None):
    return OmegaConf.create({"checkpoint": checkpoint, "revision": revision, "trust_remote_code": False,
                             "random_init": False, "padding_side": "right"})


@pytest.fixture
def use_cache(monkeypatch):
    """Point this process's huggingface_hub at a cache (as HF_HUB_CACHE would have at start-up)."""
    import huggingface_hub.constants

    def use(home: pathlib.Path) -> None:
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(home / "hub"))

    return use


def load(checkpoint: str, revision: str | None = None):
    """The QA model exactly as a run builds it (qaexp.build.build_model, hub names resolved by qaexp)."""
    from qaexp.model import build

    return build.build_model(model_cfg(checkpoint, revision), tokenizer=None)


def assert_tokenizer_kind(tokenizer, family: str) -> None:
    """A fast tokenizer whose model is the family's kind (WordPiece, byte-level BPE, SentencePiece Unigram). Not
    its class: transformers 5 gives DistilBERT's repos BertTokenizer, 4.x DistilBertTokenizerFast."""
    kind = {"wordpiece": "WordPiece", "byte_bpe": "BPE"}.get(FAMILIES[family].tokenizer, "Unigram")
    assert tokenizer.is_fast and type(tokenizer.backend_tokenizer.model).__name__ == kind, type(tokenizer)


def model_tensors(model) -> dict[str, np.ndarray]:
    """A loaded QA model's weights as {PyTorch name: array in PyTorch layout}: qaexp's Keras 3 models name theirs
    (`hf_weights`); a transformers TF model's names go through the rule transformers used (qaexp.model.tf_h5)."""
    if hasattr(model, "hf_weights"):
        from qaexp.model.families.weights import export_weights

        return export_weights(model)
    from qaexp.model.tf_h5 import pytorch_name

    out = {}
    for weight in model.weights:
        name, transpose = pytorch_name(weight.name, len(weight.shape))
        out[name] = weight.numpy().T if transpose else weight.numpy()
    return out


def model_type(model) -> str:
    return model.family if hasattr(model, "hf_weights") else model.config.model_type


def encoder_tensors(model, source) -> dict[str, np.ndarray]:
    return {name: value for name, value in model_tensors(model).items() if name.startswith(source.prefix + ".")}


def assert_encoder_equals(model, source, expected: dict) -> None:
    """The model's encoder is exactly `expected` (PyTorch names): every tensor, nothing random left over."""
    weights = encoder_tensors(model, source)
    assert sorted(weights) == sorted(expected), (sorted(set(weights) ^ set(expected)))[:5]
    for name, value in weights.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


# ---- the fixture itself is what huggingface_hub and transformers read ------------------------------------


def test_cache_layout_is_huggingface_hubs(hub_build):
    import os

    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(hub_build.home / "hub")
    assert not info.warnings, info.warnings
    assert {repo.repo_id for repo in info.repos} == {entry.checkpoint for entry in ENTRIES}
    for repo in info.repos:
        (revision,) = repo.revisions
        assert revision.refs == {"main"} and len(revision.commit_hash) == 40
        for file in revision.files:
            link = os.readlink(file.file_path)
            assert link == f"../../blobs/{file.blob_path.name}", link  # relative, as _create_symlink makes it


def test_snapshot_download_offline_returns_the_snapshot(hub_build, use_cache):
    from huggingface_hub import snapshot_download

    use_cache(hub_build.home)
    for entry in ENTRIES:
        assert pathlib.Path(snapshot_download(entry.checkpoint)) == hub_build.snapshots[entry.checkpoint]


# Real PyTorch state-dict keys (and PyTorch shapes: Linear weights are (out, in)) of each family's checkpoints,
# written out by hand: the safetensors files must use them, not names that only round-trip through transformers.
REAL_PT_KEYS = {
    "bert": {"bert.encoder.layer.1.attention.self.query.weight": (32, 32),
             "bert.encoder.layer.0.intermediate.dense.weight": (64, 32), "cls.predictions.bias": None,
             "bert.pooler.dense.weight": (32, 32)},
    "distilbert": {"distilbert.transformer.layer.0.attention.q_lin.weight": (32, 32),
                   "distilbert.transformer.layer.1.ffn.lin1.weight": (64, 32),
                   "distilbert.embeddings.position_embeddings.weight": (512, 32)},
    "electra": {"electra.embeddings_project.weight": (32, 16), "electra.embeddings.word_embeddings.weight": None,
                "electra.encoder.layer.1.output.dense.weight": (32, 64)},
    "roberta": {"roberta.embeddings.position_embeddings.weight": (514, 32),
                "roberta.encoder.layer.0.attention.output.dense.weight": (32, 32), "lm_head.dense.weight": (32, 32)},
    "xlm-roberta": {"roberta.embeddings.position_embeddings.weight": (514, 32),
                    "roberta.encoder.layer.1.attention.self.value.bias": (32,), "lm_head.bias": None},
    "albert": {"albert.embeddings.word_embeddings.weight": None,
               "albert.encoder.embedding_hidden_mapping_in.weight": (32, 16),
               "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight": (64, 32)},
    "deberta-v2": {"deberta.encoder.rel_embeddings.weight": (512, 32),  # 2 x position_buckets
                   "deberta.encoder.layer.0.attention.self.query_proj.weight": (32, 32),
                   "deberta.encoder.LayerNorm.weight": (32,)},
    "modernbert": {"model.embeddings.tok_embeddings.weight": None, "model.layers.1.attn.Wqkv.weight": (96, 32),
                   "model.layers.0.mlp.Wi.weight": (128, 32), "model.final_norm.weight": (32,),  # GeGLU: 2 x 64
                   "head.dense.weight": (32, 32), "decoder.bias": None},
}


@pytest.mark.parametrize("key", SOURCE_KEYS)
def test_safetensors_use_the_real_pytorch_names_and_layout(hub_build, key):
    source = hub_build.sources[key]  # (deberta-v3's repos have none, but the format tests write them)
    tensors = read_safetensors_file(source.directory / "model.safetensors")
    assert safetensors_header(source.directory / "model.safetensors")["__metadata__"] == {"format": "pt"}
    for name, shape in REAL_PT_KEYS[source.family].items():
        if source.legacy_layer_norm_names:
            name = name.replace("LayerNorm.weight", "LayerNorm.gamma")
        assert name in tensors, f"{name} not in {sorted(tensors)[:5]}..."
        assert shape is None or tensors[name].shape == shape, (name, tensors[name].shape)
    if source.legacy_layer_norm_names:  # google-bert/bert-base-uncased's files still say gamma/beta
        assert "bert.embeddings.LayerNorm.gamma" in tensors and "bert.embeddings.LayerNorm.weight" not in tensors
    assert not any(name.startswith("qa_outputs.") for name in tensors)  # a base checkpoint: no QA head


@pytest.mark.parametrize("key", SOURCE_KEYS)
def test_transformers_reads_the_fixtures_tokenizer_and_config(hub_build, key):
    """Plain transformers (no qaexp) reads each snapshot's tokenizer and config: they are valid by themselves."""
    from transformers import AutoConfig, AutoTokenizer

    source = hub_build.sources[key]
    entry = next(e for e in ENTRIES if e.source_key == key)
    snapshot = hub_build.snapshots[entry.checkpoint]
    tokenizer = AutoTokenizer.from_pretrained(str(snapshot))
    assert_tokenizer_kind(tokenizer, source.family)
    assert (tokenizer.tokenize("Dara Velmont") == tokenizer.tokenize("dara velmont")) == source.uncased
    config = AutoConfig.from_pretrained(str(snapshot))
    assert config.model_type == source.family and config.architectures == [FAMILIES[source.family].architecture]


@pytest.mark.parametrize("key", SOURCE_KEYS)
def test_transformers_tf_class_loads_the_fixtures_h5(hub_build, key):
    """While transformers has TF classes: its own QA class loads each snapshot's tf_model.h5 (the layout is
    TF save_pretrained's) and gets the tensors the fixture wrote."""
    import transformers

    if not hasattr(transformers, "TFAutoModelForQuestionAnswering"):
        pytest.skip(f"transformers {transformers.__version__} has no TF classes")
    source = hub_build.sources[key]
    entry = next(e for e in ENTRIES if e.source_key == key)
    model = transformers.TFAutoModelForQuestionAnswering.from_pretrained(str(hub_build.snapshots[entry.checkpoint]),
                                                                       use_safetensors=False)
    assert_encoder_equals(model, source, source.encoder)


def test_deberta_repo_has_no_tokenizer_json_and_converts_spm(hub_build):
    from qaexp.model import build

    entry = next(e for e in ENTRIES if e.family == "deberta-v2")
    snapshot = hub_build.snapshots[entry.checkpoint]
    assert not (snapshot / "tokenizer.json").exists() and (snapshot / "spm.model").exists()
    tokenizer = build.build_tokenizer(model_cfg(str(snapshot)))
    assert_tokenizer_kind(tokenizer, "deberta-v2")
    encoded = tokenizer("Who?", "Dara Velmont", return_offsets_mapping=True)
    assert encoded["offset_mapping"][-2][1] == len("Dara Velmont")


# ---- every entry of the model group through the CLI --------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(hub_home, tmp_path_factory):
    """One multirun over every hub entry of the model group: {yaml name: job directory}."""
    sweep_dir = tmp_path_factory.mktemp("hub_sweep")
    result = run_cli(["-m", "qaexp", "-m", "model=" + ",".join(e.name for e in ENTRIES), *SWEEP_DATA,
                      f"hydra.sweep.dir={sweep_dir}"], env=hub_env(hub_home), timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {}
    for job in sweep_dir.iterdir():
        overrides = job / ".hydra" / "overrides.yaml"
        if overrides.exists():
            model = next(o for o in yaml.safe_load(overrides.read_text()) if o.startswith("model="))
            jobs[model.split("=", 1)[1]] = job
    assert sorted(jobs) == sorted(e.name for e in ENTRIES), result.stderr[-3000:]
    return jobs


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_entry_trains_evaluates_and_saves_from_the_hub_cache(sweep, hub_build, entry):
    from qaexp.model import build

    job = sweep[entry.name]
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["status"] == "completed", metrics.get("error", metrics)
    assert metrics["train_examples"] == SWEEP_TRAIN and metrics["eval_examples"] == SWEEP_EVAL
    predictions = json.loads((job / "predictions.json").read_text())
    assert len(predictions) == SWEEP_EVAL and all(isinstance(text, str) for text in predictions.values())

    saved = job / "model"
    tokenizer = build.build_tokenizer(model_cfg(str(saved)))
    assert_tokenizer_kind(tokenizer, entry.family)
    model = build.build_model(model_cfg(str(saved)), tokenizer)
    assert model_type(model) == entry.family
    # The saved encoder is the checkpoint's after one or two small Adam steps: close to it everywhere (random
    # weights would differ by ~0.05), yet changed by training.
    checkpoint = hub_build.source(entry.name).encoder
    weights = encoder_tensors(model, hub_build.source(entry.name))
    assert sorted(weights) == sorted(checkpoint)
    largest = max(float(np.abs(value - checkpoint[key]).max()) for key, value in weights.items())
    assert 0 < largest < 5e-3, largest


# ---- the loaded weights are the checkpoint's: every family, every weight format ----------------------------


@pytest.mark.parametrize("key", SOURCE_KEYS)
def test_hub_entry_loads_the_checkpoints_encoder(hub_build, use_cache, key):
    """The real repos' layout (tf_model.h5 beside model.safetensors or pytorch_model.bin), by hub name."""
    use_cache(hub_build.home)
    entry = next(e for e in ENTRIES if e.source_key == key)
    model = load(entry.checkpoint)
    assert model_type(model) == entry.family
    source = hub_build.sources[key]
    assert_encoder_equals(model, source, source.encoder)


FORMATS = ["safetensors", "sharded-safetensors", "sharded-h5", "bf16-safetensors", "fp16-safetensors"]


@pytest.fixture(scope="module")
def format_hub(hub_build, tmp_path_factory):
    """A cache with one repo per (family, weight format), `qaexp-test/<family>-<format>`, no other weights."""
    root = tmp_path_factory.mktemp("format_hub")
    cache = HubCache(root / "hf_home")
    for family in FAMILY_NAMES:
        source = hub_build.source(family)
        base = source.files(weights=[])
        state = source.safetensors_tensors
        weights = {
            "safetensors": {"model.safetensors": safetensors_bytes(state)},
            "sharded-safetensors": sharded_safetensors(state),
            "sharded-h5": sharded_h5(family, source.tensors),
            "bf16-safetensors": {"model.safetensors": safetensors_bytes(state, "BF16")},
            "fp16-safetensors": {"model.safetensors": safetensors_bytes(state, "F16")},
        }
        for name, files in weights.items():
            cache.add_snapshot(f"qaexp-test/{family}-{name}", {**base, **files})
    return cache


@pytest.mark.parametrize("weight_format", FORMATS)
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_weight_format_loads_the_checkpoints_encoder(format_hub, hub_build, use_cache, family,
                                                           weight_format):
    if weight_format == "sharded-h5" and family not in H5_FAMILIES:
        pytest.skip(f"{family} checkpoints never come as tf_model.h5")
    use_cache(format_hub.home)
    repo = f"qaexp-test/{family}-{weight_format}"
    snapshot = next((format_hub.repo_folder(repo) / "snapshots").iterdir())
    model = load(repo)
    assert model_type(model) == family
    source = hub_build.source(family)
    if weight_format == "sharded-h5":
        assert len(list(snapshot.glob("tf_model-*.h5"))) > 1 and not (snapshot / "tf_model.h5").exists()
    # what the file holds is the fixture's float32 tensors, rounded to bf16 / fp16 where it stores those
    rounded = {"bf16-safetensors": lambda v: bfloat16_bits_to_float32(float32_to_bfloat16_bits(v)),
               "fp16-safetensors": lambda v: v.astype(np.float16).astype(np.float32)}.get(weight_format, lambda v: v)
    assert_encoder_equals(model, source, {name: rounded(value) for name, value in source.encoder.items()})
    stored = {"bf16-safetensors": "BF16", "fp16-safetensors": "F16"}.get(weight_format)
    if stored:  # the file really holds the narrow type
        header = safetensors_header(snapshot / "model.safetensors")
        assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {stored}


def test_safetensors_with_legacy_layer_norm_names_load(hub_build, use_cache, tmp_path):
    """google-bert/bert-base-uncased's safetensors say LayerNorm.gamma/.beta: they load like .weight/.bias."""
    source = hub_build.sources["bert-uncased"]
    assert source.legacy_layer_norm_names
    cache = HubCache(tmp_path / "hf_home")
    cache.add_snapshot("google-bert/bert-base-uncased", source.files(weights=["model.safetensors"]))
    use_cache(cache.home)
    model = load("google-bert/bert-base-uncased")
    assert_encoder_equals(model, source, source.encoder)


# ---- a checkpoint with a QA head keeps it -------------------------------------------------------------------

SQUAD_REPO = "qaexp-test/roberta-base-squad"


@pytest.fixture(scope="module")
def qa_checkpoint(hub_build, tmp_path_factory):
    """A RoBERTa QA checkpoint with a trained-looking head: a saved directory (config.json naming
    RobertaForQuestionAnswering, model.safetensors, the tokenizer) and the same files as a hub repo, its
    safetensors with the position_ids buffer older transformers versions saved."""
    root = tmp_path_factory.mktemp("qa_checkpoint")
    source = hub_build.source("roberta")
    state = with_qa_head(source)
    config = {**source.config, "architectures": ["RobertaForQuestionAnswering"]}
    saved = root / "saved"
    saved.mkdir()
    files = {**source.files(weights=[]), "config.json": json.dumps(config, indent=2).encode()}
    for name, data in {**files, "model.safetensors": safetensors_bytes(state)}.items():
        (saved / name).write_bytes(data)
    cache = HubCache(root / "hf_home")
    with_buffer = {**state, "roberta.embeddings.position_ids": np.arange(514, dtype=np.int64)[None]}
    cache.add_snapshot(SQUAD_REPO, {**files, "model.safetensors": safetensors_bytes(with_buffer)})
    return saved, cache, state


def test_qa_head_of_a_safetensors_checkpoint_is_loaded(qa_checkpoint, hub_build, use_cache):
    saved, cache, state = qa_checkpoint
    use_cache(cache.home)
    model = load(SQUAD_REPO)
    weights = model_tensors(model)
    np.testing.assert_array_equal(weights["qa_outputs.weight"], state["qa_outputs.weight"])
    np.testing.assert_array_equal(weights["qa_outputs.bias"], state["qa_outputs.bias"])
    assert_encoder_equals(model, hub_build.source("roberta"), hub_build.source("roberta").encoder)


@pytest.mark.slow
def test_evaluation_only_gives_the_same_predictions_from_the_directory_and_the_hub(qa_checkpoint, tmp_path):
    saved, cache, _ = qa_checkpoint
    # One process, two jobs: the saved directory and the hub name (safetensors with a position_ids buffer). The
    # cache is named by HF_HUB_CACHE this time, which wins over HF_HOME (here a directory without a cache).
    env = {**hub_env(tmp_path / "no_cache_here"), "HF_HUB_CACHE": str(cache.cache)}
    result = run_cli(["-m", "qaexp", "-m", "model=roberta-base", f"model.checkpoint={saved},{SQUAD_REPO}",
                      *SMALL_DATA, "trainer.epochs=0", f"hydra.sweep.dir={tmp_path / 'sweep'}"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        assert json.loads((sweep / job / "metrics.json").read_text())["status"] == "completed", result.stderr
    assert yaml.safe_load((sweep / "1" / ".hydra" / "config.yaml").read_text())["model"]["checkpoint"] == SQUAD_REPO
    from_dir = json.loads((sweep / "0" / "predictions.json").read_text())
    from_hub = json.loads((sweep / "1" / "predictions.json").read_text())
    assert len(from_dir) == 16 and sum(bool(text) for text in from_dir.values()) >= 8
    assert from_hub == from_dir


# ---- model.revision -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def revisions(hub_build, tmp_path_factory):
    """`qaexp-test/bert-revisions` with three snapshots of different weights: refs/main and refs/other holding
    tf_model.h5, refs/pr/1 holding only PyTorch safetensors (as the hub's safetensors-conversion PRs do).
    Returns (cache, {ref: snapshot}, {ref: the tensors its weights were written from}, source)."""
    root = tmp_path_factory.mktemp("revisions")
    source = hub_build.source("bert")
    cache = HubCache(root / "hf_home")
    snapshots = {"main": cache.add_snapshot("qaexp-test/bert-revisions", source.files(weights=["tf_model.h5"]))}
    tensors = {"main": source.tensors}
    for ref, seed in (("other", 12345), ("refs/pr/1", 54321)):
        tensors[ref] = tensors_of_shapes({name: value.shape for name, value in source.tensors.items()}, seed)
        weights = ({"model.safetensors": safetensors_bytes(tensors[ref])} if ref.startswith("refs/")
                   else {"tf_model.h5": tf_h5_bytes("bert", tensors[ref])})
        snapshots[ref] = cache.add_snapshot("qaexp-test/bert-revisions", {**source.files(weights=[]), **weights},
                                            ref=ref)
    assert len(set(snapshots.values())) == 3
    return cache, snapshots, tensors, source


@pytest.mark.parametrize("revision", [None, "main", "other", "refs/pr/1", "commit:main", "commit:other"])
def test_revision_selects_the_snapshot(revisions, use_cache, revision):
    cache, snapshots, tensors, source = revisions
    use_cache(cache.home)
    ref = revision.split(":")[1] if revision and revision.startswith("commit:") else revision or "main"
    if revision and revision.startswith("commit:"):
        revision = snapshots[ref].name  # the full 40-hex commit
    model = load("qaexp-test/bert-revisions", revision)
    expected = {name: value for name, value in tensors[ref].items() if name in source.encoder}
    assert_encoder_equals(model, source, expected)


# ---- one-line errors through the CLI -----------------------------------------------------------------------

ERROR_CASES = {
    # name: (overrides, env kind, words the one line must contain)
    "offline-nothing-cached": (["model=distilbert-base-cased"], "offline", ["distilbert/distilbert-base-cased", "cache",
                                                                            "model=tiny"]),
    "network-down-nothing-cached": (["model=roberta-base"], "network-down", ["FacebookAI/roberta-base", "cache"]),
    "missing-repo": (["model=bert-base-cased", "model.checkpoint=qaexp-test/no-such-model"], "fake-hub",
                     ["qaexp-test/no-such-model", "not a repository"]),
    "gated-repo": (["model=bert-base-cased", "model.checkpoint=qaexp-test/gated-model"], "fake-hub",
                   ["qaexp-test/gated-model", "gated", "HF_TOKEN"]),
    "shape-mismatch": (["model=roberta-base", "model.checkpoint=qaexp-test/roberta-shape-mismatch"], "offline",
                       ["shape", "config.json"]),
    # the hub is up but failing (its API answers 503): huggingface_hub's HfHubHTTPError, not a traceback
    "hub-server-error": (["model=bert-base-cased", f"model.checkpoint={FakeHub.FAILING}"], "fake-hub",
                         [FakeHub.FAILING, "HTTP 503", "try again later", "HF_HUB_OFFLINE=1"]),
}
# More failures of cached checkpoints, in-process: the message of the error that build_model raises, which is what
# the CLI prints ("shape-mismatch" above shows the CLI turning such an error into its one line).
# name: (model.checkpoint, model.revision, words the message must contain)
CACHED_FAILURES = {
    "missing-revision": ("qaexp-test/bert", "no-such-branch", ["qaexp-test/bert", "no-such-branch"]),
    "pytorch-bin-only": ("qaexp-test/deberta-bin-only", None, ["pytorch_model.bin", "torch", "safetensors"]),
    "truncated-safetensors": ("qaexp-test/bert-truncated-safetensors", None, ["model.safetensors"]),
}


@pytest.fixture(scope="module")
def error_cache(hub_build, tmp_path_factory) -> HubCache:
    """A hub cache of the checkpoints that the error cases ask for, damaged as they say."""
    cache = HubCache(tmp_path_factory.mktemp("error_cache") / "hf_home")
    bert, roberta, deberta = hub_build.source("bert"), hub_build.source("roberta"), hub_build.source("deberta-v2")
    cache.add_snapshot("qaexp-test/bert", bert.files(weights=["tf_model.h5"]))
    cache.add_snapshot("qaexp-test/deberta-bin-only", deberta.files(weights=["pytorch_model.bin"]))
    cache.add_snapshot("qaexp-test/bert-truncated-safetensors",
                       truncated(bert.files(weights=["model.safetensors"]), "model.safetensors"))
    cache.add_snapshot("qaexp-test/roberta-shape-mismatch",
                       with_config_change(roberta.files(weights=["model.safetensors"]), intermediate_size=48))
    return cache


@pytest.fixture(scope="module")
def error_runs(hub_build, error_cache, tmp_path_factory):
    """Every ERROR_CASES run (concurrently: each spends its seconds importing TensorFlow): {name: result}."""
    root, cache = tmp_path_factory.mktemp("errors"), error_cache
    bert = hub_build.source("bert")
    gated_files = sorted(bert.files(weights=["tf_model.h5"]))
    with FakeHub(gated={"qaexp-test/gated-model": gated_files}) as hub:
        envs = {"offline": hub_env(cache.home),
                "network-down": {**hub_env(root / "empty_home", offline=False),
                                 "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"},
                "fake-hub": {**hub_env(root / "empty_home", offline=False), "HF_ENDPOINT": hub.url}}

        def run(name):
            overrides, env, _ = ERROR_CASES[name]
            return run_cli(["-m", "qaexp", *overrides, *SMALL_DATA, f"hydra.run.dir={root / name}"], env=envs[env])

        with ThreadPoolExecutor(3) as pool:
            results = dict(zip(ERROR_CASES, pool.map(run, ERROR_CASES)))
    return root, results, hub.requests


@pytest.mark.slow  # five CLI processes, each importing TensorFlow before it fails
@pytest.mark.parametrize("case", ERROR_CASES)
def test_failure_is_one_line(error_runs, case):
    root, results, _ = error_runs
    result = results[case]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("qaexp: error: "), result.stderr[-3000:]
    for word in ERROR_CASES[case][2]:
        assert word.lower() in last.lower(), f"{word!r} not in: {last}"
    assert not (root / case / "predictions.json").exists()


@pytest.mark.slow
def test_fake_hub_was_asked_for_what_it_refused(error_runs):
    """The missing/gated answers came from real huggingface_hub requests (not a cache miss)."""
    _, _, requests = error_runs
    assert any(r.startswith("GET /api/models/qaexp-test/no-such-model") for r in requests), requests
    assert any("/qaexp-test/gated-model/resolve/" in r for r in requests), requests


@pytest.mark.parametrize("case", CACHED_FAILURES)
def test_cached_checkpoint_failure_is_one_clear_line(error_cache, use_cache, case):
    from qaexp.errors import QAExpError

    checkpoint, revision, words = CACHED_FAILURES[case]
    use_cache(error_cache.home)
    with pytest.raises(QAExpError) as info:  # the CLI prints a QAExpError as its one line, exit status 2
        load(checkpoint, revision)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"


# The same failures of tf_model.h5 checkpoints, in-process (the message is what the CLI prints).
H5_FAILURES = {
    "truncated": (lambda files: truncated(files, "tf_model.h5"), ["tf_model.h5"]),
    "shape-mismatch": (lambda files: with_config_change(files, intermediate_size=48), ["shape", "config.json"]),
}


@pytest.mark.parametrize("case", H5_FAILURES)
def test_h5_checkpoint_failure_is_one_clear_line(hub_build, use_cache, tmp_path, case):
    from qaexp.errors import ModelLoadError

    damage, words = H5_FAILURES[case]
    cache = HubCache(tmp_path / "hf_home")
    cache.add_snapshot(f"qaexp-test/bert-{case}", damage(hub_build.source("bert").files(weights=["tf_model.h5"])))
    use_cache(cache.home)
    with pytest.raises(ModelLoadError) as info:
        load(f"qaexp-test/bert-{case}")
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"
    assert "from_pt" not in message, message  # transformers' hint names an option qaexp users cannot set
