"""Turn start/end logits of tokenised windows into answer texts and n-best lists.

The span search is exact and vectorised: for every window, every start is paired with
every end in ``[start, start + max_answer_length)`` through a strided view of the end
logits, so no valid span is missed and no per-span Python code runs.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Windows per vectorised block; bounds the (windows, seq_len, max_answer_length) temporaries.
_CHUNK_WINDOWS = 512


@dataclass
class Predictions:
    predictions: dict[str, str]
    nbest: dict[str, list[dict]]
    null_odds: dict[str, float] = field(default_factory=dict)

    def write(self, run_dir: str | os.PathLike) -> list[str]:
        """Write predictions.json, nbest_predictions.json and (v2) null_odds.json atomically."""
        os.makedirs(run_dir, exist_ok=True)
        files = {"predictions.json": self.predictions, "nbest_predictions.json": self.nbest}
        if self.null_odds:
            files["null_odds.json"] = self.null_odds
        return [_write_json_atomic(os.path.join(run_dir, name), data) for name, data in files.items()]


def _write_json_atomic(path: str, data) -> str:
    handle, tmp_path = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=2)
            out.write("\n")
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    return path


@dataclass
class _Candidates:
    """Flat arrays describing candidate spans (one row per span)."""

    example: np.ndarray
    window: np.ndarray
    start: np.ndarray
    end: np.ndarray
    score: np.ndarray

    def take(self, index) -> "_Candidates":
        return _Candidates(*(getattr(self, name)[index] for name in self.__dataclass_fields__))

    @staticmethod
    def concat(parts: Sequence["_Candidates"]) -> "_Candidates":
        names = _Candidates.__dataclass_fields__
        return _Candidates(*(np.concatenate([getattr(p, n) for p in parts]) for n in names))


def _window_top_spans(start, end, k, max_len) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact top-k valid spans of each window.

    ``start``/``end`` are (windows, L) logits with -inf on positions that cannot be an
    answer. Returns (windows, k) arrays of start index, end index and score; impossible
    spans have score -inf.
    """
    n, length = start.shape
    width = min(max_len, length)
    padded_end = np.concatenate([end, np.full((n, width - 1), -np.inf, dtype=end.dtype)], axis=1)
    end_band = sliding_window_view(padded_end, width, axis=1)  # [w, i, d] = end[w, i + d]
    # A span in the top k must start at one of the k starts with the best reachable score.
    reach = start + end_band.max(axis=2)
    k_starts = min(k, length)
    starts = np.argpartition(-reach, k_starts - 1, axis=1)[:, :k_starts]
    rows = np.arange(n)[:, None]
    scores = (start[rows, starts][:, :, None] + end_band[rows, starts]).reshape(n, -1)
    k_spans = min(k, scores.shape[1])
    best = np.argpartition(-scores, k_spans - 1, axis=1)[:, :k_spans]
    span_starts = starts[rows, best // width]
    return span_starts, span_starts + best % width, scores[rows, best]


def _all_window_candidates(example_index, start, end, is_context, k, max_len) -> _Candidates:
    parts = []
    for lo in range(0, start.shape[0], _CHUNK_WINDOWS):
        hi = min(lo + _CHUNK_WINDOWS, start.shape[0])
        ctx = is_context[lo:hi]
        s, e, score = _window_top_spans(
            np.where(ctx, start[lo:hi], -np.inf), np.where(ctx, end[lo:hi], -np.inf), k, max_len
        )
        window = np.broadcast_to(np.arange(lo, hi)[:, None], s.shape)
        keep = np.isfinite(score)
        parts.append(
            _Candidates(example_index[window[keep]], window[keep], s[keep], e[keep], score[keep])
        )
    return _Candidates.concat(parts)


def _first_of_groups(keys: np.ndarray) -> np.ndarray:
    """Mask of rows whose key differs from the previous row (keys already sorted)."""
    first = np.ones(len(keys), dtype=bool)
    first[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    return first


def _rank_within_example(example: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal (sorted) example ids."""
    first = _first_of_groups(example[:, None])
    run_starts = np.flatnonzero(first)
    return np.arange(len(example)) - run_starts[np.cumsum(first) - 1]


def _nbest_spans(cands: _Candidates, char_start, char_end, n_best_size) -> _Candidates:
    """Per example: drop repeats of a character span (keep its best window), keep the top n."""
    order = np.lexsort((-cands.score, char_end, char_start, cands.example))
    cands, char_start, char_end = cands.take(order), char_start[order], char_end[order]
    unique = _first_of_groups(np.stack([cands.example, char_start, char_end], axis=1))
    cands = cands.take(unique)
    order = np.lexsort((cands.start, -cands.score, cands.example))
    cands = cands.take(order)
    return cands.take(_rank_within_example(cands.example) < n_best_size)


def _null_scores(example_index, start, end, cls_index, n_examples):
    """Per example: min over windows of start[cls] + end[cls], and that window's two logits."""
    windows = np.arange(len(example_index))
    cls_start = start[windows, cls_index]
    cls_end = end[windows, cls_index]
    order = np.lexsort((cls_start + cls_end, example_index))
    best = order[_first_of_groups(example_index[order][:, None])]
    # NaN marks an example without any window.
    null_start = np.full(n_examples, np.nan, dtype=np.float32)
    null_end = np.full(n_examples, np.nan, dtype=np.float32)
    null_start[example_index[best]] = cls_start[best]
    null_end[example_index[best]] = cls_end[best]
    return null_start, null_end


def _softmax(scores: Sequence[float]) -> list[float]:
    values = np.asarray(scores, dtype=np.float64)
    exp = np.exp(values - values.max())
    return (exp / exp.sum()).tolist()


def _entry(text, start_logit, end_logit) -> dict:
    return {"text": text, "start_logit": float(start_logit), "end_logit": float(end_logit)}


def _with_probabilities(entries: list[dict]) -> list[dict]:
    probs = _softmax([e["start_logit"] + e["end_logit"] for e in entries])
    return [
        {"text": e["text"], "probability": p, "start_logit": e["start_logit"], "end_logit": e["end_logit"]}
        for e, p in zip(entries, probs)
    ]


def _check_inputs(examples, example_index, offsets, start, end, cls_index, n_best, max_len):
    n, length = start.shape if start.ndim == 2 else (None, None)
    if start.ndim != 2 or end.shape != start.shape:
        raise ValueError(f"start/end logits must share a (windows, seq_len) shape, got {start.shape} and {end.shape}")
    if offsets.shape != (n, length, 2):
        raise ValueError(f"offsets must have shape {(n, length, 2)}, got {offsets.shape}")
    if example_index.shape != (n,) or cls_index.shape != (n,):
        raise ValueError("example_index and cls_index need one entry per window")
    if n and (example_index.min() < 0 or example_index.max() >= len(examples)):
        raise ValueError("example_index points outside examples")
    if n and (cls_index.min() < 0 or cls_index.max() >= length):
        raise ValueError("cls_index points outside the sequence")
    if not (np.isfinite(start).all() and np.isfinite(end).all()):
        raise ValueError("logits must be finite")
    if n_best < 1 or max_len < 1:
        raise ValueError("n_best_size and max_answer_length must be >= 1")


def postprocess_predictions(
    examples: Sequence[Mapping],
    example_index,
    offsets,
    start_logits,
    end_logits,
    *,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2: bool = False,
    null_score_diff_threshold: float = 0.0,
    cls_index=None,
) -> Predictions:
    """Best answer text and n-best list per example from per-window logits.

    A span is valid when both ends are context tokens (offsets != (-1, -1)), end >= start
    and it has at most ``max_answer_length`` tokens; its score is start + end logit, and
    the best-scoring span over all of an example's windows wins. With ``version_2`` the
    null score (min over windows of the CLS start + end logits) minus the best span score
    is the example's null odds, and "" is predicted when it exceeds the threshold; the
    n-best list then also holds the "" entry. The same character span seen from
    overlapping windows appears once, with its best score. An example without any valid
    span gets "" (null odds +inf under ``version_2``).
    """
    example_index = np.asarray(example_index, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    start = np.asarray(start_logits, dtype=np.float32)
    end = np.asarray(end_logits, dtype=np.float32)
    cls = np.zeros(len(example_index), np.int64) if cls_index is None else np.asarray(cls_index, np.int64)
    _check_inputs(examples, example_index, offsets, start, end, cls, n_best_size, max_answer_length)

    is_context = (offsets[..., 0] >= 0) & (offsets[..., 1] >= 0)
    cands = _all_window_candidates(example_index, start, end, is_context, n_best_size, max_answer_length)
    char_start = offsets[cands.window, cands.start, 0]
    char_end = offsets[cands.window, cands.end, 1]
    cands = _nbest_spans(cands, char_start, char_end, n_best_size)
    char_start = offsets[cands.window, cands.start, 0]
    char_end = offsets[cands.window, cands.end, 1]
    span_start_logit = start[cands.window, cands.start]
    span_end_logit = end[cands.window, cands.end]
    if version_2:
        null_start, null_end = _null_scores(example_index, start, end, cls, len(examples))

    bounds = np.searchsorted(cands.example, np.arange(len(examples) + 1))
    result = Predictions({}, {}, {})
    for i, example in enumerate(examples):
        qid, context = example["id"], example["context"]
        rows = range(bounds[i], bounds[i + 1])
        entries = [
            _entry(context[char_start[r]:char_end[r]], span_start_logit[r], span_end_logit[r]) for r in rows
        ]
        best_text = entries[0]["text"] if entries else ""
        if version_2:
            best_score = float(cands.score[rows[0]]) if entries else -math.inf
            odds = _add_null_entry(entries, null_start[i], null_end[i], best_score)
            result.null_odds[qid] = odds
            if odds > null_score_diff_threshold:
                best_text = ""
        result.predictions[qid] = best_text
        result.nbest[qid] = _with_probabilities(entries or [_entry("", 0.0, 0.0)])
    return result


def _add_null_entry(entries: list[dict], null_start, null_end, best_score: float) -> float:
    """Insert the "" entry into the score-sorted n-best and return the null odds."""
    if np.isnan(null_start):
        return math.inf
    entries.append(_entry("", null_start, null_end))
    entries.sort(key=lambda e: e["start_logit"] + e["end_logit"], reverse=True)
    return float(null_start) + float(null_end) - best_score
