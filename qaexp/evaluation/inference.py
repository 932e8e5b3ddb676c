"""Run a QA model over windows, turn its logits into answers and score them."""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qaexp.config import Padding
from qaexp.data.windows import Windows
from qaexp.training.batching import Batcher

if TYPE_CHECKING:
    from qaexp.evaluation.postprocess import Predictions

FILL_LOGIT = -1e4  # beyond a window's end; offsets there are -1, so no span can use it anyway
# One traced forward pass per model (and loss setting), reused by every evaluation of a run: tracing anew
# each epoch costs seconds and makes TensorFlow warn about retracing.
_FORWARDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def predict_logits(model, windows: Windows, batch_size: int, pad_id: int, with_loss: bool = False,
                   progress: bool = False):
    """Start/end logits of shape (n_windows, longest window) and, with labels, the mean loss."""
    from tqdm.auto import tqdm

    forward = _forward_function(model, with_loss)
    width = int(windows.lengths.max())
    start = np.full((len(windows), width), FILL_LOGIT, dtype=np.float32)
    end = np.full_like(start, FILL_LOGIT)
    losses = []
    batcher = Batcher(windows, batch_size, padding=Padding.bucketed, max_length=width, pad_id=pad_id,
                      with_labels=with_loss, bucket_window=10**9)
    for idx, batch in tqdm(batcher.batches(), total=len(batcher), desc="predicting", unit="batch",
                           disable=not progress):
        s, e, loss = forward(batch)
        start[idx, : s.shape[1]] = s.numpy()
        end[idx, : e.shape[1]] = e.numpy()
        losses.append(np.atleast_1d(loss.numpy()))
    mean_loss = float(np.mean(np.concatenate(losses))) if with_loss else None
    return start, end, mean_loss


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a model on the validation windows."""

    loss: float
    scores: dict  # exact_match, f1 (and the SQuAD v2 breakdown)
    answers: "Predictions"


def evaluate(model, examples: list[dict], windows: Windows, batch_size: int, pad_id: int, data_cfg) -> Evaluation:
    """The validation loss, the answers and their SQuAD scores."""
    start, end, loss = predict_logits(model, windows, batch_size, pad_id, with_loss=True)
    answers = answer(examples, windows, start, end, data_cfg)
    scores = score_answers(examples, answers, data_cfg.version_2_with_negative, data_cfg.null_score_diff_threshold)
    return Evaluation(loss, scores, answers)


def score_answers(examples: list[dict], answers: "Predictions", version_2: bool, threshold: float) -> dict:
    """SQuAD v1.1 scores, or the official v2 script's: its figures at `threshold` (no answer where the null odds
    exceed it) and, from the null odds as its na-prob file, best_exact / best_f1 and their thresholds."""
    from qaexp.evaluation.metrics import evaluate_v2, gold_answers, squad_metrics

    if not version_2:
        return squad_metrics(examples, answers.predictions)
    scores = evaluate_v2(gold_answers(examples), answers.span_answers, na_probs=answers.null_odds,
                         na_prob_thresh=threshold)
    return {"exact_match": scores["exact"], **scores}


def answer(examples: list[dict], windows: Windows, start: np.ndarray, end: np.ndarray, data_cfg) -> "Predictions":
    from qaexp.evaluation.postprocess import postprocess_predictions

    return postprocess_predictions(
        examples, windows.example_index, windows.padded_offsets(), start, end,
        n_best_size=data_cfg.n_best_size, max_answer_length=data_cfg.max_answer_length,
        version_2=data_cfg.version_2_with_negative,
        null_score_diff_threshold=data_cfg.null_score_diff_threshold, cls_index=windows.cls_index)


def _forward_function(model, with_loss: bool):
    import tensorflow as tf

    cached = _FORWARDS.setdefault(model, {})
    if with_loss not in cached:
        model_ref = weakref.ref(model)  # a strong reference from the cache's value would keep the model alive

        @tf.function(reduce_retracing=True)
        def forward(batch):
            out = model_ref()(batch, training=False)
            loss = out.loss if with_loss else tf.zeros(())
            return (tf.cast(out.start_logits, tf.float32), tf.cast(out.end_logits, tf.float32),
                    tf.cast(loss, tf.float32))

        cached[with_loss] = forward
    return cached[with_loss]
