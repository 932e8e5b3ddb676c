"""TensorFlow vs JAX (issue 26): training steps per second and inference questions per second of qaexp's own Keras 3
models on each Keras backend, side by side in one run.

Models, random weights (their speed does not depend on the values): a MiniLM-sized BERT (6 layers, hidden 384,
12 heads, FFN 1536, BERT's vocab: sentence-transformers/all-MiniLM-L6-v2's shape) and a distilbert-sized DistilBERT
(6 layers, hidden 768, 12 heads, FFN 3072). float32, dropout as the configs have it (0.1).

Variants: `tensorflow` (the default: qaexp's QATrainingModel compiled with jit_compile=False; evaluation's
tf.function), `tensorflow_xla` (jit_compile=True; the forward pass as tf.function(jit_compile=True)) and `jax`
(Keras' own JAX fit with qaexp's stateless step, XLA always; evaluation's jax.jit). Each backend runs in a process of
its own (Keras has one backend per process), one after the other: TensorFlow's two variants, then JAX.

Training: `fit` on one batch repeated (`--batch` rows, `--width` tokens, rows of random lengths in (width/2, width],
right padding, random answer positions), Adam; one warm-up fit of 2 steps (tracing, compilation) is not timed, then
`--steps` steps are, in one fit call. Inference: qaexp's evaluation forward pass (`evaluation.inference
._forward_function`) on `--eval-batch` rows of the same shape, one warm-up call, then `--calls` timed calls; a
question is one window here. Time: wall seconds and process CPU seconds (all threads).

    python benchmarks/backends.py                    # the defaults: batch 8 x 128, 4 steps, 2 inference calls
    python benchmarks/backends.py --width 192 --steps 8 --calls 4   # docs/benchmarks.md's run (18 min at load 7-9)
    python benchmarks/backends.py --smoke            # tiny models, seconds

Prints a table, then one JSON line as the last line: for each model, JAX's speed over each TensorFlow variant's
(> 1: JAX is faster) for training steps/s and inference questions/s, by wall time and by CPU time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MODELS = {
    "minilm_sized": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
                     "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512,
                     "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
                     "attention_probs_dropout_prob": 0.1, "layer_norm_eps": 1e-12},
    "distilbert_sized": {"model_type": "distilbert", "vocab_size": 30522, "dim": 768, "n_layers": 6, "n_heads": 12,
                         "hidden_dim": 3072, "max_position_embeddings": 512, "activation": "gelu", "dropout": 0.1,
                         "attention_dropout": 0.1},
}
SMOKE = {
    "minilm_sized": dict(MODELS["minilm_sized"], vocab_size=100, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=37),
    "distilbert_sized": dict(MODELS["distilbert_sized"], vocab_size=100, dim=32, n_layers=1, n_heads=2,
                             hidden_dim=37),
}
VARIANTS = {"tensorflow": ("tensorflow", False), "tensorflow_xla": ("tensorflow", True), "jax": ("jax", True)}


def batch_of(rows: int, width: int, seed: int, vocab: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = rng.integers(width // 2 + 1, width + 1, rows)
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int32)
    starts = rng.integers(1, lengths // 2)
    return {"input_ids": (rng.integers(1, vocab, (rows, width)) * mask).astype(np.int32),
            "token_type_ids": np.zeros((rows, width), np.int32), "attention_mask": mask,
            "start_positions": starts.astype(np.int32), "end_positions": (starts + 3).astype(np.int32)}


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def measure(backend: str, args) -> dict:
    """In a process whose Keras backend is `backend`: every model, every variant of that backend."""
    import keras
    import numpy as np

    from qaexp.evaluation.inference import _forward_function
    from qaexp.model.families import build_qa_model
    from qaexp.training.qa_model import QATrainingModel

    keras.utils.set_random_seed(0)
    results = {}
    for name, config in (SMOKE if args.smoke else MODELS).items():
        train = batch_of(args.batch, args.width, 0, config["vocab_size"])
        evaluate = {k: v for k, v in batch_of(args.eval_batch, args.width, 1, config["vocab_size"]).items()
                    if "positions" not in k}
        for variant, (on, xla) in VARIANTS.items():
            if on != backend:
                continue
            model = build_qa_model(dict(config))
            trainable = QATrainingModel(model)
            trainable.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=xla, auto_scale_loss=False)
            trainable.optimizer.build(model.trainable_variables)
            data = training_input(backend, train)
            trainable.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # tracing and compilation
            wall, cpu = clocks()
            trainable.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
            np.asarray(keras.ops.convert_to_numpy(model.trainable_variables[0]))  # JAX dispatches asynchronously
            train_wall, train_cpu = (end - begin for end, begin in zip(clocks(), (wall, cpu)))
            forward = forward_function(model, xla, _forward_function)
            np.asarray(forward(evaluate)[0])
            wall, cpu = clocks()
            for _ in range(args.calls):
                np.asarray(forward(evaluate)[0])
            infer_wall, infer_cpu = (end - begin for end, begin in zip(clocks(), (wall, cpu)))
            results.setdefault(name, {})[variant] = {
                "train_steps_per_s": args.steps / train_wall, "train_cpu_s_per_step": train_cpu / args.steps,
                "questions_per_s": args.calls * args.eval_batch / infer_wall,
                "infer_cpu_s_per_question": infer_cpu / (args.calls * args.eval_batch)}
            print(f"{backend}: {name} {variant} done", file=sys.stderr, flush=True)
    return results


def training_input(backend: str, batch: dict):
    """The same batch for ever: a repeated tf.data dataset on TensorFlow, a generator on JAX (what qaexp feeds)."""
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.data.Dataset.from_tensors(batch).repeat()

    def forever():
        while True:
            yield (batch,)
    return forever()


def forward_function(model, xla: bool, qaexp_forward):
    """qaexp's evaluation forward pass; for tensorflow_xla the same computation under tf.function(jit_compile=True)."""
    if not xla or model is None:
        return qaexp_forward(model, with_loss=False)
    from qaexp.backend import is_jax

    if is_jax():
        return qaexp_forward(model, with_loss=False)
    import tensorflow as tf

    from qaexp.training.qa_model import model_inputs

    @tf.function(jit_compile=True, reduce_retracing=True)
    def forward(batch):
        out = model(model_inputs(model, batch), training=False)
        return out["start_logits"], out["end_logits"]

    return forward


