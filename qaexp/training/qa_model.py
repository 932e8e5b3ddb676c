"""The model that Keras fits: a transformers QA model with an explicit loss reduction and gradient accumulation.

transformers' TF QA models return one loss per window; Keras' default train step would average it per replica
and rely on its own cross-replica scaling. Here the reduction is explicit and exact: the loss of a step is the
sum of the per-window losses divided by the number of windows in the global batch (all replicas together), so
one step of any replica count and any number of accumulated micro-batches makes the update of one large batch.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from qaexp.training.batching import LABELS


def per_window_loss(batch: dict, outputs) -> tf.Tensor:
    """The mean of the start and end cross-entropies of each window, in float32 (as transformers computes it)."""
    def cross_entropy(labels, logits):
        return tf_keras.losses.sparse_categorical_crossentropy(labels, tf.cast(logits, tf.float32), from_logits=True)

    return (cross_entropy(batch["start_positions"], outputs.start_logits)
            + cross_entropy(batch["end_positions"], outputs.end_logits)) / 2.0


def model_inputs(batch: dict) -> dict:
    return {name: tensor for name, tensor in batch.items() if name not in LABELS}


class QATrainingModel(tf_keras.Model):
    """Wraps `qa_model` (whose variables it trains) for `fit`; `grad_accum_steps` micro-batches per batch.

    The batch that the data pipeline yields is the global batch of one optimizer step: with accumulation it
    is cut into `grad_accum_steps` micro-batches (the last ones padded with zero-weight rows), run one after
    another, and their gradients are summed before a single optimizer update.
    """

    def __init__(self, qa_model, grad_accum_steps: int = 1):
        super().__init__()
        self.qa_model = qa_model
        self.grad_accum_steps = grad_accum_steps
        self.loss_tracker = tf_keras.metrics.Mean(name="loss")
        self.start_step: int | None = None  # global step to resume at (see _maybe_load_initial_counters_from_ckpt)

    def call(self, inputs, training=False):
        return self.qa_model(model_inputs(inputs), training=training)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, batch):
        rows = tf.shape(batch["input_ids"])[0]
        global_rows = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                                     tf.cast(rows, tf.float32))
        if self.grad_accum_steps == 1:
            grads, loss_sum = self._gradients(batch, tf.ones([rows]), global_rows)
        else:
            grads, loss_sum = self._accumulated_gradients(batch, rows, global_rows)
        self.optimizer.apply_gradients(zip(grads, self.qa_model.trainable_variables))
        rows = tf.cast(rows, tf.float32)
        self.loss_tracker.update_state(tf.math.divide_no_nan(loss_sum, rows), sample_weight=rows)
        return {"loss": self.loss_tracker.result()}

    def _gradients(self, batch: dict, weights: tf.Tensor, global_rows: tf.Tensor):
        """Gradients of sum(weights * loss) / global_rows, and that weighted loss sum."""
        variables = self.qa_model.trainable_variables
        scaled = isinstance(self.optimizer, tf_keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            outputs = self.qa_model(model_inputs(batch), training=True)
            loss_sum = tf.reduce_sum(per_window_loss(batch, outputs) * weights)
            loss = loss_sum / global_rows
            if scaled:
                loss = self.optimizer.get_scaled_loss(loss)
        grads = tape.gradient(loss, variables)
        if scaled:
            grads = self.optimizer.get_unscaled_gradients(grads)
        return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)], loss_sum

    def _accumulated_gradients(self, batch: dict, rows: tf.Tensor, global_rows: tf.Tensor):
        steps = self.grad_accum_steps
        micro = -(-rows // steps)
        pad = micro * steps - rows

        def split(tensor):  # (rows, ...) -> (steps, micro, ...), padded with zeros
            padded = tf.pad(tensor, [[0, pad]] + [[0, 0]] * (tensor.shape.rank - 1))
            return tf.reshape(padded, tf.concat([[steps, micro], tf.shape(tensor)[1:]], axis=0))

        parts = {name: split(tensor) for name, tensor in batch.items()}
        weights = split(tf.ones([rows]))
        variables = self.qa_model.trainable_variables

        def body(i, summed, loss_sum):
            grads, part_loss = self._gradients({name: t[i] for name, t in parts.items()}, weights[i], global_rows)
            return i + 1, [s + tf.convert_to_tensor(g) for s, g in zip(summed, grads)], loss_sum + part_loss

        # A while loop (not a Python loop) runs the micro-batches one at a time, so only one is in memory.
        _, grads, loss_sum = tf.while_loop(lambda i, *_: i < steps, body,
                                           (tf.constant(0), [tf.zeros_like(v) for v in variables], 0.0),
                                           parallel_iterations=1)
        return grads, loss_sum

    def _maybe_load_initial_counters_from_ckpt(self, steps_per_epoch, initial_epoch):
        # Keras' hook for resuming mid-epoch (its BackupAndRestore uses it): continue at the restored step.
        if self.start_step is None:
            return super()._maybe_load_initial_counters_from_ckpt(steps_per_epoch, initial_epoch)
        return divmod(self.start_step, steps_per_epoch)


def create_optimizer_variables(optimizer, variables) -> None:
    """Create the optimizer's slot variables now, so that restoring a checkpoint fills them rather than deferring."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if hasattr(inner, "_create_all_weights"):  # legacy Keras optimizers (transformers' AdamWeightDecay)
        inner._create_all_weights(variables)
    else:
        inner.build(variables)
