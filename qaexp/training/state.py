"""A run's training state on disk: checkpoints each epoch and every N steps, resuming, the best epoch, early stopping.

`<run_dir>/checkpoints/latest` holds the model, the optimizer (its slots and step counter) and the epoch
records (history, best F1, epochs without improvement); `<run_dir>/checkpoints/best` the weights of the epoch
with the best validation F1; `<run_dir>/checkpoints/tokenizer` the tokenizer the run trains with, which a
resumed run loads instead of building one (whose token ids could differ from the checkpoint's).

The data position needs no saving: the batch order is a function of the global step (see data/batches.Batcher),
so a resumed run continues with the batch it would have trained on next. Keras 3's fit cannot start inside an
epoch, so `fit_segments` cuts a resumed run's training into the rest of its epoch and the whole epochs after it.

On TensorFlow the checkpoints are tf.train.Checkpoint's; on JAX (no TensorFlow) NumPy archives with the same
contents, behind the same manager interface (training/array_checkpoints.py).
"""
from __future__ import annotations

import glob
import json
import logging
import numbers
import os
import shutil
import tempfile
from typing import Optional

import keras

from qaexp import backend, quiet, rundir
from qaexp.errors import CheckpointError, first_line
from qaexp.output.files import save_directory_atomic, storage_errors
from qaexp.runtime.signals import interrupts_deferred

log = logging.getLogger(__name__)


def saved_tokenizer(run_dir: str):
    """The tokenizer saved with the run's checkpoints, if there is one (a damaged one is a CheckpointError)."""
    path = os.path.join(run_dir, rundir.CHECKPOINTS, rundir.TOKENIZER)
    if not os.path.isdir(path):
        return None
    from transformers import AutoTokenizer

    log.info("resuming: using the tokenizer saved in %s", path)
    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as err:  # noqa: BLE001  tokenizers' own Exception for a damaged tokenizer.json, OSError, ...
        raise CheckpointError(f"cannot resume with the tokenizer saved in {path}: it is damaged or incomplete "
                              f"({first_line(err, limit=200)}): {_start_afresh(path)}") from err


RECORDS = ("history", "best_f1", "best_epoch", "stale_epochs")


def _records():
    """Per-epoch bookkeeping, as variables so that it is saved in the same checkpoint as the weights (on JAX,
    plain values with the same assign / numpy interface, saved in the same archive)."""
    initial = {"history": ("{}", None), "best_f1": (float("-inf"), "float64"), "best_epoch": (-1, "int64"),
               "stale_epochs": (0, "int64")}
    if backend.is_jax():
        from types import SimpleNamespace

        from qaexp.training.array_checkpoints import Value

        return SimpleNamespace(**{name: Value(value, dtype) for name, (value, dtype) in initial.items()})
    import tensorflow as tf

    records = tf.Module()
    for name, (value, dtype) in initial.items():
        setattr(records, name, tf.Variable(value, dtype=dtype or tf.string, trainable=False))
    return records


def named_variables(model) -> dict:
    """The model's variables by their PyTorch names (`hf_weights`); any other Keras model's (the tests' small
    ones) by position."""
    named = getattr(model, "hf_weights", None)
    return ({name: variable for name, (variable, _) in named().items()} if named is not None
            else {f"{i:05d}": variable for i, variable in enumerate(model.weights)})


def model_variables(model):
    """The model's variables by name, for tf.train.Checkpoint. Not the Keras 3 model itself: TensorFlow's checkpoint
    does not see the layers a Keras 3 layer keeps in a list (a backbone's encoder layers), so a checkpoint of the
    model holds its embeddings and head only, and restoring it silently leaves every encoder layer as it was
    (measured: a kept "best" epoch that was neither epoch's weights). qaexp's models name every variable by its
    PyTorch name (`hf_weights`); any other Keras model (the tests' small ones) by its position."""
    import tensorflow as tf

    holder = tf.Module()
    holder.by_name = named_variables(model)
    return holder


def optimizer_variables(optimizer):
    """The optimizer's variables in its own order (its step, then each slot), for tf.train.Checkpoint, for the
    same reason as model_variables: the Keras 3 optimizer keeps its slots in lists TensorFlow does not track. The
    order is fixed by the model's variables, so a checkpoint of another model or optimizer fails to restore."""
    import tensorflow as tf

    holder = tf.Module()
    holder.in_order = list(optimizer.variables)
    return holder


