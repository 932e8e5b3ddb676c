"""Ranked answers with character spans, through qaexp's own windows, forward pass and post-processing.

The answers are exactly those of `qaexp.predict` (the same three steps as `predict.answer_questions`); what is
added is where each candidate sits in its context. Post-processing reports a candidate's text and its start/end
logits, so its span is the token pair of one of the question's windows that carries exactly those logits and
covers exactly that text (ties between equal texts with equal logits do not change the answer).
"""
from __future__ import annotations

import numpy as np

NO_ANSWER_SPAN = (0, 0)  # the Hugging Face convention for the empty answer
TOKENIZE_CHUNK = 8  # questions tokenized at once: 8 contexts of 50,000 characters took about 0.5 s on 2 busy cores


def questions_as_records(questions: list[dict]) -> list[dict]:
    """Records in qaexp's shape (unique ids, no gold answers) for {"question", "context"} dicts."""
    return [{"id": str(n), "title": "", "question": q["question"], "context": q["context"],
             "answers": {"text": [], "answer_start": []}} for n, q in enumerate(questions)]


def ranked_answers(tokenizer, model, questions: list[dict], settings, batch_size: int = 32,
                   should_stop=None) -> list[list[dict]]:
    """Per question: its candidates as {"answer", "score", "start", "end"}, the prediction first.

    Up to settings.n_best_size candidates; the prediction is the post-processing's answer (for SQuAD v2 models
    the empty answer when the null score wins by more than the threshold), the rest follow by score.
    should_stop: see inference.predict_logits (raises inference.Abandoned).
    """
    from qaexp.data import windows as features
    from qaexp.evaluation import inference

    records = questions_as_records(questions)
    parts = []
    # A few questions at a time, so that a stop need not wait for a whole request of long contexts (the windows
    # are the same whatever the chunk size).
    for part in features.window_chunks(records, tokenizer, settings.max_length, settings.doc_stride,
                                       chunk_size=TOKENIZE_CHUNK, progress=False):
        if should_stop is not None and should_stop():
            raise inference.Abandoned("stopped while tokenizing")
        parts.append(part)
    windows = features.concat_windows(parts, tokenizer.model_input_names)
    start, end, _ = inference.predict_logits(model, windows, batch_size, tokenizer.pad_token_id,
                                             should_stop=should_stop)
    answers = inference.answer(records, windows, start, end, settings)
    windows_of = _windows_per_question(windows.example_index, len(records))
    return [_prediction_first(answers.predictions[r["id"]],
                              [_with_span(entry, r["context"], windows_of[n], windows.offsets, start, end)
                               for entry in answers.nbest[r["id"]]])
            for n, r in enumerate(records)]


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


def _prediction_first(prediction: str, candidates: list[dict]) -> list[dict]:
    chosen = next((i for i, c in enumerate(candidates) if c["answer"] == prediction), None)
    if chosen is None:  # an empty prediction without a null candidate: no span was valid at all
        return [{"answer": prediction, "score": 0.0, "start": 0, "end": 0}, *candidates]
    return [candidates[chosen], *candidates[:chosen], *candidates[chosen + 1:]]
