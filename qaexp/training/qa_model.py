"""The model that Keras fits: a QA model (qaexp.model.families) with an explicit loss reduction and gradient
accumulation.

Keras' default train step would average the per-window losses per replica and rely on its own cross-replica
scaling. Here the reduction is explicit and exact: the loss of a step is the
sum of the per-window losses divided by the number of windows in the global batch (all replicas together), so
one step of any replica count and any number of accumulated micro-batches makes the update of one large batch.

The step below is TensorFlow's (tf.GradientTape, tf.distribute); on the JAX backend Keras' own fit calls the
stateless step of training/jax_step.py instead, with the same reduction and the same backend-neutral loss
(training/loss.py).
"""
from __future__ import annotations

import keras

from qaexp.backend import is_jax
from qaexp.data.batches import LABELS
from qaexp.training.loss import per_window_loss


def model_inputs(model, batch: dict) -> dict:
    """The batch's inputs that `model`'s architecture takes (a DistilBERT model gets no token_type_ids even where
    its tokenizer makes them), without the labels."""
    return model.select_inputs({name: tensor for name, tensor in batch.items() if name not in LABELS})


class QATrainingModel(keras.Model):
    """Wraps `qa_model` (whose variables it trains) for `fit`; `grad_accum_steps` micro-batches per batch.

    The batch that the data pipeline yields is the global batch of one optimizer step: with accumulation it
    is cut into `grad_accum_steps` micro-batches (the last ones padded with zero-weight rows), run one after
    another, and their gradients are summed before a single optimizer update.
    """

    def __init__(self, qa_model, grad_accum_steps: int = 1):
        super().__init__()
        self.qa_model = qa_model
        self.grad_accum_steps = grad_accum_steps
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, inputs, training=False):
        return self.qa_model(model_inputs(self.qa_model, inputs), training=training)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3 (3.15, TensorFlow backend) builds a model under a distribution strategy by averaging the
        # replicas' first batches, which fails when their sizes differ (a global batch of 7 split 4 + 3). There is
        # nothing left to build: the QA model's variables exist from its construction, the optimizer's from
        # compile_for_training, the loss tracker's from __init__ (as without a strategy, where Keras skips this).
        return

    def train_step(self, *args):
        # Keras' TensorFlow fit calls train_step(batch), its JAX fit train_step(state, batch) (stateless).
        if is_jax():
            from qaexp.training.jax_step import train_step

            return train_step(self, *args)
        return self._tf_train_step(*args)

    def _tf_train_step(self, batch):
        import tensorflow as tf

        rows = tf.shape(batch["input_ids"])[0]
        global_rows = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                                     tf.cast(rows, tf.float32))
        if self.grad_accum_steps == 1:
            grads, loss_sum = self._gradients(batch, tf.ones([rows]), global_rows)
        else:
            grads, loss_sum = self._accumulated_gradients(batch, rows, global_rows)
        step = self.optimizer.iterations + 0  # the value now, not the variable
        self.optimizer.apply(grads, self.qa_model.trainable_variables)
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            # A step whose gradients overflowed is skipped without counting it; counted anyway, the optimizer's
            # step stays the number of batches trained on, which is where a resumed run's data continues.
            self.optimizer.iterations.assign(step + 1)
        rows = tf.cast(rows, tf.float32)
        self.loss_tracker.update_state(tf.math.divide_no_nan(loss_sum, rows), sample_weight=rows)
        loss = self.loss_tracker.result()
        if _multi_worker(self.distribute_strategy):
            # Keras 3.15 averages a multi-worker step's logs with strategy.reduce(MEAN, axis=0), which fails on a
            # scalar ("Invalid reduction dimension 0", keras-team/keras#20585): one element, reduced to a scalar.
            loss = tf.reshape(loss, [1])
        return {"loss": loss}

    def _gradients(self, batch: dict, weights, global_rows):
        """Gradients of sum(weights * loss) / global_rows, and that weighted loss sum."""
        import tensorflow as tf

        variables = self.qa_model.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.qa_model(model_inputs(self.qa_model, batch), training=True)
            loss_sum = tf.reduce_sum(per_window_loss(batch, outputs) * weights)
            # mixed_float16: compile wraps the optimizer in a LossScaleOptimizer; its scale_loss multiplies by the
            # current scale, and its apply() divides the gradients by it again (and skips steps that overflowed).
            loss = self.optimizer.scale_loss(loss_sum / global_rows)
        grads = tape.gradient(loss, variables)
        # Dense gradients: an embedding's gradient comes as IndexedSlices with one slice per token, and Keras 3's
        # Adam squares those slices before adding up a row's duplicates (the second moment of a token seen twice
        # in a batch would be g1² + g2², not (g1 + g2)²); tf.convert_to_tensor adds them up first.
        return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)], \
            loss_sum

    def _accumulated_gradients(self, batch: dict, rows, global_rows):
        import tensorflow as tf

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


def _multi_worker(strategy) -> bool:
    """Keras' own test for a strategy whose logs it reduces across workers (a MultiWorkerMirroredStrategy with
    more than one worker)."""
    import tensorflow as tf

    extended = getattr(strategy, "extended", None)
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and bool(getattr(extended, "_in_multi_worker_mode", lambda: False)()))


def create_optimizer_variables(optimizer, variables) -> None:
    """Create the optimizer's slot variables now, so that restoring a checkpoint fills them rather than deferring."""
    optimizer.build(variables)
