"""GPU training throughput: fp32 with fixed padding vs mixed_bfloat16 + XLA + bucketed padding, side by side.

Model: a randomly initialised distilbert-sized BERT (6 layers, hidden 768, 12 heads, FFN 3072), trained by
qaexp's train step (Adam). Windows are SQuAD-like: random token ids whose lengths follow the window lengths
of SQuAD v1.1 dev at max_length 384 / doc_stride 128 (quantiles below, measured with the uncased BERT vocab),
so the benchmark needs no data files on the GPU machine. Warm-up runs one batch of every padded width the timed steps use (XLA
compiles one program per shape) and is not timed; then --steps batches of the epoch's shuffled order are.
The projected epoch is SQuAD v1.1 train's 88.7k windows at the fast configuration's rate.

    python benchmarks/gpu_epoch.py [--batch-size 32] [--steps 100]

Without a visible GPU it says so and exits 0 with no figures (--allow-cpu runs the code path anyway, e.g.
`--allow-cpu --smoke --model micro --steps 1`, as a smoke test whose figures mean nothing). The last line of
output is one JSON line.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from qaexp.data.windows import Rows, Windows  # noqa: E402
from qaexp.data.batches import Batcher  # noqa: E402

MAX_LENGTH = 384
TRAIN_WINDOWS = 88_700  # SQuAD v1.1 train at max_length 384, doc_stride 128
VOCAB_SIZE = 30_522
# Window lengths of SQuAD v1.1 dev (10,784 windows) at the 0, 5, ..., 100th percentiles.
LENGTH_QUANTILES = [41, 88, 110, 120, 127, 133, 138, 144, 150, 156, 164, 171, 179, 186, 196, 207, 219, 237, 264, 304,
                    384]
ARCHITECTURES = {
    "distilbert_sized": {"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 6,
                         "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512},
    "tiny": {"model_type": "bert", "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 256, "max_position_embeddings": 512},
    # the smallest model the code path runs with (the test suite's smoke run: building and tracing cost CPU time)
    "micro": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 64, "max_position_embeddings": 512},
}
CONFIGS = {  # name: (precision policy, padding, XLA)
    "fp32_fixed": ("float32", "max_length", False),
    "fast": ("mixed_bfloat16", "bucketed", True),
}
PAD_MULTIPLE = 64  # bucketed widths are multiples of this: 6 shapes for XLA to compile


def squad_like_windows(n: int, seed: int = 0) -> Windows:
    rng = np.random.default_rng(seed)
    lengths = np.interp(rng.uniform(0, 20, n), np.arange(21), LENGTH_QUANTILES).round().astype(int)
    ids = [np.concatenate([[101], rng.integers(1000, VOCAB_SIZE, length - 2), [102]]) for length in lengths]
    starts = np.array([rng.integers(1, length - 1) for length in lengths])
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    total = int(bounds[-1])
    return Windows(inputs={"input_ids": Rows(np.concatenate(ids).astype(np.int32), bounds),
                           "token_type_ids": Rows(np.zeros(total, np.int32), bounds),
                           "attention_mask": Rows(np.ones(total, np.int32), bounds)},
                   start_positions=starts, end_positions=np.minimum(starts + 3, lengths - 2),
                   example_index=np.arange(n), cls_index=np.zeros(n, int),
                   offsets=Rows(np.zeros((total, 2), np.int32), bounds))


class _Tokenizer:
    """What modeling.build_model reads from a tokenizer."""

    pad_token_id = 0

    def __len__(self):
        return VOCAB_SIZE


def throughput(config: str, windows: Windows, args) -> float:
    import tensorflow as tf
    import keras
    from omegaconf import OmegaConf

    from qaexp.model.build import build_model
    from qaexp.runtime.process import precision_policy
    from qaexp.training.qa_model import QATrainingModel

    policy, padding, xla = CONFIGS[config]
    xla = xla and not args.smoke  # XLA's compilation alone takes minutes on a busy CPU
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    batcher = Batcher(windows, args.batch_size, padding=padding, max_length=MAX_LENGTH, pad_id=0,
                      multiple=PAD_MULTIPLE, shuffle_seed=0)
    with precision_policy(policy):
        model_cfg = OmegaConf.create({"checkpoint": None, "architecture": ARCHITECTURES[args.model]})
        trainable = QATrainingModel(build_model(model_cfg, _Tokenizer()))
        trainable.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=xla)
        order = batcher.order(epoch=0)
        timed = order[: args.steps]
        by_width = {}
        for idx in timed:  # every shape the timed steps use (all 6 widths in a full run)
            by_width.setdefault(batcher.pad(idx)["input_ids"].shape[1], idx)
        warmup = list(by_width.values())
        signature = {name: tf.TensorSpec((None,) if name.endswith("positions") else (None, None), tf.int32)
                     for name in batcher.pad(order[0])}

        warmup_data = tf.data.Dataset.from_generator(lambda: (batcher.pad(idx) for idx in warmup),
                                                     output_signature=signature)
        trainable.fit(warmup_data, steps_per_epoch=len(warmup), verbose=0)
        timed_data = batcher.dataset(0, count=len(timed))  # qaexp's own input pipeline, as a run feeds it
        started = time.perf_counter()
        trainable.fit(timed_data, steps_per_epoch=len(timed), verbose=0)
        float(trainable.optimizer.iterations.numpy())  # waits for the device to finish
        seconds = time.perf_counter() - started
    examples = sum(len(idx) for idx in timed)
    print(f"{config:>10} ({policy}, {padding}, xla={xla}): {examples / seconds:9.1f} examples/s "
          f"({len(timed)} steps of {args.batch_size} in {seconds:.1f}s; {len(warmup)} warm-up shapes)", flush=True)
    return examples / seconds


def gpu_name() -> str | None:
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1") or not glob.glob("/dev/nvidia[0-9]*"):
        return None  # no GPU device: known without the seconds TensorFlow takes to import
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--model", choices=sorted(ARCHITECTURES), default="distilbert_sized")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (a smoke test)")
    parser.add_argument("--smoke", action="store_true", help="smoke test: only --steps x --batch-size windows, no XLA")
    args = parser.parse_args()
    gpu = gpu_name()
    if gpu is None and not args.allow_cpu:
        print("gpu_epoch: no GPU is visible, so there is nothing to measure (run it on a GPU machine)")
        print(json.dumps({"gpu": None, "skipped": "no GPU visible"}))
        return
    windows = squad_like_windows(args.steps * args.batch_size if args.smoke else max(args.steps * args.batch_size, 4096))
    fp32 = throughput("fp32_fixed", windows, args)
    fast = throughput("fast", windows, args)
    print(json.dumps({"fp32_fixed_ex_s": round(fp32, 2), "fast_ex_s": round(fast, 2),
                      "speedup": round(fast / fp32, 3), "projected_epoch_s": round(TRAIN_WINDOWS / fast, 1),
                      "gpu": gpu or "none (CPU smoke run)", "model": args.model, "batch_size": args.batch_size,
                      "steps": args.steps}))


if __name__ == "__main__":
    main()
