"""`validate`: the checks of a composed config that Hydra's types cannot express, before anything heavy loads.

Each failure is a ConfigError naming the key and what is allowed: values of the closed keys (schema.KNOWN),
numeric ranges and directory keys (limits.py), what the run's Keras backend cannot do (TENSORFLOW_ONLY and
JAX_ONLY below), the window rule (data/window_rule.py), and what relates two keys. Keys the closed schema lacks
are refused with the nearest valid spelling (suggestions.py).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Mapping, Optional

from omegaconf import DictConfig, OmegaConf

from qaexp import backend
from qaexp.config.limits import NUMBERS, check_directories, check_numbers, check_value
from qaexp.config.schema import KNOWN, DataSource, EvalSource, NullTuning, get_key
from qaexp.config.suggestions import nearest, unknown_key_message
from qaexp.data import window_rule
from qaexp.errors import ConfigError


def validate(cfg: DictConfig) -> None:
    """Range and consistency checks; raises ConfigError naming the key and what is allowed.

    The ranges of the numeric keys and what the directory keys must be are tables in config/limits.py."""
    check_no_unknown_keys(cfg)
    for key, choices in KNOWN.items():
        value, allowed = get_key(cfg, key), [choice.value for choice in choices]
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
    check_numbers(cfg)  # every numeric key against its range, in config/limits.py
    problem = unsupported(cfg)  # what the run's Keras backend cannot do (tf.distribute on JAX, ...)
    if problem:
        raise ConfigError(problem)
    data = cfg.data
    window_rule.check_window(data.max_length, data.doc_stride)  # the rule every tool applies too (data/window_rule.py)
    if cfg.model.from_scratch:
        _check_architecture(cfg.model.architecture)
        arch = cfg.model.architecture
        window_rule.check_max_length(
            data.max_length, window_rule.position_limit(arch.get("model_type"), arch.get("max_position_embeddings")),
            "model.architecture.max_position_embeddings")
    if cfg.trainer.grad_accum_steps > cfg.trainer.batch_size:
        raise ConfigError(f"trainer.grad_accum_steps={cfg.trainer.grad_accum_steps} must be <= trainer.batch_size="
                          f"{cfg.trainer.batch_size} (the batch is split into that many micro-batches)")
    check_directories(cfg)
    if data.source == DataSource.json and not (data.train_file or data.validation_file):
        raise ConfigError("data=json needs data.train_file and/or data.validation_file")
    if data.source == DataSource.hub and not data.name:
        raise ConfigError("data.source=hub needs data.name (a dataset on the Hugging Face hub)")
    if not cfg.model.from_scratch and not cfg.model.checkpoint:
        raise ConfigError("model.checkpoint is empty: give a hub name or a local directory, or use model=tiny")
    _check_evaluation_options(data)
    if cfg.hub.push and not cfg.hub.repo_id:
        raise ConfigError("hub.push=true needs hub.repo_id=USER/NAME (the hub repository to upload to)")
    if cfg.hub.push:
        from qaexp.output.hub import repo_id_problem  # huggingface_hub's validator, imported only when pushing

        problem = repo_id_problem(cfg.hub.repo_id)
        if problem:
            raise ConfigError(f"hub.repo_id: {problem}")
    if cfg.hub.push and not cfg.trainer.save_model:
        raise ConfigError("hub.push=true needs trainer.save_model=true (the saved model directory is what is pushed)")


def _check_evaluation_options(data: DictConfig) -> None:
    if data.null_threshold_tuning != NullTuning.off and not data.version_2_with_negative:
        raise ConfigError(f"data.null_threshold_tuning={data.null_threshold_tuning} needs "
                          "data.version_2_with_negative=true (only SQuAD v2 predicts no-answer)")
    seen: set[str] = set()
    for number, entry in enumerate(data.extra_eval):
        where = f"data.extra_eval[{number}]"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", entry.name or "") or entry.name in seen:
            raise ConfigError(f"{where}.name={entry.name!r} must be a unique name of letters, digits, '_', '.', '-'")
        seen.add(entry.name)
        if entry.source not in [choice.value for choice in EvalSource]:
            raise ConfigError(f"{where}.source={entry.source!r} is not one of json, hub")
        if entry.source == EvalSource.json and not entry.file:
            raise ConfigError(f"{where} ({entry.name}) needs file=PATH (a SQuAD JSON or JSON-lines file)")
        if entry.source == EvalSource.hub and not entry.dataset:
            raise ConfigError(f"{where} ({entry.name}) with source=hub needs dataset=NAME (a hub dataset)")
        check_value(f"{where}.max_eval_samples", entry.max_eval_samples, NUMBERS["data.max_eval_samples"])


def _check_architecture(arch: DictConfig) -> None:
    """The sizes' ranges are in limits.ARCHITECTURE; here, what relates them."""
    hidden, heads = arch.get("hidden_size"), arch.get("num_attention_heads")
    if hidden is not None and heads is not None and hidden % heads:
        raise ConfigError(f"model.architecture.hidden_size={hidden} must be a multiple of "
                          f"model.architecture.num_attention_heads={heads}")


