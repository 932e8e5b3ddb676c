"""data.extra_eval: more evaluation sets (local files or hub splits), scored after training with the run's model.

Each set gets its own windows (the run's max_length and doc_stride), answers at the run's no-answer threshold
(for v2 sets) and a table in metrics.json under `extra_eval`; its predictions go to RUN_DIR/extra_eval/NAME/.
"""
from __future__ import annotations

import logging
import os

from omegaconf import DictConfig

from qaexp import rundir
from qaexp.data import cache
from qaexp.data.squad import load_eval_set
from qaexp.evaluation.inference import evaluate
from qaexp.evaluation.settings import AnswerSettings
from qaexp.output.files import storage_errors

log = logging.getLogger(__name__)


def load_extra_sets(data_cfg: DictConfig) -> dict[str, list[dict]]:
    """{name: records} of every data.extra_eval entry, loaded (and checked) before anything heavy is imported."""
    return {entry.name: load_eval_set(entry, data_cfg.on_bad_answer) for entry in data_cfg.extra_eval}


def evaluate_extra_sets(cfg: DictConfig, run_dir: str, model, tokenizer, sets: dict[str, list[dict]],
                        threshold: float) -> dict[str, dict]:
    """{name: its scores and counts}; writes each set's predictions below RUN_DIR/extra_eval/."""
    results = {}
    for entry in cfg.data.extra_eval:
        records = sets[entry.name]
        version_2 = cfg.data.version_2_with_negative if entry.version_2_with_negative is None \
            else entry.version_2_with_negative
        settings = AnswerSettings.of(cfg.data, version_2_with_negative=version_2, null_score_diff_threshold=threshold)
        windows = cache.windows_for(records, tokenizer, cfg.data.max_length, cfg.data.doc_stride,
                                    cfg.data.cache_dir if cfg.data.cache else None,
                                    sample_limit=entry.max_eval_samples, split=entry.name)
        evaluation = evaluate(model, records, windows, cfg.trainer.eval_batch_size, tokenizer.pad_token_id, settings)
        with storage_errors(run_dir):
            evaluation.answers.write(os.path.join(run_dir, rundir.EXTRA_EVAL, entry.name))
        results[entry.name] = {"exact_match": evaluation.scores["exact_match"], "f1": evaluation.scores["f1"],
                               "val_loss": evaluation.loss, "eval_examples": len(records),
                               "eval_windows": len(windows), "version_2_with_negative": bool(version_2),
                               "source": entry.file or f"{entry.dataset}:{entry.split}",
                               **({"squad_v2": evaluation.scores} if version_2 else {})}
        log.info("extra evaluation %s: exact_match %.2f f1 %.2f (%d questions)", entry.name,
                 results[entry.name]["exact_match"], results[entry.name]["f1"], len(records))
    return results
