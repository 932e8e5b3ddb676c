"""Transfer benchmark: pretrained MiniLM vs the same architecture randomly initialised, through qaexp's pipeline.

Both variants use model=minilm (same tokenizer, same config); the baseline sets model.random_init=true.
They get an identical step budget (same windows, batch, steps and learning-rate schedule):

* SQuAD v1.1 dev: fine-tune on articles 1-40, evaluate on the 8 held-out articles (41-48);
* synthetic data, difficulty=hard: a short equal budget.

Each run is qaexp.run.experiment.run with a config composed from conf/ (as the CLI would). The budget is in
steps, not seconds, so contention on a shared machine changes the wall time but not the result.
Prints EM/F1 of every run, then one JSON line.

    python benchmarks/finetune_pretrained.py [--steps 400] [--synthetic-steps 120] [--quick]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import qaexp  # noqa: E402,F401  (sets KERAS_BACKEND and quietens the libraries before TensorFlow is imported)

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "squad" / "dev-v1.1.json"
TRAIN_ARTICLES = 40
# One budget for both variants: windows of 256 tokens (stride 96), batches of 16, AdamW with 10% warmup and
# linear decay from 1e-4.
COMMON = ["model=minilm", "optimizer=adamw", "optimizer.lr=1e-4", "trainer.batch_size=16", "trainer.epochs=1",
          "trainer.save_model=false", "trainer.verbose=2", "data.max_length=256", "data.doc_stride=96"]
VARIANTS = {"pretrained": [], "random": ["model.random_init=true"]}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="SQuAD v1.1 dev file (48 articles)")
    parser.add_argument("--steps", type=int, default=400, help="training steps on SQuAD per variant")
    parser.add_argument("--synthetic-steps", type=int, default=120, help="training steps on hard synthetic data")
    parser.add_argument("--out", default=None, help="directory for the runs (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 articles, a few steps")
    return parser.parse_args()


def split_articles(path: str, out_dir: str, quick: bool) -> tuple[str, str]:
    """Official-format train (articles 1-40) and held-out (41-48) files; --quick keeps one article each."""
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    train, held_out = document["data"][:TRAIN_ARTICLES], document["data"][TRAIN_ARTICLES:]
    if quick:
        train, held_out = train[:1], held_out[:1]
    files = []
    for name, articles in (("train.json", train), ("heldout.json", held_out)):
        files.append(os.path.join(out_dir, name))
        with open(files[-1], "w", encoding="utf-8") as f:
            json.dump({"version": document.get("version", "1.1"), "data": articles}, f)
    return files[0], files[1]


def run_experiment(overrides: list[str], run_dir: str) -> dict:
    from hydra import compose, initialize_config_dir

    from qaexp.run.experiment import run

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    started = time.perf_counter()
    summary = run(cfg, run_dir)
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    return summary


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger(__name__).info("qaexp from %s", os.path.dirname(qaexp.__file__))
    steps, synthetic_steps = (3, 2) if args.quick else (args.steps, args.synthetic_steps)
    out = args.out or tempfile.mkdtemp(prefix="finetune_bench-")
    os.makedirs(out, exist_ok=True)
    train_file, heldout_file = split_articles(args.data, out, args.quick)
    squad = ["data=json", f"data.train_file={train_file}", f"data.validation_file={heldout_file}",
             f"trainer.max_steps={steps}"]
    synthetic = ["data=synthetic", "data.difficulty=hard", f"data.num_train={16 * synthetic_steps}",
                 f"data.num_validation={20 if args.quick else 300}", f"trainer.max_steps={synthetic_steps}"]
    results = {}
    for task, task_overrides in (("squad", squad), ("hard_synthetic", synthetic)):
        for variant, variant_overrides in VARIANTS.items():
            run_dir = os.path.join(out, f"{task}-{variant}")
            summary = run_experiment(COMMON + task_overrides + variant_overrides, run_dir)
            results[(task, variant)] = summary
            print(f"{task:15s} {variant:10s} EM {summary['exact_match']:6.2f}  F1 {summary['f1']:6.2f}  "
                  f"windows {summary['train_windows']}  train {summary['seconds'].get('train', 0):.0f}s  "
                  f"-> {run_dir}", flush=True)
    pre, rnd = results[("squad", "pretrained")], results[("squad", "random")]
    print(json.dumps({
        "pretrained_f1": round(pre["f1"], 2), "random_f1": round(rnd["f1"], 2),
        "pretrained_em": round(pre["exact_match"], 2), "random_em": round(rnd["exact_match"], 2),
        "train_windows": pre["train_windows"], "eval_questions": pre["eval_examples"],
        "hard_synthetic_pretrained_em": round(results[("hard_synthetic", "pretrained")]["exact_match"], 2),
        "hard_synthetic_random_em": round(results[("hard_synthetic", "random")]["exact_match"], 2),
        "train_steps": steps, "synthetic_steps": synthetic_steps, "batch_size": 16, "max_length": 256,
        "pretrained_train_seconds": pre["seconds"].get("train"), "random_train_seconds": rnd["seconds"].get("train"),
    }))


if __name__ == "__main__":
    main()
