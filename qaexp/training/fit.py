"""What Keras' fit needs besides the data: the optimizer, the compiled training model, qaexp's own callbacks."""
from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Callable, Optional

from omegaconf import DictConfig

from qaexp.config import OptimizerName, Schedule
from qaexp.errors import TrainingDiverged

if TYPE_CHECKING:
    from qaexp.evaluation.inference import Evaluation

log = logging.getLogger(__name__)


def build_optimizer(opt_cfg: DictConfig, total_steps: int):
    import tf_keras

    if opt_cfg.name == OptimizerName.adam and opt_cfg.schedule == Schedule.constant:
        return tf_keras.optimizers.Adam(learning_rate=opt_cfg.lr, beta_1=opt_cfg.beta_1, beta_2=opt_cfg.beta_2,
                                        epsilon=opt_cfg.epsilon, clipnorm=opt_cfg.clipnorm)
    from transformers import create_optimizer

    # transformers' AdamWeightDecay with linear warmup then linear decay (constant after warmup if asked).
    optimizer, _ = create_optimizer(
        init_lr=opt_cfg.lr, num_train_steps=max(total_steps, 1),
        num_warmup_steps=int(opt_cfg.warmup_ratio * total_steps),
        weight_decay_rate=opt_cfg.weight_decay if opt_cfg.name == OptimizerName.adamw else 0.0,
        adam_beta1=opt_cfg.beta_1, adam_beta2=opt_cfg.beta_2, adam_epsilon=opt_cfg.epsilon,
        adam_clipnorm=opt_cfg.clipnorm,
        power=1.0 if opt_cfg.schedule == Schedule.linear else 0.0)
    return optimizer


def make_epoch_evaluator(evaluate: Callable[[], "Evaluation"]):
    """A Keras callback that adds val_loss, val_exact_match and val_f1 to each epoch's logs."""
    import tf_keras

    class EpochEvaluation(tf_keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.last: Optional[Evaluation] = None

        def on_epoch_end(self, epoch, logs=None):
            started = time.perf_counter()
            self.last = evaluate()
            if logs is not None:
                logs.update({f"val_{k}": v for k, v in self.last.scores.items()})
                logs["val_loss"] = self.last.loss
            log.info("epoch %d: val_loss %.4f EM %.2f F1 %.2f (%.1fs)", epoch + 1, self.last.loss,
                     self.last.scores["exact_match"], self.last.scores["f1"],
                     time.perf_counter() - started)

    return EpochEvaluation()


def make_divergence_guard(hint: str):
    """A callback that stops training with TrainingDiverged once the loss is NaN or infinite.

    Keras' TerminateOnNaN stops just as early but silently, leaving a run that looks finished.
    """
    import tf_keras

    class DivergenceGuard(tf_keras.callbacks.Callback):
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

    trainable = QATrainingModel(qa_model, trainer_cfg.grad_accum_steps)
    optimizer = build_optimizer(opt_cfg, total_steps)
    create_optimizer_variables(optimizer, qa_model.trainable_variables)
    trainable.compile(optimizer=optimizer, steps_per_execution=trainer_cfg.steps_per_execution,
                      jit_compile=trainer_cfg.jit_compile)
    return trainable