def worker(backend: str, args) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                                                    os.environ.get("PYTHONPATH", "")])}
    env.pop("QAEXP_DEFAULT_BACKEND", None)
    argv = [sys.executable, __file__, "--worker", backend, *sys.argv[1:]]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the {backend} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--eval-batch", type=int, default=32)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny models, a few steps: seconds")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.width, args.steps, args.eval_batch, args.calls = 4, 16, 2, 4, 2
    if args.worker:
        print(json.dumps(measure(args.worker, args)))
        return
    started = time.perf_counter()
    results: dict = {}
    for backend in ("tensorflow", "jax"):
        for name, variants in worker(backend, args).items():
            results.setdefault(name, {}).update(variants)
    print(f"batch {args.batch} x {args.width} tokens (training, {args.steps} steps), {args.eval_batch} x "
          f"{args.width} (inference, {args.calls} calls); {time.perf_counter() - started:.0f} s in all")
    print(f"{'model':<18}{'variant':<16}{'train steps/s':>14}{'CPU s/step':>12}{'questions/s':>13}{'CPU ms/q':>10}")
    ratios = {}
    for name, variants in results.items():
        for variant, r in variants.items():
            print(f"{name:<18}{variant:<16}{r['train_steps_per_s']:>14.3f}{r['train_cpu_s_per_step']:>12.3f}"
                  f"{r['questions_per_s']:>13.1f}{1000 * r['infer_cpu_s_per_question']:>10.1f}")
        jax = variants["jax"]
        for base in ("tensorflow", "tensorflow_xla"):
            tf = variants[base]
            ratios[f"{name}_train_jax_over_{base}"] = round(jax["train_steps_per_s"] / tf["train_steps_per_s"], 3)
            ratios[f"{name}_train_cpu_jax_over_{base}"] = round(tf["train_cpu_s_per_step"]
                                                                 / jax["train_cpu_s_per_step"], 3)
            ratios[f"{name}_infer_jax_over_{base}"] = round(jax["questions_per_s"] / tf["questions_per_s"], 3)
            ratios[f"{name}_infer_cpu_jax_over_{base}"] = round(tf["infer_cpu_s_per_question"]
                                                                 / jax["infer_cpu_s_per_question"], 3)
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
