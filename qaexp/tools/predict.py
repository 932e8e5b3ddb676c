"""Answer questions with a saved model (RUN_DIR/model).

    python -m qaexp.predict MODEL_DIR --question Q --context C [--top-k K] [--json]
    python -m qaexp.predict MODEL_DIR --file F [--output OUT] [--official-output PRED] [--overwrite] [--top-k K]

File mode reads SQuAD JSON ({"data": [...]}), a JSON list or JSON lines of flat records (id, context,
question, and optionally answers) and answers them in batches; long contexts are split into
overlapping windows. --output gets {id: {"answer", "answers": [{"text", "score"}...], "no_answer"}};
--official-output gets {id: answer text}, which `python -m qaexp.evaluate DATA PRED` scores. Each is written
whole or not at all, to a new path: a file that exists already is refused (before anything runs) unless
--overwrite is given, and the --file and the model directory's files are never written over, --overwrite or not.

The window and answer settings are the model's own: RUN_DIR/model/qaexp.json, which a run writes with its
max_length, doc_stride, max_answer_length and, for SQuAD v2, the no-answer threshold it used or tuned
(data.null_threshold_tuning); else the run's .hydra/config.yaml; else training's defaults (listed with the
flags below), v1. Flags override them; every source is checked by training's window rule, and max_length against
the model's position limit (its config.json), before the model loads.
A SQuAD v2 model's answer ("" for no answer) is decided by that threshold and listed first. Text output is one
line per answer, TEXT<TAB>PROBABILITY, with (no answer) for ""; --json prints the answers as JSON."""
from __future__ import annotations

import json
import sys

from qaexp import tools
from qaexp.data.checks import check_unique_ids
from qaexp.errors import QAExpError, report_error
from qaexp.model.saved import answer_settings, load_saved
from qaexp.output.files import OVERWRITE_HELP, check_outputs, write_json_atomic
from qaexp.tools.setting_flags import add_setting_flags, setting_overrides

NO_ANSWER = "(no answer)"  # how the text output shows a SQuAD v2 model's empty answer


def parse_args(argv):
    parser = tools.parser("predict", __doc__, model_dir=True)
    parser.add_argument("--question")
    parser.add_argument("--context", help="the passage (or @FILE to read it from a file)")
    parser.add_argument("--file", help="answer every question of this SQuAD / JSON-lines file")
    parser.add_argument("--output", help="file mode: write {id: {answer, answers, no_answer}} here")
    parser.add_argument("--official-output", help="file mode: write {id: answer text} here (for qaexp.evaluate)")
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--top-k", type=int, default=1, help="how many answers to print (or keep per question)")
    add_setting_flags(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    if args.file is None and (args.question is None or args.context is None):
        parser.error("give --question and --context, or --file")
    if args.file is not None and (args.question is not None or args.context is not None):
        parser.error("--file cannot be combined with --question/--context")
    if args.file is None and (args.output or args.official_output):
        parser.error("--output and --official-output need --file")
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top-k and --batch-size must be >= 1")
    if args.question is not None and not args.question.strip():
        parser.error("--question is empty")
    return args


def file_predictions(answers, top_k: int) -> dict:
    """{id: {"answer", "answers": top-k [{"text", "score"}], "no_answer"}} from a Predictions object."""
    return {qid: {"answer": text,
                  "answers": [{"text": c["text"], "score": c["probability"]} for c in answers.nbest[qid][:top_k]],
                  "no_answer": text == ""}
            for qid, text in answers.predictions.items()}


def is_detailed_prediction(value) -> bool:
    """Whether `value` is one question's entry of file_predictions (--output), not an answer text (--official-output):
    `qaexp evaluate` names the mix-up."""
    return isinstance(value, dict) and {"answer", "answers"} <= value.keys()


def _settings(args):
    """The model's own settings (model/qaexp.json: its tuned no-answer threshold too; else its run config), then
    the flags given; checked before the model loads."""
    from qaexp.data.window_rule import N_BEST_SIZE

    return answer_settings(args.model_dir, setting_overrides(args), n_best_size=max(N_BEST_SIZE, args.top_k))


def _predict_file(args) -> int:
    from qaexp.data.squad import read_records
    from qaexp.evaluation.answering import answer_questions

    check_outputs({"--output": args.output, "--official-output": args.official_output},
                  {"--file": args.file, "the model directory": args.model_dir}, overwrite=args.overwrite)
    records = read_records(args.file, answers_optional=True)
    check_unique_ids(records, args.file)
    saved = load_saved(args.model_dir, _settings(args))
    answers = answer_questions(saved, records, args.batch_size, progress=True)
    detailed = file_predictions(answers, args.top_k)
    if args.output:
        write_json_atomic(args.output, detailed)
    if args.official_output:
        write_json_atomic(args.official_output, answers.predictions)
    if not (args.output or args.official_output):
        print(json.dumps(detailed, ensure_ascii=False))
    written = ", ".join(f for f in (args.output, args.official_output) if f) or "stdout"
    print(f"answered {len(records)} questions from {args.file} -> {written}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.file is not None:
            return _predict_file(args)
        context = _read_context(args.context)
        if not context.strip():
            raise QAExpError("the context is empty: give the passage to answer from with --context TEXT or @FILE")
        from qaexp.evaluation.answering import answer_questions, decided_first, question_record

        saved = load_saved(args.model_dir, _settings(args))
        answers = answer_questions(saved, [question_record("q0", args.question, context)])
        best = decided_first(answers.nbest["q0"], answers.predictions["q0"])[: args.top_k]
    except QAExpError as err:
        return report_error(err, "predict")
    if args.json:
        print(json.dumps(best, ensure_ascii=False))
    else:
        for candidate in best:  # (an empty line would read as no output at all)
            print(f"{candidate['text'] or NO_ANSWER}\t{candidate['probability']:.4f}")
    return 0


def _read_context(value: str) -> str:
    if not value.startswith("@"):
        return value
    try:
        with open(value[1:], encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise QAExpError(f"cannot read the context file {value[1:]}: {err.strerror}") from err

