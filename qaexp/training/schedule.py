"""The learning-rate schedule of `optimizer.schedule=linear`: linear warmup, then linear decay to zero.

transformers' create_optimizer gave the TensorFlow classes this schedule; transformers 5 has no TensorFlow code
left, and Keras has no warmup-then-polynomial schedule of its own (CosineDecay's warmup decays along a cosine),
so it is written here, in keras.ops, for any backend.
"""
from __future__ import annotations

import keras
from keras import ops


class WarmupThenDecay(keras.optimizers.schedules.LearningRateSchedule):
    """From 0 to `peak` linearly over `warmup` steps, then (1 - progress) ** power * peak, reaching 0 at `total`
    (power 1: linear decay; power 0: constant after the warmup)."""

    def __init__(self, peak: float, total: int, warmup: int, power: float = 1.0):
        self.peak, self.total, self.warmup, self.power = float(peak), int(total), int(warmup), float(power)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * step / max(self.warmup, 1)
        progress = ops.clip((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
        decayed = self.peak * ops.power(1.0 - progress, self.power)
        return ops.where(step < self.warmup, warm, decayed)

    def get_config(self):
        return {"peak": self.peak, "total": self.total, "warmup": self.warmup, "power": self.power}