class RunState:
    """Checkpointing, resuming and best-epoch keeping for one run's training."""

    def __init__(self, directory: str, qa_model, optimizer, steps_per_epoch: int, epochs: int, *,
                 every_steps: Optional[int] = None, keep_best: bool = True, patience: Optional[int] = None,
                 chief: bool = True):
        self.directory, self.qa_model, self.optimizer = directory, qa_model, optimizer
        # Multi-worker training: every worker saves (a save may need collective ops), only the chief into
        # `directory`, the others into a temporary directory of their own; all restore from `directory`.
        self.chief = chief
        self.steps_per_epoch, self.total_steps = steps_per_epoch, steps_per_epoch * epochs
        self.every_steps, self.keep_best, self.patience = every_steps, keep_best, patience
        self.records = _records()
        self.latest = None  # created by start(): tf.train.CheckpointManager, or on JAX array_checkpoints'
        self.best = None
        self.resumed = False
        self.best_result = None  # the Evaluation of the best epoch, when it ran in this process

    def start(self, resume: bool, tokenizer=None) -> int:
        """Restore the last checkpoint (resume=True and one exists) or clear old ones; returns the global step.

        Starting without a checkpoint saves `tokenizer` beside the checkpoints, for resuming.
        """
        if not resume and self.chief and os.path.isdir(self.directory):
            log.warning("trainer.resume=false: removing the old checkpoints in %s", self.directory)
            shutil.rmtree(self.directory)
        written = self.directory if self.chief else tempfile.mkdtemp(prefix="qaexp-worker-checkpoints-")
        self.latest, self.best = self._managers(written)
        last = readable_checkpoint(os.path.join(self.directory, "latest")) if resume else None
        if last:
            restore_matching(self.latest.checkpoint, last)
            self.resumed = True
            log.info("resuming from %s at step %d of %d", last, self.step, self.total_steps)
        elif resume:
            log.warning("trainer.resume=true but %s has no checkpoint: training from the start", self.directory)
        if not self.resumed and self.chief and tokenizer is not None:
            from qaexp.data.windows import without_call_state

            with without_call_state(tokenizer):
                save_directory_atomic(os.path.join(self.directory, rundir.TOKENIZER), tokenizer.save_pretrained)
        return self.step

    def _managers(self, written: str):
        """The managers of the `latest` and `best` checkpoints under `written`."""
        if backend.is_jax():
            from qaexp.training.array_checkpoints import ArrayCheckpointManager

            return (ArrayCheckpointManager(self._full_checkpoint(), os.path.join(written, "latest")),
                    ArrayCheckpointManager(self._model_checkpoint(), os.path.join(written, "best")))
        import tensorflow as tf

        return (tf.train.CheckpointManager(self._full_checkpoint(), os.path.join(written, "latest"), max_to_keep=1),
                tf.train.CheckpointManager(self._model_checkpoint(), os.path.join(written, "best"), max_to_keep=1))

    def _full_checkpoint(self):
        """Model, optimizer and records: what `latest` holds."""
        if backend.is_jax():
            from qaexp.training.array_checkpoints import ArrayCheckpoint

            return ArrayCheckpoint(model=lambda: named_variables(self.qa_model),
                                   optimizer=lambda: {f"{i:05d}": v for i, v in enumerate(self.optimizer.variables)},
                                   records=lambda: {name: getattr(self.records, name) for name in RECORDS})
        import tensorflow as tf

        return tf.train.Checkpoint(model=model_variables(self.qa_model), optimizer=optimizer_variables(self.optimizer),
                                   records=self.records)

    def _model_checkpoint(self):
        """The model's weights only: what `best` holds."""
        if backend.is_jax():
            from qaexp.training.array_checkpoints import ArrayCheckpoint

            return ArrayCheckpoint(model=lambda: named_variables(self.qa_model))
        import tensorflow as tf

        return tf.train.Checkpoint(model=model_variables(self.qa_model))

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    @property
    def history(self) -> dict:
        return json.loads(self.records.history.numpy().decode())

    @property
    def best_epoch(self) -> Optional[int]:
        """0-based index of the epoch with the best validation F1, or None before the first epoch ends."""
        epoch = int(self.records.best_epoch.numpy())
        return None if epoch < 0 else epoch

    @property
    def early_stopped(self) -> bool:
        return self.patience is not None and int(self.records.stale_epochs.numpy()) >= self.patience

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps or self.early_stopped

    def end_epoch(self, epoch: int, logs: dict, result: Optional[dict]) -> bool:
        """Record the epoch's logs (with val_f1) and its evaluation; save; returns True when training should stop."""
        history = self.history
        for key, value in logs.items():
            if isinstance(value, numbers.Real) or getattr(value, "shape", None) == ():  # numbers, 0-d arrays
                history.setdefault(key, []).append(float(value))
        self.records.history.assign(json.dumps(history))
        f1 = logs.get("val_f1")
        if f1 is not None and f1 > self.records.best_f1.numpy():
            self.records.best_f1.assign(f1)
            self.records.best_epoch.assign(epoch)
            self.records.stale_epochs.assign(0)
            self.best_result = result
            if self.keep_best:
                with interrupts_deferred(), storage_errors(self.best.directory, also=_file_errors()):
                    self.best.save(checkpoint_number=epoch + 1)
        else:
            self.records.stale_epochs.assign_add(1)
        self.save()
        if self.early_stopped:
            log.info("early stopping after epoch %d: validation F1 has not improved for %d epochs (best: epoch %d)",
                     epoch + 1, self.patience, self.best_epoch + 1)
        return self.early_stopped

    def save(self) -> bool:
        """Save the latest checkpoint; False (nothing saved) between an epoch's last step and its records."""
        epochs_done, rest = divmod(self.step, self.steps_per_epoch)
        recorded = max((len(values) for values in self.history.values()), default=0)
        if rest == 0 and epochs_done > recorded:
            log.warning("no checkpoint at step %d: epoch %d is not evaluated yet, and resuming from here would skip "
                        "it; the last checkpoint stays %s", self.step, epochs_done, self.latest.latest_checkpoint)
            return False
        # A failed save leaves the previous checkpoint in place: CheckpointManager deletes it only afterwards. A
        # signal waits for the save's end (runtime/signals.interrupts_deferred says why).
        with interrupts_deferred(), storage_errors(self.latest.directory, also=_file_errors()):
            self.latest.save(checkpoint_number=self.step)
        return True

    def callback(self, evaluator) -> keras.callbacks.Callback:
        """Saves every `every_steps` steps and at each epoch's end (after `evaluator`, which must run first)."""
        return _Checkpointing(self, evaluator)

    def final_weights(self) -> bool:
        """With keep_best, load the best epoch's weights if the last epoch was not the best; True if it did."""
        history = self.history
        last_epoch = len(history.get("loss", [])) - 1
        if not self.keep_best or self.best_epoch is None or self.best_epoch == last_epoch:
            return False
        best = readable_checkpoint(self.best.directory, "load the best epoch's weights from")
        if best is None:
            raise CheckpointError(f"the best epoch's checkpoint in {self.best.directory} is missing: rerun with "
                                  "trainer.keep_best=false, or train again")
        restore_matching(self._model_checkpoint(), best)
        log.info("keeping the weights of epoch %d (best validation F1 %.2f), not of the last epoch %d",
                 self.best_epoch + 1, float(self.records.best_f1.numpy()), last_epoch + 1)
        return True

    def remove(self) -> None:
        """Delete the checkpoints (the chief's): for completed runs whose final model is saved elsewhere."""
        if self.chief and os.path.isdir(self.directory):
            shutil.rmtree(self.directory)
            log.info("removed %s (the final model is saved; trainer.keep_checkpoints=true keeps them)",
                     self.directory)

    @property
    def checkpoint_step(self) -> Optional[int]:
        """The optimizer step of the latest checkpoint on disk (they are numbered by step), None if there is none."""
        path = self.latest.latest_checkpoint if self.latest is not None else None
        return int(path.rsplit("-", 1)[1]) if path else None

    def summary(self) -> dict:
        best = self.best_epoch
        return {"resumed": self.resumed, "optimizer_steps": self.step, "early_stopped": self.early_stopped,
                "best_epoch": None if best is None else best + 1}


