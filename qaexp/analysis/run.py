"""A finished run's questions, read back from its directory: config, evaluation data, predictions, windows.

The evaluation data is loaded as the run loaded it (its .hydra/config.yaml; no training split). The window
features (context tokens, answer across a window boundary) need the run's saved tokenizer (RUN_DIR/model);
without one those two slicings are left out.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

from qaexp import rundir
from qaexp.analysis.questions import Question, build_questions
from qaexp.errors import InputError

log = logging.getLogger(__name__)

@dataclass
class RunQuestions:
    directory: str
    version_2: bool
    questions: list[Question]
    windows_known: bool


def load_run_questions(run_dir: str) -> RunQuestions:
    cfg = rundir.read_config(run_dir)
    predictions_path = os.path.join(run_dir, rundir.PREDICTIONS)
    if not os.path.isfile(predictions_path):
        raise InputError(f"{run_dir} has no {rundir.PREDICTIONS}: the run did not finish its evaluation; analyse a "
                         "completed run")
    from qaexp.data.squad import load_splits

    examples = load_splits(cfg.data, with_train=False).validation or []
    predictions = _read_predictions(predictions_path)
    windows = _windows(run_dir, cfg, examples)
    questions = build_questions(examples, predictions, bool(cfg.data.version_2_with_negative), windows)
    return RunQuestions(run_dir, bool(cfg.data.version_2_with_negative), questions, windows is not None)


def _read_predictions(path: str) -> dict[str, str]:
    predictions = rundir.read_json(path, fix="run the evaluation again to rewrite it")
    if not all(isinstance(v, str) for v in predictions.values()):
        raise InputError(f"{path} must be a JSON object of question id -> answer text")
    return predictions


def _windows(run_dir: str, cfg, examples: list[dict]) -> Optional[object]:
    """The run's evaluation windows (from the window cache when present), or None without a saved tokenizer."""
    model_dir = os.path.join(run_dir, rundir.MODEL)
    if not os.path.isfile(os.path.join(model_dir, "tokenizer_config.json")):
        log.warning("%s has no saved tokenizer: the context-length and window-boundary slices are left out",
                    model_dir)
        return None
    from transformers import AutoTokenizer

    from qaexp.data import cache

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    cache_dir = os.path.expanduser(cfg.data.cache_dir) if cfg.data.cache else None
    return cache.windows_for(examples, tokenizer, cfg.data.max_length, cfg.data.doc_stride, cache_dir,
                             sample_limit=cfg.data.max_eval_samples, split="evaluation")
