""""Did you mean ...": the nearest config key or config-group option to a mistyped one (difflib's ratio).

Hydra reports an unknown key (`trainer.epoch=1`) or group option (`model=robeta-base`) with its own error;
`for_overrides` finds the command-line override it tripped on and the nearest valid spelling, for the line
`python -m qaexp` adds after Hydra's error. qaexp's own unknown-key error (`+trainer.epoch=1`) uses `nearest`.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Callable, Iterable, Optional

from qaexp.config import QAExpConfig

SIMILARITY_CUTOFF = 0.6
NOT_CHECKED = ("hydra.", "hydra/")  # Hydra's own settings: its error lists them already


def nearest(word: str, options: Iterable[str]) -> Optional[str]:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=SIMILARITY_CUTOFF)
    return matches[0] if matches else None


def nearest_key(dotted: str, schema: type = QAExpConfig) -> Optional[str]:
    """The valid dotted key nearest `dotted` in the typed schema; None if it is valid or nothing is near.
    Keys under a free-form dict (model.architecture.*) are never wrong."""
    known: list[str] = []
    for depth, part in enumerate(dotted.split(".")):
        if not dataclasses.is_dataclass(schema):
            return None
        fields = typing.get_type_hints(schema)
        if part not in fields:
            match = nearest(part, fields)
            return ".".join([*known, match, *dotted.split(".")[depth + 1:]]) if match else None
        known.append(part)
        schema = fields[part]
    return None


def for_overrides(overrides: list[str], group_options: Callable[[str], list[str]]) -> Optional[str]:
    """'did you mean X=V?' for the first override naming an unknown key or group option, else None.
    `group_options(group)` lists a config group's options ([] for a name that is not a group)."""
    for override in overrides:
        name, sep, value = override.lstrip("+~").partition("=")
        if not sep or override.startswith("-") or name.startswith(NOT_CHECKED) or "@" in name:
            continue
        options = group_options(name)
        fix = _option_fix(name, value, options) if options else _key_fix(name, value)
        if fix:
            return f"did you mean {fix}?"
    return None


def _option_fix(group: str, value: str, options: list[str]) -> Optional[str]:
    if "(" in value:  # a sweep function (choice(...), range(...)): left to Hydra
        return None
    chosen = [option.strip() for option in value.split(",")]
    if all(option in options for option in chosen):
        return None
    fixed = [option if option in options else nearest(option, options) for option in chosen]
    return f"{group}={','.join(fixed)}" if all(fixed) else None


def _key_fix(name: str, value: str) -> Optional[str]:
    match = nearest_key(name)
    return f"{match}={value}" if match else None
