"""What a training Batcher's tf.data pipeline must yield, computed the plain way: its batches padded in NumPy."""
from typing import Iterator


def padded_stream(batcher, start_batch: int = 0, passes: int = 8) -> Iterator[dict]:
    """The padded batches from global batch index `start_batch` on, across `passes` passes over the data.

    Batcher.indices chooses each batch's windows (what a resumed run relies on), Batcher.pad pads them with NumPy.
    """
    for idx in batcher.indices(start_batch, passes * len(batcher)):
        yield batcher.pad(idx)
