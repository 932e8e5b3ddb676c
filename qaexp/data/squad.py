"""Load SQuAD-shaped data as flat records, from the hub, local JSON files or the synthetic generator.

A record is `{"id", "title", "context", "question", "answers": {"text": [...], "answer_start": [...]}}`;
unanswerable (SQuAD v2) records have empty answer lists. Every loader returns lists of such records.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, NamedTuple, Optional

from omegaconf import DictConfig

from qaexp.config.schema import DataSource
from qaexp.data.checks import check_records, check_squad_version, mostly_dropped, warn_shared_ids
from qaexp.data.hub_datasets import load_hub_dataset
from qaexp.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Splits:
    train: Optional[list[dict]]
    validation: Optional[list[dict]]
    repairs: dict[str, int] = field(default_factory=dict)  # answers fixed / skipped / unplaced by data validation
    dropped_note: Optional[str] = None  # checks.mostly_dropped's note on the training data, when it applies


def load_splits(data_cfg: DictConfig, with_train: bool = True) -> Splits:
    """Both splits; with_train=False (an evaluation-only run) neither reads nor needs a training split."""
    if data_cfg.source == DataSource.synthetic:
        train, validation = _synthetic_splits(data_cfg, with_train)
    elif data_cfg.source == DataSource.json:
        train_file = data_cfg.train_file if with_train else None
        require_files({"data.train_file": train_file, "data.validation_file": data_cfg.validation_file})
        train = read_records(train_file) if train_file else None
        validation = read_records(data_cfg.validation_file) if data_cfg.validation_file else None
    else:
        train, validation = _hub_splits(data_cfg, with_train)
    # A local file is parsed whole anyway, so its records are all checked and the limits apply to what is kept.
    # A hub split is already cut to its limit (_hub_split: converting all ~88k rows of SQuAD train took seconds
    # for a 300-question run): the checks below, duplicate and train/validation-shared ids and the v1/v2 check
    # included, then speak for the first N rows only, the rows the run uses; a row data.on_bad_answer=skip drops
    # is not replaced by row N+1.
    repairs: dict[str, int] = {}
    given = len(train) if train else 0
    train = check_records(train, "train", data_cfg.on_bad_answer, repairs)
    validation = check_records(validation, "validation", data_cfg.on_bad_answer, repairs, scored=True)
    check_squad_version({"train": train, "validation": validation}, data_cfg.version_2_with_negative)
    warn_shared_ids(train, validation)
    # The share kept is judged before the sample limit, which cuts what the user asked to cut.
    dropped = mostly_dropped("training", given, len(train), data_cfg.on_bad_answer) if train else None
    train, validation = _limit(train, data_cfg.max_train_samples), _limit(validation, data_cfg.max_eval_samples)
    if repairs:
        log.warning("answers not at their answer_start (data.on_bad_answer=%s): %s%s", data_cfg.on_bad_answer,
                    ", ".join(f"{key} {count}" for key, count in sorted(repairs.items())),
                    " (an unplaced validation answer is still scored by its text; its question is left out of "
                    "val_loss when none of its answers is placed)" if any(k.endswith("_unplaced") for k in repairs)
                    else "")
    if dropped:
        log.warning("%s", dropped)  # and again on the run's final line (experiment.final_line)
    return Splits(train, validation, repairs, dropped)


def _limit(records: Optional[list[dict]], limit: Optional[int]) -> Optional[list[dict]]:
    return records if records is None or limit is None else records[:limit]


def _synthetic_splits(data_cfg: DictConfig, with_train: bool = True) -> tuple[Optional[list[dict]], list[dict]]:
    from qaexp.data.synthetic import generate_examples

    def split(name: str, size: int) -> list[dict]:
        return generate_examples(size, seed=data_cfg.seed, difficulty=data_cfg.difficulty, split=name,
                                 unanswerable_fraction=data_cfg.unanswerable_fraction)

    return (split("train", data_cfg.num_train) if with_train else None), split("validation", data_cfg.num_validation)


def _hub_splits(data_cfg: DictConfig, with_train: bool = True) -> tuple[Optional[list[dict]], list[dict]]:
    loaded = load_hub_dataset(data_cfg.name, data_cfg.config_name)
    train = _hub_split(loaded, data_cfg.train_split, data_cfg.name, data_cfg.max_train_samples) if with_train \
        else None
    return train, _hub_split(loaded, data_cfg.validation_split, data_cfg.name, data_cfg.max_eval_samples)


def load_eval_set(entry: DictConfig, on_bad_answer: str) -> list[dict]:
    """The records of one data.extra_eval entry (a local file, or a hub dataset's split), checked and limited."""
    if entry.source == DataSource.json:
        require_files({f"data.extra_eval.{entry.name}.file": entry.file})
        records = read_records(entry.file)
    else:
        loaded = load_hub_dataset(entry.dataset, entry.config_name, "dataset",
                                  f" in data.extra_eval entry {entry.name!r}", "config_name")
        records = _hub_split(loaded, entry.split, entry.dataset, entry.max_eval_samples)
    repairs: dict[str, int] = {}
    return _limit(check_records(records, f"extra_eval {entry.name}", on_bad_answer, repairs, scored=True),
                  entry.max_eval_samples)


def _hub_split(loaded: Any, split: str, name: str, limit: Optional[int] = None) -> list[dict]:
    """The split's first `limit` rows as records: only those are read from the Arrow cache and converted (SQuAD's
    train split has ~88k rows; a 300-sample run converts 300)."""
    if split not in loaded:
        raise DataError(f"dataset {name!r} has no split {split!r}; it has: {', '.join(loaded)}")
    rows = loaded[split]
    if limit is not None and limit < len(rows):
        rows = rows.select(range(limit))  # a contiguous range: a slice of the Arrow table, nothing copied
    return [_normalise_record(r, f"{name} {split} row {n}") for n, r in enumerate(rows)]


# ---- local files -------------------------------------------------------------------------------------


def require_files(paths_by_key: dict[str, Optional[str]]) -> None:
    """One DataError naming every given path that does not exist (not the first only)."""
    missing = [f"{key}={path}" for key, path in paths_by_key.items() if path and not os.path.exists(path)]
    if missing:
        raise DataError(f"data file{'s' if len(missing) > 1 else ''} not found: {', '.join(missing)}")


# The two layouts read_records accepts, named in the error for a file of another shape.
SQUAD_SHAPES = ('the official nested SQuAD format {"data": [{"title", "paragraphs": [{"context", "qas": [{"id", '
                '"question", "answers": [{"text", "answer_start"}]}]}]}]}, or flat records {"id", "title", "context", '
                '"question", "answers": {"text": [...], "answer_start": [...]}} as a JSON list or JSON lines')
RECORD_KEYS = ("id", "context", "question", "answers")  # a JSON object with none of them is no flat record


def _not_squad(path: str, detail: str) -> DataError:
    return DataError(f"{path} is not in SQuAD format: {detail}. The accepted shapes: {SQUAD_SHAPES}")


def _keys(node: dict) -> str:
    names = [repr(str(key)) for key in list(node)[:5]]
    return ", ".join(names) + (", ..." if len(node) > 5 else "") if names else "none"


def read_records(path: str, answers_optional: bool = False) -> list[dict]:
    """Read an official nested SQuAD file, a JSON list of flat records, or a JSON-lines file of them.

    answers_optional: flat records may leave out "answers" (questions to answer, not to train or score on).
    """
    return read_squad_file(path, answers_optional)[0]


def read_squad_file(path: str, answers_optional: bool = False) -> tuple[list[dict], str]:
    """(read_records' records, the file's "version" field): "" for flat records and for a nested file without one
    (`qaexp evaluate` picks its scoring rules by it, as the official script does)."""
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path} is empty: expected SQuAD JSON ({{\"data\": [...]}}) or JSON lines of records")

    def normalise(record: Any, where: str) -> dict:
        if isinstance(record, dict) and not any(key in record for key in RECORD_KEYS):
            place = where[len(path) + 2:] if where.startswith(f"{path}: ") else where  # "record 2", "line 3"
            raise _not_squad(path, f"{place} is a JSON object with none of a record's keys (it has {_keys(record)})")
        if answers_optional and isinstance(record, dict) and "answers" not in record:
            record = {**record, "answers": []}
        return _normalise_record(record, where)

    if path.endswith(".jsonl"):
        return [normalise(r, f"{path}: line {n}") for n, r in _parse_json_lines(text, path)], ""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several JSON values: JSON lines
            return [normalise(r, f"{path}: line {n}") for n, r in _parse_json_lines(text, path)], ""
        _require_json_start(text, path)
        raise DataError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    if isinstance(document, dict) and "data" in document:
        return list(flatten_squad(document, path)), str(document.get("version") or "")
    if isinstance(document, dict):
        if not any(key in document for key in RECORD_KEYS):  # valid JSON of another shape, e.g. {"foo": 1}
            raise _not_squad(path, f"it holds a JSON object with neither 'data' nor a record's keys (it has "
                                   f"{_keys(document)})")
        return [normalise(document, f"{path}: record 1")], ""
    if isinstance(document, list):
        return [normalise(r, f"{path}: record {n}") for n, r in enumerate(document, 1)], ""
    raise _not_squad(path, f"it holds a JSON {type(document).__name__}, not an object or a list")


def _read_text(path: str) -> str:
    if not os.path.exists(path):
        raise DataError(f"data file not found: {path}")
    if os.path.isdir(path):
        raise DataError(f"data file is a directory, not a file: {path}")
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark at the start is not content
            return f.read()
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text (byte {err.start}): re-encode it as UTF-8") from err
    except OSError as err:  # permissions, a FIFO that fails, an I/O error
        raise DataError(f"cannot read data file {path} ({err.strerror or err}): check its permissions") from err


def _require_json_start(text: str, path: str) -> None:
    """For a file that does not parse: one that does not even start like JSON (a CSV, plain text) is named so."""
    start = text.lstrip()[:1]
    if start in ("{", "["):
        return
    first_line = text.lstrip().splitlines()[0][:40]
    looks_csv = path.lower().endswith((".csv", ".tsv")) or "," in first_line or "\t" in first_line
    hint = ("; convert a CSV to JSON lines first (one {\"id\", \"context\", \"question\"} object per line)"
            if looks_csv else "")
    raise DataError(f"{path} is not JSON (it begins {first_line!r}): expected SQuAD JSON ({{\"data\": [...]}}) or "
                    f"JSON lines of records{hint}")


def _parse_json_lines(text: str, path: str) -> Iterable[tuple[int, Any]]:
    # Lines end at "\n" (and "\r\n"); str.splitlines would also split at U+2028 and others inside a JSON string.
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as err:
            _require_json_start(text, path)
            raise DataError(f"{path}: invalid JSON at line {lineno}, column {err.colno}: {err.msg}") from err


class NestedParagraph(NamedTuple):
    """One paragraph of an official nested SQuAD document, with the place that error messages name."""

    article: dict
    paragraph: dict
    where: str  # e.g. "dev.json: data[0].paragraphs[2]"

    def questions(self) -> Iterator[tuple[Any, str]]:
        """(question, its place) for each of the paragraph's questions; what a question holds is the reader's to check."""
        for q, qa in enumerate(self.paragraph["qas"]):
            yield qa, f"{self.where}.qas[{q}]"


def squad_paragraphs(document: Any, path: str) -> Iterator[NestedParagraph]:
    """Every paragraph of an official nested SQuAD document ({"data": [{"paragraphs": [{"qas": [...]}]}]}), in order.

    The nesting is checked here (a DataError names the place that breaks it); the training data reader and
    `qaexp evaluate` each check what they need of a paragraph and of its questions.
    """
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise DataError(f"{path}: not a SQuAD file: expected a JSON object with a 'data' list of articles")
    for a, article in enumerate(document["data"]):
        paragraphs = _require_list(article, "paragraphs", f"{path}: data[{a}]")
        for p, paragraph in enumerate(paragraphs):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            _require_list(paragraph, "qas", where)
            yield NestedParagraph(article, paragraph, where)


def flatten_squad(document: Any, path: str = "<data>") -> Iterable[dict]:
    """Official nested format -> flat records."""
    for paragraph in squad_paragraphs(document, path):
        context = _require_text(paragraph.paragraph, "context", paragraph.where)
        for qa, where in paragraph.questions():
            answers = _require_list(qa, "answers", where) if isinstance(qa, dict) and "answers" in qa else []
            yield {
                "id": str(_require(qa, "id", where)),
                "title": paragraph.article.get("title", ""),
                "context": context,
                "question": _require_text(qa, "question", where),
                "answers": _answers_from_list(answers, where),
            }


def _require(node: Any, key: str, where: str) -> Any:
    if not isinstance(node, dict):
        raise DataError(f"{where}: expected a JSON object with key {key!r}, found {type(node).__name__}")
    if key not in node:
        raise DataError(f"{where}: missing key {key!r}")
    return node[key]


def _require_list(node: Any, key: str, where: str) -> list:
    value = _require(node, key, where)
    if not isinstance(value, list):
        raise DataError(f"{where}: {key!r} must be a list, not {type(value).__name__}")
    return value


def _normalise_record(record: Any, where: str = "<hub>") -> dict:
    if not isinstance(record, dict):
        raise DataError(f"{where}: a record must be a JSON object, not {type(record).__name__}")
    answers = _require(record, "answers", where)
    if isinstance(answers, list):  # [{"text", "answer_start"}, ...]
        answers = _answers_from_list(answers, where)
    if not isinstance(answers, dict) or "text" not in answers or "answer_start" not in answers:
        raise DataError(f"{where}: 'answers' must be {{'text': [...], 'answer_start': [...]}}")
    return {"id": str(_require(record, "id", where)), "title": record.get("title", ""),
            "context": _require_text(record, "context", where), "question": _require_text(record, "question", where),
            "answers": _checked_answers(answers["text"], answers["answer_start"], where)}


def _require_text(node: Any, key: str, where: str) -> str:
    value = _require(node, key, where)
    if not isinstance(value, str):
        raise DataError(f"{where}: {key!r} must be a string, not {type(value).__name__}")
    return value


def _answers_from_list(answers: list, where: str) -> dict:
    texts = [_require(a, "text", f"{where}: answers[{i}]") for i, a in enumerate(answers)]
    starts = [_require(a, "answer_start", f"{where}: answers[{i}]") for i, a in enumerate(answers)]
    return _checked_answers(texts, starts, where)


def _checked_answers(texts: Any, starts: Any, where: str) -> dict:
    """Types only; whether each text is at its answer_start is check_records' job (with its repair policy)."""
    if not isinstance(texts, list) or not isinstance(starts, list):
        raise DataError(f"{where}: answers 'text' and 'answer_start' must be lists")
    if len(texts) != len(starts):
        raise DataError(f"{where}: answers have {len(texts)} 'text' but {len(starts)} 'answer_start' values: "
                        "they must pair up")
    for text, start in zip(texts, starts):
        if not isinstance(text, str):
            raise DataError(f"{where}: answer text {text!r} must be a string")
        if isinstance(start, str) and start.strip().isascii() and start.strip().isdigit():
            raise DataError(f"{where}: answer_start {start!r} is a string: write it as the number {start.strip()} "
                            "(a character offset, without quotes)")
        if isinstance(start, bool) or not isinstance(start, int):
            raise DataError(f"{where}: answer_start {start!r} must be an integer (a character offset)")
    return {"text": list(texts), "answer_start": list(starts)}
