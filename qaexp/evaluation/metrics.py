"""SQuAD v1.1 and v2.0 exact-match / F1, matching the official evaluation scripts.

Gold answers are passed around as ``dict[question_id, list[answer_text]]``; an empty
list marks an unanswerable (SQuAD v2.0) question.
"""
from __future__ import annotations

import collections
import re
import string
import warnings
from typing import Iterable, Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    text = s.lower().translate(_PUNCTUATION_TABLE)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split()


def exact_match(pred: str, gold: str) -> float:
    return float(normalize_answer(pred) == normalize_answer(gold))


def f1(pred: str, gold: str) -> float:
    """Token-overlap F1; with an empty side it is 1.0 only if both sides are empty (v2.0 rule)."""
    pred_tokens = _tokens(pred)
    gold_tokens = _tokens(gold)
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _f1_v1(pred: str, gold: str) -> float:
    # The v1.1 script gives 0 whenever a side is empty, even when both are.
    if not _tokens(pred) or not _tokens(gold):
        return 0.0
    return f1(pred, gold)


def _answer_texts(answers) -> list[str]:
    """Answer texts from a Hugging Face style ``{"text": [...]}`` or a list of ``{"text": ...}``."""
    if isinstance(answers, Mapping):
        return list(answers.get("text", []))
    return [answer["text"] for answer in answers]


def gold_answers(examples: Iterable[Mapping]) -> dict[str, list[str]]:
    """Map question id -> gold answer texts from flat records (``id``, ``answers``)."""
    return {example["id"]: _answer_texts(example.get("answers", [])) for example in examples}


def _warn_missing(gold: Mapping, predictions: Mapping) -> None:
    missing = sum(1 for qid in gold if qid not in predictions)
    if missing:
        warnings.warn(
            f"{missing} of {len(gold)} questions have no prediction; they score 0",
            stacklevel=3,
        )


def evaluate_v1(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> dict:
    """The official SQuAD v1.1 figures: max over gold answers, averaged over all gold questions."""
    if not gold:
        raise ValueError("no gold questions to evaluate")
    _warn_missing(gold, predictions)
    exact_total = 0.0
    f1_total = 0.0
    for qid, answers in gold.items():
        if qid not in predictions:
            continue
        prediction = predictions[qid]
        exact_total += max((exact_match(prediction, a) for a in answers), default=0.0)
        f1_total += max((_f1_v1(prediction, a) for a in answers), default=0.0)
    return {
        "exact_match": 100.0 * exact_total / len(gold),
        "f1": 100.0 * f1_total / len(gold),
    }


def _raw_scores_v2(gold, predictions) -> tuple[dict, dict]:
    """Per-question EM and F1 before any no-answer threshold; missing predictions score 0."""
    exact_scores, f1_scores = {}, {}
    for qid, answers in gold.items():
        # Golds that normalise to nothing (e.g. ".") are dropped; none left means unanswerable.
        targets = [a for a in answers if normalize_answer(a)] or [""]
        if qid not in predictions:
            exact_scores[qid] = f1_scores[qid] = 0.0
            continue
        prediction = predictions[qid]
        exact_scores[qid] = max(exact_match(prediction, a) for a in targets)
        f1_scores[qid] = max(f1(prediction, a) for a in targets)
    return exact_scores, f1_scores


def _apply_na_threshold(scores, na_probs, has_answer, na_prob_thresh) -> dict:
    """Questions whose no-answer probability exceeds the threshold count as answered with ""."""
    return {
        qid: float(not has_answer[qid]) if na_probs.get(qid, 0.0) > na_prob_thresh else score
        for qid, score in scores.items()
    }


def _summary(exact_scores, f1_scores, qids) -> dict:
    total = len(qids)
    return {
        "exact": 100.0 * sum(exact_scores[q] for q in qids) / total,
        "f1": 100.0 * sum(f1_scores[q] for q in qids) / total,
        "total": total,
    }


def _best_threshold(predictions, scores, na_probs, has_answer) -> tuple[float, float]:
    """Sweep the no-answer threshold over the sorted na probabilities, as the v2.0 script does.

    Start from "every question predicted unanswerable" and, in increasing na-prob order,
    switch each question to its actual prediction, keeping the best running total.
    """
    current = sum(1 for has in has_answer.values() if not has)
    best, best_thresh = current, 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            current += scores[qid]
        elif predictions.get(qid, None) != "":
            current -= 1  # a non-empty (or missing) answer to an unanswerable question
        if current > best:
            best, best_thresh = current, na_probs[qid]
    return 100.0 * best / len(scores), best_thresh


def evaluate_v2(
    gold: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> dict:
    """The official SQuAD v2.0 figures (plus ``best_*`` when no-answer probabilities are given).

    Unlike the official script, which crashes on them, missing predictions score 0 (with a warning).
    """
    if not gold:
        raise ValueError("no gold questions to evaluate")
    _warn_missing(gold, predictions)
    has_answer = {qid: bool(answers) for qid, answers in gold.items()}
    exact_raw, f1_raw = _raw_scores_v2(gold, predictions)
    thresh_probs = na_probs if na_probs is not None else {}
    exact_thr = _apply_na_threshold(exact_raw, thresh_probs, has_answer, na_prob_thresh)
    f1_thr = _apply_na_threshold(f1_raw, thresh_probs, has_answer, na_prob_thresh)

    result = _summary(exact_thr, f1_thr, list(gold))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [qid for qid, has in has_answer.items() if has is wanted]
        if qids:
            for key, value in _summary(exact_thr, f1_thr, qids).items():
                result[f"{prefix}_{key}"] = value
    if na_probs is not None:
        result["best_exact"], result["best_exact_thresh"] = _best_threshold(
            predictions, exact_raw, na_probs, has_answer
        )
        result["best_f1"], result["best_f1_thresh"] = _best_threshold(
            predictions, f1_raw, na_probs, has_answer
        )
    return result


def squad_metrics(
    examples: Iterable[Mapping],
    predictions: Mapping[str, str],
    version_2: bool = False,
    na_probs: Mapping[str, float] | None = None,
) -> dict:
    """Metrics for flat example records; always has ``exact_match`` and ``f1`` keys."""
    gold = gold_answers(examples)
    if not version_2:
        return evaluate_v1(gold, predictions)
    result = evaluate_v2(gold, predictions, na_probs=na_probs)
    result["exact_match"] = result["exact"]
    return result


def question_scores(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                    version_2: bool) -> tuple[dict, dict]:
    """(question id -> EM, question id -> F1), each 0 or 1 / in [0, 1]: the per-question terms whose mean x 100
    is the official figure (v1.1 or v2.0 rules; with v2, `predictions` are the final answers, "" for none)."""
    if version_2:
        return _raw_scores_v2(gold, predictions)
    exact, f1_scores = {}, {}
    for qid, answers in gold.items():
        prediction = predictions.get(qid)
        exact[qid] = 0.0 if prediction is None else max((exact_match(prediction, a) for a in answers), default=0.0)
        f1_scores[qid] = 0.0 if prediction is None else max((_f1_v1(prediction, a) for a in answers), default=0.0)
    return exact, f1_scores
