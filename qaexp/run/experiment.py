"""One experiment as a recipe: data -> runtime -> tokenizer -> windows -> model -> train or evaluate -> save -> publish.

`_experiment` lists the steps; each step is a function below it, in the same order. TensorFlow and transformers
are imported only once the data has loaded, so that config and data errors come within seconds: every module
imported at the top leaves them unloaded (tests/faults/test_errors.py checks sys.modules after validation and data
loading); the two imports of training.state, which loads Keras, stay inside the steps that need it.
"""
from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from typing import ContextManager, Iterator, Optional

from omegaconf import DictConfig, OmegaConf

from qaexp import rundir
from qaexp.analysis.questions import build_questions
from qaexp.analysis.report import write_analysis
from qaexp.backend import current as current_backend
from qaexp.config.validation import validate
from qaexp.data import cache
from qaexp.data.window_rule import check_max_length, position_limit
from qaexp.data.batches import Batcher
from qaexp.data.squad import Splits, load_splits
from qaexp.data.windows import Windows, without_call_state
from qaexp.errors import DataError, HubPushError
from qaexp.evaluation.inference import Evaluation, evaluate
from qaexp.evaluation.settings import AnswerSettings
from qaexp.evaluation.threshold import settle_threshold
from qaexp.model import build
from qaexp.model.families.weights import save_checkpoint
from qaexp.model.locations import PACKAGE_SCHEME
from qaexp.model.pretrained import model_config, resolve_checkpoint, resolve_package_checkpoint, weights_in
from qaexp.model.saved import write_inference_settings
from qaexp.output import hub, modelcard
from qaexp.output.files import save_directory_atomic, storage_errors, write_json_atomic
from qaexp.output.manifest import write_manifest
from qaexp.run import evaluation_sets, hub_needs, tracking
from qaexp.run.outcome import Progress, Status, record_failure, record_interrupted
from qaexp.runtime import process
from qaexp.runtime.signals import signals_as_interrupts
from qaexp.training import fit

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: str) -> dict:
    """Run one experiment; metrics.json always ends with its outcome: completed, failed, diverged or interrupted.

    SIGINT and SIGTERM raise RunInterrupted (a KeyboardInterrupt) while the run lasts; the model trained so
    far is saved before it propagates. Errors propagate after metrics.json records them. Returns what
    metrics.json holds.
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


def _run(cfg: DictConfig, run_dir: str, progress: Progress) -> dict:
    validate(cfg)
    if cfg.model.checkpoint and cfg.model.checkpoint.startswith(PACKAGE_SCHEME):
        resolve_package_checkpoint(cfg.model.checkpoint)  # a missing package: one line before anything loads
    hub_needs.preflight(cfg)  # an unreachable hub is one line here, before anything loads
    with tracking.start(cfg, run_dir) as tracker:
        return _experiment(_Run(cfg, run_dir, progress, tracker))


@dataclass
class _Run:
    """What every step of one run may need: its config, its directory, what it built so far, its tracker."""

    cfg: DictConfig
    directory: str
    progress: Progress
    tracker: tracking.Tracker

    @property
    def model_dir(self) -> str:
        return os.path.join(self.directory, rundir.MODEL)

    def stage(self, name: str) -> ContextManager[None]:
        """Times the block as `name` in metrics.json's `seconds`."""
        return self.progress.timer(name)


@dataclass(frozen=True)
class _Windows:
    """The tokenised windows of both splits."""

    train: Optional[Windows]  # None: nothing to train on (an evaluation-only run)
    validation: Windows


@dataclass(frozen=True)
class _Trained:
    """What training leaves: per-epoch history, the evaluation to report (None: evaluate now), its bookkeeping."""

    history: dict = field(default_factory=dict)
    final: Optional[Evaluation] = None
    details: dict = field(default_factory=dict)  # resumed, optimizer_steps, best_epoch, early_stopped


def _experiment(run: _Run) -> dict:
    cfg = run.cfg
    with run.stage("load_data"):
        splits = _load_data(cfg.data, with_train=cfg.trainer.epochs > 0 or not cfg.model.checkpoint)
        extra_sets = evaluation_sets.load_extra_sets(cfg.data)
    with run.stage("fetch_checkpoint"):
        model_cfg = _fetched(cfg.model)
    process.prepare(cfg.trainer.threads, cfg.trainer.seed, cfg.trainer.cpu_devices)
    with run.stage("tokenizer"):
        tokenizer = _tokenizer(run, model_cfg, splits.train)
    with run.stage("windows"):
        windows = _windows(cfg.data, splits, tokenizer)
    with process.precision_policy(cfg.precision.policy), process.strategy_for_run(cfg.trainer.strategy) as strategy:
        with run.stage("build_model"), strategy.scope():
            model = _model(cfg, model_cfg, tokenizer)
        trained, final = _train_or_evaluate(run, model, tokenizer, splits, windows, strategy)
        final, threshold = settle_threshold(splits.validation, final, cfg.data, cfg.trainer.seed)
        extra = _extra_evaluations(run, model, tokenizer, extra_sets, _threshold_value(cfg, threshold))
    _save_outputs(run, model, tokenizer, final, threshold)
    summary = _summary(cfg, splits, windows, trained, final, run.progress.timer.seconds)
    summary.update({"null_threshold": threshold} if threshold else {}, **({"extra_eval": extra} if extra else {}))
    record = _publish(run, summary)
    _write_analysis(run, splits.validation, windows.validation, final)
    return record


