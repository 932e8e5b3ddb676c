"""Structured-config schemas for every config group, the values some keys allow, and the checks Hydra's types
cannot express.

The schemas are registered in Hydra's ConfigStore as `qaexp_schema`; `conf/config.yaml` lists it first in
its defaults, so every group file merges into a typed node: an unknown key or a value of the wrong type is
rejected by OmegaConf with the key named, before anything heavy is imported.

Keys with a closed set of values (the Choice enums below, listed in KNOWN) stay typed `str` in the schema:
typed with the enum, a bad value would stop Hydra while composing (exit status 1, no run directory), where
qaexp promises its own one-line error (exit status 2) that the run's metrics.json records. `validate` checks
them against the enums instead, the one place their values are listed.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from qaexp.data import window_rule
from qaexp.errors import ConfigError


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
    # tokenised windows cached on disk, keyed by tokenizer, data content, max_length, doc_stride, sample limits
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
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def validate(cfg: DictConfig) -> None:
    """Range and consistency checks; raises ConfigError naming the key and what is allowed.

    The ranges of the numeric keys and what the directory keys must be are tables in qaexp/limits.py."""
    check_no_unknown_keys(cfg)
    for key, choices in KNOWN.items():
        value, allowed = get_key(cfg, key), [choice.value for choice in choices]
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
    from qaexp.limits import check_directories, check_numbers

    check_numbers(cfg)  # every numeric key against its range, in qaexp/limits.py
    from qaexp.backend import unsupported

    problem = unsupported(cfg)  # what the run's Keras backend cannot do (tf.distribute on JAX, ...)
    if problem:
        raise ConfigError(problem)
    data = cfg.data
    window_rule.check_window(data.max_length, data.doc_stride)  # the rule every tool applies too (data/window_rule.py)
    if cfg.model.from_scratch:
        _check_architecture(cfg.model.architecture)
        arch = cfg.model.architecture
        check_max_length(data.max_length, position_limit(arch.get("model_type"), arch.get("max_position_embeddings")),
                         "model.architecture.max_position_embeddings")
    if cfg.trainer.grad_accum_steps > cfg.trainer.batch_size:
        raise ConfigError(f"trainer.grad_accum_steps={cfg.trainer.grad_accum_steps} must be <= trainer.batch_size="
                          f"{cfg.trainer.batch_size} (the batch is split into that many micro-batches)")
    check_directories(cfg)
    if data.source == DataSource.json and not (data.train_file or data.validation_file):
        raise ConfigError("data=json needs data.train_file and/or data.validation_file")
    if data.source == DataSource.hub and not data.name:
        raise ConfigError("data.source=hub needs data.name (a dataset on the Hugging Face hub)")
    if not cfg.model.from_scratch and not cfg.model.checkpoint:
        raise ConfigError("model.checkpoint is empty: give a hub name or a local directory, or use model=tiny")
    if cfg.model.checkpoint and cfg.model.checkpoint.startswith("pkg:"):
        from qaexp.model.pretrained import resolve_package_checkpoint

        resolve_package_checkpoint(cfg.model.checkpoint)  # a missing package is reported before TensorFlow loads
    _check_evaluation_options(data)
    if cfg.hub.push and not cfg.hub.repo_id:
        raise ConfigError("hub.push=true needs hub.repo_id=USER/NAME (the hub repository to upload to)")
    if cfg.hub.push and not cfg.trainer.save_model:
        raise ConfigError("hub.push=true needs trainer.save_model=true (the saved model directory is what is pushed)")


def _check_evaluation_options(data: DictConfig) -> None:
    from qaexp.limits import NUMBERS, check_value

    if data.null_threshold_tuning != NullTuning.off and not data.version_2_with_negative:
        raise ConfigError(f"data.null_threshold_tuning={data.null_threshold_tuning} needs "
                          "data.version_2_with_negative=true (only SQuAD v2 predicts no-answer)")
    seen: set[str] = set()
    for number, entry in enumerate(data.extra_eval):
        where = f"data.extra_eval[{number}]"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", entry.name or "") or entry.name in seen:
            raise ConfigError(f"{where}.name={entry.name!r} must be a unique name of letters, digits, '_', '.', '-'")
        seen.add(entry.name)
        if entry.source not in [choice.value for choice in EvalSource]:
            raise ConfigError(f"{where}.source={entry.source!r} is not one of json, hub")
        if entry.source == EvalSource.json and not entry.file:
            raise ConfigError(f"{where} ({entry.name}) needs file=PATH (a SQuAD JSON or JSON-lines file)")
        if entry.source == EvalSource.hub and not entry.dataset:
            raise ConfigError(f"{where} ({entry.name}) with source=hub needs dataset=NAME (a hub dataset)")
        check_value(f"{where}.max_eval_samples", entry.max_eval_samples, NUMBERS["data.max_eval_samples"])


# These models number positions from padding_idx + 1 = 2, so two position embeddings are never used.
POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "longformer": 2}


def position_limit(model_type: Optional[str], max_position_embeddings: Optional[int]) -> Optional[int]:
    if max_position_embeddings is None:
        return None
    return max_position_embeddings - POSITION_OFFSET.get(model_type or "", 0)


def check_max_length(max_length: int, limit: Optional[int], limit_name: str) -> None:
    """data.max_length must fit the model's position embeddings (from the config, or a loaded checkpoint's)."""
    if limit is not None and max_length > limit:
        raise ConfigError(f"data.max_length={max_length} exceeds the model's position limit: it must be in "
                          f"[1, {limit}] ({limit_name}={limit})")


def _check_architecture(arch: DictConfig) -> None:
    """The sizes' ranges are in limits.ARCHITECTURE; here, what relates them."""
    hidden, heads = arch.get("hidden_size"), arch.get("num_attention_heads")
    if hidden is not None and heads is not None and hidden % heads:
        raise ConfigError(f"model.architecture.hidden_size={hidden} must be a multiple of "
                          f"model.architecture.num_attention_heads={heads}")


def check_no_unknown_keys(cfg: DictConfig, prefix: str = "") -> None:
    """Reject keys added with `+group.key=value`: Hydra's add-override opens the typed node, so they get in."""
    schema = OmegaConf.get_type(cfg)
    if not dataclasses.is_dataclass(schema):
        return  # a free-form dict (e.g. model.architecture): any key is allowed
    known = {f.name for f in dataclasses.fields(schema)}
    for key, value in cfg.items_ex(resolve=False):
        name = f"{prefix}{key}"
        if name == "hydra":  # present when composed with return_hydra_config=True
            continue
        if key not in known:  # python -m qaexp refuses the command line's before Hydra runs; compose() calls do not
            from qaexp.suggestions import nearest, unknown_key_message

            match = nearest(str(key), known)
            raise ConfigError(unknown_key_message(name, known, prefix + match if match else None))
        if isinstance(value, DictConfig):
            check_no_unknown_keys(value, f"{name}.")
