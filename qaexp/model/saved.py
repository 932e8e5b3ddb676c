"""A saved model and its inference contract: the tokenizer, the Keras model and the window and answer settings
it is used with, loaded from a model directory as one value (`load_saved`).

`qaexp predict`, `qaexp serve` and `qaexp export` all start here. A model directory is RUN_DIR/model or any
directory written by save_pretrained whose model_type qaexp has a Keras 3 model for.

The settings are training's defaults, overridden by the run's own, overridden by flags. A qaexp run writes
RUN_DIR/model/qaexp.json with the settings inference needs, the (possibly tuned) SQuAD v2 no-answer threshold
included (`saved_settings` reads it). Its composed config in RUN_DIR/.hydra/config.yaml beside RUN_DIR/model
holds the same data settings (max_length, doc_stride, version_2_with_negative, null_score_diff_threshold,
max_answer_length) before any tuning; `trained_settings` reads them, for older runs. Whatever their source, they
are checked by training's window rule.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from qaexp import rundir
from qaexp.data import window_rule
from qaexp.errors import QAExpError
from qaexp.evaluation.settings import AnswerSettings

# A model that brings no settings of its own is read with training's defaults.
DEFAULTS = {"max_length": window_rule.MAX_LENGTH, "doc_stride": window_rule.DOC_STRIDE,
            "max_answer_length": window_rule.MAX_ANSWER_LENGTH, "version_2_with_negative": False,
            "null_score_diff_threshold": 0.0}


def check_model_dir(model_dir: str) -> None:
    """One clear error before loading anything: the directory must hold a saved model (its config.json)."""
    if not os.path.isdir(model_dir):
        raise QAExpError(f"{model_dir} is not a directory: give the model directory of a qaexp run (RUN_DIR/model) "
                         "or any directory written by save_pretrained")
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        model = rundir.saved_model_in(model_dir)
        if model:
            raise QAExpError(f"{model_dir} is a qaexp run directory, not a model directory: give its model, {model}")
        raise QAExpError(f"{model_dir} has no config.json, so it holds no saved model: give the model directory "
                         "of a qaexp run (RUN_DIR/model) or any directory written by save_pretrained")


def write_inference_settings(model_dir: str, data_cfg, threshold: float, threshold_source: str) -> str:
    """model_dir/qaexp.json: the window and answer settings the model was evaluated with, its no-answer threshold."""
    from qaexp.output.files import write_json_atomic

    path = os.path.join(model_dir, rundir.SETTINGS)
    # The DEFAULTS keys, each as its default's type; the threshold is the one the run decided on, not the config's.
    settings = {key: type(default)(threshold if key == "null_score_diff_threshold" else data_cfg[key])
                for key, default in DEFAULTS.items()}
    write_json_atomic(path, {**settings, "null_threshold_source": threshold_source})
    return path


def saved_settings(model_dir: str) -> dict:
    """The DEFAULTS keys of model_dir/qaexp.json; {} when the model has none (older runs, other tools' models)."""
    path = os.path.join(model_dir, rundir.SETTINGS)
    if not os.path.isfile(path):
        return {}
    saved = rundir.read_json(path, fix="delete it to fall back to the run config")
    return {key: saved[key] for key in DEFAULTS if saved.get(key) is not None}


def trained_settings(model_dir: str) -> dict:
    """The DEFAULTS keys found in the data section of the model's run config; {} when there is no run config."""
    from omegaconf import OmegaConf

    config = rundir.read_config(os.path.dirname(os.path.abspath(model_dir)), optional=True)
    if config is None:
        return {}
    data = OmegaConf.to_container(config).get("data") or {}
    return {key: data[key] for key in DEFAULTS if data.get(key) is not None}


def answer_settings(model_dir: str, overrides: dict, n_best_size: int = window_rule.N_BEST_SIZE) -> AnswerSettings:
    """DEFAULTS, then the run's own settings (its config, then model/qaexp.json), then the overrides that are not
    None (command-line flags). Checked as training checks its config, with the same one-line errors: each value
    against its range (limits.NUMBERS), then the window rule, then max_length against the model's positions.
    n_best_size: candidates kept per question (predict raises it to its --top-k)."""
    from qaexp.config.limits import NUMBERS, check_value

    check_model_dir(model_dir)
    chosen = {**DEFAULTS, **trained_settings(model_dir), **saved_settings(model_dir),
              **{key: value for key, value in overrides.items() if value is not None}}
    for key in ("max_length", "doc_stride", "max_answer_length"):
        check_value(f"data.{key}", chosen[key], NUMBERS[f"data.{key}"])
    window_rule.check_window(chosen["max_length"], chosen["doc_stride"])
    check_position_limit(model_dir, chosen["max_length"])
    # As training's post-processing (by default): scores are probabilities over this many candidates per question.
    return AnswerSettings.of(chosen, n_best_size=n_best_size)


def check_position_limit(model_dir: str, max_length: int) -> None:
    """Training's position rule on the saved model's config.json (read as JSON, before TensorFlow): a longer window
    than the model has positions for would fail inside its first forward pass. A config.json without a readable
    position count is left to the model's loader."""
    from qaexp.model.pretrained import config_or_none

    config = config_or_none(model_dir) or {}
    limit = window_rule.position_limit(config.get("model_type"), config.get("max_position_embeddings"))
    window_rule.check_max_length(max_length, limit, f"max_position_embeddings of {model_dir}")


def describe(settings: AnswerSettings) -> str:
    v2 = (f"SQuAD v2 (no-answer above null-score difference {settings.null_score_diff_threshold:g})"
          if settings.version_2_with_negative else "SQuAD v1 (always answers)")
    return (f"max_length={settings.max_length} doc_stride={settings.doc_stride} "
            f"max_answer_length={settings.max_answer_length}, {v2}")


@dataclass(frozen=True)
class SavedModel:
    """A model directory loaded: what answering a question needs, and nothing to re-read."""

    model_dir: str
    tokenizer: Any
    model: Any
    settings: AnswerSettings  # answer_settings' value


def load_saved(model_dir: str, settings: Optional[AnswerSettings] = None) -> SavedModel:
    """`model_dir` loaded with its settings: `settings` when the caller checked them already (answer_settings, cheap,
    before this slow load), else the model's own. One line (QAExpError) when it is not a model directory."""
    from omegaconf import OmegaConf

    from qaexp.backend import check_this_process, current

    settings = answer_settings(model_dir, {}) if settings is None else settings  # checks the directory too
    check_this_process()  # KERAS_BACKEND=jax without jax: training's one line, not the first import's traceback
    from qaexp.model import build
    from qaexp.quiet import import_tensorflow

    model_cfg = OmegaConf.create({"checkpoint": model_dir, "padding_side": "right", "trust_remote_code": False})
    if current() == "tensorflow":  # under KERAS_BACKEND=jax the model runs on JAX, without TensorFlow
        import_tensorflow()  # before transformers: its libraries' loading notices are dropped
    tokenizer = build.build_tokenizer(model_cfg)
    return SavedModel(model_dir, tokenizer, build.build_model(model_cfg, tokenizer), settings)
