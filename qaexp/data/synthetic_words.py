"""The material synthetic data is made of: invented words owned by one split each, templates, entities.

See qaexp.data.synthetic for how records are built from them and why the splits share no name-like entity.
"""
from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

ONSETS = ("b", "br", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "th", "v", "z")
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "ai", "ou")
CODAS = ("", "", "", "", "n", "r", "l", "s", "m")
# Repeated vowels/codas weight the draw towards short, pronounceable syllables.
SYLLABLES = tuple(onset + vowel + coda
                   for onset in ONSETS for vowel in VOWELS for coda in CODAS)
CITY_SUFFIXES = ("wick", "ford", "mere", "holm", "stead", "bury", "haven", "dale", "port", "ton")
ORGANISATION_TYPES = ("Institute", "Society", "Company", "Guild", "Foundation", "Academy",
                       "Trust", "Museum", "Library", "Works")
OBJECT_NOUNS = ("lamp", "engine", "loom", "compass", "press", "valve", "pump", "lens", "clock",
                 "kiln", "telescope", "sextant", "furnace", "scale", "barometer")
PROFESSIONS = ("teacher", "engineer", "clockmaker", "chemist", "carpenter", "surveyor",
                "printer", "glassblower", "sailor", "physician", "architect", "weaver", "baker",
                "painter", "astronomer", "botanist", "mechanic", "potter", "librarian",
                "cartographer", "blacksmith", "musician", "journalist", "tailor")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
YEAR_RANGE = (1700, 1989)
PRONOUNS = {"she": ("she", "her"), "he": ("he", "him")}

FILLER_SUBJECTS = ("The old market", "Local historians", "Most visitors", "A later biography",
                    "The neighbours", "Several letters", "The workshop", "Critics of the time",
                    "The town council", "Early reviews", "Travelling merchants",
                    "A small museum", "Family records", "Later accounts", "The newspapers",
                    "Former colleagues", "The surrounding villages", "An old diary")
FILLER_PREDICATES = ("remained quiet for most of the year",
                      "described the period as unusually busy",
                      "rarely agreed on the details",
                      "changed little over the following decades",
                      "drew attention from across the region",
                      "kept careful notes about the work",
                      "praised the patience behind each design",
                      "recorded long debates about money",
                      "mentioned the long winters and short harvests",
                      "spoke warmly of the early experiments",
                      "told a slightly different story",
                      "survived only in fragments",
                      "noted the heavy rain that season",
                      "described the streets as narrow and crowded",
                      "questioned whether the plans would succeed")

# ---------------------------------------------------------------------------------------------
# Templates. Fields: {S}/{s} subject at the start/inside a sentence and {o} subject as an object
# (the person's name or a pronoun), {p} always a pronoun, plus one field per fact kind.
# ---------------------------------------------------------------------------------------------

INTRO_TEMPLATES = ("{name} worked as {a_profession} for many years.",
                    "{name} was {a_profession} by trade.",
                    "Few people today remember {name}, {a_profession} of rare talent.",
                    "{name} trained as {a_profession} before turning to invention.")
GROUP_INTRO_TEMPLATES = ("This account follows {count} inventors of the same era.",
                          "The archive describes {count} people who once shared a workshop.",
                          "Local records mention {count} notable figures from the period.")
BIRTH_TEMPLATES = {
    ("year", "city"): ("{S} was born in {year} and grew up in {city}.",
                       "{S} was born in {year} and raised in {city}.",
                       "Born in {year}, {s} grew up in {city}.",
                       "{S} came from {city}, where {p} was born in {year}."),
    ("year",): ("{S} was born in {year}.",
                "Born in {year}, {s} showed an early talent for the work.",
                "{S} was born in the year {year}."),
    ("city",): ("{S} grew up in {city}.",
                "{S} came from {city}.",
                "{S} was raised in {city}, far from the coast."),
}
OBJECT_TEMPLATES = ("{S} invented the {object}.",
                     "{S} is best known for inventing the {object}.",
                     "The {object} was invented by {o}.",
                     "Years of patient work led {o} to invent the {object}.")
ORGANISATION_TEMPLATES = ("{S} founded the {organisation}.",
                           "Later in life, {s} established the {organisation}.",
                           "{S} went on to found the {organisation}.")
