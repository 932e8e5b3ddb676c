"""The training step on the JAX backend: the same exact loss reduction and gradient accumulation as the TensorFlow
step in training/qa_model.py, written for Keras' own JAX fit, which calls `train_step(state, batch)` with the
variables' values (trainable, non-trainable, optimizer, metrics) and jit-compiles it (stateless: the step returns
the new values instead of assigning them).

Under keras.distribution.DataParallel the jitted step sees the global batch (sharded across the devices by Keras
and XLA), so the sum of the per-window losses over the batch divided by its rows is the global reduction
without any cross-replica call; the gradients are the single device's up to float rounding.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import keras

from qaexp.training.loss import per_window_loss


def train_step(model, state, batch):
    """One optimizer step of `model` (qa_model.QATrainingModel) on the global `batch`; returns (logs, new state)."""
    trainable, non_trainable, optimizer_values, metric_values = state
    if isinstance(batch, (tuple, list)):  # Batcher.stream's (inputs,)
        (batch,) = batch
    rows = batch["input_ids"].shape[0]  # static under jit: the global batch

    def loss_of(trainable, non_trainable, part, weights):
        # The call advances the dropout seeds, which are non-trainable variables: their new values come back.
        outputs, non_trainable = model.stateless_call(trainable, non_trainable, part, training=True)
        loss_sum = jnp.sum(per_window_loss(part, outputs) * weights)
        return loss_sum / rows, (loss_sum, non_trainable)

    gradient = jax.grad(loss_of, has_aux=True)
    steps = model.grad_accum_steps
    if steps == 1:
        grads, (loss_sum, non_trainable) = gradient(trainable, non_trainable, batch, jnp.ones([rows], "float32"))
    else:
        micro = -(-rows // steps)
        pad = micro * steps - rows

        def split(tensor):  # (rows, ...) -> (steps, micro, ...), padded with zero-weight rows
            padded = jnp.pad(tensor, [(0, pad)] + [(0, 0)] * (tensor.ndim - 1))
            return padded.reshape((steps, micro) + tensor.shape[1:])

        def body(carry, part):
            summed, loss_sum, non_trainable = carry
            piece, weights = part
            grads, (part_loss, non_trainable) = gradient(trainable, non_trainable, piece, weights)
            return (jax.tree.map(jnp.add, summed, grads), loss_sum + part_loss, non_trainable), None

        # A scan (not a Python loop) runs the micro-batches one at a time, so only one is in memory.
        start = ([jnp.zeros_like(v) for v in trainable], jnp.zeros((), "float32"), non_trainable)
        (grads, loss_sum, non_trainable), _ = jax.lax.scan(
            body, start, ({name: split(t) for name, t in batch.items()}, split(jnp.ones([rows], "float32"))))
    trainable, optimizer_values = model.optimizer.stateless_apply(optimizer_values, grads, trainable)
    with keras.StatelessScope(state_mapping=list(zip(model.metrics_variables, metric_values))) as scope:
        model.loss_tracker.update_state(loss_sum / rows, sample_weight=rows)
        loss = model.loss_tracker.result()
    metric_values = [scope.get_current_value(v) for v in model.metrics_variables]
    return {"loss": loss}, (trainable, non_trainable, optimizer_values, metric_values)
