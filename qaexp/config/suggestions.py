""""Did you mean ...": overrides that name a key the closed schema lacks, or an option a config group lacks.

`override_problem` checks the command line's overrides before Hydra composes anything, so that a mistyped key
(`trainer.epoch=1`, `+trainer.epoch=1`) or group option (`model=robeta-base`) is one line that leads with the
nearest valid spelling, and no run directory is made. Hydra's own advice for an unknown key, `+key=value`, is
wrong for qaexp: the schema is closed, and `+` only moves the error later (validation.check_no_unknown_keys,
whose line is `unknown_key_message` with the match `nearest` finds, as here).
`for_overrides` gives the "did you mean" line after an error of Hydra's for what the pre-check leaves to it.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from typing import Callable, Iterable, Iterator, Optional

from qaexp.config.schema import QAExpConfig

SIMILARITY_CUTOFF = 0.6
NOT_CHECKED = ("hydra.", "hydra/")  # Hydra's own settings: its error lists them already
NULL_OPTION = "null"  # `experiment=null`: no option of the group


def nearest(word: str, options: Iterable[str]) -> Optional[str]:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=SIMILARITY_CUTOFF)
    return matches[0] if matches else None


def unknown_key(dotted: str, schema: type = QAExpConfig,
                root_extra: Iterable[str] = ()) -> Optional[tuple[str, list[str]]]:
    """(the dotted name up to its first unknown part, the names valid there) when `dotted` is not a key of the
    typed schema; None when it is. Keys under a free-form dict (model.architecture.*) or a list are never wrong.
    root_extra: more names valid at the root (the config groups that are no schema field, e.g. experiment)."""
    known: list[str] = []
    for depth, part in enumerate(dotted.split(".")):
        if not dataclasses.is_dataclass(schema):
            return None
        fields = typing.get_type_hints(schema)
        valid = sorted({*fields, *(root_extra if depth == 0 else ())})
        if part not in valid:
            return ".".join([*known, part]), valid
        if part not in fields:  # a config group at the root: its options are checked, not its keys
            return None
        known.append(part)
        schema = fields[part]
    return None


def nearest_key(dotted: str, schema: type = QAExpConfig, root_extra: Iterable[str] = ()) -> Optional[str]:
    """The valid dotted key nearest `dotted` in the typed schema; None if it is valid or nothing is near."""
    unknown = unknown_key(dotted, schema, root_extra)
    if unknown is None:
        return None
    bad, valid = unknown
    parent, _, part = bad.rpartition(".")
    match = nearest(part, valid)
    return f"{parent + '.' if parent else ''}{match}{dotted[len(bad):]}" if match else None


def unknown_key_message(name: str, valid: Iterable[str], fix: Optional[str]) -> str:
    """The one line for an unknown key `name`: the fix first (a whole override, or the key), then the valid keys."""
    parent = name.rpartition(".")[0] or "the root config"
    hint = f": did you mean {fix}?" if fix else ""
    return f"unknown config key {name!r}{hint} ({parent} has {', '.join(sorted(valid))})"


def override_problem(overrides: list[str], group_options: Callable[[str], list[str]], groups: list[str],
                     check_options: bool = True) -> Optional[str]:
    """The one-line error for the first override naming a key the schema lacks or an option its group lacks;
    None when there is none. `group_options(group)` lists a group's options ([] for a name that is no group),
    `groups` the root config groups. check_options=False: leave group options to Hydra (a search path this
    check cannot list)."""
    for name, value in _checkable(overrides):
        options = group_options(name)
        if options:
            if check_options and not _all_options(value, options):
                fix = _option_fix(name, value, options)
                hint = f": did you mean {fix}?" if fix else ""
                return (f"{name}={value} is not an option of the {name} group{hint} ({name} has "
                        f"{', '.join(options)}; --config-dir DIR adds your own)")
            continue
        unknown = unknown_key(name, root_extra=groups)
        if unknown is not None:
            return unknown_key_message(unknown[0], unknown[1], _key_fix(name, value, groups))
    return None


def bare_word_problem(argv: list[str], tools: Iterable[str]) -> Optional[str]:
    """The one line for a word that is neither an override (KEY=VALUE, GROUP=OPTION, ~KEY), a flag, a flag's value nor,
    in first place, one of `tools` (which the dispatch runs before this check): Hydra would print four lines of
    override grammar ("missing EQUAL") for it. None when there is none."""
    for n, arg in enumerate(argv):
        if "=" in arg or arg.startswith(("-", "~")) or (n and argv[n - 1].startswith("-")):
            continue  # an override, a flag, a flag's value, or a deletion (~KEY needs no value)
        tool = nearest(arg, tools) if n == 0 else None
        fix = f"did you mean the tool {tool!r}? Otherwise " if tool else ""
        return (f"{arg!r} is not an override: {fix}give KEY=VALUE or GROUP=OPTION (e.g. experiment=quickstart), "
                f"or a tool first ({', '.join(tools)})")
    return None


def for_overrides(overrides: list[str], group_options: Callable[[str], list[str]],
                  groups: Iterable[str] = ()) -> Optional[str]:
    """'did you mean X=V?' for the first override naming an unknown key or group option, else None.
    `group_options(group)` lists a config group's options ([] for a name that is not a group)."""
    for name, value in _checkable(overrides):
        options = group_options(name)
        fix = _option_fix(name, value, options) if options else _key_fix(name, value, groups)
        if fix:
            return f"did you mean {fix}?"
    return None


def _checkable(overrides: list[str]) -> Iterator[tuple[str, str]]:
    """(name, value) of each `key=value` override that is qaexp's to check: not a flag, not Hydra's own settings,
    not one with a package (`group@pkg=option`). `+` (add) and `~` (delete) prefixes are dropped."""
    for override in overrides:
        name, sep, value = override.lstrip("+~").partition("=")
        if not sep or override.startswith("-") or name.startswith(NOT_CHECKED) or "@" in name:
            continue
        yield re.sub(r"\[[^]]*\]", "", name), value  # list indexes (data.extra_eval[0].name): the list's key


def _chosen(value: str) -> Optional[list[str]]:
    """The options a group override picks (several in a sweep: a,b); None for a sweep function (choice(...))."""
    if "(" in value or value.startswith("["):
        return None
    return [option.strip() for option in value.split(",")]


def _all_options(value: str, options: list[str]) -> bool:
    chosen = _chosen(value)
    return chosen is None or all(option in options or option == NULL_OPTION for option in chosen)


def _option_fix(group: str, value: str, options: list[str]) -> Optional[str]:
    chosen = _chosen(value)
    if chosen is None or _all_options(value, options):
        return None
    fixed = [option if option in options or option == NULL_OPTION else nearest(option, options) for option in chosen]
    return f"{group}={','.join(fixed)}" if all(fixed) else None


def _key_fix(name: str, value: str, groups: Iterable[str] = ()) -> Optional[str]:
    match = nearest_key(name, root_extra=groups)
    return f"{match}={value}" if match else None