def _extra_evaluations(run: _Run, model, tokenizer, extra_sets: dict, threshold: float) -> dict:
    if not extra_sets:
        return {}
    with run.stage("extra_eval"):
        return evaluation_sets.evaluate_extra_sets(run.cfg, run.directory, model, tokenizer, extra_sets, threshold)


def _threshold_value(cfg: DictConfig, threshold: dict) -> float:
    return threshold["value"] if threshold else cfg.data.null_score_diff_threshold


def _load_data(data_cfg: DictConfig, with_train: bool) -> Splits:
    # Data errors are user errors too: found before the seconds TensorFlow takes to import.
    splits = load_splits(data_cfg, with_train)
    if splits.validation is None:
        raise DataError("no validation data: set data.validation_file (or a hub split) to evaluate on")
    return splits


def _fetched(model_cfg: DictConfig) -> DictConfig:
    """model.checkpoint as a local directory. Hub checkpoints are fetched into (or found in) the Hugging Face
    cache here, before TensorFlow is imported, so that a missing repo, an unreachable hub or a config.json of an
    architecture qaexp has no model for is reported within seconds. The run's own config keeps the name the user gave."""
    if not model_cfg.checkpoint:
        return model_cfg
    directory = resolve_checkpoint(model_cfg.checkpoint, model_cfg.revision)
    model_config(directory)  # a directory of another architecture, refused before TensorFlow loads
    return OmegaConf.merge(model_cfg, {"checkpoint": directory, "revision": None})


def _tokenizer(run: _Run, model_cfg: DictConfig, train_records: Optional[list[dict]]):
    tokenizer = _saved_or_new_tokenizer(run, model_cfg, train_records)
    _check_tokenizer_limit(run.cfg, tokenizer)
    return tokenizer


def _saved_or_new_tokenizer(run: _Run, model_cfg: DictConfig, train_records: Optional[list[dict]]):
    """A resumed run reuses the tokenizer saved with its checkpoints; a from-scratch one trained on the same
    records before is taken from the cache (training it again would give the same vocabulary, only later)."""
    from qaexp.training.state import saved_tokenizer  # imports Keras: not before the data has loaded

    cfg = run.cfg
    saved = saved_tokenizer(run.directory) if cfg.trainer.resume else None
    if saved is not None:
        return saved
    if model_cfg.checkpoint or not train_records:
        return build.build_tokenizer(model_cfg, _training_texts(train_records) if train_records else None)
    return cache.trained_tokenizer_for(
        train_records, model_cfg.tokenizer_vocab_size, model_cfg.lowercase, _cache_dir(cfg.data),
        lambda: build.build_tokenizer(model_cfg, _training_texts(train_records)))


def _training_texts(records: list[dict]) -> Iterator[str]:
    for record in records:
        yield record["question"]
        yield record["context"]


def _check_tokenizer_limit(cfg: DictConfig, tokenizer) -> None:
    # A checkpoint's tokenizer knows its model's length limit (or holds a huge placeholder): checked before
    # tokenising, the model's own config after loading it.
    if cfg.model.checkpoint and tokenizer.model_max_length < 1_000_000:
        check_max_length(cfg.data.max_length, tokenizer.model_max_length,
                         f"model_max_length of the tokenizer of {cfg.model.checkpoint}")


def _windows(data_cfg: DictConfig, splits: Splits, tokenizer) -> _Windows:
    train = _split_windows(data_cfg, splits.train, tokenizer, "train") if splits.train else None
    return _Windows(train, _split_windows(data_cfg, splits.validation, tokenizer, "validation"))


def _split_windows(data_cfg: DictConfig, records: list[dict], tokenizer, split: str):
    limit = data_cfg.max_train_samples if split == "train" else data_cfg.max_eval_samples
    windows = cache.windows_for(records, tokenizer, data_cfg.max_length, data_cfg.doc_stride, _cache_dir(data_cfg),
                                sample_limit=limit, split=split)
    log.info("%s: %d examples -> %d windows", split, len(records), len(windows))
    return windows


