"""Run a QA model over windows, turn its logits into answers and score them."""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qaexp.config.schema import Padding
from qaexp.data.batches import Batcher
from qaexp.data.windows import Windows
from qaexp.evaluation.settings import AnswerSettings

if TYPE_CHECKING:
    from qaexp.evaluation.postprocess import Predictions

BLOCK_WINDOWS = 16384  # windows whose logits are held at once; a set this small is evaluated in one block
FILL_LOGIT = -1e4  # beyond a window's end; offsets there are -1, so no span can use it anyway
# One traced forward pass per model (and loss setting), reused by every evaluation of a run: tracing anew
# each epoch costs seconds and makes TensorFlow warn about retracing.
_FORWARDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class Abandoned(Exception):
    """predict_logits stopped between forward passes because its caller's should_stop() said so."""


def predict_logits(model, windows: Windows, batch_size: int, pad_id: int, with_loss: bool = False,
                   progress: bool = False, should_stop=None):
    """Start/end logits of shape (n_windows, longest window) and, with labels, the mean loss.

    should_stop (a callable, asked before each forward pass): when it returns true, raise Abandoned, so that a
    caller on another thread (qaexp serve stopping) need not wait for the rest of a long set of windows."""
    start, end, losses = _block_logits(model, windows, batch_size, pad_id, with_loss, progress, should_stop)
    return start, end, (float(np.mean(losses)) if with_loss else None)


def _block_logits(model, windows: Windows, batch_size: int, pad_id: int, with_loss: bool, progress: bool,
                  should_stop=None):
    """Start/end logits over `windows` and, with_loss, each window's loss (in window order; else None)."""
    forward = _forward_function(model, with_loss)
    if should_stop is not None:
        forward = _unless_stopped(forward, should_stop)
    start, end, rests = batched_logits(forward, windows, batch_size, pad_id, with_labels=with_loss,
                                       progress=progress)
    if not with_loss:
        return start, end, None
    losses = np.zeros(len(windows), dtype=np.float64)
    for idx, rest in rests:
        losses[idx] = np.atleast_1d(rest[0])
    return start, end, losses


