"""The window and answer settings a saved model is used with: its run's own, else defaults, else flags.

A qaexp run writes RUN_DIR/model/qaexp.json with the settings inference needs, the (possibly tuned) SQuAD v2
no-answer threshold included (`saved_settings` reads it). Its composed config in RUN_DIR/.hydra/config.yaml
beside RUN_DIR/model holds the same data settings (max_length, doc_stride, version_2_with_negative,
null_score_diff_threshold, max_answer_length) before any tuning; `trained_settings` reads them, for older runs.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

from qaexp import rundir
from qaexp.data import window_rule
from qaexp.errors import QAExpError

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
        raise QAExpError(f"{model_dir} has no config.json, so it holds no saved model: give the model directory "
                         "of a qaexp run (RUN_DIR/model) or any directory written by save_pretrained")


def write_inference_settings(model_dir: str, data_cfg, threshold: float, threshold_source: str) -> str:
    """model_dir/qaexp.json: the window and answer settings the model was evaluated with, its no-answer threshold."""
    from qaexp.output.files import write_json_atomic

    path = os.path.join(model_dir, rundir.SETTINGS)
    write_json_atomic(path, {"max_length": int(data_cfg.max_length), "doc_stride": int(data_cfg.doc_stride),
                             "max_answer_length": int(data_cfg.max_answer_length),
                             "version_2_with_negative": bool(data_cfg.version_2_with_negative),
                             "null_score_diff_threshold": float(threshold),
                             "null_threshold_source": threshold_source})
    return path


def saved_settings(model_dir: str) -> dict:
    """The DEFAULTS keys of model_dir/qaexp.json; {} when the model has none (older runs, other tools' models)."""
    import json

    path = os.path.join(model_dir, rundir.SETTINGS)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError) as err:
        raise QAExpError(f"cannot read {path}: {err}; delete it to fall back to the run config") from None
    return {key: saved[key] for key in DEFAULTS if saved.get(key) is not None}


def trained_settings(model_dir: str) -> dict:
    """The DEFAULTS keys found in the data section of the model's run config; {} when there is no run config."""
    from omegaconf import OmegaConf

    config = rundir.read_config(os.path.dirname(os.path.abspath(model_dir)), optional=True)
    if config is None:
        return {}
    data = OmegaConf.to_container(config).get("data") or {}
    return {key: data[key] for key in DEFAULTS if data.get(key) is not None}


def answer_settings(model_dir: str, overrides: dict) -> SimpleNamespace:
    """DEFAULTS, then the run's own settings (its config, then model/qaexp.json), then the overrides that are not
    None (command-line flags). Checked as training checks its config, with the same one-line errors: each value
    against its range (limits.NUMBERS), then the window rule."""
    from qaexp.config.limits import NUMBERS, check_value

    check_model_dir(model_dir)
    chosen = {**DEFAULTS, **trained_settings(model_dir), **saved_settings(model_dir),
              **{key: value for key, value in overrides.items() if value is not None}}
    for key in ("max_length", "doc_stride", "max_answer_length"):
        check_value(f"data.{key}", chosen[key], NUMBERS[f"data.{key}"])
    window_rule.check_window(chosen["max_length"], chosen["doc_stride"])
    # As training's post-processing: scores are probabilities over this many candidates per question.
    return SimpleNamespace(**chosen, n_best_size=window_rule.N_BEST_SIZE)


def describe(settings: SimpleNamespace) -> str:
    v2 = (f"SQuAD v2 (no-answer above null-score difference {settings.null_score_diff_threshold:g})"
          if settings.version_2_with_negative else "SQuAD v1 (always answers)")
    return (f"max_length={settings.max_length} doc_stride={settings.doc_stride} "
            f"max_answer_length={settings.max_answer_length}, {v2}")


def add_setting_flags(parser) -> None:
    """The command-line flags that override the run's settings (shared by qaexp serve and qaexp export)."""
    group = parser.add_argument_group(
        "window and answer settings (default: the model's qaexp.json, else its run's .hydra/config.yaml, else "
        f"max_length {window_rule.MAX_LENGTH}, doc_stride {window_rule.DOC_STRIDE}, max_answer_length "
        f"{window_rule.MAX_ANSWER_LENGTH}, SQuAD v1)")
    group.add_argument("--max-length", type=int)
    group.add_argument("--doc-stride", type=int)
    group.add_argument("--max-answer-length", type=int)
    group.add_argument("--version-2", dest="version_2_with_negative", action="store_const", const=True,
                       help="allow the no-answer prediction (SQuAD v2)")
    group.add_argument("--version-1", dest="version_2_with_negative", action="store_const", const=False,
                       help="always answer (SQuAD v1)")
    group.add_argument("--null-threshold", dest="null_score_diff_threshold", type=float,
                       help="v2: predict no-answer when null score minus best span score exceeds this")


def setting_overrides(args) -> dict:
    return {key: getattr(args, key, None) for key in DEFAULTS}
