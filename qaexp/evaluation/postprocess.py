"""Turn start/end logits of tokenised windows into answer texts and n-best lists.

The span search is exact and vectorised: per window, a sliding maximum gives each start's
best reachable score, only the top ``n_best_size`` starts can hold an n-best span, and
those are paired with all their ``max_answer_length`` possible ends through a strided view
of the end logits. No valid span is missed and no per-span Python code runs.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from qaexp.data.window_rule import MAX_ANSWER_LENGTH, N_BEST_SIZE
from qaexp.output.files import write_json_atomic

# Windows per vectorised block; bounds the (windows, seq_len, max_answer_length) temporaries.
_CHUNK_WINDOWS = 512


@dataclass
class Predictions:
    predictions: dict[str, str]
    nbest: dict[str, list[dict]]
    null_odds: dict[str, float] = field(default_factory=dict)
    # The best non-null answer of each question (SQuAD v2: before the no-answer threshold; v1: = predictions)
    span_answers: dict[str, str] = field(default_factory=dict)

    def at_threshold(self, threshold: float) -> "Predictions":
        """The same answers with the no-answer threshold moved: "" where the null odds exceed `threshold`."""
        answers = {qid: "" if self.null_odds.get(qid, -math.inf) > threshold else text
                   for qid, text in self.span_answers.items()}
        return Predictions(answers, self.nbest, self.null_odds, self.span_answers)

    def write(self, run_dir: str | os.PathLike) -> list[str]:
        """Write predictions.json, nbest_predictions.json and (v2) null_odds.json atomically.

        Infinite null odds (no valid span) are written as ``Infinity``, which Python's json reads.
        """
        os.makedirs(run_dir, exist_ok=True)
        from qaexp import rundir

        files = {rundir.PREDICTIONS: self.predictions, rundir.NBEST: self.nbest}
        if self.null_odds:
            files[rundir.NULL_ODDS] = self.null_odds
        paths = [os.path.join(run_dir, name) for name in files]
        for path, data in zip(paths, files.values()):
            write_json_atomic(path, data)
        return paths


@dataclass
class _Spans:
    """Column arrays of answer candidates, one row per span (or per null answer)."""

    example: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray
    start_logit: np.ndarray
    end_logit: np.ndarray
    score: np.ndarray
    is_null: np.ndarray

    def take(self, index) -> "_Spans":
        return _Spans(*(getattr(self, name)[index] for name in _SPAN_COLUMNS))

    @staticmethod
    def concat(parts: Sequence["_Spans"]) -> "_Spans":
        return _Spans(*(np.concatenate([getattr(p, name) for p in parts]) for name in _SPAN_COLUMNS))

    def sort_by_example_then_score(self) -> "_Spans":
        # Ties keep spans before the null answer, then earlier spans first.
        return self.take(np.lexsort((self.char_start, self.is_null, -self.score, self.example)))


_SPAN_COLUMNS = tuple(_Spans.__dataclass_fields__)


def _forward_max(values: np.ndarray, width: int) -> np.ndarray:
    """out[:, i] = max(values[:, i:i + width]) (shorter near the end), in O(log width) passes."""
    n, length = values.shape
    best = np.concatenate([values, np.full((n, width), -np.inf, dtype=values.dtype)], axis=1)
    span = 1  # best[:, i] holds the max of `span` consecutive values starting at i
    while span * 2 <= width:
        best = np.maximum(best[:, :-span], best[:, span:])
        span *= 2
    shift = width - span
    return np.maximum(best[:, :length], best[:, shift:shift + length])


def _window_top_spans(start, end, k, max_len) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact top-k valid spans of each window.

    ``start``/``end`` are (windows, L) logits with -inf on positions that cannot be an
    answer. Returns (windows, k) arrays of start index, end index and score; impossible
    spans have score -inf.
    """
    n, length = start.shape
    width = min(max_len, length)
    # A span in the top k must start at one of the k starts with the best reachable score,
    # so only those k starts are paired with their `width` possible ends.
    reach = start + _forward_max(end, width)
    k_starts = min(k, length)
    starts = np.argpartition(-reach, k_starts - 1, axis=1)[:, :k_starts]
    padded_end = np.concatenate([end, np.full((n, width - 1), -np.inf, dtype=end.dtype)], axis=1)
    end_band = sliding_window_view(padded_end, width, axis=1)  # [w, i, d] = end[w, i + d]
    rows = np.arange(n)[:, None]
    scores = (start[rows, starts][:, :, None] + end_band[rows, starts]).reshape(n, -1)
    k_spans = min(k, scores.shape[1])
    best = np.argpartition(-scores, k_spans - 1, axis=1)[:, :k_spans]
    span_starts = starts[rows, best // width]
    return span_starts, span_starts + best % width, scores[rows, best]


def _window_spans(example_index, offsets, start, end, k, max_len) -> _Spans:
    """The top-k valid spans of every window, as character spans of the context."""
    is_context = (offsets[..., 0] >= 0) & (offsets[..., 1] >= 0)
    parts = []
    for lo in range(0, start.shape[0], _CHUNK_WINDOWS):
        rows = slice(lo, lo + _CHUNK_WINDOWS)
        ctx = is_context[rows]
        first, last, score = _window_top_spans(
            np.where(ctx, start[rows], -np.inf), np.where(ctx, end[rows], -np.inf), k, max_len
        )
        keep = np.isfinite(score)
        window = np.broadcast_to(np.arange(lo, lo + len(score))[:, None], score.shape)[keep]
        first, last = first[keep], last[keep]
        parts.append(_Spans(
            example_index[window], offsets[window, first, 0], offsets[window, last, 1],
            start[window, first], end[window, last], score[keep], np.zeros(len(window), dtype=bool),
        ))
    return _Spans.concat(parts) if parts else _empty_spans()


def _empty_spans() -> _Spans:
    ints, floats = np.zeros(0, np.int64), np.zeros(0, np.float32)
    return _Spans(ints, ints, ints, floats, floats, floats, np.zeros(0, dtype=bool))


def _first_of_groups(keys: np.ndarray) -> np.ndarray:
    """Mask of rows whose key differs from the previous row (keys already sorted)."""
    first = np.ones(len(keys), dtype=bool)
    first[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    return first


def _group_starts(example: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row where each run of equal sorted ids starts, run number of every row)."""
    first = _first_of_groups(example[:, None])
    return np.flatnonzero(first), np.cumsum(first) - 1


def _nbest_spans(spans: _Spans, n_best_size: int) -> _Spans:
    """Per example: drop repeats of a character span (keep its best window), keep the top n."""
    spans = spans.take(np.lexsort((-spans.score, spans.char_end, spans.char_start, spans.example)))
    spans = spans.take(_first_of_groups(np.stack([spans.example, spans.char_start, spans.char_end], axis=1)))
    spans = spans.sort_by_example_then_score()
    run_starts, run = _group_starts(spans.example)
    return spans.take(np.arange(len(spans.example)) - run_starts[run] < n_best_size)


def _null_spans(example_index, start, end, cls_index) -> _Spans:
    """Per example with windows: the null answer of the window with the lowest CLS score."""
    windows = np.arange(len(example_index))
    cls_start, cls_end = start[windows, cls_index], end[windows, cls_index]
    score = cls_start + cls_end
    order = np.lexsort((score, example_index))
    best = order[_first_of_groups(example_index[order][:, None])]
    zeros = np.zeros(len(best), np.int64)
    return _Spans(example_index[best], zeros, zeros, cls_start[best], cls_end[best], score[best],
                  np.ones(len(best), dtype=bool))


def _group_softmax(example: np.ndarray, score: np.ndarray) -> np.ndarray:
    if not len(example):
        return np.zeros(0)
    run_starts, run = _group_starts(example)
    values = score.astype(np.float64)
    exp = np.exp(values - np.maximum.reduceat(values, run_starts)[run])
    return exp / np.add.reduceat(exp, run_starts)[run]


def _best_per_example(spans: _Spans, n_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """(row of each example's best span or -1, its score or -inf); spans sorted by example."""
    row = np.full(n_examples, -1)
    score = np.full(n_examples, -np.inf)
    if len(spans.example):
        run_starts, _ = _group_starts(spans.example)
        row[spans.example[run_starts]] = run_starts
        score[spans.example[run_starts]] = spans.score[run_starts]
    return row, score


def _nbest_lists(spans: _Spans, texts: list[str], n_examples: int) -> list[list[dict]]:
    probability = _group_softmax(spans.example, spans.score).tolist()
    entries = [
        {"text": t, "probability": p, "start_logit": s, "end_logit": e}
        for t, p, s, e in zip(texts, probability, spans.start_logit.tolist(), spans.end_logit.tolist())
    ]
    bounds = np.searchsorted(spans.example, np.arange(n_examples + 1)).tolist()
    empty = {"text": "", "probability": 1.0, "start_logit": 0.0, "end_logit": 0.0}
    return [entries[bounds[i]:bounds[i + 1]] or [dict(empty)] for i in range(n_examples)]


def _texts(spans: _Spans, contexts: list[str]) -> list[str]:
    # Null rows have the character span (0, 0), i.e. "".
    return [
        contexts[i][a:b]
        for i, a, b in zip(spans.example.tolist(), spans.char_start.tolist(), spans.char_end.tolist())
    ]


def _check_inputs(examples, example_index, offsets, start, end, cls_index, n_best, max_len):
    if start.ndim != 2 or end.shape != start.shape:
        raise ValueError(
            f"start/end logits must share a (windows, seq_len) shape, got {start.shape} and {end.shape}")
    n, length = start.shape
    if offsets.shape != (n, length, 2):
        raise ValueError(f"offsets must have shape {(n, length, 2)}, got {offsets.shape}")
    if example_index.shape != (n,) or cls_index.shape != (n,):
        raise ValueError("example_index and cls_index need one entry per window")
    if n and (example_index.min() < 0 or example_index.max() >= len(examples)):
        raise ValueError("example_index points outside examples")
    if n and (cls_index.min() < 0 or cls_index.max() >= length):
        raise ValueError("cls_index points outside the sequence")
    # -inf is allowed and marks a position as impossible; NaN / +inf mean broken logits.
    if np.isnan(start).any() or np.isnan(end).any() or np.isposinf(start).any() or np.isposinf(end).any():
        raise ValueError("logits contain NaN or +inf")
    if n_best < 1 or max_len < 1:
        raise ValueError("n_best_size and max_answer_length must be >= 1")


def postprocess_predictions(
    examples: Sequence[Mapping],
    example_index,
    offsets,
    start_logits,
    end_logits,
    *,
    n_best_size: int = N_BEST_SIZE,
    max_answer_length: int = MAX_ANSWER_LENGTH,
    version_2: bool = False,
    null_score_diff_threshold: float = 0.0,
    cls_index=None,
) -> Predictions:
    """Best answer text and n-best list per example from per-window logits.

    A span is valid when both ends are context tokens (offsets != (-1, -1)), end >= start
    and it has at most ``max_answer_length`` tokens; its score is start + end logit, and
    the best-scoring span over all of an example's windows wins. Its text is the raw
    context slice ``context[offsets[start][0]:offsets[end][1]]``. The same character span
    seen from overlapping windows appears once, with its best score.

    With ``version_2`` the null score (min over windows of the CLS start + end logits)
    minus the best span score is the example's null odds, and "" is predicted when it
    exceeds ``null_score_diff_threshold``; the n-best list then also holds the "" entry.
    An example without any valid span gets "" (and null odds +inf under ``version_2``).
    """
    example_index = np.asarray(example_index, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    start, end = (np.asarray(logits, dtype=np.float32) for logits in (start_logits, end_logits))
    cls = np.zeros(len(example_index), np.int64) if cls_index is None else np.asarray(cls_index, np.int64)
    _check_inputs(examples, example_index, offsets, start, end, cls, n_best_size, max_answer_length)
    ids, contexts = [example["id"] for example in examples], [example["context"] for example in examples]

    spans = _nbest_spans(_window_spans(example_index, offsets, start, end, n_best_size, max_answer_length),
                         n_best_size)
    best_row, best_score = _best_per_example(spans, len(examples))
    span_texts = _texts(spans, contexts)
    answers = [span_texts[r] if r >= 0 else "" for r in best_row.tolist()]

    odds, span_answers = np.zeros(0), dict(zip(ids, answers))
    if version_2:
        nulls = _null_spans(example_index, start, end, cls)
        odds = _null_odds(nulls, best_score)
        answers = ["" if o > null_score_diff_threshold else a for a, o in zip(answers, odds.tolist())]
        # A CLS logit of -inf makes the null answer impossible: it gets no n-best entry.
        spans = _Spans.concat([spans, nulls.take(np.isfinite(nulls.score))]).sort_by_example_then_score()
        span_texts = _texts(spans, contexts)

    nbest = _nbest_lists(spans, span_texts, len(examples))
    return Predictions(dict(zip(ids, answers)), dict(zip(ids, nbest)), dict(zip(ids, odds.tolist())), span_answers)


def _null_odds(nulls: _Spans, best_score: np.ndarray) -> np.ndarray:
    """Per example: its null score minus its best span's score; +inf without a window or a valid span."""
    null_score = np.full(len(best_score), -np.inf)
    null_score[nulls.example] = nulls.score
    odds = np.full(len(best_score), np.inf)  # nothing beats ""
    scored = nulls.example[np.isfinite(best_score[nulls.example])]
    odds[scored] = null_score[scored] - best_score[scored]
    return odds
