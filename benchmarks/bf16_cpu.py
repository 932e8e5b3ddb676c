"""float32 vs mixed_bfloat16 on the CPU: the quickstart and a short MiniLM fine-tune, same budget, same seed.

Each run is qaexp.run.experiment.run on a config composed from conf/ (as the CLI would), in one process,
the two policies alternating. Speed is the training stage's wall time and the whole run's process CPU time
(the better measure on a shared machine); quality is EM/F1 of the run's own evaluation. The CPU's bf16 support (qaexp.runtime.cpu.supports_bf16) and the load average are recorded.
Prints one line per run, then one JSON line.

    python benchmarks/bf16_cpu.py [--minilm-steps 30] [--minilm-eval 200] [--quick]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time

from finetune_pretrained import COMMON, DEFAULT_DATA, run_experiment, split_articles

POLICIES = ("fp32", "mixed_bfloat16")
SMALLEST_TINY = ["model.architecture.num_hidden_layers=1", "model.architecture.hidden_size=32",
                 "model.architecture.intermediate_size=64"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="SQuAD v1.1 dev file (48 articles)")
    parser.add_argument("--minilm-steps", type=int, default=30, help="MiniLM training steps per policy")
    parser.add_argument("--minilm-eval", type=int, default=200, help="held-out questions the MiniLM runs answer")
    parser.add_argument("--out", default=None, help="directory for the runs (default: a temporary one)")
    parser.add_argument("--tasks", default="quickstart,minilm", help="comma-separated: quickstart, minilm")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 steps of each (the quickstart's tiny model at 1 layer, 32 wide), "
                        "no warm-up run")
    return parser.parse_args()


def tasks(args, out: str) -> dict:
    train_file, heldout_file = split_articles(args.data, out, args.quick)
    quickstart = ["experiment=quickstart", "trainer.save_model=false", "trainer.verbose=0"]
    if args.quick:  # and a 1-layer, 32-wide tiny model: building and tracing it is most of a smoke run's time
        quickstart += ["data.num_train=32", "data.num_validation=8", "trainer.epochs=1", "trainer.max_steps=2",
                       *SMALLEST_TINY]
    steps, questions = (2, 16) if args.quick else (args.minilm_steps, args.minilm_eval)
    minilm = COMMON + ["data=json", f"data.train_file={train_file}", f"data.validation_file={heldout_file}",
                       f"trainer.max_steps={steps}", f"data.max_eval_samples={questions}", "trainer.verbose=0"]
    return {name: overrides for name, overrides in (("quickstart", quickstart), ("minilm", minilm))
            if name in args.tasks.split(",")}


def main() -> None:
    from qaexp.runtime.cpu import supports_bf16

    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = args.out or tempfile.mkdtemp(prefix="bf16_bench-")
    os.makedirs(out, exist_ok=True)
    figures: dict = {"cpu_bf16": supports_bf16(), "load_before": os.getloadavg()[0]}
    # Untimed: the process's first run pays TensorFlow's one-off start-up, which would count against fp32.
    if not args.quick:  # a smoke run's figures mean nothing: it skips the warm-up
        run_experiment(["experiment=quickstart", "data.num_train=64", "data.num_validation=16", "trainer.epochs=1",
                        "trainer.save_model=false", "trainer.verbose=0"], os.path.join(out, "warm-up"))
    for task, overrides in tasks(args, out).items():
        for policy in POLICIES:
            cpu = time.process_time()
            summary = run_experiment(overrides + [f"precision={policy}"], os.path.join(out, f"{task}-{policy}"))
            train_s = summary["seconds"].get("train", 0.0)
            figures[f"{task}_{policy}"] = {"em": round(summary["exact_match"], 2), "f1": round(summary["f1"], 2),
                                           "train_s": round(train_s, 1), "wall_s": summary["wall_seconds"],
                                           "cpu_s": round(time.process_time() - cpu, 1)}
            print(f"{task:10s} {policy:15s} EM {summary['exact_match']:6.2f}  F1 {summary['f1']:6.2f}  "
                  f"train {train_s:.1f}s  load {os.getloadavg()[0]:.1f}", flush=True)
        fp32, bf16 = figures[f"{task}_fp32"], figures[f"{task}_mixed_bfloat16"]
        figures[f"{task}_bf16_speedup"] = round(fp32["train_s"] / max(bf16["train_s"], 1e-9), 3)
        figures[f"{task}_bf16_cpu_speedup"] = round(fp32["cpu_s"] / max(bf16["cpu_s"], 1e-9), 3)
    figures["load_after"] = os.getloadavg()[0]
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
