"""Ranked answers with character spans: the answers of evaluation/answering.py (those of `qaexp predict`), and
where each candidate sits in its context.

Post-processing reports a candidate's text and its start/end logits, so its span is the token pair of one of the
question's windows that carries exactly those logits and covers exactly that text (ties between equal texts with
equal logits do not change the answer).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from qaexp.evaluation.answering import answer_questions, decided_first, question_record

NO_ANSWER_SPAN = (0, 0)  # the Hugging Face convention for the empty answer


def questions_as_records(questions: list[dict]) -> list[dict]:
    """Records in qaexp's shape (unique ids, no gold answers) for {"question", "context"} dicts."""
    return [question_record(str(n), q["question"], q["context"]) for n, q in enumerate(questions)]


def ranked_answers(saved, questions: list[dict], batch_size: int = 32, should_stop=None) -> list[list[dict]]:
    """Per question: its candidates as {"answer", "score", "start", "end"}, the prediction first.

    Up to settings.n_best_size candidates; the prediction is the post-processing's answer (for SQuAD v2 models
    the empty answer when the null score wins by more than the threshold), the rest follow by score. A question's
    "settings" (its request's parameters, serving/payload.py) change the model's answer settings for it: questions
    with the same ones share forward passes.
    should_stop: see inference.predict_logits (raises inference.Abandoned).
    """
    groups: dict[tuple, list[int]] = {}
    for n, question in enumerate(questions):
        groups.setdefault(tuple(sorted((question.get("settings") or {}).items())), []).append(n)
    ranked: list = [None] * len(questions)
    for changes, members in groups.items():
        served = saved if not changes else dataclasses.replace(
            saved, settings=dataclasses.replace(saved.settings, **dict(changes)))
        answers = _ranked(served, [questions[n] for n in members], batch_size, should_stop)
        for n, candidates in zip(members, answers):
            ranked[n] = candidates
    return ranked


def _ranked(saved, questions: list[dict], batch_size: int, should_stop) -> list[list[dict]]:
    ranked: list[list[dict]] = []

    def with_spans(records, windows, start, end, answers) -> None:
        windows_of = _windows_per_question(windows.example_index, len(records))
        ranked.extend([_with_span(entry, r["context"], windows_of[n], windows.offsets, start, end)
                       for entry in decided_first(answers.nbest[r["id"]], answers.predictions[r["id"]])]
                      for n, r in enumerate(records))

    answer_questions(saved, questions_as_records(questions), batch_size, should_stop=should_stop,
                     each_block=with_spans)
    return ranked


def _windows_per_question(example_index: np.ndarray, n_questions: int) -> list[np.ndarray]:
    order = np.argsort(example_index, kind="stable")
    bounds = np.searchsorted(example_index[order], np.arange(n_questions + 1))
    return [order[bounds[i]:bounds[i + 1]] for i in range(n_questions)]


def _with_span(entry: dict, context: str, windows: np.ndarray, offsets: list, start: np.ndarray,
               end: np.ndarray) -> dict:
    text = entry["text"]
    first, last = NO_ANSWER_SPAN if not text else _span_of(entry, context, windows, offsets, start, end)
    return {"answer": text, "score": float(entry["probability"]), "start": int(first), "end": int(last)}


def _span_of(entry: dict, context: str, windows: np.ndarray, offsets: list, start: np.ndarray,
             end: np.ndarray) -> tuple[int, int]:
    """The character span of a non-empty n-best entry (see the module docstring)."""
    text = entry["text"]
    for w in windows.tolist():
        window_offsets = offsets[w]
        length = len(window_offsets)
        is_context = window_offsets[:, 0] >= 0
        first_tokens = np.flatnonzero(is_context & (start[w, :length] == np.float32(entry["start_logit"])))
        last_tokens = np.flatnonzero(is_context & (end[w, :length] == np.float32(entry["end_logit"])))
        for first in first_tokens.tolist():
            for last in last_tokens.tolist():
                char_start, char_end = int(window_offsets[first, 0]), int(window_offsets[last, 1])
                if last >= first and context[char_start:char_end] == text:
                    return char_start, char_end
    found = context.find(text)  # not reached for entries post-processing made; a safe answer all the same
    return (found, found + len(text)) if found >= 0 else NO_ANSWER_SPAN