ORGANISATION_DATE_TEMPLATES = ("{S} founded the {organisation}, which opened on {date}.",
                                "{S} established the {organisation}; it first opened its doors "
                                "on {date}.",
                                "On {date}, {s} opened the {organisation}, which {p} had "
                                "founded.")
MENTOR_TEMPLATES = ("{S} learned the trade from {mentor}.",
                     "{S} studied for a time under {mentor}.",
                     "As a young apprentice, {s} assisted {mentor}.")

QUESTION_TEMPLATES = {
    "year": ("When was {name} born?", "In what year was {name} born?",
             "What year was {name} born in?", "Which year saw the birth of {name}?"),
    "city": ("Where did {name} grow up?", "Which city did {name} come from?",
             "What city was {name} raised in?", "Where was {name} from?"),
    "object": ("What did {name} invent?", "Which device did {name} invent?",
               "What is {name} best known for inventing?", "What invention is credited to {name}?"),
    "organisation": ("Which organisation did {name} found?", "What did {name} establish?",
                     "What is the name of the organisation {name} founded?",
                     "Which institution was founded by {name}?"),
    "date": ("When did the {organisation} open?", "On what date did the {organisation} open?",
             "What day did the {organisation} first open its doors?",
             "On which date was the {organisation} opened?"),
}
# "Who ...?" questions, keyed by the fact that identifies the person.
PERSON_QUESTION_TEMPLATES = {
    "year": ("Who was born in {year}?", "Which person was born in {year}?"),
    "city": ("Who grew up in {city}?", "Which person came from {city}?"),
    "object": ("Who invented the {object}?", "Who created the {object}?",
               "Whose invention was the {object}?"),
    "organisation": ("Who founded the {organisation}?", "Who established the {organisation}?",
                     "The {organisation} was founded by whom?"),
}


# ---------------------------------------------------------------------------------------------
# Entities
# ---------------------------------------------------------------------------------------------

def owning_split(word: str) -> str:
    """The only split allowed to use ``word`` (stable across runs and machines)."""
    bucket = zlib.crc32(word.encode("utf-8")) % 10
    return "train" if bucket < 8 else ("validation" if bucket == 8 else "test")


@dataclass(frozen=True)
class Person:
    name: str
    pronoun: str
    profession: str
    facts: Mapping[str, str]  # fact kind -> surface form, whether or not the paragraph states it


class EntityFactory:
    """Draws entities owned by one split, never repeating a surface form within a paragraph."""

    def __init__(self, rng: random.Random, split: str):
        self._rng = rng
        self._split = split
        self._used: set[str] = set()

    def _syllable(self) -> str:
        # Inline index arithmetic: rng.choice is the generator's hot spot under rejection sampling.
        return SYLLABLES[int(self._rng.random() * len(SYLLABLES))]

    def _word(self, syllables: int, suffix: str = "") -> str:
        # Rejection sampling: held-out splits own only a tenth of all words, which is still plenty.
        while True:
            word = ("".join([self._syllable() for _ in range(syllables)]) + suffix).capitalize()
            if word not in self._used and owning_split(word) == self._split:
                self._used.add(word)
                return word

    def _unique(self, draw: Callable[[], str]) -> str:
        while True:
            value = draw()
            if value not in self._used:
                self._used.add(value)
                return value

    def person_name(self) -> str:
        return f"{self._word(2)} {self._word(2)}"

    def city(self) -> str:
        return self._word(self._rng.choice((1, 2)), suffix=self._rng.choice(CITY_SUFFIXES))

    def organisation(self) -> str:
        return f"{self._word(2)} {self._rng.choice(ORGANISATION_TYPES)}"

    def invention(self) -> str:
        return f"{self._word(2)} {self._rng.choice(OBJECT_NOUNS)}"

    def year(self) -> str:
        return self._unique(lambda: str(self._rng.randint(*YEAR_RANGE)))

    def date(self) -> str:
        return self._unique(lambda: f"{self._rng.randint(1, 28)} {self._rng.choice(MONTHS)}")

    def person(self) -> Person:
        facts = {"year": self.year(), "city": self.city(), "object": self.invention(),
                 "organisation": self.organisation(), "date": self.date()}
        return Person(name=self.person_name(), pronoun=self._rng.choice(tuple(PRONOUNS)),
                       profession=self._rng.choice(PROFESSIONS), facts=facts)
