"""Building a Keras model: qaexp's way (composite layers build their sub-layers on the first call) against Keras'
default (each composite layer's `call` traced on symbolic inputs before the first call), side by side.

The default side is the same classes with their `build` taken back to Keras' own, which is what qaexp had before;
the two sides alternate, so both see the same machine. Each build is timed in process CPU seconds (the better measure
on a shared machine). Both sides must give the same weight names, shapes and (from the same seed) values: the
script says so and stops otherwise. Prints one line per side and family, then one JSON line.

    python benchmarks/model_build.py [--families bert,deberta-v2,modernbert] [--layers 12] [--hidden 768] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys

SIDES = ("qaexp", "keras_default")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="bert,deberta-v2,modernbert", help="model types, comma-separated")
    parser.add_argument("--layers", type=int, default=12, help="encoder layers (12: a base-sized model)")
    parser.add_argument("--hidden", type=int, default=768, help="hidden size (heads: hidden / 64)")
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--repeats", type=int, default=3, help="builds per side and family (the median is kept)")
    return parser.parse_args()


def config(family: str, layers: int, hidden: int, vocab: int) -> dict:
    heads = max(1, hidden // 64)
    if family == "distilbert":
        return dict(model_type=family, vocab_size=vocab, dim=hidden, n_layers=layers, n_heads=heads,
                    hidden_dim=4 * hidden)
    common = dict(model_type=family, vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                  num_attention_heads=heads, intermediate_size=4 * hidden, max_position_embeddings=512)
    if family == "deberta-v2":
        common.update(relative_attention=True, position_buckets=256, pos_att_type=["p2c", "c2p"],
                      max_relative_positions=-1, position_biased_input=False, type_vocab_size=0,
                      norm_rel_ebd="layer_norm", share_att_key=True)
    if family == "modernbert":
        common.update(max_position_embeddings=8192, global_attn_every_n_layers=3, local_attention=128)
    return common


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class KerasDefaultBuild:
    """Within the block, qaexp's composite layers build as Keras does by default (a symbolic trace of `call`)."""

    def __enter__(self):
        import keras

        from qaexp.model.families.common import Composite, QuestionAnsweringModel

        # The families' layers inherit Composite's build; those that own variables (DeBERTa's, RoFormer's backbones)
        # define their own and keep it on both sides, as they had it before.
        self.saved = [(cls, cls.__dict__["build"]) for cls in (Composite, QuestionAnsweringModel)]
        Composite.build = keras.layers.Layer.build
        QuestionAnsweringModel.build = keras.Model.build
        return self

    def __exit__(self, *exc):
        for cls, build in self.saved:
            cls.build = build
        return False


def build_once(family_config: dict, seed: int = 0):
    import keras

    from qaexp.model.families import build_qa_model

    keras.utils.set_random_seed(seed)
    start = cpu()
    model = build_qa_model(family_config)
    return cpu() - start, {name: variable.numpy() for name, (variable, _) in model.hf_weights().items()}


def same_weights(a: dict, b: dict) -> bool:
    import numpy as np

    return list(a) == list(b) and all(a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)


def main() -> int:
    args = parse_args()
    from qaexp.quiet import import_tensorflow

    import_tensorflow()
    results = {}
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        family_config = config(family, args.layers, args.hidden, args.vocab)
        times = {side: [] for side in SIDES}
        weights = {}
        for _ in range(args.repeats):
            for side in SIDES:  # alternating: both sides see the same load
                if side == "qaexp":
                    seconds, weights[side] = build_once(family_config)
                else:
                    with KerasDefaultBuild():
                        seconds, weights[side] = build_once(family_config)
                times[side].append(seconds)
        if not same_weights(weights["qaexp"], weights["keras_default"]):
            print(f"{family}: the two builds differ in their weights", file=sys.stderr)
            return 1
        medians = {side: statistics.median(times[side]) for side in SIDES}
        for side in SIDES:
            print(f"{family:12s} {side:14s} median {medians[side]:.2f} CPU s over {args.repeats} builds "
                  f"({', '.join(f'{t:.2f}' for t in times[side])})")
        results[family] = {**{f"{side}_cpu_s": round(medians[side], 3) for side in SIDES},
                           "speedup": round(medians["keras_default"] / medians["qaexp"], 3),
                           "same_weights": True}
    print(json.dumps({"layers": args.layers, "hidden": args.hidden, "repeats": args.repeats, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
