"""One experiment, start to end: data -> tokenizer -> windows -> model -> fit -> answers -> metrics -> save."""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from omegaconf import DictConfig

from qaexp.config import validate
from qaexp.data import load_splits
from qaexp.errors import DataError
from qaexp.results import write_json_atomic

log = logging.getLogger(__name__)


class StageTimer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[stage] = round(time.perf_counter() - started, 3)
        log.info("%s: %.1fs", stage, self.seconds[stage])


def run(cfg: DictConfig, run_dir: str) -> dict:
    validate(cfg)
    import tf_keras

    from qaexp import features, inference, modeling, train
    from qaexp.metrics import squad_metrics

    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(cfg.trainer.seed)
    timer = StageTimer()
    data_cfg = cfg.data

    with timer("load_data"):
        splits = load_splits(data_cfg)
    if splits.validation is None:
        raise DataError("no validation data: set data.validation_file (or a hub split) to evaluate on")
    with timer("tokenizer"):
        texts = _training_texts(splits.train) if splits.train else None
        tokenizer = modeling.build_tokenizer(cfg.model, texts)
    with timer("features"):
        train_windows = _windows(features, splits.train, tokenizer, data_cfg, "train") if splits.train else None
        eval_windows = _windows(features, splits.validation, tokenizer, data_cfg, "validation")

    def evaluate() -> dict:
        start, end, loss = inference.predict_logits(model, eval_windows, cfg.trainer.eval_batch_size,
                                                    tokenizer.pad_token_id, with_loss=True)
        answers = inference.answer(splits.validation, eval_windows, start, end, data_cfg)
        scores = squad_metrics(splits.validation, answers.predictions, version_2=data_cfg.version_2_with_negative)
        return {"loss": loss, "metrics": scores, "answers": answers}

    with modeling.precision_policy(cfg.precision.policy):
        strategy = modeling.build_strategy(cfg.trainer.strategy)
        with timer("build_model"), strategy.scope():
            model = modeling.build_model(cfg.model, tokenizer)
        history, final = _train(cfg, model, train_windows, tokenizer, evaluate, timer, strategy) \
            if train_windows is not None else ({}, None)
        if final is None:
            with timer("evaluate"):
                final = evaluate()

    final["answers"].write(run_dir)
    if cfg.trainer.save_model:
        with timer("save_model"):
            save_dir = os.path.join(run_dir, "model")
            model.save_pretrained(save_dir)
            tokenizer.save_pretrained(save_dir)
    summary = _summary(cfg, splits, train_windows, eval_windows, history, final, timer)
    write_json_atomic(os.path.join(run_dir, "metrics.json"), summary)
    log.info("exact_match %.2f f1 %.2f -> %s", summary["exact_match"], summary["f1"], run_dir)
    return summary


def _training_texts(records: list[dict]) -> Iterator[str]:
    for record in records:
        yield record["question"]
        yield record["context"]


def _windows(features, records, tokenizer, data_cfg, split):
    windows = features.tokenize_windows(records, tokenizer, data_cfg.max_length, data_cfg.doc_stride,
                                        desc=f"tokenising {split}")
    log.info("%s: %d examples -> %d windows", split, len(records), len(windows))
    return windows


def _train(cfg, model, windows, tokenizer, evaluate, timer, strategy):
    from qaexp import train
    from qaexp.pipeline import Batcher

    trainer = cfg.trainer
    batcher = Batcher(windows, trainer.batch_size, padding=trainer.padding, max_length=cfg.data.max_length,
                      pad_id=tokenizer.pad_token_id, multiple=trainer.pad_to_multiple_of,
                      shuffle_seed=trainer.seed, bucket_window=trainer.bucket_window)
    steps = len(batcher) if trainer.max_steps is None else min(len(batcher), trainer.max_steps)
    with strategy.scope():
        model.compile(optimizer=train.build_optimizer(cfg.optimizer, steps * trainer.epochs),
                      steps_per_execution=trainer.steps_per_execution, jit_compile=trainer.jit_compile)
    evaluator = train.make_epoch_evaluator(evaluate)
    with timer("train"):
        history = train.fit(model, batcher.dataset().repeat(), steps, trainer.epochs, [evaluator], trainer.verbose)
    return history, evaluator.last


def _summary(cfg, splits, train_windows, eval_windows, history, final, timer) -> dict:
    scores = final["metrics"]
    summary: dict = {
        "status": "completed",
        "exact_match": scores["exact_match"],
        "f1": scores["f1"],
        "val_loss": final["loss"],
        "train_loss": history["loss"][-1] if history.get("loss") else None,
        "epochs": len(history.get("loss", [])),
        "train_examples": len(splits.train) if splits.train else 0,
        "train_windows": len(train_windows) if train_windows is not None else 0,
        "eval_examples": len(splits.validation),
        "eval_windows": len(eval_windows),
        "history": history,
        "seconds": timer.seconds,
        "data_repairs": splits.repairs,
    }
    if cfg.data.version_2_with_negative:
        summary["squad_v2"] = scores
    return summary