def _cache_dir(data_cfg: DictConfig) -> Optional[str]:
    return data_cfg.cache_dir if data_cfg.cache else None


def _model(cfg: DictConfig, model_cfg: DictConfig, tokenizer):
    model = build.build_model(model_cfg, tokenizer)
    _check_model_limit(cfg, model)
    return model


def _check_model_limit(cfg: DictConfig, model) -> None:
    config = model.hf_config
    limit = position_limit(config["model_type"], config.get("max_position_embeddings"))
    check_max_length(cfg.data.max_length, limit, f"max_position_embeddings of {cfg.model.checkpoint or 'the model'}")


def _train_or_evaluate(run: _Run, model, tokenizer, splits: Splits, windows: _Windows, strategy):
    """(what training left, the evaluation to report): fit when there is training data and epochs, else only evaluate."""
    cfg = run.cfg

    def evaluation():
        return evaluate(model, splits.validation, windows.validation, cfg.trainer.eval_batch_size,
                        tokenizer.pad_token_id, AnswerSettings.of(cfg.data))

    trained = _Trained()
    if windows.train is not None and cfg.trainer.epochs > 0:
        trained = _train(run, model, tokenizer, windows.train, evaluation, strategy)
    if trained.final is not None:
        return trained, trained.final
    with run.stage("evaluate"):
        return trained, evaluation()


def _train(run: _Run, model, tokenizer, windows, evaluation, strategy) -> _Trained:
    """Fit with checkpoints in <run dir>/checkpoints, evaluating after every epoch."""
    from qaexp.training.state import RunState, fit_segments  # imports Keras (see saved_tokenizer's import)

    cfg, trainer = run.cfg, run.cfg.trainer
    batcher = Batcher(windows, trainer.batch_size, padding=trainer.padding, max_length=cfg.data.max_length,
                      pad_id=tokenizer.pad_token_id, multiple=trainer.pad_to_multiple_of,
                      shuffle_seed=trainer.seed, bucket_window=trainer.bucket_window,
                      min_last_batch=strategy.num_replicas_in_sync)
    steps = len(batcher) if trainer.max_steps is None else min(len(batcher), trainer.max_steps)
    with strategy.scope():
        trainable = fit.compile_for_training(model, cfg.optimizer, trainer, steps * trainer.epochs)
    state = RunState(os.path.join(run.directory, rundir.CHECKPOINTS), model, trainable.optimizer, steps, trainer.epochs,
                     every_steps=trainer.checkpoint_every_steps, keep_best=trainer.keep_best,
                     patience=trainer.early_stopping_patience, chief=strategy.extended.should_checkpoint)
    start = state.start(trainer.resume, tokenizer)
    run.progress.run_state = state
    evaluator = fit.make_epoch_evaluator(evaluation)
    guard = fit.make_divergence_guard(f"lower optimizer.lr (now {cfg.optimizer.lr:g}), set optimizer.clipnorm, "
                                      "or use precision=fp32")
    keras_verbose, progress_lines = fit.progress_display(trainer.verbose)
    lines = [fit.make_progress_lines(steps, trainer.epochs, start)] if progress_lines else []
    log.info("training: %s per epoch, %s", fit.counted(steps, "step"), fit.counted(trainer.epochs, "epoch"))
    with run.stage("train"):
        # Order matters: the checkpoint and the tracker's callback use what the evaluator adds to the epoch logs;
        # each epoch's progress line comes before its evaluation's.
        callbacks = [guard, *lines, evaluator, state.callback(evaluator), *run.tracker.callbacks()]
        for first, per_epoch, epochs, initial_epoch in fit_segments(start, steps, trainer.epochs):
            if state.finished:  # nothing left (a resumed finished run), or early stopping after the first segment
                break
            # Each fit call gets the batches to the end of training (its epochs draw from the one stream).
            data = batcher.fit_input(first, steps * trainer.epochs - first, row_multiple=strategy.num_replicas_in_sync)
            trainable.fit(data, steps_per_epoch=per_epoch,
                          epochs=epochs, initial_epoch=initial_epoch, verbose=keras_verbose, callbacks=callbacks,
                          shuffle=False)  # the batches come in their own (seeded) order
    final = state.best_result if state.final_weights() else evaluator.last
    return _Trained(state.history, final, state.summary())