def check_no_unknown_keys(cfg: DictConfig, prefix: str = "") -> None:
    """Reject keys added with `+group.key=value`: Hydra's add-override opens the typed node, so they get in. The
    keys of model.architecture, free-form in the schema, are checked against its model type (architecture_problem)
    when the model is built from them."""
    schema = OmegaConf.get_type(cfg)
    if not dataclasses.is_dataclass(schema):
        return
    if not prefix and "model" in cfg and cfg.model.from_scratch and not cfg.model.checkpoint:
        problem = architecture_problem(cfg.model.architecture)
        if problem:
            raise ConfigError(problem)
    known = {f.name for f in dataclasses.fields(schema)}
    for key, value in cfg.items_ex(resolve=False):
        name = f"{prefix}{key}"
        if name == "hydra":  # present when composed with return_hydra_config=True
            continue
        if key not in known:  # python -m qaexp refuses the command line's before Hydra runs; compose() calls do not
            match = nearest(str(key), known)
            raise ConfigError(unknown_key_message(name, known, prefix + match if match else None))
        if isinstance(value, DictConfig):
            check_no_unknown_keys(value, f"{name}.")


def architecture_problem(architecture: Mapping[str, Any]) -> Optional[str]:
    """The one line for a `model.architecture` (a model built from scratch) that would not build the model it says:
    no model_type, or one qaexp has no Keras model for; a key that model type's transformers config does not take
    (a typo such as hidden_sise would be stored and ignored, the model built with the default); a key qaexp sets
    from the tokenizer. None when there is none."""
    from qaexp.model.families import FROM_TOKENIZER, KNOWN_CONFIG_KEYS, MODEL_TYPES, config_keys

    model_type = architecture.get("model_type")
    if model_type not in MODEL_TYPES:
        match = nearest(str(model_type), MODEL_TYPES) if model_type else None
        what = " is not set" if model_type is None else f"={model_type!r} has no Keras model in qaexp"
        hint = f": did you mean model.architecture.model_type={match}?" if match else ""
        return f"model.architecture.model_type{what}{hint} (a model built from scratch needs one of " \
               f"{', '.join(MODEL_TYPES)})"
    if set(architecture) <= KNOWN_CONFIG_KEYS.get(model_type, frozenset()):
        return None  # qaexp's own keys for this model type: no need to ask transformers
    valid = config_keys(model_type)
    for key in architecture:
        if key in FROM_TOKENIZER:
            return (f"model.architecture.{key} is set from the tokenizer: remove it (model.tokenizer_vocab_size "
                    "sets the vocabulary a model built from scratch trains)")
        if key not in valid:
            match = nearest(str(key), valid)
            return unknown_key_message(f"model.architecture.{key}", valid,
                                       f"model.architecture.{match}" if match else None)
    return None


ARCHITECTURE = "model.architecture."


