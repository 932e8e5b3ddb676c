"""EM/F1 per slice of the questions, with 95% Wilson score intervals: for EM, a proportion of questions; for F1,
the mean of per-question scores in [0, 1], whose variance is at most m(1 - m) for a mean m, so the same interval
is conservative for it (and, unlike mean +- 1.96 standard errors, never collapses to a point when all the
questions of a small slice score alike).

Each slicing (question word, answer type, ...) partitions the questions it applies to: every question falls in
exactly one of its slices, so the counts add up to the number of questions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from qaexp.analysis.questions import NO_ANSWER, QUESTION_WORDS, Question

Z_95 = 1.959963984540054


def _length_bucket(words: Optional[int]) -> str:
    if words is None:
        return NO_ANSWER
    return "1" if words == 1 else "2-3" if words <= 3 else "4-6" if words <= 6 else "7+"


CONTEXT_LIMITS = (128, 256, 384, 512)


def _context_bucket(tokens: Optional[int]) -> Optional[str]:
    if tokens is None:
        return None
    low = 1
    for limit in CONTEXT_LIMITS:
        if tokens <= limit:
            return f"{low}-{limit}"
        low = limit + 1
    return f"> {CONTEXT_LIMITS[-1]}"


@dataclass(frozen=True)
class Slicing:
    title: str
    key: Callable[[Question], Optional[str]]  # None: the question's feature is unknown (no windows)
    order: tuple[str, ...]


SLICINGS = (
    Slicing("question word", lambda q: q.question_word, (*QUESTION_WORDS, "other")),
    Slicing("answer type", lambda q: q.answer_type, ("number", "date", "person-like", "other", NO_ANSWER)),
    Slicing("answer length (words)", lambda q: _length_bucket(q.answer_length), ("1", "2-3", "4-6", "7+", NO_ANSWER)),
    Slicing("context length (tokens)", lambda q: _context_bucket(q.context_tokens),
            ("1-128", "129-256", "257-384", "385-512", "> 512")),
    Slicing("answer position", lambda q: q.boundary,
            ("one window", "inside a window", "crosses a boundary", NO_ANSWER)),
)


@dataclass(frozen=True)
class SliceRow:
    slicing: str
    name: str
    count: int
    exact_match: float
    exact_interval: tuple[float, float]
    f1: float
    f1_interval: tuple[float, float]


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval of a proportion, in percent."""
    if n == 0:
        return 0.0, 100.0
    p = float(successes) / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # min/max with p: rounding can put an end a hair past p (at 0 or 1 successes in n)
    return 100.0 * max(0.0, min(p, centre - half)), 100.0 * min(1.0, max(p, centre + half))


def slice_row(slicing: str, name: str, members: Sequence[Question]) -> SliceRow:
    exact = np.array([q.exact for q in members], dtype=float)
    f1 = np.array([q.f1 for q in members], dtype=float)
    return SliceRow(slicing, name, len(members), 100.0 * exact.mean(), wilson_interval(exact.sum(), len(exact)),
                    100.0 * f1.mean(), wilson_interval(f1.sum(), len(f1)))


def groups(questions: Sequence[Question], slicing: Slicing) -> dict[str, list[Question]]:
    """The slicing's non-empty slices in its display order; {} when the feature is unknown for every question."""
    found: dict[str, list[Question]] = {}
    for question in questions:
        value = slicing.key(question)
        if value is not None:
            found.setdefault(value, []).append(question)
    ordered = [name for name in slicing.order if name in found] + sorted(set(found) - set(slicing.order))
    return {name: found[name] for name in ordered}


def slice_table(questions: Sequence[Question]) -> list[SliceRow]:
    return [slice_row(slicing.title, name, members)
            for slicing in SLICINGS for name, members in groups(questions, slicing).items()]
