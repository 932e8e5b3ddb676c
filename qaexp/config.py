"""Structured-config schemas for every config group, and the checks Hydra's types cannot express.

The schemas are registered in Hydra's ConfigStore as `qaexp_schema`; `conf/config.yaml` lists it first in
its defaults, so every group file merges into a typed node: an unknown key or a value of the wrong type is
rejected by OmegaConf with the key named, before anything heavy is imported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from qaexp.errors import ConfigError


@dataclass
class ModelConfig:
    checkpoint: Optional[str] = MISSING  # hub name or local directory written by save_pretrained
    family: str = "bert"
    from_scratch: bool = False  # random init from `architecture`, tokenizer trained on the training text
    architecture: dict[str, Any] = field(default_factory=dict)
    tokenizer_vocab_size: int = 4000
    lowercase: bool = False
    padding_side: str = "right"
    batch_size: int = 32  # hint, the default of trainer.batch_size
    lr: float = 5e-5  # hint, the default of optimizer.lr
    trust_remote_code: bool = False


@dataclass
class DataConfig:
    source: str = MISSING  # hub | json | synthetic
    name: Optional[str] = None  # hub dataset name
    config_name: Optional[str] = None
    train_split: str = "train"
    validation_split: str = "validation"
    train_file: Optional[str] = None
    validation_file: Optional[str] = None
    version_2_with_negative: bool = False
    max_length: int = 384
    doc_stride: int = 128
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    max_answer_length: int = 30
    n_best_size: int = 20
    null_score_diff_threshold: float = 0.0
    on_bad_answer: str = "fix"  # error | skip | fix
    # synthetic generator
    num_train: int = 2000
    num_validation: int = 300
    difficulty: str = "easy"
    unanswerable_fraction: float = 0.0
    seed: int = 0


@dataclass
class OptimizerConfig:
    name: str = "adam"  # adam | adamw
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    schedule: str = "constant"  # constant | linear
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    clipnorm: Optional[float] = None


@dataclass
class PrecisionConfig:
    policy: str = "float32"  # float32 | mixed_float16 | mixed_bfloat16


@dataclass
class TrainerConfig:
    epochs: int = 1
    batch_size: int = 32
    eval_batch_size: int = 64
    seed: int = 42
    padding: str = "bucketed"  # max_length | dynamic | bucketed
    pad_to_multiple_of: int = 8
    bucket_window: int = 50  # batches per shuffled window that is sorted by length
    max_steps: Optional[int] = None
    steps_per_execution: int = 1
    jit_compile: bool = False
    strategy: str = "default"
    verbose: int = 1  # Keras progress bar: 0 silent, 1 bar, 2 one line per epoch
    save_model: bool = True


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb | tensorboard
    project: str = "qaexp"
    entity: Optional[str] = None
    group: Optional[str] = None
    job_type: str = "train"
    tags: list[str] = field(default_factory=list)
    mode: str = "online"
    log_model: bool = False
    log_dir: Optional[str] = None


@dataclass
class QAExpConfig:
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    precision: PrecisionConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    experiment_name: str = "default"


def register_configs() -> None:
    ConfigStore.instance().store(name="qaexp_schema", node=QAExpConfig)


register_configs()

KNOWN = {
    "data.source": ("hub", "json", "synthetic"),
    "data.difficulty": ("easy", "hard"),
    "data.on_bad_answer": ("error", "skip", "fix"),
    "optimizer.name": ("adam", "adamw"),
    "optimizer.schedule": ("constant", "linear"),
    "precision.policy": ("float32", "mixed_float16", "mixed_bfloat16"),
    "trainer.padding": ("max_length", "dynamic", "bucketed"),
    "trainer.strategy": ("default", "mirrored", "multi_worker", "tpu"),
    "logger.name": ("none", "wandb", "tensorboard"),
    "logger.mode": ("online", "offline", "disabled"),
    "model.padding_side": ("left", "right"),
}


def _get(cfg: DictConfig, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def validate(cfg: DictConfig) -> None:
    """Range and consistency checks; raises ConfigError naming the key and what is allowed."""
    for key, allowed in KNOWN.items():
        value = _get(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
    _check_positive(cfg, ["data.max_length", "data.max_answer_length", "data.n_best_size",
                          "trainer.epochs", "trainer.batch_size", "trainer.eval_batch_size",
                          "trainer.steps_per_execution", "trainer.pad_to_multiple_of",
                          "trainer.bucket_window"])
    data = cfg.data
    if not 0 < data.doc_stride < data.max_length:
        raise ConfigError(f"data.doc_stride={data.doc_stride} must be > 0 and < data.max_length={data.max_length}")
    if not cfg.optimizer.lr > 0:
        raise ConfigError(f"optimizer.lr={cfg.optimizer.lr} must be > 0")
    if not 0 <= cfg.optimizer.warmup_ratio < 1:
        raise ConfigError(f"optimizer.warmup_ratio={cfg.optimizer.warmup_ratio} must be in [0, 1)")
    for key in ("data.max_train_samples", "data.max_eval_samples", "trainer.max_steps"):
        value = _get(cfg, key)
        if value is not None and value < 1:
            raise ConfigError(f"{key}={value} must be >= 1 (or null for no limit)")
    if data.source == "json" and not (data.train_file or data.validation_file):
        raise ConfigError("data=json needs data.train_file and/or data.validation_file")
    if data.source == "hub" and not data.name:
        raise ConfigError("data.source=hub needs data.name (a dataset on the Hugging Face hub)")
    if not cfg.model.from_scratch and not cfg.model.checkpoint:
        raise ConfigError("model.checkpoint is empty: give a hub name or a local directory, or use model=tiny")


def _check_positive(cfg: DictConfig, keys: list[str]) -> None:
    for key in keys:
        value = _get(cfg, key)
        if value < 1:
            raise ConfigError(f"{key}={value} must be >= 1")
