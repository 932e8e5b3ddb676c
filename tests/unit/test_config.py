"""Every config group option composes and validates; range and consistency checks name the key and the range."""
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from helpers.config import CONF, compose
from qaexp.config.validation import validate
from qaexp.errors import ConfigError
from qaexp.model.families import KNOWN_CONFIG_KEYS, config_keys

QUICK = ["model=tiny", "data=synthetic"]

# Options that are incomplete on their own by design (they need a user's value).
NEEDS = {("data", "json"): ["data.train_file=train.json", "data.validation_file=dev.json"]}


def group_options() -> list[tuple[str, str]]:
    return sorted((path.parent.name, path.stem) for path in CONF.glob("*/*.yaml"))


def test_every_group_has_options():
    groups = {group for group, _ in group_options()}
    assert {"model", "data", "optimizer", "precision", "trainer", "logger", "experiment"} <= groups


@pytest.mark.parametrize("group, option", group_options())
def test_every_option_composes_and_validates(group, option):
    cfg = compose([f"{group}={option}", *NEEDS.get((group, option), [])])
    validate(cfg)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # every interpolation resolves


@pytest.mark.parametrize("override, key", [
    ("trainer.epochs=abc", "full_key: trainer.epochs"),
    ("optimizer.lr=fast", "full_key: optimizer.lr"),
    ("model.nonexistent=1", "full_key: model.nonexistent"),
    ("data.max_lenght=128", "full_key: data.max_lenght"),
])
def test_schema_rejects_wrong_types_and_unknown_keys(override, key):
    with pytest.raises(ConfigCompositionException) as caught:
        compose([*QUICK, override])
    assert key in f"{caught.value} {caught.value.__cause__}"


@pytest.mark.parametrize("override, key", [
    ("+trainer.foo=1", "trainer.foo"),
    ("+foo=1", "'foo'"),
    ("+optimizer.momentum=0.9", "optimizer.momentum"),
])
def test_added_keys_are_rejected_by_validate(override, key):
    with pytest.raises(ConfigError, match="unknown config key") as caught:
        validate(compose([*QUICK, override]))
    assert key in str(caught.value)


@pytest.mark.parametrize("model_type", sorted(KNOWN_CONFIG_KEYS))
def test_the_keys_checked_without_transformers_are_keys_of_the_model_types_config(model_type):
    assert KNOWN_CONFIG_KEYS[model_type] <= config_keys(model_type)


def test_architecture_takes_the_keys_of_its_model_types_transformers_config():
    validate(compose([*QUICK, "+model.architecture.layer_norm_eps=1e-6"]))
    validate(compose([*QUICK, "model.architecture.model_type=bert"]))  # BERT's config takes RoFormer's keys


@pytest.mark.parametrize("override, message", [
    ("+model.architecture.hidden_sise=64", "unknown config key 'model.architecture.hidden_sise': did you mean "
                                           "model.architecture.hidden_size? (model.architecture has "),
    ("+model.architecture.rope_theta=1e4", "unknown config key 'model.architecture.rope_theta' (model.architecture "),
    ("model.architecture.model_type=robeta", "model.architecture.model_type='robeta' has no Keras model in qaexp: "
                                             "did you mean model.architecture.model_type=roberta? "),
    # DistilBERT's config has no intermediate_size (its hidden_dim): tiny's would be ignored
    ("model.architecture.model_type=distilbert", "unknown config key 'model.architecture.intermediate_size'"),
    ("~model.architecture.model_type", "model.architecture.model_type is not set (a model built from scratch needs "),
    ("+model.architecture.vocab_size=99", "model.architecture.vocab_size is set from the tokenizer"),
])
def test_architecture_keys_its_model_type_would_ignore_or_refuse_are_named(override, message):
    with pytest.raises(ConfigError) as caught:
        validate(compose([*QUICK, override]))
    assert str(caught.value).startswith(message)


