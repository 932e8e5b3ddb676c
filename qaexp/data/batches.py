"""Batching of unpadded windows: fixed, dynamic or length-bucketed padding, as a tf.data pipeline (TensorFlow) or
a generator of NumPy batches (JAX).

A training batcher's order is a pure function of (shuffle_seed, pass number): every pass over the data is
reshuffled, and a resumed run can start again at any global batch index with the batches it would have seen.
"""
from __future__ import annotations

import itertools
from typing import Iterator, Optional

import numpy as np

from qaexp.config.schema import Padding
from qaexp.data.windows import Windows

LABELS = ("start_positions", "end_positions")

# Batch widths are rounded up to a multiple of this (trainer.pad_to_multiple_of: null). On JAX every new width
# compiles the step (or the evaluation forward) once more with XLA; multiples of 64 leave max_length / 64 widths
# (measured side by side on 2 busy cores: test_backends' 3-epoch JAX run, 47.5 CPU s at multiples of 8, 30.3 at
# 64, the same F1 23.44).
# TensorFlow retraces only until reduce_retracing generalises the shape, so it keeps the tighter 8.
PAD_MULTIPLE = {"tensorflow": 8, "jax": 64}


def pad_multiple(configured: Optional[int] = None) -> int:
    """trainer.pad_to_multiple_of if set, else the running backend's default (PAD_MULTIPLE)."""
    if configured is not None:
        return configured
    from qaexp.backend import current

    return PAD_MULTIPLE.get(current(), 8)


def batch_order(lengths: np.ndarray, batch_size: int, padding: str, rng: Optional[np.random.Generator],
                bucket_window: int = 50) -> list[np.ndarray]:
    """Index arrays, one per batch. `rng=None` keeps the data order (evaluation)."""
    order = np.arange(len(lengths)) if rng is None else rng.permutation(len(lengths))
    if padding == Padding.bucketed:
        # Sort by length inside shuffled windows of many batches: little padding, still a random order.
        span = batch_size * bucket_window
        order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                                for chunk in np.split(order, range(span, len(order), span))])
    batches = np.split(order, range(batch_size, len(order), batch_size))
    if rng is not None and padding == Padding.bucketed:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def pad_batch(windows: Windows, idx: np.ndarray, width: int, pad_id: int, with_labels: bool) -> dict:
    batch = {name: rows.padded(np.asarray(idx, np.int64), width, pad_id if name == "input_ids" else 0)
             for name, rows in windows.inputs.items()}
    if with_labels:
        batch["start_positions"] = windows.start_positions[idx].astype(np.int32)
        batch["end_positions"] = windows.end_positions[idx].astype(np.int32)
    return batch


