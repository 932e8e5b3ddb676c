"""Records checked before they are used: empty or duplicate records, answers not at their answer_start (the
data.on_bad_answer policy), and the splits against data.version_2_with_negative and each other."""
from __future__ import annotations

import logging
from typing import Optional

from qaexp.config.schema import BadAnswerPolicy
from qaexp.errors import DataError

log = logging.getLogger(__name__)


UNPLACED = -1  # the answer_start of a gold answer kept for scoring whose place in the context is unknown
MOSTLY_DROPPED = 0.5  # a run that keeps less than this share of its training questions says so prominently


def check_records(records: Optional[list[dict]], split: str, on_bad_answer: str,
                  repairs: dict[str, int], scored: bool = False) -> Optional[list[dict]]:
    """Reject empty and duplicate records; apply the bad-answer policy (error | skip | fix).

    scored: the records are evaluated, not trained on. The official SQuAD scores compare the prediction with the
    gold answers' texts only, so a question whose answer is not at its answer_start is still scored on every
    answer: it is kept, that answer's start set to UNPLACED (counted as `<split>_unplaced`). Only its windows'
    labels, and so the validation loss, need the place; a question without any placed answer is left out of the
    loss (inference.predict_answers). Training records cannot be labelled without it, so they are dropped."""
    if records is None:
        return None
    if not records:
        raise DataError(f"the {split} data has no records")
    check_unique_ids(records, f"{split} data")
    empty = [(record["id"], field) for record in records for field in ("question", "context")
             if not record[field].strip()]
    if empty:
        (first, field), others = empty[0], len({qid for qid, _ in empty}) - 1
        more = f" (and {others} other record(s) an empty question or context)" if others else ""
        raise DataError(f"{split} record {first!r} has an empty {field}{more}: a question needs its text and the "
                        "context it is answered from; fill them in or remove those records")
    kept = []
    for record in records:
        fixed = _check_answers(record, split, on_bad_answer, repairs, scored)
        if fixed is not None:
            kept.append(fixed)
    if not kept:
        raise DataError(f"the {split} data is empty after validation: all {len(records)} records were skipped "
                        f"(data.on_bad_answer={on_bad_answer}: their answers are not at answer_start)")
    return kept


def _check_answers(record: dict, split: str, policy: str, repairs: dict[str, int], scored: bool) -> Optional[dict]:
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
        if nearest is None and scored and text:
            repairs[f"{split}_unplaced"] = repairs.get(f"{split}_unplaced", 0) + 1
            starts.append(UNPLACED)
            continue
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


def placed_answer(answers: dict) -> Optional[int]:
    """The index of the first gold answer whose place is known (the one windows are labelled with), or None."""
    return next((n for n, start in enumerate(answers["answer_start"]) if start != UNPLACED), None)


def mostly_dropped(split: str, given: int, kept: int, on_bad_answer: str) -> Optional[str]:
    """The note a run gives when data.on_bad_answer dropped more than half the questions it was given (None when it
    kept at least MOSTLY_DROPPED of them): a run trained on a small remnant must not look like a normal one."""
    if kept >= MOSTLY_DROPPED * given:
        return None
    return (f"only {kept} of the {given} {split} questions were used: {given - kept} were dropped because their "
            f"answers are not at their answer_start (data.on_bad_answer={on_bad_answer}); check the file's "
            "offsets (data.on_bad_answer=error names the first bad one)")


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
