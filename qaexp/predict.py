"""`python -m qaexp.predict MODEL_DIR --question Q --context C`: answer one question with a saved model."""
from __future__ import annotations

import argparse
import json
import sys
from types import SimpleNamespace

from qaexp.errors import QAExpError


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="qaexp predict", description=__doc__)
    parser.add_argument("model_dir", help="a model directory written by a qaexp run (RUN_DIR/model)")
    parser.add_argument("--question", required=True)
    parser.add_argument("--context", required=True, help="the passage (or @FILE to read it from a file)")
    parser.add_argument("--top-k", type=int, default=1, help="how many answers to print")
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--max-answer-length", type=int, default=30)
    parser.add_argument("--version-2", action="store_true", help="allow the empty (no-answer) prediction")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser.parse_args(argv)


def load_saved(model_dir: str):
    from omegaconf import OmegaConf

    from qaexp import modeling

    model_cfg = OmegaConf.create({"checkpoint": model_dir, "padding_side": "right", "trust_remote_code": False})
    tokenizer = modeling.build_tokenizer(model_cfg)
    return tokenizer, modeling.build_model(model_cfg, tokenizer)


def answer_questions(tokenizer, model, records: list[dict], settings) -> object:
    from qaexp import features, inference

    windows = features.tokenize_windows(records, tokenizer, settings.max_length, settings.doc_stride,
                                        progress=False)
    start, end, _ = inference.predict_logits(model, windows, 32, tokenizer.pad_token_id)
    return inference.answer(records, windows, start, end, settings)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        context = _read_context(args.context)
        tokenizer, model = load_saved(args.model_dir)
        settings = SimpleNamespace(max_length=args.max_length, doc_stride=args.doc_stride,
                                   n_best_size=max(20, args.top_k), max_answer_length=args.max_answer_length,
                                   version_2_with_negative=args.version_2, null_score_diff_threshold=0.0)
        record = {"id": "q0", "title": "", "context": context, "question": args.question,
                  "answers": {"text": [], "answer_start": []}}
        best = answer_questions(tokenizer, model, [record], settings).nbest["q0"][: args.top_k]
    except QAExpError as err:
        print(f"qaexp predict: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(best, ensure_ascii=False))
    else:
        for candidate in best:
            print(f"{candidate['text']}\t{candidate['probability']:.4f}")
    return 0


def _read_context(value: str) -> str:
    if not value.startswith("@"):
        return value
    try:
        with open(value[1:], encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise QAExpError(f"cannot read the context file {value[1:]}: {err.strerror}") from err


if __name__ == "__main__":
    sys.exit(main())
