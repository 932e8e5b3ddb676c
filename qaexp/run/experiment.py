"""One experiment, start to end: data -> tokenizer -> windows -> model -> fit -> answers -> metrics -> save."""
from __future__ import annotations

import logging
import os
import signal
from typing import Iterator, Optional

from omegaconf import DictConfig

from qaexp.run import tracking
from qaexp.config import check_max_length, position_limit, validate
from qaexp.data.squad import load_splits
from qaexp.errors import DataError, HubPushError
from qaexp.run.outcome import Progress, record_failure, record_interrupted, signals_as_interrupts
from qaexp.output.files import save_directory_atomic, storage_errors, write_json_atomic

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: str) -> dict:
    """Run one experiment; metrics.json always ends with its outcome: completed, failed, diverged or interrupted.

    SIGINT and SIGTERM raise RunInterrupted (a KeyboardInterrupt) while the run lasts; the model trained so
    far is saved before it propagates. Errors propagate after metrics.json records them.
    """
    progress = Progress()
    try:
        with signals_as_interrupts():
            return _run(cfg, run_dir, progress)
    except KeyboardInterrupt as err:
        record_interrupted(run_dir, progress, getattr(err, "signum", signal.SIGINT))
        raise
    except HubPushError:  # the run itself completed: metrics.json already says so, and that it was not pushed
        raise
    except Exception as err:
        record_failure(run_dir, progress, err)
        raise


def _save_model(model, tokenizer, save_dir: str) -> None:
    def save(directory: str) -> None:
        model.save_pretrained(directory)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)

    save_directory_atomic(save_dir, save)


def _run(cfg: DictConfig, run_dir: str, progress: Progress) -> dict:
    validate(cfg)
    with tracking.start(cfg, run_dir) as tracker:
        return _experiment(cfg, run_dir, progress, tracker)


def _experiment(cfg: DictConfig, run_dir: str, progress: Progress, tracker: tracking.Tracker) -> dict:
    timer = progress.timer
    data_cfg = cfg.data
    # Data errors are user errors too: find them before the seconds TensorFlow takes to import.
    with timer("load_data"):
        splits = load_splits(data_cfg)
    if splits.validation is None:
        raise DataError("no validation data: set data.validation_file (or a hub split) to evaluate on")

    import tf_keras

    from qaexp.data import windows as features
    from qaexp.evaluation import inference
    from qaexp.model import build as modeling
    from qaexp.training import fit as train
    from qaexp.run import runtime
    from qaexp.run.malloc import keep_freed_memory
    from qaexp.evaluation.metrics import squad_metrics

    runtime.limit_threads(cfg.trainer.threads)
    keep_freed_memory()
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(cfg.trainer.seed)
    with timer("tokenizer"):
        tokenizer = _tokenizer(modeling, cfg, splits.train, run_dir)
    _check_tokenizer_limit(cfg, tokenizer)
    with timer("features"):
        train_windows = _windows(features, splits.train, tokenizer, data_cfg, "train") if splits.train else None
        eval_windows = _windows(features, splits.validation, tokenizer, data_cfg, "validation")

    def evaluate() -> dict:
        start, end, loss = inference.predict_logits(model, eval_windows, cfg.trainer.eval_batch_size,
                                                    tokenizer.pad_token_id, with_loss=True)
        answers = inference.answer(splits.validation, eval_windows, start, end, data_cfg)
        scores = squad_metrics(splits.validation, answers.predictions, version_2=data_cfg.version_2_with_negative)
        return {"loss": loss, "metrics": scores, "answers": answers}

    with runtime.precision_policy(cfg.precision.policy):
        strategy = runtime.build_strategy(cfg.trainer.strategy)
        with timer("build_model"), strategy.scope():
            model = modeling.build_model(cfg.model, tokenizer)
        _check_model_limit(cfg, model)
        history, final, training = _train(cfg, model, train_windows, tokenizer, evaluate, progress, strategy, tracker,
                                          run_dir) \
            if train_windows is not None and cfg.trainer.epochs > 0 else ({}, None, {})
        if final is None:
            with timer("evaluate"):
                final = evaluate()

    with storage_errors(run_dir):
        final["answers"].write(run_dir)
    if cfg.trainer.save_model:
        with timer("save_model"):
            _save_model(model, tokenizer, os.path.join(run_dir, "model"))
        if progress.run_state is not None and not cfg.trainer.keep_checkpoints:
            progress.run_state.remove()
    summary = _summary(cfg, splits, train_windows, eval_windows, history, final, timer)
    summary.update(training)  # resumed, optimizer_steps, best_epoch, early_stopped
    progress.summary = summary
    push_error = _publish(cfg, os.path.join(run_dir, "model"), summary) if cfg.trainer.save_model else None
    write_json_atomic(os.path.join(run_dir, "metrics.json"), summary)
    tracker.log_results(summary, os.path.join(run_dir, "model") if cfg.trainer.save_model else None)
    log.info("exact_match %.2f f1 %.2f -> %s", summary["exact_match"], summary["f1"], run_dir)
    if push_error is not None:
        raise push_error
    return summary


