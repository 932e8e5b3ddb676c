"""The SQuAD v2 no-answer threshold of a run: the configured one, or tuned for the best F1 (data.null_threshold_tuning).

The threshold is on the null odds (null score minus best span score): a question gets "" when its odds exceed
it. `eval` tunes on all evaluation questions, so the figures it reports are optimistic; `split` tunes on a
seeded part of them and reports the rest at the tuned threshold (no peeking).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from qaexp.config.schema import NullTuning

if TYPE_CHECKING:
    from qaexp.evaluation.inference import Evaluation


def settle_threshold(examples: list[dict], final: "Evaluation", data_cfg, seed: int) -> tuple["Evaluation", dict]:
    """(the evaluation at the run's threshold, what metrics.json records about the threshold under null_threshold).

    v1 runs: unchanged, and {}."""
    if not data_cfg.version_2_with_negative:
        return final, {}
    mode = data_cfg.null_threshold_tuning
    if mode == NullTuning.off:
        return final, {"value": float(data_cfg.null_score_diff_threshold), "source": "configured",
                       "tuned_on": None}
    if mode == NullTuning.eval:
        threshold = _best_f1_threshold(examples, final.answers)
        record = {"value": threshold, "source": "tuned", "tuned_on": f"all {len(examples)} evaluation questions "
                  "(the figures at this threshold are optimistic: tuned and reported on the same questions)"}
    else:
        tuning, held_out = split_questions(examples, data_cfg.null_tuning_fraction, seed)
        threshold = _best_f1_threshold(tuning, final.answers)
        held_out_scores = _scores(held_out, final.answers, threshold)
        record = {"value": threshold, "source": "tuned",
                  "tuned_on": f"{len(tuning)} of {len(examples)} evaluation questions (seed {seed})",
                  "held_out": {"questions": len(held_out), "exact_match": held_out_scores["exact_match"],
                               "f1": held_out_scores["f1"], "scores": held_out_scores}}
    return _at_threshold(examples, final, threshold), record


def split_questions(examples: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(tuning part, held-out part): a seeded shuffle of the questions, the first `fraction` of them to tune on."""
    order = np.random.default_rng(seed).permutation(len(examples))
    cut = min(max(1, round(fraction * len(examples))), len(examples) - 1)
    return [examples[i] for i in sorted(order[:cut])], [examples[i] for i in sorted(order[cut:])]


def _best_f1_threshold(examples: list[dict], answers) -> float:
    """The official v2 script's best_f1_thresh on these questions. Its sweep starts from "no answer everywhere"
    with threshold 0.0; when nothing beats that start, a threshold below every null odds says the same."""
    scores = _scores(examples, answers, math.inf)
    threshold = float(scores["best_f1_thresh"])
    no_answer_everywhere = 100.0 * scores.get("NoAns_total", 0) / scores["total"]
    if scores["best_f1"] == no_answer_everywhere and _scores(examples, answers, threshold)["f1"] < scores["best_f1"]:
        finite = [answers.null_odds[e["id"]] for e in examples if math.isfinite(answers.null_odds[e["id"]])]
        threshold = min(finite, default=0.0) - 1.0
    return threshold


def _scores(examples: list[dict], answers, threshold: float) -> dict:
    from qaexp.evaluation.inference import score_answers

    return score_answers(examples, answers, True, threshold)


def _at_threshold(examples: list[dict], final: "Evaluation", threshold: float) -> "Evaluation":
    answers = final.answers.at_threshold(threshold)
    return replace(final, answers=answers, scores=_scores(examples, answers, threshold))