RANGE_CASES = [
    (["data.max_length=0"], ["data.max_length=0", ">= 1"]),
    (["data.max_length=1024"], ["data.max_length=1024", "[1, 512]", "max_position_embeddings"]),
    (["model.architecture.model_type=roberta", "data.max_length=512"], ["[1, 510]"]),
    (["data.doc_stride=0"], ["data.doc_stride=0", "> 0"]),
    (["data.doc_stride=256"], ["data.doc_stride=256", "< data.max_length=256"]),
    (["data.doc_stride=245"], ["data.doc_stride=245", "no room for the question", "< 244"]),
    (["optimizer.lr=0"], ["optimizer.lr=0", "> 0"]),
    (["optimizer.lr=-1e-4"], ["optimizer.lr", "> 0"]),
    (["optimizer.warmup_ratio=1.0"], ["optimizer.warmup_ratio=1.0", "[0, 1)"]),
    (["optimizer.warmup_ratio=-0.1"], ["optimizer.warmup_ratio", "[0, 1)"]),
    (["optimizer.beta_1=1.0"], ["optimizer.beta_1=1.0", "[0, 1)"]),
    (["optimizer.epsilon=0"], ["optimizer.epsilon=0", "(0, inf)"]),
    (["optimizer.clipnorm=0"], ["optimizer.clipnorm=0", "> 0"]),
    (["trainer.epochs=-1"], ["trainer.epochs=-1", ">= 0", "[0, 10000]"]),
    (["trainer.batch_size=0"], ["trainer.batch_size=0", ">= 1"]),
    (["trainer.eval_batch_size=-2"], ["trainer.eval_batch_size=-2", ">= 1"]),
    (["trainer.max_steps=0"], ["trainer.max_steps=0", ">= 1"]),
    (["trainer.verbose=3"], ["trainer.verbose=3", "[0, 2]"]),
    (["precision.policy=float8"], ["precision.policy='float8'", "mixed_float16"]),
    (["trainer.padding=ragged"], ["trainer.padding='ragged'", "bucketed"]),
    (["data.on_bad_answer=ignore"], ["data.on_bad_answer='ignore'", "error, skip, fix"]),
    (["data.unanswerable_fraction=1.0"], ["data.unanswerable_fraction", "[0, 1)"]),
    (["data.max_train_samples=0"], ["data.max_train_samples=0", ">= 1"]),
    (["model.architecture.num_attention_heads=3"], ["num_attention_heads=3", "multiple"]),
    (["model.architecture.hidden_size=0"], ["model.architecture.hidden_size=0", ">= 1"]),
    (["model.tokenizer_vocab_size=10"], ["model.tokenizer_vocab_size=10", "[100, 1000000]"]),
    (["data=json"], ["data.train_file"]),
    (["model=bert-base-cased", "model.checkpoint=null"], ["model.checkpoint"]),
]


@pytest.mark.parametrize("overrides, words", RANGE_CASES, ids=[" ".join(o) for o, _ in RANGE_CASES])
def test_range_checks_name_the_key_and_range(overrides, words):
    with pytest.raises(ConfigError) as caught:
        validate(compose([*QUICK, *overrides]))
    for word in words:
        assert word in str(caught.value)


def test_edges_of_the_ranges_are_accepted():
    validate(compose([*QUICK, "data.max_length=512", "data.doc_stride=243", "optimizer.warmup_ratio=0",
                       "optimizer.beta_1=0", "trainer.epochs=1", "trainer.batch_size=1", "trainer.verbose=0"]))


def test_checkpoint_models_skip_the_architecture_limit():
    # A checkpoint's limit is only known once its config is loaded (checked in experiment before training).
    validate(compose(["model=bert-base-cased", "data=synthetic", "data.max_length=1024", "data.doc_stride=128"]))


def test_modernbert_windows_reach_8192_tokens_and_no_further():
    """ModernBERT and mmBERT take data.max_length up to their 8,192 positions (rotary: no reserved positions); one
    more is refused with one line naming the limit, by the check a run makes once the model is loaded."""
    from transformers import AutoConfig

    from qaexp.model.families import build_qa_model
    from qaexp.run.experiment import _check_model_limit

    # ModernBERT-base's position limit on a model small enough to build in a moment
    model = build_qa_model(AutoConfig.for_model("modernbert", vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=16,
                                                max_position_embeddings=8192, pad_token_id=0).to_dict())
    at_limit = compose(["model=modernbert-base", "data=synthetic", "data.max_length=8192", "data.doc_stride=1024"])
    validate(at_limit)
    _check_model_limit(at_limit, model)
    above = compose(["model=modernbert-base", "data=synthetic", "data.max_length=8193", "data.doc_stride=1024"])
    validate(above)  # the limit is the checkpoint's: known once its config is loaded
    with pytest.raises(ConfigError) as caught:
        _check_model_limit(above, model)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and "data.max_length=8193" in message and "[1, 8192]" in message, message


def test_trust_remote_code_is_off_unless_turned_on():
    for option in (path.stem for path in (CONF / "model").glob("*.yaml")):
        assert compose([f"model={option}"]).model.trust_remote_code is False
