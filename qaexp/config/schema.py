"""Structured-config schemas for every config group and the values some keys allow.

The schemas are registered in Hydra's ConfigStore as `qaexp_schema`; `conf/config.yaml` lists it first in
its defaults, so every group file merges into a typed node: an unknown key or a value of the wrong type is
rejected by OmegaConf with the key named, before anything heavy is imported.

Keys with a closed set of values (the Choice enums below, listed in KNOWN) stay typed `str` in the schema:
typed with the enum, a bad value would stop Hydra while composing (exit status 1, no run directory), where
qaexp promises its own one-line error (exit status 2) that the run's metrics.json records. `validate` checks
them against the enums instead (config/validation.py), the one place their values are listed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from qaexp.data import window_rule

# Keys (and overrides) that say how a run is run, not what it trains: never part of a sweep configuration's
# identity (analysis/seed_stats.py), free to differ when a run is resumed (run/existing_run.py). The window cache
# is one: a run's results do not depend on it (tests/faults/test_concurrency.py).
NOT_CONFIGURING = ("trainer.resume", "trainer.verbose", "trainer.threads", "logger", "hydra.", "data.cache")

class Choice(str, Enum):
    """One allowed value of a config key; equal to its string, so code compares config values with the members."""

    def __str__(self) -> str:
        return self.value


def _choices(name: str, values: str) -> type[Choice]:
    """A Choice enum whose members are named as their values: `_choices("Padding", "dynamic bucketed").dynamic`."""
    return Choice(name, [(value, value) for value in values.split()], module=__name__)


DataSource = _choices("DataSource", "hub json synthetic")
Difficulty = _choices("Difficulty", "easy hard")
BadAnswerPolicy = _choices("BadAnswerPolicy", "error skip fix")
OptimizerName = _choices("OptimizerName", "adam adamw")
Schedule = _choices("Schedule", "constant linear")
PrecisionPolicy = _choices("PrecisionPolicy", "float32 mixed_float16 mixed_bfloat16")
Padding = _choices("Padding", "max_length dynamic bucketed")
Strategy = _choices("Strategy", "default mirrored multi_worker tpu data_parallel")  # data_parallel: JAX's
Backend = _choices("Backend", "tensorflow jax")  # the Keras backend (qaexp/backend.py)
LoggerName = _choices("LoggerName", "none wandb tensorboard")
LoggerMode = _choices("LoggerMode", "online offline disabled")
PaddingSide = _choices("PaddingSide", "left right")
NullTuning = _choices("NullTuning", "off eval split")  # SQuAD v2 no-answer threshold: configured / tuned
EvalSource = _choices("EvalSource", "json hub")  # where an extra evaluation set comes from


KNOWN: dict[str, type[Choice]] = {
    "data.source": DataSource,
    "data.difficulty": Difficulty,
    "data.on_bad_answer": BadAnswerPolicy,
    "optimizer.name": OptimizerName,
    "optimizer.schedule": Schedule,
    "precision.policy": PrecisionPolicy,
    "trainer.padding": Padding,
    "trainer.strategy": Strategy,
    "trainer.backend": Backend,
    "logger.name": LoggerName,
    "logger.mode": LoggerMode,
    "model.padding_side": PaddingSide,
    "data.null_threshold_tuning": NullTuning,
}


@dataclass
class ModelConfig:
    checkpoint: Optional[str] = MISSING  # hub name or local directory written by save_pretrained
    revision: Optional[str] = None  # of a hub checkpoint: a branch, tag or commit (null: main)
    family: str = "bert"
    from_scratch: bool = False  # random init from `architecture`, tokenizer trained on the training text
    architecture: dict[str, Any] = field(default_factory=dict)
    tokenizer_vocab_size: int = 4000
    lowercase: bool = False
    padding_side: str = PaddingSide.right.value
    batch_size: int = 32  # hint, the default of trainer.batch_size
    lr: float = 5e-5  # hint, the default of optimizer.lr
    trust_remote_code: bool = False
    random_init: bool = False  # the checkpoint's architecture and tokenizer with random weights (a baseline)
    base_model: Optional[str] = None  # hub id of the pretrained weights, for the model card
    license: Optional[str] = None  # of the pretrained weights, for the model card


@dataclass
class ExtraEvalConfig:
    """One more evaluation set, scored after training: a local file or a hub dataset's split."""

    name: str = MISSING  # its key in metrics.json and eval/<name>/f1 in the trackers
    source: str = EvalSource.json.value
    file: Optional[str] = None  # source=json: SQuAD JSON or JSON lines
    dataset: Optional[str] = None  # source=hub: the dataset's hub name
    config_name: Optional[str] = None
    split: str = "validation"
    version_2_with_negative: Optional[bool] = None  # null: as data.version_2_with_negative
    max_eval_samples: Optional[int] = None


