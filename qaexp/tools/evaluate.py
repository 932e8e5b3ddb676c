"""Command-line SQuAD evaluation with the official scripts' interface.

    python -m qaexp.evaluate DATA_FILE PRED_FILE [--na-prob-file F] [--na-prob-thresh X]
                             [--version {1.1,2.0}] [--out-file F]

DATA_FILE is read as training reads its data (qaexp.data.squad): official nested SQuAD JSON, or a JSON list or
JSON lines of flat records. PRED_FILE is {question id: answer text}, what `qaexp predict --official-output` writes.
Prints one JSON object. Unusable input gives a one-line message on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Sequence

from qaexp.data.checks import check_unique_ids
from qaexp.data.squad import read_squad_file
from qaexp.errors import InputError, QAExpError, report_error
from qaexp.evaluation.metrics import evaluate_v1, evaluate_v2
from qaexp.output.files import write_json_atomic
from qaexp.tools import parser as tool_parser
from qaexp.tools.predict import is_detailed_prediction


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


def read_official_gold(path: str) -> tuple[str, dict[str, list[str]]]:
    """(version string, question id -> gold answer texts) from a data file in any shape training reads: official
    nested SQuAD JSON, or a JSON list or JSON lines of flat records (the version is "" for those)."""
    records, version = read_squad_file(path)
    _require(bool(records), f"{path}: no questions")
    check_unique_ids(records, path)  # an id twice would leave one of its gold answer sets unscored
    return version, {record["id"]: record["answers"]["text"] for record in records}


def _read_mapping(path: str, what: str, value_types: tuple, kind: str) -> dict:
    mapping = _load_json(path, what)
    _require(isinstance(mapping, dict), f"{what} {path} must be a JSON object of question id -> value")
    _require(not any(is_detailed_prediction(value) for value in mapping.values()),
             f"{what} {path} is what `qaexp predict --output` writes (each question's answers with scores): give "
             "the file `qaexp predict --official-output FILE` writes, {id: answer text}, which is what evaluate scores")
    _require(
        all(isinstance(v, value_types) and not isinstance(v, bool) for v in mapping.values()),
        f"{what} {path}: every value must be {kind}",
    )
    return mapping


def is_version_2(version_field: str) -> bool:
    return version_field.startswith(("v2", "2"))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = tool_parser("evaluate", "SQuAD v1.1 / v2.0 evaluation: exact match and F1 of a predictions file")
    parser.add_argument("data_file", help="SQuAD data: official nested JSON, or a JSON list or JSON lines of flat "
                                          "records (as training reads)")
    parser.add_argument("pred_file", help="JSON object: question id -> predicted answer text (what qaexp predict "
                                          "--official-output writes)")
    parser.add_argument("--na-prob-file", "-n", help="JSON object: question id -> no-answer probability (v2.0)")
    parser.add_argument("--na-prob-thresh", "-t", type=float, default=1.0,
                        help="predict no answer when the no-answer probability is above this (default 1.0)")
    parser.add_argument("--version", choices=("1.1", "2.0"),
                        help="evaluation rules; default: from the data file's 'version' field; without one, 2.0 "
                             "when some question has no answer, else 1.1")
    parser.add_argument("--out-file", "-o", help="also write the JSON result here")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    version_field, gold = read_official_gold(args.data_file)
    predictions = _read_mapping(args.pred_file, "prediction file", (str,), "a string")
    # --version, else the file's version field; a file without one (JSON lines, flat records) is scored by v2.0's
    # rules when some question has no answer, which v1.1's rules would score 0 whatever was predicted.
    version_2 = (args.version == "2.0" if args.version else is_version_2(version_field)
                 or (not version_field and any(not answers for answers in gold.values())))
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