def _save_outputs(run: _Run, model, tokenizer, final, threshold: dict) -> None:
    """predictions.json & co.; with trainer.save_model, model/ (then the checkpoints are no longer needed)."""
    with storage_errors(run.directory):
        final.answers.write(run.directory)
    if not run.cfg.trainer.save_model:
        return
    with run.stage("save_model"):
        save_directory_atomic(run.model_dir, lambda directory: _save_pretrained(run.cfg, model, tokenizer, directory,
                                                                                threshold))
    if run.progress.run_state is not None and not run.cfg.trainer.keep_checkpoints:
        run.progress.run_state.remove()


def _save_pretrained(cfg: DictConfig, model, tokenizer, directory: str, threshold: dict) -> None:
    save_checkpoint(model, directory)  # config.json + model.safetensors: what transformers loads, and qaexp too
    tokenizer_files: list[str] = []
    if tokenizer is not None:
        with without_call_state(tokenizer):
            written = tokenizer.save_pretrained(directory)
        tokenizer_files = [os.path.relpath(path, directory) for path in written if os.path.isfile(path)]
    # The weights and every tokenizer file, checked whenever the model is loaded (model/pretrained.check_saved_files)
    write_manifest(directory, weights_in(directory) + tokenizer_files)
    write_inference_settings(directory, cfg.data, _threshold_value(cfg, threshold),
                             threshold.get("source", "configured") if threshold else "configured")


def _write_analysis(run: _Run, examples: list[dict], windows, final) -> None:
    """analysis.md and its plots (trainer.analyze); a failure here costs only the analysis, not the run."""
    if not run.cfg.trainer.analyze:
        return
    try:
        questions = build_questions(examples, final.answers.predictions, run.cfg.data.version_2_with_negative, windows)
        write_analysis(run.directory, questions, run.cfg.data.version_2_with_negative,
                       os.path.basename(os.path.normpath(run.directory)))
    except Exception as err:  # noqa: BLE001 (the run itself is complete and recorded)
        log.warning("the error analysis could not be written (%s); run python -m qaexp.analyze %s", err,
                    run.directory)


def _summary(cfg: DictConfig, splits: Splits, windows: _Windows, trained: _Trained, final: Evaluation,
             seconds: dict) -> dict:
    """What metrics.json records about a completed run (before the upload, if any)."""
    history = trained.history
    return {
        "status": Status.COMPLETED.value,
        "exact_match": final.scores["exact_match"],
        "f1": final.scores["f1"],
        "val_loss": final.loss,
        "train_loss": history["loss"][-1] if history.get("loss") else None,
        "epochs": len(history.get("loss", [])),
        "train_examples": len(splits.train) if splits.train else 0,
        "train_windows": len(windows.train) if windows.train is not None else 0,
        "eval_examples": len(splits.validation),
        "eval_windows": len(windows.validation),
        "history": history,
        "backend": current_backend(),
        "seconds": seconds,
        "data_repairs": splits.repairs,
        **_loss_coverage(splits.validation),
        **({"data_warning": splits.dropped_note} if splits.dropped_note else {}),
        **({"squad_v2": final.scores} if cfg.data.version_2_with_negative else {}),
        **trained.details,
    }


def _loss_coverage(validation: list[dict]) -> dict:
    """`val_loss_examples` when the loss covers fewer questions than the scores (some answers have no known place)."""
    from qaexp.evaluation.inference import labelled_questions

    labelled = labelled_questions(validation)
    return {"val_loss_examples": labelled} if labelled < len(validation) else {}


def final_line(record: dict, directory: str) -> str:
    """The run's last line: its scores, what they cover when not everything the user gave, and where it is."""
    line = f"exact_match {record['exact_match']:.2f} f1 {record['f1']:.2f}"
    if "val_loss_examples" in record:
        unplaced = record["eval_examples"] - record["val_loss_examples"]
        line += (f" on all {record['eval_examples']} validation questions (val_loss on {record['val_loss_examples']}:"
                 f" {unplaced} have no answer at their answer_start)")
    if record.get("data_warning"):
        line += f"; {record['data_warning']}"
    return f"{line} -> {directory}"


def _publish(run: _Run, summary: dict) -> dict:
    """Model card, upload (hub.push), metrics.json and the tracker's summary; returns what metrics.json holds.

    A failed upload is raised only after everything is recorded: the run itself completed.
    """
    run.progress.summary = summary
    saved = run.cfg.trainer.save_model
    if saved:
        modelcard.write_model_card(run.model_dir, run.cfg, summary)
    publication = hub.push_run(run.model_dir, run.cfg.hub) if saved and run.cfg.hub.push else None
    record = {**summary, **(publication.record() if publication else {})}
    run.progress.summary = record
    write_json_atomic(os.path.join(run.directory, rundir.METRICS), record)
    run.tracker.log_results(record, run.model_dir if saved else None)
    log.info("%s", final_line(record, run.directory))
    if publication is not None and publication.error is not None:
        raise publication.error
    return record
