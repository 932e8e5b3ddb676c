"""The window and answer settings that answering questions takes, as one frozen value.

Training evaluates with its `data` config; `qaexp predict`, `serve` and `export` with a saved model's settings
(model/saved.answer_settings). Both become an `AnswerSettings` through `AnswerSettings.of`, so that inference
reads one type whatever the caller, and no caller can change the settings of another in passing.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, get_type_hints


@dataclass(frozen=True)
class AnswerSettings:
    max_length: int  # tokens per window
    doc_stride: int  # context tokens shared by consecutive windows
    max_answer_length: int  # longest answer span, in tokens
    n_best_size: int  # candidates kept per question
    version_2_with_negative: bool  # SQuAD v2: "no answer" is an answer
    null_score_diff_threshold: float  # v2: no answer where the null odds exceed this

    @classmethod
    def of(cls, source: Mapping[str, Any], **changes) -> "AnswerSettings":
        """The settings named in `source` (a run's data config, a saved model's settings as a dict; other keys are
        ignored), with `changes` in place of theirs, each as its field's type."""
        kinds = get_type_hints(cls)  # int, bool or float: the annotations above
        values = {field.name: changes[field.name] if field.name in changes else source[field.name]
                  for field in fields(cls)}
        return cls(**{name: kinds[name](value) for name, value in values.items()})
