"""Keras 3 question-answering models, one module per architecture, chosen by the checkpoint's `model_type`.

A family module defines MODEL_TYPES, PREFIX (the PyTorch name prefix of the encoder, e.g. `bert`), INPUTS (the
inputs the architecture takes, or a function of the config giving them), ARCHITECTURE (transformers'
`...ForQuestionAnswering` class name, or {model_type: name}) and `build_backbone(config)`, whose layer has
`hf_weights()` -> {PyTorch name without the prefix: (variable, transpose)}. Optionally `build_head(config)`, a
layer run between the backbone and the start/end Dense whose `hf_weights()` names are top-level, and OUTPUT_NAME,
that Dense's PyTorch name when it is not `qa_outputs` (both for ModernBERT). A new architecture is one new module
plus one line in `_MODULES`.
"""
from __future__ import annotations

import importlib

import numpy as np

# model_type -> module under qaexp.model.families
_MODULES = {
    "bert": "bert",
    "roberta": "roberta",
    "xlm-roberta": "roberta",
    "distilbert": "distilbert",
    "electra": "electra",
    "albert": "albert",
    "deberta-v2": "deberta_v2",
    "roformer": "roformer",
    "modernbert": "modernbert",
}

MODEL_TYPES = tuple(_MODULES)


def family_module(model_type: str):
    if model_type not in _MODULES:
        raise ValueError(f"model_type {model_type!r} has no Keras 3 model in qaexp (supported: "
                         f"{', '.join(MODEL_TYPES)})")
    return importlib.import_module(f"qaexp.model.families.{_MODULES[model_type]}")


# Set by qaexp from the tokenizer when it builds a model from scratch (model/build.py), never by model.architecture.
FROM_TOKENIZER = ("vocab_size", "pad_token_id")


# Keys a model type's config takes, known without importing transformers: those qaexp's own configs set (conf/model/
# tiny.yaml, conf/experiment/test_tiny.yaml). A config check whose keys are all here needs no transformers (~0.7 CPU s
# on every config error of a quickstart run); tests/unit/test_config.py checks them against config_keys.
KNOWN_CONFIG_KEYS = {
    "roformer": frozenset({"model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                           "intermediate_size", "max_position_embeddings", "hidden_dropout_prob",
                           "attention_probs_dropout_prob"}),
}


def config_keys(model_type: str) -> frozenset[str]:
    """The keys transformers' config class for `model_type` takes (its fields, their aliases and model_type itself),
    less FROM_TOKENIZER: what `model.architecture` may set for a model built from scratch. Imports transformers'
    configuration code only (no Keras, no TensorFlow)."""
    import dataclasses

    from transformers import CONFIG_MAPPING

    config_class = CONFIG_MAPPING[model_type]
    fields = {field.name for field in dataclasses.fields(config_class) if not field.name.startswith("_")}
    return frozenset({*fields, *config_class.attribute_map, "model_type"} - set(FROM_TOKENIZER))


def config_dict(config) -> dict:
    """A transformers config (PretrainedConfig) or a plain dict (a parsed config.json) as a plain dict."""
    return dict(config) if isinstance(config, dict) else config.to_dict()


def build_qa_model(config):
    """The Keras 3 question-answering model for a transformers config, with its variables created (random)."""
    from qaexp.model.families.common import QuestionAnsweringModel

    config = config_dict(config)
    model_type = config.get("model_type")
    module = family_module(model_type)
    architecture = module.ARCHITECTURE if isinstance(module.ARCHITECTURE, str) else module.ARCHITECTURE[model_type]
    input_names = module.INPUTS(config) if callable(module.INPUTS) else module.INPUTS
    head = module.build_head(config) if hasattr(module, "build_head") else None
    model = QuestionAnsweringModel(module.build_backbone(config), family=model_type, prefix=module.PREFIX,
                                   input_names=input_names, architecture=architecture, config=config, head=head,
                                   output_name=getattr(module, "OUTPUT_NAME", "qa_outputs"))
    # One call on a tiny batch creates every variable, so the weight map can name them.
    dummy = np.ones((1, 4), dtype="int32")
    model({name: (dummy if name != "token_type_ids" else np.zeros_like(dummy)) for name in model.input_names})
    initialise_like_transformers(model, config.get("initializer_range", 0.02))
    return model


def initialise_like_transformers(model, stddev: float) -> None:
    """Every matrix (Dense kernels, embeddings, the new qa_outputs head) drawn from a normal truncated at 2 standard
    deviations of `initializer_range`, as transformers' TF models did, so a from-scratch model (conf/model/tiny)
    and a new head start as they did with the old classes; biases and LayerNorm stay 0 / 1 (Keras' defaults).
    Fixed tables (RoFormer's sinusoids) are left alone."""
    import keras

    # A SeedGenerator, not an int seed: an initializer given no seed draws one int seed once, and then gives every
    # variable of the same shape the same values (the query, key and value kernels of every layer identical:
    # measured, the quickstart reached EM 83 instead of 100). The generator's own seed comes from Python's
    # random, which keras.utils.set_random_seed(trainer.seed) has seeded, so a run is still reproducible.
    draw = keras.initializers.TruncatedNormal(stddev=stddev, seed=keras.random.SeedGenerator())
    for variable, _ in model.hf_weights().values():
        if variable.trainable and len(variable.shape) == 2:
            variable.assign(draw(variable.shape, dtype=variable.dtype))
