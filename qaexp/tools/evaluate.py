"""Command-line SQuAD evaluation with the official scripts' interface.

    python -m qaexp.evaluate DATA_FILE PRED_FILE [--na-prob-file F] [--na-prob-thresh X]
                             [--version {1.1,2.0}] [--out-file F]

Prints one JSON object. Unusable input gives a one-line message on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Sequence

from qaexp.data.squad import squad_paragraphs
from qaexp.errors import InputError, QAExpError, report_error
from qaexp.evaluation.metrics import evaluate_v1, evaluate_v2
from qaexp.output.files import write_json_atomic
from qaexp.tools import parser as tool_parser

def _load_json(path: str, what: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as err:
        raise InputError(f"cannot read {what} {path}: {err.strerror or err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{what} {path} is not valid JSON: {err}") from None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


def _gold_answers(qa, where: str) -> list[str]:
    """The gold answer texts of one question; the official script needs nothing else of it but its id."""
    _require(isinstance(qa, dict) and isinstance(qa.get("id"), str), f"{where}: no string 'id'")
    answers = qa.get("answers")
    _require(isinstance(answers, list), f"{where}: no 'answers' list")
    _require(all(isinstance(a, dict) and isinstance(a.get("text"), str) for a in answers),
             f"{where}: every answer needs a string 'text'")
    return [a["text"] for a in answers]


def read_official_gold(path: str) -> tuple[str, dict[str, list[str]]]:
    """(version string, question id -> gold answer texts) from an official SQuAD data file."""
    dataset = _load_json(path, "data file")
    gold: dict[str, list[str]] = {}
    for paragraph in squad_paragraphs(dataset, path):
        for qa, where in paragraph.questions():
            answers = _gold_answers(qa, where)  # checks the id too
            gold[qa["id"]] = answers
    _require(bool(gold), f"{path}: no questions")
    return str(dataset.get("version", "")), gold


def _read_mapping(path: str, what: str, value_types: tuple, kind: str) -> dict:
    mapping = _load_json(path, what)
    _require(isinstance(mapping, dict), f"{what} {path} must be a JSON object of question id -> value")
    _require(
        all(isinstance(v, value_types) and not isinstance(v, bool) for v in mapping.values()),
        f"{what} {path}: every value must be {kind}",
    )
    return mapping


def is_version_2(version_field: str) -> bool:
    return version_field.startswith(("v2", "2"))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = tool_parser("evaluate", "SQuAD v1.1 / v2.0 evaluation: exact match and F1 of a predictions file")
    parser.add_argument("data_file", help="official SQuAD JSON data file")
    parser.add_argument("pred_file", help="JSON object: question id -> predicted answer text")
    parser.add_argument("--na-prob-file", "-n", help="JSON object: question id -> no-answer probability (v2.0)")
    parser.add_argument("--na-prob-thresh", "-t", type=float, default=1.0,
                        help="predict no answer when the no-answer probability is above this (default 1.0)")
    parser.add_argument("--version", choices=("1.1", "2.0"),
                        help="evaluation rules; default: from the data file's 'version' field")
    parser.add_argument("--out-file", "-o", help="also write the JSON result here")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    version_field, gold = read_official_gold(args.data_file)
    predictions = _read_mapping(args.pred_file, "prediction file", (str,), "a string")
    version_2 = args.version == "2.0" if args.version else is_version_2(version_field)
    if not version_2:
        _require(args.na_prob_file is None, "--na-prob-file needs SQuAD v2.0 rules (--version 2.0)")
        return evaluate_v1(gold, predictions)
    na_probs = None
    if args.na_prob_file:
        na_probs = _read_mapping(args.na_prob_file, "na-prob file", (int, float), "a number")
    return evaluate_v2(gold, predictions, na_probs=na_probs, na_prob_thresh=args.na_prob_thresh)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run(args)
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        if args.out_file:
            write_json_atomic(args.out_file, result)
    except QAExpError as err:
        return report_error(err, "evaluate")
    print(json.dumps(result))
    return 0