def _chooses_model(key: str) -> bool:
    """Whether an override of `key` can change the model type a run builds (a group, or a model key outside
    model.architecture other than its model_type)."""
    return key in ("model", "experiment", f"{ARCHITECTURE}model_type") or \
        (key.startswith("model.") and not key.startswith(ARCHITECTURE))


def architecture_override_problem(parsed, compose: Callable[[list[str]], object]) -> Optional[str]:
    """The one line for a model.architecture override that would be ignored or refused: a key the model type's
    transformers config does not take (with or without `+`), a key given without `+` that the config does not hold
    yet, or one given with `+` that it holds. `compose(overrides)` is the config Hydra composes from them (raising
    what Hydra raises); the other overrides are composed without these to learn the model they change. None where
    a sweep over the model leaves this to each job, or Hydra will report its own error."""
    from hydra.core.override_parser.types import OverrideType

    changes = [o for o in parsed if o.key_or_group.startswith(ARCHITECTURE) and not o.is_delete()]
    if not changes:
        return None
    rest = [o for o in parsed if o not in changes]
    if any(o.is_sweep_override() and _chooses_model(o.key_or_group) for o in parsed):
        return None
    try:
        cfg = compose([o.input_line for o in rest if not o.is_sweep_override()])
    except Exception:  # Hydra's own error, which it reports when it composes the run's config
        return None
    model = cfg.model
    if model.checkpoint:  # it brings its own architecture; build_model would silently ignore the override
        return (f"{changes[0].input_line} would be ignored: model.checkpoint={model.checkpoint} brings its own "
                "architecture (its config.json), which qaexp does not change; model.architecture is for a model "
                "built from scratch (model=tiny, model.checkpoint=null)")
    if not model.from_scratch:
        return None
    held = dict(model.architecture)
    architecture = dict(held)
    for override in changes:
        architecture[override.key_or_group[len(ARCHITECTURE):]] = \
            None if override.is_sweep_override() else override.value()
    problem = architecture_problem(architecture)
    if problem:
        return problem
    for override in changes:
        key = override.key_or_group[len(ARCHITECTURE):]
        if override.type == OverrideType.CHANGE and key not in held:
            return (f"{override.key_or_group} is not in this model's architecture yet: add it with a "
                    f"'+': +{override.input_line}")
        if override.type == OverrideType.ADD and key in held:
            return (f"{override.key_or_group} is in this model's architecture already ({held[key]}): change it "
                    f"without the '+': {override.input_line[1:]}")
    return None


# What only one Keras backend does: config key -> (values, why), per backend that lacks it (backend.py picks the run's).
TENSORFLOW_ONLY = {
    "trainer.strategy": ({"mirrored", "multi_worker", "tpu"},
                         "is a tf.distribute strategy: on JAX use trainer.strategy=data_parallel (all devices of "
                         "this host), or trainer.backend=tensorflow"),
    "precision.policy": ({"mixed_float16"},
                         "needs loss scaling, which qaexp does on TensorFlow only: on JAX use precision=mixed_bfloat16 "
                         "(no loss scaling needed), or trainer.backend=tensorflow"),
    "logger.name": ({"tensorboard"},
                    "writes through TensorFlow's summary writer: on JAX use logger=wandb or logger=none, or "
                    "trainer.backend=tensorflow"),
}
JAX_ONLY = {
    "trainer.strategy": ({"data_parallel"},
                         "is keras.distribution's, which qaexp uses on JAX: on TensorFlow use "
                         "trainer.strategy=mirrored, or trainer.backend=jax"),
}


def unsupported(cfg: DictConfig) -> Optional[str]:
    """The one line for a setting the run's backend cannot do, or None."""
    name, source = backend.effective(cfg.trainer.backend)
    table = TENSORFLOW_ONLY if name == "jax" else JAX_ONLY
    for key, (values, why) in table.items():
        value = get_key(cfg, key)
        if value in values:
            return f"{key}={value} {why} (the backend is {name}: {source})"
    return None
