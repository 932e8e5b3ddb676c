"""What Keras' fit needs besides the data: the optimizer, the compiled training model, qaexp's own callbacks."""
from __future__ import annotations

import logging
import math
import sys
import time
from typing import TYPE_CHECKING, Callable, Optional

from omegaconf import DictConfig

from qaexp.config.schema import OptimizerName, Schedule
from qaexp.errors import TrainingDiverged

if TYPE_CHECKING:
    from qaexp.evaluation.inference import Evaluation

log = logging.getLogger(__name__)


def build_optimizer(opt_cfg: DictConfig, total_steps: int, model=None):
    """Adam or AdamW (decoupled weight decay, none on biases and normalisation weights, as transformers'
    create_optimizer), at a constant rate or with linear warmup then linear decay to zero (`schedule: linear`).
    `optimizer=adam` with a constant schedule is plain Adam at a constant rate, without warmup (as before the move
    to Keras 3: an experiment's warmup_ratio is for the adamw group)."""
    import keras

    rate = opt_cfg.lr
    plain = opt_cfg.name == OptimizerName.adam and opt_cfg.schedule == Schedule.constant  # the seed example's Adam
    if not plain and (opt_cfg.schedule != Schedule.constant or opt_cfg.warmup_ratio):
        from qaexp.training.schedule import WarmupThenDecay

        rate = WarmupThenDecay(opt_cfg.lr, max(total_steps, 1), int(opt_cfg.warmup_ratio * total_steps),
                               power=1.0 if opt_cfg.schedule == Schedule.linear else 0.0)
    common = dict(learning_rate=rate, beta_1=opt_cfg.beta_1, beta_2=opt_cfg.beta_2, epsilon=opt_cfg.epsilon,
                  clipnorm=opt_cfg.clipnorm)
    if opt_cfg.name != OptimizerName.adamw or not opt_cfg.weight_decay:
        return keras.optimizers.Adam(**common)
    optimizer = keras.optimizers.AdamW(weight_decay=opt_cfg.weight_decay, **common)
    if model is not None:
        optimizer.exclude_from_weight_decay(var_list=no_decay_variables(model))
    return optimizer


def no_decay_variables(model) -> list:
    """The variables transformers' create_optimizer keeps out of weight decay: biases and LayerNorm weights
    (named here by their PyTorch names, which say which is which for every family)."""
    return [variable for name, (variable, _) in model.hf_weights().items()
            if name.endswith(".bias") or "norm" in name.lower()]