def fit_segments(start: int, steps_per_epoch: int, epochs: int) -> list[tuple[int, int, int, int]]:
    """(first global step, steps_per_epoch, epochs, initial_epoch) of each `fit` call that trains from global step
    `start` to the end: one call from an epoch boundary; from inside an epoch, one call of a single shorter epoch
    (steps_per_epoch = what is left of it) and one for the epochs after it, if any."""
    epoch, done = divmod(start, steps_per_epoch)
    if done == 0:
        return [(start, steps_per_epoch, epochs, epoch)]
    rest = [(start + steps_per_epoch - done, steps_per_epoch, epochs, epoch + 1)] if epoch + 1 < epochs else []
    return [(start, steps_per_epoch - done, epoch + 1, epoch)] + rest


def _file_errors() -> tuple:
    """The backend's own errors for a file it cannot write, besides OSError (TensorFlow's OpError)."""
    if backend.is_jax():
        return ()
    import tensorflow as tf

    return (tf.errors.OpError,)


def _start_afresh(directory: str) -> str:
    """What to do about damaged checkpoints in `directory` (checkpoints/latest or checkpoints/best)."""
    return f"delete {os.path.dirname(directory)} to train from the start, or rerun without trainer.resume=true"


def readable_checkpoint(directory: str, action: str = "resume from") -> Optional[str]:
    """The prefix of the last checkpoint in `directory` once every tensor in it has been read back (TensorFlow
    checks each one's CRC32C), so that a damaged file is one clear error now, not a failure mid-training when
    the optimizer's slots are restored. None when the directory holds no checkpoint at all."""
    if backend.is_jax():
        from qaexp.training.array_checkpoints import readable

        return readable(directory, action, _start_afresh(directory))
    import tensorflow as tf

    try:
        last = tf.train.latest_checkpoint(directory)
    except (tf.errors.OpError, ValueError) as err:
        raise CheckpointError(f"cannot {action} {directory}: its 'checkpoint' file is damaged "
                              f"({first_line(err, limit=200)}): {_start_afresh(directory)}") from err
    if last is None:
        if glob.glob(os.path.join(directory, "ckpt-*")) or os.path.exists(os.path.join(directory, "checkpoint")):
            raise CheckpointError(f"cannot {action} {directory}: its 'checkpoint' file is damaged or names a "
                                  f"checkpoint that is missing: {_start_afresh(directory)}")
        return None
    try:
        reader = tf.train.load_checkpoint(last)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, ValueError, IndexError) as err:
        raise CheckpointError(f"cannot {action} {last} (.index and .data files): the checkpoint is damaged or "
                              f"incomplete ({first_line(err, limit=200)}): {_start_afresh(directory)}") from err
    return last