def batch_width(lengths: np.ndarray, padding: str, max_length: int, multiple: int) -> int:
    if padding == Padding.max_length:
        return max_length
    longest = int(lengths.max())
    return min(max_length, -(-longest // multiple) * multiple) if multiple > 1 else longest


class Batcher:
    """Padded NumPy batches of windows; with a shuffle seed, a new order on every pass over the data.

    `min_last_batch`: a pass's final batch with fewer windows is dropped (with several replicas, each must get
    at least one window).
    """

    def __init__(self, windows: Windows, batch_size: int, *, padding: str, max_length: int, pad_id: int,
                 multiple: Optional[int] = None, shuffle_seed: Optional[int] = None, with_labels: bool = True,
                 bucket_window: int = 50, min_last_batch: int = 1):
        self.windows, self.batch_size, self.padding = windows, batch_size, padding
        self.max_length, self.pad_id, self.multiple = max(max_length, int(windows.lengths.max())), pad_id, \
            pad_multiple(multiple)
        self.with_labels, self.bucket_window = with_labels, bucket_window
        self.shuffle_seed, self.min_last_batch = shuffle_seed, min_last_batch
        self.lengths = windows.lengths

    def __len__(self) -> int:
        full, rest = divmod(len(self.windows), self.batch_size)
        return full + (rest >= self.min_last_batch and rest > 0)

    def order(self, epoch: int = 0) -> list[np.ndarray]:
        """The window indices of each batch of pass `epoch` over the data."""
        rng = None if self.shuffle_seed is None else np.random.default_rng([self.shuffle_seed, epoch])
        batches = batch_order(self.lengths, self.batch_size, self.padding, rng, self.bucket_window)
        return [idx for idx in batches if len(idx) >= self.min_last_batch]

    def batches(self, epoch: int = 0) -> Iterator[tuple[np.ndarray, dict]]:
        for idx in self.order(epoch):
            yield idx, self.pad(idx)

    def pad(self, idx: np.ndarray) -> dict:
        width = batch_width(self.lengths[idx], self.padding, self.max_length, self.multiple)
        return pad_batch(self.windows, idx, width, self.pad_id, self.with_labels)

    def indices(self, start_batch: int, count: int) -> list[np.ndarray]:
        """The window indices of `count` batches from global batch index `start_batch` on, across passes."""
        return list(itertools.islice(self._index_stream(start_batch), count))

    def _index_stream(self, start_batch: int) -> Iterator[np.ndarray]:
        epoch, skip = divmod(start_batch, len(self))
        while True:
            yield from self.order(epoch)[skip:]
            epoch, skip = epoch + 1, 0

    def fit_input(self, start_batch: int, count: int, row_multiple: int = 1):
        """What Keras' fit trains on: `dataset` on TensorFlow, `stream` on JAX."""
        from qaexp.backend import is_jax

        if is_jax():
            return self.stream(start_batch, count, row_multiple)
        return self.dataset(start_batch, count)

    def stream(self, start_batch: int, count: int, row_multiple: int = 1, release_every: int = 1
               ) -> Iterator[tuple[dict]]:
        """The `count` batches from global batch `start_batch` on, as NumPy dicts exactly as `pad` pads them, for
        Keras' JAX fit (which reads a generator in its own loop, without a thread). `row_multiple`: a batch is cut
        to a multiple of that many rows (keras.distribution.DataParallel splits every batch evenly across its
        devices; a pass's short last batch may not split), the windows cut being that pass's last ones."""
        for served, idx in enumerate(self.indices(start_batch, count), 1):
            if served % release_every == 0:
                self.windows.release_pages()
            yield (self.pad(idx[: len(idx) - len(idx) % row_multiple]),)  # Keras takes a generator's (inputs,)

    def dataset(self, start_batch: int, count: int, release_every: int = 1):
        """A tf.data.Dataset of the `count` batches from global batch `start_batch` on, exactly as `pad` pads them.

        Only the batches' window indices become tensors; each batch is gathered from the columnar windows (a
        memory map for cached ones) when tf.data asks for it, so memory does not grow with the data set. Every
        `release_every` batches the mapped pages read so far are given back. Built from index tensors, not a
        Python generator: no generator thread outlives `fit` (also after an early stop or an error).
        """
        import tensorflow as tf

        batches = self.indices(start_batch, count)
        index = tf.RaggedTensor.from_row_lengths(np.concatenate(batches).astype(np.int64),
                                                 np.array([len(b) for b in batches], np.int64))
        names = list(self.windows.inputs) + (list(LABELS) if self.with_labels else [])
        served = itertools.count(1)

        def gather(idx: np.ndarray) -> list[np.ndarray]:
            if next(served) % release_every == 0:
                self.windows.release_pages()
            batch = self.pad(idx)
            return [batch[name] for name in names]

        def assemble(idx):
            tensors = tf.numpy_function(gather, [idx], [tf.int32] * len(names), stateful=False)
            for name, tensor in zip(names, tensors):
                tensor.set_shape([None] if name in LABELS else [None, None])
            return dict(zip(names, tensors))

        slices = tf.data.Dataset.from_tensor_slices(index)
        return slices.map(assemble, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
