"""Records checked before they are used: empty or duplicate records, answers not at their answer_start (the
data.on_bad_answer policy), and the splits against data.version_2_with_negative and each other."""
from __future__ import annotations

import logging
from typing import Optional

from qaexp.config.schema import BadAnswerPolicy
from qaexp.errors import DataError

log = logging.getLogger(__name__)


def check_records(records: Optional[list[dict]], split: str, on_bad_answer: str,
                  repairs: dict[str, int]) -> Optional[list[dict]]:
    """Reject empty and duplicate records; apply the bad-answer policy (error | skip | fix)."""
    if records is None:
        return None
    if not records:
        raise DataError(f"the {split} data has no records")
    check_unique_ids(records, f"{split} data")
    kept = []
    for record in records:
        if not record["context"].strip() or not record["question"].strip():
            raise DataError(f"{split} record {record['id']!r} has an empty context or question")
        fixed = _check_answers(record, split, on_bad_answer, repairs)
        if fixed is not None:
            kept.append(fixed)
    if not kept:
        raise DataError(f"the {split} data is empty after validation: all {len(records)} records were skipped "
                        f"(data.on_bad_answer={on_bad_answer}: their answers are not at answer_start)")
    return kept


def _check_answers(record: dict, split: str, policy: str, repairs: dict[str, int]) -> Optional[dict]:
    context, answers = record["context"], record["answers"]
    starts = []
    for text, start in zip(answers["text"], answers["answer_start"]):
        if text and 0 <= start and context[start:start + len(text)] == text:
            starts.append(start)
            continue
        if policy == BadAnswerPolicy.error:
            raise DataError(f"{split} record {record['id']!r}: answer {text!r} is not at answer_start={start} "
                            "(set data.on_bad_answer=fix or skip to repair or drop such answers)")
        nearest = _nearest_occurrence(context, text, start) if policy == BadAnswerPolicy.fix else None
        if nearest is None:
            repairs[f"{split}_skipped"] = repairs.get(f"{split}_skipped", 0) + 1
            return None
        repairs[f"{split}_fixed"] = repairs.get(f"{split}_fixed", 0) + 1
        starts.append(nearest)
    return {**record, "answers": {"text": list(answers["text"]), "answer_start": starts}}


def _nearest_occurrence(context: str, text: str, start: int, window: int = 50) -> Optional[int]:
    """The answer's offset when it occurs exactly once within `window` characters of the stated start."""
    if not text:
        return None
    lo = max(0, start - window)
    hits = []
    found = context.find(text, lo)
    while found != -1 and found <= start + window:
        hits.append(found)
        found = context.find(text, found + 1)
    return hits[0] if len(hits) == 1 else None


def check_squad_version(splits: dict[str, Optional[list[dict]]], version_2: bool) -> None:
    """Unanswerable questions need data.version_2_with_negative=true; the flag without any is only a warning."""
    unanswerable = {split: [r["id"] for r in records if not r["answers"]["text"]]
                    for split, records in splits.items() if records}
    if not version_2:
        for split, ids in unanswerable.items():
            if ids:
                raise DataError(
                    f"the {split} data has {len(ids)} unanswerable question(s) (no answers, SQuAD v2 style, e.g. "
                    f"{ids[0]!r}) but data.version_2_with_negative=false: set data.version_2_with_negative=true "
                    "to train and score them as SQuAD v2, or remove them")
    elif unanswerable and not any(unanswerable.values()):
        log.warning("data.version_2_with_negative=true but no question in the %s data is unanswerable (SQuAD v1.1 "
                    "style): the model never learns to abstain; set data.version_2_with_negative=false for v1.1 data",
                    " or ".join(unanswerable))


def warn_shared_ids(train: Optional[list[dict]], validation: Optional[list[dict]]) -> None:
    if not train or not validation:
        return
    shared = {r["id"] for r in train} & {r["id"] for r in validation}
    if shared:
        log.warning("%d question id(s) are in both the train and the validation data (e.g. %r): the validation "
                    "scores then include questions the model trained on; use separate files", len(shared),
                    min(shared))


def check_unique_ids(records: list[dict], where: str) -> None:
    """One line naming the first id two records share: ids key the predictions, so they must be unique."""
    seen: set[str] = set()
    for record in records:
        if record["id"] in seen:
            raise DataError(f"{where} has duplicate id {record['id']!r}: ids must be unique")
        seen.add(record["id"])
