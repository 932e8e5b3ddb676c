"""The loss both training steps take (TensorFlow's in training/qa_model.py, JAX's in training/jax_step.py) and
evaluation reports: backend-neutral (keras.ops)."""
from __future__ import annotations

import keras

PADDING_LOGIT = -1e9  # a padded position's logit in the loss: softmax gives it exactly 0


def per_window_loss(batch: dict, outputs: dict):
    """The mean of the start and end cross-entropies of each window, in float32, over its real tokens only.

    transformers' QA models take the softmax over every position, padding included, so the model must learn to
    score padding low; in PyTorch the padding token's embedding row is frozen (qaexp's models freeze it too, see
    families.common.Embedding), which leaves little to learn that with (measured: the quickstart fell from EM 100
    to 66.5). No answer is ever in the padding (its offsets are -1), so it is simply left out, and the loss no
    longer depends on how much padding a batch has (dynamic, bucketed or max_length)."""
    keep = batch.get("attention_mask")

    def cross_entropy(labels, logits):
        logits = keras.ops.cast(logits, "float32")
        if keep is not None:
            logits = keras.ops.where(keras.ops.cast(keep, "bool"), logits, PADDING_LOGIT)
        return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)

    return (cross_entropy(batch["start_positions"], outputs["start_logits"])
            + cross_entropy(batch["end_positions"], outputs["end_logits"])) / 2.0
