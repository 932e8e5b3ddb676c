"""Records written back in the official nested SQuAD layout, for tests that need SQuAD files of known content.

No product code writes SQuAD files (qaexp reads them), so this lives with its only users.
"""
from __future__ import annotations

from typing import Iterable

SQUAD_VERSIONS = ("1.1", "2.0")


def _official_qa(record: dict, version: str) -> dict:
    answers = record["answers"]
    qa = {"id": record["id"], "question": record["question"],
          "answers": [{"text": text, "answer_start": start}
                      for text, start in zip(answers["text"], answers["answer_start"])]}
    if version == "2.0":
        qa["is_impossible"] = not qa["answers"]
    elif not qa["answers"]:
        raise ValueError(f"record {record['id']!r} has no answer, which SQuAD 1.1 cannot express;"
                         " use version='2.0'")
    return qa


def to_squad_json(records: Iterable[dict], version: str = "1.1") -> dict:
    """Group flat records by title, then context, into the official nested SQuAD layout.

    Titles, paragraphs and questions keep the order in which they first appear. ``is_impossible``
    is written only for ``version="2.0"``; unanswerable records are rejected for ``"1.1"``.
    """
    if version not in SQUAD_VERSIONS:
        raise ValueError(f"version must be one of {SQUAD_VERSIONS}, got {version!r}")
    articles: dict[str, dict[str, list[dict]]] = {}
    for record in records:
        paragraphs = articles.setdefault(record["title"], {})
        paragraphs.setdefault(record["context"], []).append(_official_qa(record, version))
    return {"version": version,
            "data": [{"title": title,
                      "paragraphs": [{"context": context, "qas": qas}
                                     for context, qas in paragraphs.items()]}
                     for title, paragraphs in articles.items()]}
