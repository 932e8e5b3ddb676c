"""Answering questions with a loaded model: the records' windows, the forward passes and the post-processing.

The one path `qaexp predict`, `qaexp serve` and the inference benchmark answer through (training evaluates through
inference.evaluate, the same forward pass and post-processing over windows it has already built).
"""
from __future__ import annotations

from typing import Callable, Optional

from qaexp.data.windows import concat_windows, window_chunks
from qaexp.evaluation import inference
from qaexp.runtime.timer import stage_hook

TOKENIZE_CHUNK = 8  # questions tokenized at once when a caller may stop: 8 contexts of 50,000 characters took
# about 0.5 s on 2 busy cores, so a stop need not wait for a whole request of long contexts
TOKENIZE_CHUNK_UNSTOPPED = 1000  # otherwise: fewer, larger tokenizer calls (the windows are the same either way)


def question_record(qid: str, question: str, context: str) -> dict:
    """A question in qaexp's record shape, without gold answers."""
    return {"id": qid, "title": "", "question": question, "context": context,
            "answers": {"text": [], "answer_start": []}}


def answer_questions(saved, records: list[dict], batch_size: int = 32, *, progress: bool = False,
                     should_stop: Optional[Callable[[], bool]] = None, each_block=None):
    """The Predictions of `saved` (model/saved.SavedModel) for `records`, in blocks of whole records.

    should_stop (asked between tokenizer chunks and before each forward pass): when it returns true, raise
    inference.Abandoned. each_block(records, windows, start, end, answers): called with each block's windows,
    logits and answers, for callers that need more than the answers (serving's character spans).
    """
    tokenizer, settings = saved.tokenizer, saved.settings
    chunk_size = TOKENIZE_CHUNK_UNSTOPPED if should_stop is None else TOKENIZE_CHUNK
    parts = []
    for part in window_chunks(records, tokenizer, settings.max_length, settings.doc_stride, chunk_size=chunk_size,
                              progress=progress):
        if should_stop is not None and should_stop():
            raise inference.Abandoned("stopped while tokenizing")
        parts.append(part)
    windows = concat_windows(parts, tokenizer.model_input_names)
    stage_hook("answer")
    answers, _ = inference.predict_answers(saved.model, records, windows, batch_size, tokenizer.pad_token_id,
                                           settings, progress=progress, should_stop=should_stop,
                                           each_block=each_block)
    return answers


def decided_first(nbest: list[dict], decided: str) -> list[dict]:
    """The n-best list with the answer the threshold decided on first (v2: "" can win with a lower score, or
    without being among the n best at all: then it is added, with probability 0)."""
    chosen = next((i for i, candidate in enumerate(nbest) if candidate["text"] == decided), None)
    if chosen is None:
        return [{"text": decided, "probability": 0.0, "start_logit": 0.0, "end_logit": 0.0}, *nbest]
    return [nbest[chosen], *nbest[:chosen], *nbest[chosen + 1:]]
