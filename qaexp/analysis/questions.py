"""One row per evaluation question: its gold answers, the prediction, its EM/F1 and the features slices group by.

Features: the question word; the answer type (number, date, person-like, other, no-answer) from the first gold
answer's text; the answer length in words; the context length in tokens and whether the gold answer crosses a
window boundary (both from the run's windows; None when they are not available).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from qaexp.data.checks import placed_answer
from qaexp.evaluation.metrics import gold_answers, question_scores

QUESTION_WORDS = ("what", "who", "when", "where", "which", "how", "why")
NO_ANSWER = "no answer"
_MONTHS = ("january february march april may june july august september october november december "
           "jan feb mar apr jun jul aug sep sept oct nov dec").split()
_NUMBER_WORDS = set("zero one two three four five six seven eight nine ten eleven twelve hundred thousand million "
                    "billion trillion dozen half first second third percent".split())
_YEAR = re.compile(r"\b(1\d{3}|20\d{2})s?\b")
_NUMERIC = re.compile(r"^[\s$€£~+\-−]*[\d.,]+\s*(%|percent|[a-z]{0,3})?\s*$", re.IGNORECASE)


@dataclass
class Question:
    id: str
    question: str
    context: str
    gold: list[str]
    answer_start: Optional[int]  # of the first gold answer; None without one
    prediction: str
    exact: float  # 0 or 1
    f1: float  # in [0, 1]
    question_word: str
    answer_type: str
    answer_length: Optional[int]  # words of the first gold answer; None for no-answer questions
    context_tokens: Optional[int] = None
    boundary: Optional[str] = None  # one window | inside a window | crosses a boundary | no answer

    @property
    def has_answer(self) -> bool:
        return bool(self.gold)


def question_word(question: str) -> str:
    """The first of what/who/when/where/which/how/why in the question ("In what year ..." is `what`), else other."""
    for word in re.findall(r"[a-z]+", question.lower()):
        if word in QUESTION_WORDS:
            return word
    return "other"


def answer_type(answers: Sequence[str]) -> str:
    """A rough type of the first gold answer, by its text alone."""
    if not answers:
        return NO_ANSWER
    text = answers[0].strip()
    words = re.findall(r"[A-Za-z]+", text.lower())
    if any(word in _MONTHS for word in words) or (_YEAR.search(text) and len(text.split()) <= 4):
        return "date"
    if _NUMERIC.match(text) or (words and all(word in _NUMBER_WORDS for word in words)):
        return "number"
    tokens = text.split()
    if 2 <= len(tokens) <= 4 and all(t[:1].isupper() and t.replace(".", "").replace("-", "").isalpha() for t in tokens):
        return "person-like"
    return "other"


def build_questions(examples: list[dict], predictions: dict[str, str], version_2: bool,
                    windows=None) -> list[Question]:
    """The table of a run's questions; `windows` (the run's Windows of these examples) adds the token features."""
    gold = gold_answers(examples)
    exact, f1 = question_scores(gold, predictions, version_2)
    tokens, boundaries = window_features(examples, windows) if windows is not None else ([None] * len(examples),) * 2
    rows = []
    for example, n_tokens, boundary in zip(examples, tokens, boundaries):
        qid, texts = example["id"], gold[example["id"]]
        starts = list(example.get("answers", {}).get("answer_start", [])) if texts else []
        rows.append(Question(
            id=qid, question=example["question"], context=example["context"], gold=texts,
            # of gold[0], as the snippet shows it; None when its place is unknown (data/checks.UNPLACED)
            answer_start=starts[0] if starts and starts[0] >= 0 else None, prediction=predictions.get(qid, ""),
            exact=exact[qid], f1=f1[qid], question_word=question_word(example["question"]), answer_type=answer_type(texts),
            answer_length=len(texts[0].split()) if texts else None, context_tokens=n_tokens, boundary=boundary))
    return rows


def window_features(examples: list[dict], windows) -> tuple[list[Optional[int]], list[Optional[str]]]:
    """Per example: its context length in tokens (the distinct context tokens of its windows) and where its first
    gold answer lies: in its only window, inside one of several windows, or across every window's edge."""
    spans: list[list[tuple[int, int]]] = [[] for _ in examples]
    token_starts: list[set] = [set() for _ in examples]
    for offsets, example in zip(windows.offsets, windows.example_index.tolist()):
        context = offsets[offsets[:, 0] >= 0]
        if len(context):
            spans[example].append((int(context[:, 0].min()), int(context[:, 1].max())))
            token_starts[example].update(context[:, 0].tolist())
    tokens = [len(starts) if starts else None for starts in token_starts]
    return tokens, [_boundary(example, covered) for example, covered in zip(examples, spans)]


def _boundary(example: dict, covered: list[tuple[int, int]]) -> Optional[str]:
    answers = example.get("answers", {})
    if not answers.get("text"):
        return NO_ANSWER
    placed = placed_answer(answers)
    if not covered or placed is None:  # no place known: no window can be said to hold it
        return None
    start = answers["answer_start"][placed]
    end = start + len(answers["text"][placed])
    if len(covered) == 1:
        return "one window"
    inside = any(lo <= start and end <= hi for lo, hi in covered)
    return "inside a window" if inside else "crosses a boundary"


def overall(questions: Sequence[Question]) -> dict:
    """EM and F1 (x 100) of these questions: the official figures when they are all of a run's questions."""
    exact = np.array([q.exact for q in questions], dtype=float)
    f1 = np.array([q.f1 for q in questions], dtype=float)
    return {"questions": len(questions), "exact_match": 100.0 * exact.mean() if len(exact) else 0.0,
            "f1": 100.0 * f1.mean() if len(f1) else 0.0}
