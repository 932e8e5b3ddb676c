"""Training checkpoints without TensorFlow: the JAX backend's counterpart of tf.train.Checkpoint(Manager).

`training/state.py` keeps a run's checkpoints (`latest`: model, optimizer and epoch records; `best`: the model)
through the small interface of TensorFlow's CheckpointManager (`save(checkpoint_number)`, `latest_checkpoint`,
`directory`, `checkpoint`). On the JAX backend that interface is served by the classes here: a checkpoint is one
NumPy archive, `<directory>/ckpt-<n>.npz`, of named arrays (`model/<PyTorch name>`, `optimizer/<position>`,
`records/<name>`), written to a temporary name and renamed, then named in `<directory>/checkpoint`; older ones
are deleted afterwards, so a failed save leaves the previous one in place. Reading an archive whole checks every
member's CRC-32 (zipfile does on read), so a damaged file is found before training resumes.
"""
from __future__ import annotations

import glob
import json
import os
from typing import Callable, Optional

import numpy as np

from qaexp.errors import CheckpointError, first_line
from qaexp.output.files import atomic_file, write_json_atomic

POINTER = "checkpoint"  # the file naming the latest archive, as TensorFlow's manager has one
SUFFIX = ".npz"


class Value:
    """A plain value with tf.Variable's assign / assign_add / numpy, for the epoch records on JAX (a string is
    held as bytes, as a tf.string variable gives it back)."""

    def __init__(self, value, dtype=None):
        self.dtype = dtype
        self.assign(value)

    def assign(self, value) -> None:
        value = value.encode() if isinstance(value, str) else value
        if isinstance(value, bytes) or np.asarray(value).dtype.kind == "S":  # as given, or read back from an archive
            self.value = np.bytes_(np.asarray(value).item())
        else:
            self.value = np.asarray(value, self.dtype)

    def assign_add(self, delta) -> None:
        self.value = np.asarray(self.value + delta, self.dtype)

    def numpy(self):
        return self.value


class ArrayCheckpoint:
    """Named parts ({key: variable}, gathered when saved or restored), saved as one archive."""

    def __init__(self, **parts: Callable[[], dict]):
        self.parts = parts

    def variables(self) -> dict:
        return {f"{part}/{key}": variable for part, gather in self.parts.items() for key, variable in gather().items()}

    def arrays(self) -> dict:
        return {key: _as_array(variable) for key, variable in self.variables().items()}

    def restore(self, path: str) -> None:
        """Assign every variable from the archive at `path` (its prefix); ValueError unless the archive holds each
        one with the same shape (it may hold more: the `best` weights are restored from a model-only archive)."""
        saved = read(path)
        targets = self.variables()
        wrong = [key for key, variable in targets.items()
                 if key not in saved or saved[key].shape != np.shape(_as_array(variable))]
        if wrong:
            raise ValueError(f"{len(wrong)} variable(s) missing or of another shape, e.g. {wrong[0]}")
        for key, variable in targets.items():
            variable.assign(saved[key])


class ArrayCheckpointManager:
    """tf.train.CheckpointManager's part that state.RunState uses, for ArrayCheckpoint (one archive kept)."""

    def __init__(self, checkpoint: ArrayCheckpoint, directory: str):
        self.checkpoint, self.directory = checkpoint, directory

    @property
    def latest_checkpoint(self) -> Optional[str]:
        return latest(self.directory)

    def save(self, checkpoint_number: int) -> str:
        os.makedirs(self.directory, exist_ok=True)
        prefix = os.path.join(self.directory, f"ckpt-{checkpoint_number}")
        with atomic_file(prefix + SUFFIX, "wb") as file:
            np.savez(file, **self.checkpoint.arrays())
        write_json_atomic(os.path.join(self.directory, POINTER), {"latest": os.path.basename(prefix)})
        for old in glob.glob(os.path.join(self.directory, "ckpt-*" + SUFFIX)):
            if old != prefix + SUFFIX:
                os.remove(old)
        return prefix


def latest(directory: str) -> Optional[str]:
    """The prefix of the archive `<directory>/checkpoint` names, None when there is no such file; ValueError when
    it is damaged."""
    pointer = os.path.join(directory, POINTER)
    if not os.path.exists(pointer):
        return None
    with open(pointer, encoding="utf-8") as f:
        name = json.load(f)["latest"]
    if not isinstance(name, str) or os.sep in name:
        raise ValueError(f"{pointer} names no archive")
    return os.path.join(directory, name)


def read(prefix: str) -> dict:
    """Every array of the archive `prefix`.npz, each read whole (zipfile checks its CRC-32)."""
    with np.load(prefix + SUFFIX, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _as_array(variable) -> np.ndarray:
    if isinstance(variable, Value):
        return np.asarray(variable.numpy())
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable))


def readable(directory: str, action: str, fix: str) -> Optional[str]:
    """state.readable_checkpoint for these archives, with its lines: the prefix of the latest archive once every
    array in it has been read back, None when `directory` holds none, else a CheckpointError ending with `fix`."""
    import zipfile

    try:
        last = latest(directory)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"cannot {action} {directory}: its 'checkpoint' file is damaged "
                              f"({first_line(err, limit=200)}): {fix}") from err
    if last is None:
        if glob.glob(os.path.join(directory, "ckpt-*" + SUFFIX)):
            raise CheckpointError(f"cannot {action} {directory}: its 'checkpoint' file is damaged or names a "
                                  f"checkpoint that is missing: {fix}")
        return None
    try:
        read(last)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"cannot {action} {last} ({SUFFIX}): the checkpoint is damaged or incomplete "
                              f"({first_line(err, limit=200)}): {fix}") from err
    return last
