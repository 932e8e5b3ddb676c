"""The small training run that the damaged-state, concurrency and signal tests copy, damage, repeat or interrupt.

Single-threaded TensorFlow (trainer.threads=1) so that runs with different thread shares (a plain run, a joblib
job) compute the same numbers; one epoch of the tiny model on 200 synthetic questions.
"""
from __future__ import annotations

import json
import pathlib

# experiment=quickstart's optimizer (adamw without weight decay), which these runs always used
RUN = ["experiment=test_tiny", "optimizer=adamw", "optimizer.weight_decay=0.0", "data.num_train=200",
       "data.num_validation=40", "trainer.epochs=1"]
RESULT_KEYS = ("exact_match", "f1", "train_loss", "val_loss", "history", "train_windows", "eval_windows")


def metrics(run_dir) -> dict | None:
    path = pathlib.Path(run_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def results(run_dir) -> dict:
    """What must not depend on the cache, on concurrency or on which process ran: scores, losses, answers."""
    run_dir = pathlib.Path(run_dir)
    recorded = metrics(run_dir)
    return {**{key: recorded[key] for key in RESULT_KEYS},
            "predictions": json.loads((run_dir / "predictions.json").read_text())}