def batched_logits(run, windows: Windows, batch_size: int, pad_id: int, with_labels: bool = False,
                   progress: bool = False):
    """(start, end, rests): the logits of (n_windows, longest window) that `run(batch) -> (start, end, *rest)` gives
    over `windows` in qaexp's batches (bucketed padding), and each batch's (window indices, `rest` (a loss)).

    The one batching loop of every forward pass over windows: the model's own (inference) and an exported
    model's (export_check), so that both see exactly the same batches."""
    from tqdm.auto import tqdm

    width = int(windows.lengths.max())
    start = np.full((len(windows), width), FILL_LOGIT, dtype=np.float32)
    end = np.full_like(start, FILL_LOGIT)
    rests = []
    batcher = Batcher(windows, batch_size, padding=Padding.bucketed, max_length=width, pad_id=pad_id,
                      with_labels=with_labels, bucket_window=10**9)
    for idx, batch in tqdm(batcher.batches(), total=len(batcher), desc="predicting", unit="batch",
                           disable=None if progress else True):  # None: only on a terminal
        s, e, *rest = (np.asarray(t) for t in run(batch))
        start[idx, : s.shape[1]] = s
        end[idx, : e.shape[1]] = e
        rests.append((idx, rest))
    return start, end, rests


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a model on the validation windows."""

    loss: float
    scores: dict  # exact_match, f1 (and the SQuAD v2 breakdown)
    answers: "Predictions"


def evaluate(model, examples: list[dict], windows: Windows, batch_size: int, pad_id: int,
             settings: AnswerSettings) -> Evaluation:
    """The validation loss, the answers and their SQuAD scores."""
    answers, loss = predict_answers(model, examples, windows, batch_size, pad_id, settings, with_loss=True)
    scores = score_answers(examples, answers, settings.version_2_with_negative, settings.null_score_diff_threshold)
    return Evaluation(loss, scores, answers)


def predict_answers(model, examples: list[dict], windows: Windows, batch_size: int, pad_id: int,
                    settings: AnswerSettings, with_loss: bool = False, block_windows: int = BLOCK_WINDOWS,
                    progress: bool = False, should_stop=None, each_block=None):
    """(answers, mean loss or None), the logits computed and post-processed a block of whole examples at a time.

    Memory holds one block's logits and offsets, whatever the number of windows. A set of at most
    `block_windows` windows is one block: exactly `predict_logits` + `answer` over the whole set.
    should_stop: as in predict_logits. each_block(examples, windows, start, end, answers) sees each block's
    windows (example indices counted from its first example), logits and answers before they are released.
    """
    from qaexp.evaluation.postprocess import Predictions

    merged, losses = Predictions({}, {}, {}), []
    # A question whose gold answers have no known place (data/checks.UNPLACED) is scored by their texts but has no
    # labels: its windows stay out of the loss.
    labelled = labelled_windows(examples, windows.example_index) if with_loss else None
    for first_example, last_example, lo, hi in example_blocks(windows.example_index, len(examples), block_windows):
        block = windows.slice(lo, hi, first_example)
        start, end, window_losses = _block_logits(model, block, batch_size, pad_id, with_loss, progress, should_stop)
        if with_loss:
            losses.append(window_losses[labelled[lo:hi]])
        part = answer(examples[first_example:last_example], block, start, end, settings)
        if each_block is not None:
            each_block(examples[first_example:last_example], block, start, end, part)
        merged.predictions.update(part.predictions)
        merged.nbest.update(part.nbest)
        merged.null_odds.update(part.null_odds)
        merged.span_answers.update(part.span_answers)
        windows.release_pages()
    losses = np.concatenate(losses) if losses else np.zeros(0)
    return merged, (float(np.mean(losses)) if with_loss and len(losses) else None)


def labelled_windows(examples: list[dict], example_index: np.ndarray) -> np.ndarray:
    """Per window: whether its question has labels (no answers, v2, or an answer with a known place)."""
    from qaexp.data.checks import placed_answer

    labelled = np.array([not r["answers"]["text"] or placed_answer(r["answers"]) is not None for r in examples],
                        dtype=bool)
    return labelled[example_index] if len(examples) else np.zeros(len(example_index), dtype=bool)


def labelled_questions(examples: list[dict]) -> int:
    """How many of `examples` the loss covers (see labelled_windows)."""
    return int(labelled_windows(examples, np.arange(len(examples))).sum())


def example_blocks(example_index: np.ndarray, n_examples: int, block_windows: int):
    """(first example, end example, first window, end window) of consecutive blocks of whole examples."""
    lo, first_example = 0, 0
    while lo < len(example_index) or first_example < n_examples:
        hi = min(lo + block_windows, len(example_index))
        if hi < len(example_index):  # extend to the end of the last example's windows
            hi = int(np.searchsorted(example_index, example_index[hi - 1], side="right"))
        end_example = n_examples if hi == len(example_index) else int(example_index[hi - 1]) + 1
        yield first_example, end_example, lo, hi
        lo, first_example = hi, end_example


def score_answers(examples: list[dict], answers: "Predictions", version_2: bool, threshold: float) -> dict:
    """SQuAD v1.1 scores, or the official v2 script's: its figures at `threshold` (no answer where the null odds
    exceed it) and, from the null odds as its na-prob file, best_exact / best_f1 and their thresholds."""
    from qaexp.evaluation.metrics import evaluate_v2, gold_answers, squad_metrics

    if not version_2:
        return squad_metrics(examples, answers.predictions)
    scores = evaluate_v2(gold_answers(examples), answers.span_answers, na_probs=answers.null_odds,
                         na_prob_thresh=threshold)
    return {"exact_match": scores["exact"], **scores}


def answer(examples: list[dict], windows: Windows, start: np.ndarray, end: np.ndarray,
           settings: AnswerSettings) -> "Predictions":
    from qaexp.evaluation.postprocess import postprocess_predictions

    return postprocess_predictions(
        examples, windows.example_index, windows.padded_offsets(), start, end,
        n_best_size=settings.n_best_size, max_answer_length=settings.max_answer_length,
        version_2=settings.version_2_with_negative,
        null_score_diff_threshold=settings.null_score_diff_threshold, cls_index=windows.cls_index)


def _unless_stopped(forward, should_stop):
    def checked(batch):
        if should_stop():
            raise Abandoned("stopped before the last forward pass")
        return forward(batch)
    return checked


def _forward_function(model, with_loss: bool):
    """The compiled forward pass (start and end logits, per-window loss) of `model`: a tf.function on TensorFlow,
    a jax.jit of Keras' stateless call on JAX."""
    from qaexp.backend import is_jax

    cached = _FORWARDS.setdefault(model, {})
    if with_loss not in cached and is_jax():
        cached[with_loss] = _jax_forward(model, with_loss)
    if with_loss not in cached:
        import tensorflow as tf

        model_ref = weakref.ref(model)  # a strong reference from the cache's value would keep the model alive

        # autograph=False: nothing here is data-dependent Python (Keras traces its own train step without it too)
        @tf.function(reduce_retracing=True, autograph=False)
        def forward(batch):
            from qaexp.training.loss import per_window_loss
            from qaexp.training.qa_model import model_inputs

            qa_model = model_ref()
            out = qa_model(model_inputs(qa_model, batch), training=False)
            loss = per_window_loss(batch, out) if with_loss else tf.zeros(())  # one per window
            return (tf.cast(out["start_logits"], tf.float32), tf.cast(out["end_logits"], tf.float32),
                    tf.cast(loss, tf.float32))

        cached[with_loss] = forward
    return cached[with_loss]


def _jax_forward(model, with_loss: bool):
    """The forward pass as one jitted function of the variables' current values (read at each call, so that it
    follows training) and the batch; one compilation per batch shape, which bucketed padding keeps few."""
    import jax
    import jax.numpy as jnp

    from qaexp.training.loss import per_window_loss
    from qaexp.training.qa_model import model_inputs

    model_ref = weakref.ref(model)

    @jax.jit
    def forward(trainable, non_trainable, batch):
        qa_model = model_ref()
        out, _ = qa_model.stateless_call(trainable, non_trainable, model_inputs(qa_model, batch), training=False)
        loss = per_window_loss(batch, out) if with_loss else jnp.zeros(())
        return (out["start_logits"].astype("float32"), out["end_logits"].astype("float32"), loss.astype("float32"))

    def run(batch):
        qa_model = model_ref()
        return forward([v.value for v in qa_model.trainable_variables],
                       [v.value for v in qa_model.non_trainable_variables], batch)

    return run