def make_epoch_evaluator(evaluate: Callable[[], "Evaluation"]):
    """A Keras callback that adds val_loss, val_exact_match and val_f1 to each epoch's logs."""
    import keras

    class EpochEvaluation(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.last: Optional[Evaluation] = None

        def on_epoch_end(self, epoch, logs=None):
            started = time.perf_counter()
            self.last = evaluate()
            if logs is not None:
                logs.update({f"val_{k}": v for k, v in self.last.scores.items()})
                if self.last.loss is not None:  # None: no validation question has a placed answer to label
                    logs["val_loss"] = self.last.loss
            loss = "n/a" if self.last.loss is None else f"{self.last.loss:.4f}"
            log.info("epoch %d: val_loss %s EM %.2f F1 %.2f (%.1fs)", epoch + 1, loss,
                     self.last.scores["exact_match"], self.last.scores["f1"],
                     time.perf_counter() - started)

    return EpochEvaluation()


LINE_EVERY_SECONDS = 60.0  # progress lines within a long epoch: at most this often (and one at each epoch's end)


def counted(count: int, noun: str) -> str:
    """'1 epoch', '3 epochs'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def progress_display(verbose: Optional[int]) -> tuple[int, bool]:
    """(Keras' fit verbose, whether qaexp logs its own progress lines) for trainer.verbose.

    0, 1 and 2 are Keras' own (silent, live bar, a line per epoch). null, the default, is the live bar on a
    terminal; elsewhere (a Slurm log, `> run.log`) the bar's backspaces and carriage returns would fill the
    file, so Keras is silent and make_progress_lines writes timestamped lines instead.
    """
    if verbose is not None:
        return verbose, False
    on_terminal = sys.stdout.isatty()
    return (1 if on_terminal else 0), not on_terminal


def make_progress_lines(steps_per_epoch: int, epochs: int, start_step: int = 0,
                        every_seconds: float = LINE_EVERY_SECONDS):
    """A callback that logs one line per epoch (and, within an epoch, one at most every `every_seconds`): epoch
    n/N, loss, speed, time elapsed and the estimated time left, for logs written to a file."""
    import keras

    total = steps_per_epoch * epochs

    class ProgressLines(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if hasattr(self, "started"):  # the second fit of a run resumed mid-epoch: the same training goes on
                return
            self.started = self.last_line = time.monotonic()
            self.done = 0  # steps run by this process (a resumed run starts at start_step)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.epoch_started = epoch, time.monotonic()
            # A run resumed mid-epoch fits the rest of that epoch as a shorter fit (training.state.fit_segments),
            # whose batches Keras numbers from 0: they are steps start_step % steps_per_epoch + 1, ... of it.
            self.offset = start_step % steps_per_epoch if epoch == start_step // steps_per_epoch else 0
            self.position, self.epoch_steps = self.offset, 0

        def on_train_batch_end(self, batch, logs=None):
            # With steps_per_execution > 1 Keras reports only the last step of each execution: count what was run
            # since the last report.
            position = self.offset + batch + 1
            self.done += position - self.position
            self.epoch_steps += position - self.position
            self.position = position
            now = time.monotonic()
            if now - self.last_line >= every_seconds and self.position < steps_per_epoch:
                self._line(f"epoch {self.epoch + 1}/{epochs}, step {self.position}/{steps_per_epoch}", logs, now)

        def on_epoch_end(self, epoch, logs=None):
            self._line(f"epoch {epoch + 1}/{epochs}", logs, time.monotonic())

        def _line(self, where: str, logs: Optional[dict], now: float) -> None:
            self.last_line = now
            elapsed = now - self.started
            loss = (logs or {}).get("loss")
            left = total - start_step - self.done
            eta = left * elapsed / self.done if self.done else float("nan")
            log.info("%s: loss %s, %s, elapsed %s, ETA %s", where,
                     "n/a" if loss is None else f"{float(loss):.4f}",
                     _speed(self.epoch_steps, now - self.epoch_started), _clock(elapsed), _clock(eta))

    return ProgressLines()


def _speed(steps: int, seconds: float) -> str:
    """'3.65 steps/s', or '2.40 s/step' when steps take longer than a second."""
    if steps <= 0 or seconds <= 0:
        return "speed n/a"
    rate = steps / seconds
    return f"{rate:.2f} steps/s" if rate >= 1 else f"{seconds / steps:.2f} s/step"


def _clock(seconds: float) -> str:
    """H:MM:SS."""
    if not math.isfinite(seconds):
        return "n/a"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def make_divergence_guard(hint: str):
    """A callback that stops training with TrainingDiverged once the loss is NaN or infinite.

    Keras' TerminateOnNaN stops just as early but silently, leaving a run that looks finished.
    """
    import keras

    class DivergenceGuard(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                raise TrainingDiverged(f"training diverged: the loss became {float(loss)} at epoch {self.epoch + 1}, "
                                       f"step {batch + 1}; {hint}")

    return DivergenceGuard()


def compile_for_training(qa_model, opt_cfg: DictConfig, trainer_cfg: DictConfig, total_steps: int):
    """The Keras model to fit (qa_model.QATrainingModel around `qa_model`), compiled; call in the strategy's scope."""
    from qaexp.training.qa_model import QATrainingModel, create_optimizer_variables

    import keras

    trainable = QATrainingModel(qa_model, trainer_cfg.grad_accum_steps)
    optimizer = build_optimizer(opt_cfg, total_steps, qa_model)
    if keras.config.dtype_policy().name == "mixed_float16":  # float16 gradients underflow without loss scaling
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    create_optimizer_variables(optimizer, qa_model.trainable_variables)
    # jit_compile is given explicitly: Keras 3's default ("auto") would compile with XLA where it can, which
    # changes the dropout random numbers and (measured, benchmarks/keras3_speed.py) slows training on the CPU.
    # On JAX, XLA is the only compiled path (jit_compile=False would run every op eagerly): always on.
    from qaexp.backend import is_jax

    trainable.compile(optimizer=optimizer, steps_per_execution=trainer_cfg.steps_per_execution,
                      jit_compile=True if is_jax() else bool(trainer_cfg.jit_compile), auto_scale_loss=False)
    return trainable
