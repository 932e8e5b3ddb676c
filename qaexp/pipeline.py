"""Batching of unpadded windows: fixed, dynamic or length-bucketed padding, as a tf.data pipeline."""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from qaexp.features import Windows

LABELS = ("start_positions", "end_positions")


def batch_order(lengths: np.ndarray, batch_size: int, padding: str, rng: Optional[np.random.Generator],
                bucket_window: int = 50) -> list[np.ndarray]:
    """Index arrays, one per batch. `rng=None` keeps the data order (evaluation)."""
    order = np.arange(len(lengths)) if rng is None else rng.permutation(len(lengths))
    if padding == "bucketed":
        # Sort by length inside shuffled windows of many batches: little padding, still a random order.
        span = batch_size * bucket_window
        order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                                for chunk in np.split(order, range(span, len(order), span))])
    batches = np.split(order, range(batch_size, len(order), batch_size))
    if rng is not None and padding == "bucketed":
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def pad_batch(windows: Windows, idx: np.ndarray, width: int, pad_id: int, with_labels: bool) -> dict:
    batch = {}
    for name, rows in windows.inputs.items():
        fill = pad_id if name == "input_ids" else 0
        out = np.full((len(idx), width), fill, dtype=np.int32)
        for row, i in enumerate(idx):
            seq = rows[i][:width]
            out[row, : len(seq)] = seq
        batch[name] = out
    if with_labels:
        batch["start_positions"] = windows.start_positions[idx].astype(np.int32)
        batch["end_positions"] = windows.end_positions[idx].astype(np.int32)
    return batch


def batch_width(lengths: np.ndarray, padding: str, max_length: int, multiple: int) -> int:
    if padding == "max_length":
        return max_length
    longest = int(lengths.max())
    return min(max_length, -(-longest // multiple) * multiple) if multiple > 1 else longest


class Batcher:
    """Iterates padded NumPy batches; a training batcher reshuffles on every pass."""

    def __init__(self, windows: Windows, batch_size: int, *, padding: str, max_length: int, pad_id: int,
                 multiple: int = 8, shuffle_seed: Optional[int] = None, with_labels: bool = True,
                 bucket_window: int = 50):
        self.windows, self.batch_size, self.padding = windows, batch_size, padding
        self.max_length, self.pad_id, self.multiple = max(max_length, int(windows.lengths.max())), pad_id, multiple
        self.with_labels, self.bucket_window = with_labels, bucket_window
        self.lengths = windows.lengths
        self.rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)

    def __len__(self) -> int:
        return -(-len(self.windows) // self.batch_size)

    def batches(self) -> Iterator[tuple[np.ndarray, dict]]:
        for idx in batch_order(self.lengths, self.batch_size, self.padding, self.rng, self.bucket_window):
            width = batch_width(self.lengths[idx], self.padding, self.max_length, self.multiple)
            yield idx, pad_batch(self.windows, idx, width, self.pad_id, self.with_labels)

    def dataset(self):
        """A tf.data.Dataset of the batches (a new shuffle each time Keras iterates it), prefetched."""
        import tensorflow as tf

        names = list(self.windows.inputs) + (list(LABELS) if self.with_labels else [])
        signature = {name: tf.TensorSpec((None,) if name in LABELS else (None, None), tf.int32)
                     for name in names}
        generated = tf.data.Dataset.from_generator(lambda: (b for _, b in self.batches()),
                                                   output_signature=signature)
        return generated.prefetch(tf.data.AUTOTUNE)