@dataclass
class DataConfig:
    source: str = MISSING
    name: Optional[str] = None  # hub dataset name
    config_name: Optional[str] = None
    train_split: str = "train"
    validation_split: str = "validation"
    train_file: Optional[str] = None
    validation_file: Optional[str] = None
    version_2_with_negative: bool = False
    max_length: int = window_rule.MAX_LENGTH
    doc_stride: int = window_rule.DOC_STRIDE
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    max_answer_length: int = window_rule.MAX_ANSWER_LENGTH
    n_best_size: int = window_rule.N_BEST_SIZE
    null_score_diff_threshold: float = 0.0
    # SQuAD v2: off uses null_score_diff_threshold; eval tunes it on the evaluation set (best F1, optimistic
    # figures); split tunes it on a seeded part of it and reports on the rest. The model keeps it (model/qaexp.json).
    null_threshold_tuning: str = NullTuning.off.value
    null_tuning_fraction: float = 0.5  # split: the share of evaluation questions the threshold is tuned on
    extra_eval: list[ExtraEvalConfig] = field(default_factory=list)  # more sets scored after training
    on_bad_answer: str = BadAnswerPolicy.fix.value
    # tokenised windows cached on disk, keyed by tokenizer, data content, max_length, doc_stride, sample limits; the
    # default folder keeps its first name (features) so that the windows users have cached there are still found
    cache: bool = True
    cache_dir: str = "${oc.env:QAEXP_CACHE_DIR,'~/.cache/qaexp/features'}"
    # synthetic generator
    num_train: int = 2000
    num_validation: int = 300
    difficulty: str = Difficulty.easy.value
    unanswerable_fraction: float = 0.0
    seed: int = 0


@dataclass
class OptimizerConfig:
    name: str = OptimizerName.adam.value
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    schedule: str = Schedule.constant.value
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    clipnorm: Optional[float] = None


@dataclass
class PrecisionConfig:
    policy: str = PrecisionPolicy.float32.value


@dataclass
class TrainerConfig:
    epochs: int = 1
    batch_size: int = 32
    eval_batch_size: int = 64
    seed: int = 42
    padding: str = Padding.bucketed.value
    pad_to_multiple_of: Optional[int] = None  # batch widths round up to this; null: 8 on TensorFlow, 64 on JAX
    bucket_window: int = 50  # batches per shuffled window that is sorted by length
    max_steps: Optional[int] = None
    steps_per_execution: int = 1
    jit_compile: bool = False  # TensorFlow's choice; JAX compiles every step with XLA regardless
    strategy: str = Strategy.default.value
    # The Keras backend, chosen before Keras is imported (qaexp/backend.py); KERAS_BACKEND in the environment wins.
    backend: str = Backend.tensorflow.value
    # Training progress: 0 silent, 1 Keras' live bar, 2 Keras' line per epoch; null (default): the live bar on a
    # terminal, else (a Slurm log, `> run.log`) qaexp's timestamped lines: each epoch's (and within a long epoch,
    # one a minute) with loss, steps/s, elapsed time and ETA, without the bar's backspaces.
    verbose: Optional[int] = None
    save_model: bool = True
    grad_accum_steps: int = 1  # micro-batches per optimizer step; trainer.batch_size is the whole (global) batch
    checkpoint_every_steps: Optional[int] = None  # besides each epoch's end; in <run dir>/checkpoints
    resume: bool = False  # continue from the last checkpoint in the run directory (hydra.run.dir=<dir>)
    keep_best: bool = True  # end with the weights of the epoch with the best validation F1, not the last
    early_stopping_patience: Optional[int] = None  # stop after this many epochs without a better F1; null: off
    analyze: bool = True  # write analysis.md + plots at the end of a run (python -m qaexp.analyze RUN_DIR)
    keep_checkpoints: bool = False  # after a completed run whose model/ is saved, keep <run dir>/checkpoints
    threads: Optional[int] = None  # TensorFlow intra/inter-op threads; null: TF's default (or a share of the
    # CPUs when hydra/launcher=joblib runs several jobs at once)
    cpu_devices: Optional[int] = None  # the CPU as this many logical devices: strategy=mirrored's replicas without GPUs


@dataclass
class HubConfig:
    push: bool = False  # upload model, tokenizer and model card after training (token: HF_TOKEN only)
    repo_id: Optional[str] = None  # "user/name" on the Hugging Face hub
    private: bool = True


@dataclass
class LoggerConfig:
    name: str = LoggerName.none.value
    project: str = "qaexp"
    entity: Optional[str] = None
    group: Optional[str] = None
    job_type: str = "train"
    tags: list[str] = field(default_factory=list)
    mode: str = LoggerMode.online.value
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
    hub: HubConfig = field(default_factory=HubConfig)
    experiment_name: str = "default"


def register_configs() -> None:
    ConfigStore.instance().store(name="qaexp_schema", node=QAExpConfig)


register_configs()


def get_key(cfg: DictConfig, dotted: str) -> Any:
    """The value at a dotted key (`trainer.batch_size`) of a config."""
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node