def _publish(cfg: DictConfig, model_dir: str, summary: dict) -> Optional[HubPushError]:
    """Model card into the saved model directory; with hub.push, the upload (its failure is returned, not raised)."""
    from qaexp.output import hub, modelcard

    modelcard.write_model_card(model_dir, cfg, summary)
    return hub.push_run(model_dir, cfg.hub, summary) if cfg.hub.push else None


def _check_tokenizer_limit(cfg: DictConfig, tokenizer) -> None:
    # A checkpoint's tokenizer knows its model's length limit (or holds a huge placeholder): checked before
    # tokenising, the model's own config after loading it.
    if cfg.model.checkpoint and tokenizer.model_max_length < 1_000_000:
        check_max_length(cfg.data.max_length, tokenizer.model_max_length,
                         f"model_max_length of the tokenizer of {cfg.model.checkpoint}")


def _check_model_limit(cfg: DictConfig, model) -> None:
    config = model.config
    limit = position_limit(config.model_type, getattr(config, "max_position_embeddings", None))
    check_max_length(cfg.data.max_length, limit, f"max_position_embeddings of {cfg.model.checkpoint or 'the model'}")


def _training_texts(records: list[dict]) -> Iterator[str]:
    for record in records:
        yield record["question"]
        yield record["context"]


def _tokenizer(modeling, cfg, train_records, run_dir):
    """A resumed run reuses the tokenizer saved with its checkpoints; a from-scratch one comes from the cache.

    Training a WordPiece vocabulary is not deterministic (`tokenizers` breaks ties between equally frequent
    pairs in hash order), so runs on the same data share the first one trained, and a sweep compares like with like.
    """
    from qaexp.data import cache
    from qaexp.training.state import saved_tokenizer

    saved = saved_tokenizer(run_dir) if cfg.trainer.resume else None
    if saved is None:
        if cfg.model.checkpoint or not train_records:
            return modeling.build_tokenizer(cfg.model, _training_texts(train_records) if train_records else None)
        return cache.trained_tokenizer_for(
            train_records, cfg.model.tokenizer_vocab_size, cfg.model.lowercase,
            cfg.data.cache_dir if cfg.data.cache else None,
            lambda: modeling.build_tokenizer(cfg.model, _training_texts(train_records)))
    from transformers import AutoTokenizer

    log.info("resuming: using the tokenizer saved in %s", saved)
    return AutoTokenizer.from_pretrained(saved)


def _windows(features, records, tokenizer, data_cfg, split):
    from qaexp.data import cache

    limit = data_cfg.max_train_samples if split == "train" else data_cfg.max_eval_samples
    windows = cache.windows_for(records, tokenizer, data_cfg.max_length, data_cfg.doc_stride,
                                data_cfg.cache_dir if data_cfg.cache else None, sample_limit=limit,
                                desc=f"tokenising {split}")
    log.info("%s: %d examples -> %d windows", split, len(records), len(windows))
    return windows


def _train(cfg, model, windows, tokenizer, evaluate, progress, strategy, tracker, run_dir):
    """Fit with checkpoints in <run_dir>/checkpoints; returns (history, final evaluation or None, summary items)."""
    from qaexp.training import fit as train
    from qaexp.training.batching import Batcher
    from qaexp.training.state import CHECKPOINT_DIR, RunState

    timer, trainer = progress.timer, cfg.trainer
    batcher = Batcher(windows, trainer.batch_size, padding=trainer.padding, max_length=cfg.data.max_length,
                      pad_id=tokenizer.pad_token_id, multiple=trainer.pad_to_multiple_of,
                      shuffle_seed=trainer.seed, bucket_window=trainer.bucket_window,
                      min_last_batch=strategy.num_replicas_in_sync)
    steps = len(batcher) if trainer.max_steps is None else min(len(batcher), trainer.max_steps)
    with strategy.scope():
        trainable = train.compile_for_training(model, cfg.optimizer, trainer, steps * trainer.epochs)
    state = RunState(os.path.join(run_dir, CHECKPOINT_DIR), model, trainable.optimizer, steps, trainer.epochs,
                     every_steps=trainer.checkpoint_every_steps, keep_best=trainer.keep_best,
                     patience=trainer.early_stopping_patience, chief=strategy.extended.should_checkpoint)
    start = trainable.start_step = state.start(trainer.resume, tokenizer)
    progress.run_state = state
    evaluator = train.make_epoch_evaluator(evaluate)
    guard = train.make_divergence_guard(f"lower optimizer.lr (now {cfg.optimizer.lr:g}), set optimizer.clipnorm, "
                                        "or use precision=fp32")
    log.info("training: %d steps per epoch, %d epochs", steps, trainer.epochs)
    with timer("train"):
        # Order matters: the checkpoint and the tracker's callback use what the evaluator adds to the epoch logs.
        if not state.finished:  # a resumed run may have nothing left to do
            train.fit(trainable, batcher.dataset(start, count=steps * trainer.epochs - start), steps, trainer.epochs,
                      [guard, evaluator, state.callback(evaluator), *tracker.callbacks()],
                      trainer.verbose, initial_epoch=start // steps)
    final = state.best_result if state.final_weights() else evaluator.last  # None: run() evaluates
    return state.history, final, state.summary()


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
