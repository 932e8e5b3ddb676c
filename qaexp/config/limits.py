"""What every numeric config key and every directory key may hold: one table each, and the checks that read them.

`validation.validate` calls `check_numbers` and `check_directories` before anything heavy is imported, so a
value out of range is one line naming the key and its valid range within seconds. Checks that relate two keys
(grad_accum_steps against batch_size) are in validation.py, doc_stride against max_length and max_length against
the model's position limit in data/window_rule.py (the tools apply them too); the data files are checked where they are read
(data/squad.py), the model directory where it is resolved (model/pretrained.py).

A new numeric key in the schema needs a row in NUMBERS (tests/unit/test_limits.py fails until it has one).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

from omegaconf import DictConfig

from qaexp.config.schema import LoggerName, get_key
from qaexp.errors import ConfigError

log = logging.getLogger(__name__)

# Upper limits past which a value means nothing for qaexp; each is far beyond any real use.
MAX_TOKENS = 131_072  # window lengths: beyond the position table of any encoder qaexp can load
MAX_BATCH = 65_536  # examples per batch (a whole batch of windows is one tensor)
MAX_STEPS = 10 ** 9  # optimizer steps and step intervals
MAX_EPOCHS = 10_000
MAX_COUNT = 10 ** 9  # examples taken from a file
MAX_SYNTHETIC = 1_000_000  # synthetic questions generated in memory
MAX_SEED = 2 ** 32 - 1  # NumPy's seed range (keras.utils.set_random_seed seeds NumPy with trainer.seed)
MAX_THREADS = 4096
MAX_CPU_DEVICES = 64  # logical CPU devices (replicas sharing the same cores)


@dataclass(frozen=True)
class Range:
    """The values a numeric key may hold: low and high are bounds (None: unbounded), closed unless marked open.

    nullable: null is allowed too, meaning what `null_means` says. integer: the value must be an int (for keys
    the schema does not type, such as model.architecture's). Floats must be finite whatever the range.
    """

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    null_means: str = "no limit"
    integer: bool = False

    def interval(self) -> str:
        low = "-inf" if self.low is None else _number(self.low)
        high = "inf" if self.high is None else _number(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{low}, {high}{right}"

    def problem(self, value: Any) -> Optional[str]:
        """What is wrong with `value` (e.g. "must be >= 1"), or None when it is allowed."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be an integer" if self.integer else "must be a number"
        if self.integer and not isinstance(value, int):
            return "must be an integer"
        if isinstance(value, float) and not math.isfinite(value):  # (ints: any size, no float conversion)
            return "must be a finite number"
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"must be {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return f"must be {'<' if self.high_open else '<='} {_number(self.high)}"
        return None


def _number(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def _counts(high: int, low: int = 1, **kwargs) -> Range:
    return Range(low, high, **kwargs)


POSITIVE = Range(0, None, low_open=True)  # a finite number > 0
FRACTION = Range(0, 1, high_open=True)  # [0, 1)

NUMBERS: dict[str, Range] = {
    "model.tokenizer_vocab_size": _counts(1_000_000, low=100),
    "model.batch_size": _counts(MAX_BATCH),  # the hint behind trainer.batch_size
    "model.lr": POSITIVE,  # the hint behind optimizer.lr
    "data.max_length": _counts(MAX_TOKENS),
    "data.doc_stride": Range(0, MAX_TOKENS, low_open=True),  # and < data.max_length (data/window_rule.py)
    "data.max_train_samples": _counts(MAX_COUNT, nullable=True),
    "data.max_eval_samples": _counts(MAX_COUNT, nullable=True),
    "data.max_answer_length": _counts(MAX_TOKENS),
    "data.n_best_size": _counts(10_000),
    "data.null_score_diff_threshold": Range(),  # any finite number
    "data.num_train": _counts(MAX_SYNTHETIC),
    "data.num_validation": _counts(MAX_SYNTHETIC),
    "data.unanswerable_fraction": FRACTION,
    "data.null_tuning_fraction": Range(0, 1, low_open=True, high_open=True),  # data.null_threshold_tuning=split
    "data.seed": Range(),  # any integer: it only names the synthetic generator's stream
    "optimizer.lr": POSITIVE,  # no upper limit: a huge one is stopped by the divergence check
    "optimizer.weight_decay": Range(0, None),
    "optimizer.warmup_ratio": FRACTION,
    "optimizer.beta_1": FRACTION,
    "optimizer.beta_2": FRACTION,
    "optimizer.epsilon": POSITIVE,
    "optimizer.clipnorm": Range(0, None, low_open=True, nullable=True, null_means="no clipping"),
    "trainer.epochs": _counts(MAX_EPOCHS, low=0),  # 0 evaluates without training
    "trainer.batch_size": _counts(MAX_BATCH),  # and >= grad_accum_steps (validation.validate)
    "trainer.eval_batch_size": _counts(MAX_BATCH),
    "trainer.seed": _counts(MAX_SEED, low=0),
    "trainer.pad_to_multiple_of": _counts(MAX_TOKENS, nullable=True, null_means="8 on TensorFlow, 64 on JAX"),
    "trainer.bucket_window": _counts(MAX_STEPS),
    "trainer.max_steps": _counts(MAX_STEPS, nullable=True),
    "trainer.steps_per_execution": _counts(MAX_STEPS),
    "trainer.verbose": _counts(2, low=0, nullable=True, null_means="the live bar on a terminal, lines elsewhere"),
    "trainer.grad_accum_steps": _counts(MAX_BATCH),
    "trainer.checkpoint_every_steps": _counts(MAX_STEPS, nullable=True),
    "trainer.early_stopping_patience": _counts(MAX_EPOCHS, nullable=True),
    "trainer.threads": _counts(MAX_THREADS, nullable=True, null_means="TensorFlow's default"),
    "trainer.cpu_devices": _counts(MAX_CPU_DEVICES, nullable=True, null_means="one CPU device"),
}

# model.architecture is free-form (any transformers config key); these are checked when present.
ARCHITECTURE: dict[str, Range] = {
    "hidden_size": _counts(65_536, integer=True),
    "num_hidden_layers": _counts(1_000, integer=True),
    "num_attention_heads": _counts(1_024, integer=True),
    "intermediate_size": _counts(262_144, integer=True),
    "max_position_embeddings": _counts(MAX_TOKENS + 2, integer=True),
    "hidden_dropout_prob": FRACTION,
    "attention_probs_dropout_prob": FRACTION,
}


def check_value(key: str, value: Any, rule: Range) -> None:
    """ConfigError naming the key, what is wrong and the valid range, unless `value` is allowed."""
    if value is None and rule.nullable:
        return
    problem = "must not be null" if value is None else rule.problem(value)
    if problem:
        shown = repr(value) if isinstance(value, str) else value
        null = f", or null for {rule.null_means}" if rule.nullable else ""
        raise ConfigError(f"{key}={shown} {problem} (valid: {rule.interval()}{null})")


def check_numbers(cfg: DictConfig) -> None:
    for key, rule in NUMBERS.items():
        check_value(key, get_key(cfg, key), rule)
    if cfg.model.from_scratch:
        architecture = cfg.model.architecture
        for name, value in architecture.items():
            if name in ARCHITECTURE:
                check_value(f"model.architecture.{name}", value, ARCHITECTURE[name])
            elif isinstance(value, float):  # any other transformers config number: finite, whatever it means
                check_value(f"model.architecture.{name}", value, Range())


# ---- directories ----------------------------------------------------------------------------------------------

class DirectoryKey(NamedTuple):
    used: Callable[[DictConfig], bool]  # whether the run uses the key with this config
    fix: str  # what to do instead
    read_only_ok: bool = False  # a directory the run cannot write in is a warning, not an error


# Directory keys a run writes into.
DIRECTORIES: dict[str, DirectoryKey] = {
    # A read-only cache (e.g. one shared and filled beforehand) is read; only new entries are not written.
    "data.cache_dir": DirectoryKey(lambda cfg: bool(cfg.data.cache), "set it to a directory, or data.cache=false",
                                   read_only_ok=True),
    "logger.log_dir": DirectoryKey(lambda cfg: cfg.logger.name != LoggerName.none,
                                   "set it to a directory, or leave it null (the run directory)"),
}


NOT_WRITABLE = "is not writable"


def directory_problem(path: str) -> Optional[str]:
    """Why `path` cannot be (or become) a directory this process writes in, or None.

    A missing directory is fine when its nearest existing parent is a writable directory (it will be created).
    """
    path = os.path.abspath(os.path.expanduser(path))
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        if existing == path:
            return "is a file, not a directory"
        return f"cannot be created: {existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{NOT_WRITABLE}: permission denied on {existing}"
    return None


def check_directories(cfg: DictConfig) -> None:
    for key, rule in DIRECTORIES.items():
        path = get_key(cfg, key)
        if not path or not rule.used(cfg):
            continue
        problem = directory_problem(str(path))
        if problem and rule.read_only_ok and problem.startswith(NOT_WRITABLE):
            log.warning("%s=%s %s: entries found there are read, new ones are not written", key, path, problem)
            from qaexp.data.cache_store import told_unlockable

            told_unlockable(str(path))  # this warning is the one: none again for each entry that cannot be locked
        elif problem:
            raise ConfigError(f"{key}={path} {problem}: {rule.fix}")
