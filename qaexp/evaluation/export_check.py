"""Verifying an export: the same windows and post-processing through the original and the exported model."""
from __future__ import annotations

import time

import numpy as np

from qaexp.evaluation.settings import AnswerSettings
from qaexp.output.export_formats import RUNNERS

class VerificationFailed(Exception):
    """The export was written but does not compute what the original does (exit status 1)."""


def exported_logits(run, windows, batch_size: int, pad_id: int):
    """Start/end logits of every window, batched and padded exactly as inference.predict_logits does."""
    from qaexp.evaluation.inference import FILL_LOGIT, batched_logits

    start, end, _ = batched_logits(run, windows, batch_size, pad_id)
    padding = ~inside_windows(windows, start.shape[1])  # never part of an answer
    start[padding] = end[padding] = FILL_LOGIT
    return start, end


def inside_windows(windows, width: int) -> np.ndarray:
    """(windows, width) mask of the positions that hold a window's tokens, not padding."""
    return np.arange(width)[None, :] < windows.lengths[:, None]


def check_finite(start: np.ndarray, end: np.ndarray, fmt: str) -> None:
    broken = np.flatnonzero(~(np.isfinite(start) & np.isfinite(end)).all(axis=1))
    if len(broken):
        raise VerificationFailed(f"the {fmt} export gives NaN or infinite logits for {len(broken)} of {len(start)} "
                                 f"windows (the first: window {broken[0]}): it does not compute what the original "
                                 "does, so it is not usable for this model")


def timed(function, *args):
    began = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - began


def score(records, windows, start, end, settings: AnswerSettings) -> tuple[dict, dict]:
    from qaexp.evaluation.inference import answer
    from qaexp.evaluation.metrics import squad_metrics

    predictions = answer(records, windows, start, end, settings).predictions
    metrics = squad_metrics(records, predictions, version_2=settings.version_2_with_negative)
    return predictions, {"exact_match": metrics["exact_match"], "f1": metrics["f1"]}


def verify(tokenizer, model, names, fmt: str, output: str, records, settings: AnswerSettings, batch_size: int
           ) -> dict:
    from qaexp.data.windows import tokenize_windows
    from qaexp.evaluation.inference import predict_logits

    windows = tokenize_windows(records, tokenizer, settings.max_length, settings.doc_stride, progress=False)
    pad_id = tokenizer.pad_token_id
    predict_logits(model, windows, batch_size, pad_id)  # traces the forward pass: the timed run is warm
    (original_start, original_end, _), original_seconds = timed(predict_logits, model, windows, batch_size, pad_id)
    run = RUNNERS[fmt](output, names)
    exported_logits(run, windows, batch_size, pad_id)  # first-call set-up (allocation, graph optimisation)
    (start, end), export_seconds = timed(exported_logits, run, windows, batch_size, pad_id)
    check_finite(start, end, fmt)
    original_answers, original_scores = score(records, windows, original_start, original_end, settings)
    export_answers, export_scores = score(records, windows, start, end, settings)
    differing = [qid for qid, text in original_answers.items() if export_answers[qid] != text]
    return {"questions": len(records), "windows": len(windows), "original": original_scores,
            "export": export_scores, "identical_answers": len(records) - len(differing),
            "differing_ids": differing[:5], "original_seconds": original_seconds, "export_seconds": export_seconds,
            "latency_ratio": export_seconds / original_seconds,
            "max_logit_difference": _largest_difference(windows, (start, end), (original_start, original_end))}


def _largest_difference(windows, logits: tuple, original_logits: tuple) -> float:
    inside = inside_windows(windows, logits[0].shape[1])
    return float(max(np.abs(mine - theirs)[inside].max() for mine, theirs in zip(logits, original_logits)))