def restore_matching(checkpoint, path: str) -> None:
    """Restore `path` into `checkpoint`'s objects, which must all be in it with the same shapes."""
    if backend.is_jax():
        errors: tuple = (ValueError,)
        restore = checkpoint.restore
    else:
        import tensorflow as tf

        errors = (AssertionError, ValueError, tf.errors.OpError)

        def restore(where):
            status = checkpoint.restore(where)
            try:
                status.assert_existing_objects_matched()
            except errors:
                # the run stops with the one line below; without this, TensorFlow's warnings about the values it
                # did not restore ("... being deleted with unrestored values") would follow it as the objects go
                status.expect_partial()
                raise
    try:
        restore(path)
    except errors as err:
        if not backend.is_jax():  # a restore that failed before it returned a status has none to expect_partial
            quiet.drop_unrestored_value_warnings()
        raise CheckpointError(f"cannot resume from {path}: it was saved by a different model or optimizer (another "
                              "architecture or trainer settings than this run's .hydra/config.yaml): resume with "
                              f"the run's own settings, or {_start_afresh(os.path.dirname(path))}") from err


class _Checkpointing(keras.callbacks.Callback):
    def __init__(self, state: RunState, evaluator):
        super().__init__()
        self.state, self.evaluator = state, evaluator
        self.saved_at = state.step

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = self.state.step  # between epochs the variables hold their values on every backend

    def on_train_batch_end(self, batch, logs=None):
        every = self.state.every_steps
        if not every:
            return
        # Keras' JAX fit keeps the variables' values outside the variables during an epoch (its stateless step):
        # the step is counted there, and the values are put back (jax_state_sync) only when a save is due.
        jax = backend.is_jax()
        step = self.epoch_start + batch + 1 if jax else self.state.step
        # An epoch's last step is saved by on_epoch_end, after its evaluation.
        if step % self.state.steps_per_epoch and step - self.saved_at >= every:
            with interrupts_deferred():  # the variables put back whole, then saved
                if jax:
                    self.model.jax_state_sync()
                self.state.save()
            self.saved_at = step

    def on_epoch_end(self, epoch, logs=None):
        if self.state.end_epoch(epoch, logs or {}, self.evaluator.last):
            self.model.stop_training = True
        self.saved_at = self.state.step
