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
import shlex
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


# Hydra's flags that take a value (the next word when not given as --flag=value): that word is no override.
VALUE_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--cfg", "-c", "--package", "-p",
               "--experimental-rerun")
GRAMMAR_DOCS = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def override_words(argv: list[str]) -> list[str]:
    """The words of the command line Hydra reads as overrides: not a flag, not a flag's value."""
    words = []
    for n, arg in enumerate(argv):
        if arg.startswith("-") or (n and argv[n - 1] in VALUE_FLAGS):
            continue
        words.append(arg)
    return words


def parse_overrides(words: list[str]):
    """(Hydra's parse of each override, in order; the one line for the first that its grammar rejects, or None)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for word in words:
        try:
            parsed.extend(parser.parse_overrides([word]))
        except OverrideParseException as err:
            return parsed, _grammar_message(word, str(err), parser)
    return parsed, None


LEXER_ERROR = "LexerNoViableAltException: "


def _grammar_message(word: str, error: str, parser) -> str:
    """One line for an override Hydra's grammar cannot read. A character outside its unquoted values (é, #, ...)
    gets the quoted form that does parse, for this very override."""
    lines = error.splitlines()
    if not lines[0].startswith(LEXER_ERROR) or len(lines) < 2 or "^" not in lines[1]:
        return f"{word} cannot be read by Hydra's override grammar: {lines[0]} (see {GRAMMAR_DOCS})"
    column = lines[1].index("^") - len(LEXER_ERROR)
    key_length = word.find("=")
    bad = word[column] if 0 <= column < len(word) else ""
    if key_length < 0 or column < key_length:
        return (f"{word.partition('=')[0]!r} is not a config key Hydra can override ({bad!r} is outside its grammar): "
                "keys are dotted names of ASCII letters, digits and '_' (a list is given whole: KEY=[...])")
    name, _, value = word.partition("=")
    if bad == "~" and (value == "~" or value.startswith("~/")):  # quoted, it would be a folder named "~"
        return (f"{word}: Hydra does not expand '~' (this shell passed it on as it is): write the home directory as "
                f"$HOME, {name}=$HOME{value[1:]}, which the shell expands")
    fixed = _quoted_override(word, column, parser)
    if fixed is None:
        return (f"{word} cannot be read by Hydra's override grammar ({bad!r} is outside its unquoted values): put the "
                f"value in quotes, as in 'KEY=\"VALUE\"' (see {GRAMMAR_DOCS})")
    return (f"{word} cannot be read by Hydra's override grammar ({bad!r} is outside its unquoted values): quote the "
            f"value, {shlex.quote(fixed)} (the outer quotes are the shell's)")


def _quoted_override(word: str, column: int, parser) -> Optional[str]:
    """`word` with each unquoted value that Hydra's lexer stops in put in quotes, checked by parsing it; None when
    quoting does not make it parse. A value's element (of a list, dict or sweep) is quoted alone."""
    from hydra.errors import OverrideParseException

    start = word.find("=") + 1
    structured = word[start:start + 1] in ("[", "{")
    left_ends, right_ends = (",[{(:", ",]})") if structured else (",", ",")
    for _ in range(20):  # each pass quotes one more element
        before = max(word.rfind(char, start, column) for char in left_ends)
        begin = max(before + 1, start)
        after = [index for index in (word.find(char, column) for char in right_ends) if index >= 0]
        end = min(after) if after else len(word)
        element = word[begin:end].strip()
        quote = next((q for q in ('"', "'") if q not in element), None)
        if not element or quote is None or element.endswith("\\"):
            return None
        word = f"{word[:begin]}{quote}{element}{quote}{word[end:]}"
        try:
            override = parser.parse_overrides([word])[0]
        except OverrideParseException as err:
            lines = str(err).splitlines()
            if not lines[0].startswith(LEXER_ERROR) or len(lines) < 2 or "^" not in lines[1]:
                return None
            column = lines[1].index("^") - len(LEXER_ERROR)
            continue
        if not structured and not override.is_sweep_override() and override.value() != element:
            return None  # quoting changed the value (an escape): no example rather than a wrong one
        return word
    return None


def value_key_problem(parsed) -> Optional[str]:
    """The one line for a key of a dict in an override's value that the schema lacks where the override puts it:
    `data.extra_eval=[{nam:adv,file:adv.json}]`, which Hydra refuses in eight lines. None when there is none."""
    for override in parsed:
        if override.is_delete() or override.is_sweep_override() or override.key_or_group.startswith(NOT_CHECKED):
            continue
        schema = _schema_at(override.key_or_group)
        value = override.value()
        if schema is None:
            continue
        problem = _value_keys(override.key_or_group, value, schema)
        if problem:
            return problem
    return None


def _schema_at(dotted: str) -> Optional[type]:
    """The schema type at a dotted key (a dataclass, or list[dataclass]), or None where the key is no typed node."""
    schema: type = QAExpConfig
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(schema):
            return None
        fields = typing.get_type_hints(schema)
        if part not in fields:
            return None
        schema = fields[part]
    return schema


def _value_keys(name: str, value, schema) -> Optional[str]:
    if typing.get_origin(schema) is list and isinstance(value, list):
        (item,) = typing.get_args(schema) or (None,)
        for number, element in enumerate(value):
            problem = _value_keys(f"{name}[{number}]", element, item)
            if problem:
                return problem
        return None
    if not (dataclasses.is_dataclass(schema) and isinstance(value, dict)):
        return None
    fields = typing.get_type_hints(schema)
    for key, inner in value.items():
        if key not in fields:
            match = nearest(str(key), fields)
            return unknown_key_message(f"{name}.{key}", fields, f"{name}.{match}" if match else None)
        problem = _value_keys(f"{name}.{key}", inner, fields[key])
        if problem:
            return problem
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
