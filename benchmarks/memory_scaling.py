"""Peak memory and throughput as the number of windows grows: 40k, 160k and 640k windows (SQuAD dev replicated).

Each size runs in its own process, so its peak RSS (getrusage ru_maxrss) is its own: `rss_mb` is the peak
once the windows are cached, loaded and one training epoch's input has been pulled (what grows with training
data); `eval_rss_mb` the peak after evaluating every window too (it adds per-question Python objects: one
record, one prediction and its n-best list per question). In each process:

1. SQuAD v1.1 dev is tokenised once (MiniLM's uncased vocabulary, max_length 384, stride 128), and its windows
   repeated, chunk by chunk, into a window-cache entry (`qaexp.data.cache.write_columns`, the writer a run
   uses, published with `cache_store.publish`) until the size is reached: the same columnar, memory-mapped
   entry a run with that much data gets;
2. the entry is loaded (memory-mapped) and one epoch of training batches (`Batcher.dataset`, bucketed, batch
   32, what runs feed `fit`) is pulled through tf.data;
3. the windows are evaluated by `inference.predict_answers` (logits streamed in blocks) with a stand-in model
   whose logits are a fixed function of the token ids (a real model would take hours at 640k windows here).

Identity: sampled training batches equal the in-memory padding of the original dev windows, and every copy of
every question gets the answer the in-memory evaluation of dev gives it. Seconds per 100k windows count steps
2-3 plus the cache write, in process CPU time (the machine is shared) and wall time. Prints one line per size, then one JSON line.

    python benchmarks/memory_scaling.py [--sizes 40000,160000,640000]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import qaexp  # noqa: E402,F401  (sets KERAS_BACKEND and quietens the libraries before TensorFlow is imported)

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "squad" / "dev-v1.1.json"
BATCH, EVAL_BATCH, SAMPLED_BATCHES = 32, 64, 50


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="SQuAD v1.1 dev file")
    parser.add_argument("--sizes", default="40000,160000,640000", help="comma-separated window counts")
    parser.add_argument("--questions", type=int, default=None, help="use only the first N dev questions")
    parser.add_argument("--smoke", action="store_true",
                        help="smoke test: every size in this one process (quicker; the peaks are then cumulative)")
    parser.add_argument("--one-size", type=int, default=None, help=argparse.SUPPRESS)  # the child process
    return parser.parse_args()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class TokenLogits:
    """A stand-in QA model: start/end logits are fixed pseudo-random functions of the token ids. It has the
    interface of qaexp's Keras 3 models (qaexp.model.families) that evaluation uses: `select_inputs` and a call
    returning {"start_logits", "end_logits"}."""

    input_names = ("input_ids", "attention_mask")

    def __init__(self, vocab_size: int):
        import numpy as np
        import tensorflow as tf

        rng = np.random.default_rng(0)
        self.start, self.end = (tf.constant(rng.normal(size=vocab_size).astype("float32")) for _ in range(2))

    def select_inputs(self, features: dict) -> dict:
        return {name: features[name] for name in self.input_names if name in features}

    def __call__(self, batch, training=False):
        import tensorflow as tf

        ids = batch["input_ids"]
        return {"start_logits": tf.gather(self.start, ids), "end_logits": tf.gather(self.end, ids)}


def repeated_chunks(windows, copies: int, questions: int):
    """The dev windows `copies` times, each copy's example indices shifted past the previous copies'."""
    from dataclasses import replace

    for copy in range(copies):
        yield replace(windows, example_index=windows.example_index + copy * questions)


def one_size(args, target: int) -> dict:
    import numpy as np

    from feature_prep import vocab_file
    from qaexp.data import cache, cache_store
    from qaexp.data.squad import read_records
    from qaexp.data.windows import tokenize_windows
    from qaexp.evaluation import inference
    from qaexp.evaluation.settings import AnswerSettings
    from qaexp.data.batches import Batcher, pad_batch
    from transformers import BertTokenizerFast

    # vocab=, not vocab_file=: transformers 5 ignores vocab_file= and builds a 5-token vocabulary
    tokenizer = BertTokenizerFast(vocab=vocab_file(), do_lower_case=True)
    dev = read_records(args.data)[: args.questions]
    dev_windows = tokenize_windows(dev, tokenizer, 384, 128, progress=False)
    copies = -(-target // len(dev_windows))
    settings = AnswerSettings(max_length=384, doc_stride=128, max_answer_length=30, n_best_size=1,
                              version_2_with_negative=False, null_score_diff_threshold=0.0)
    model = TokenLogits(tokenizer.vocab_size)
    reference, _ = inference.predict_answers(model, dev, dev_windows, EVAL_BATCH, tokenizer.pad_token_id, settings)

    started, cpu_started = time.perf_counter(), cpu_seconds()
    path = os.path.join(tempfile.mkdtemp(prefix="memory_scaling-"), "entry")
    chunks = repeated_chunks(dev_windows, copies, len(dev))
    cache_store.publish(path, lambda directory: cache.write_columns(directory, chunks, tokenizer.model_input_names))
    windows = cache.load(path)
    stage_cpu = {"cache_write": cpu_seconds() - cpu_started}
    batcher = Batcher(windows, BATCH, padding="bucketed", max_length=384, pad_id=tokenizer.pad_token_id,
                      shuffle_seed=42)
    order = batcher.order(0)
    identical = True
    for n, batch in enumerate(batcher.dataset(0, len(batcher))):
        if n % max(1, len(order) // SAMPLED_BATCHES) == 0:
            expected = pad_batch(dev_windows, order[n] % len(dev_windows), batch["input_ids"].shape[1],
                                 tokenizer.pad_token_id, True)
            identical &= all(np.array_equal(batch[name].numpy(), expected[name]) for name in expected)
    train_rss = peak_rss_mb()  # the windows and the training input: what grows with the training data
    stage_cpu["epoch"] = cpu_seconds() - cpu_started - sum(stage_cpu.values())
    records = [dict(r, id=f"{r['id']}-{c}") for c in range(copies) for r in dev]
    answers, _ = inference.predict_answers(model, records, windows, EVAL_BATCH, tokenizer.pad_token_id, settings)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    stage_cpu["evaluation"] = cpu - sum(stage_cpu.values())
    identical &= all(answers.predictions[f"{r['id']}-{c}"] == reference.predictions[r["id"]]
                     for c in range(copies) for r in dev)
    return {"windows": len(windows), "rss_mb": train_rss, "eval_rss_mb": peak_rss_mb(),
            "s_per_100k": 1e5 * seconds / len(windows), "cpu_s_per_100k": 1e5 * cpu / len(windows),
            "stage_cpu_s_per_100k": {stage: round(1e5 * value / len(windows), 2) for stage, value in stage_cpu.items()},
            "identical": bool(identical), "batches": len(batcher),
            "questions": len(records), "load": os.getloadavg()[0]}


def in_own_process(args, size: int) -> dict:
    command = [sys.executable, __file__, "--data", args.data, "--one-size", str(size)]
    if args.questions:
        command += ["--questions", str(args.questions)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"memory_scaling: the {size}-window run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.one_size is not None:
        print(json.dumps(one_size(args, args.one_size)))
        return
    if not os.path.exists(args.data):
        sys.exit(f"memory_scaling: {args.data} not found (pass --data PATH to SQuAD v1.1 dev)")
    results = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        results[size] = one_size(args, size) if args.smoke else in_own_process(args, size)
        r = results[size]
        print(f"{size:>7} target: {r['windows']} windows, peak RSS {r['rss_mb']:.0f} MB (training input), "
              f"{r['eval_rss_mb']:.0f} MB (after evaluating all), "
              f"{r['cpu_s_per_100k']:.1f} CPU s ({r['s_per_100k']:.1f} wall s) per 100k windows "
              f"{r['stage_cpu_s_per_100k']}, identical {r['identical']}, load {r['load']:.1f}", flush=True)
    sizes = list(results)
    print(json.dumps({"rss_mb": {str(s): round(results[s]["rss_mb"]) for s in sizes},
                      "rss_growth_mb": round(results[sizes[-1]]["rss_mb"] - results[sizes[0]]["rss_mb"]),
                      "identical": all(r["identical"] for r in results.values()),
                      "eval_rss_mb": {str(s): round(results[s]["eval_rss_mb"]) for s in sizes},
                      "cpu_s_per_100k": {str(s): round(results[s]["cpu_s_per_100k"], 2) for s in sizes},
                      "wall_s_per_100k": {str(s): round(results[s]["s_per_100k"], 2) for s in sizes},
                      "stage_cpu_s_per_100k": {str(s): results[s]["stage_cpu_s_per_100k"] for s in sizes},
                      "windows": {str(s): results[s]["windows"] for s in sizes}}))


if __name__ == "__main__":
    main()
