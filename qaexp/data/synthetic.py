"""Deterministic synthetic SQuAD-shaped question answering data, so qaexp runs offline.

Every record is a flat SQuAD record::

    {"id", "title", "context", "question", "answers": {"text": [...], "answer_start": [...]}}

with ``context[start:start + len(text)] == text`` for every answer. Contexts are short templated
paragraphs about invented people: their birth year, home city, profession, the object they
invented, the organisation they founded and the date it opened.

Answer kinds: ``person`` ("Dara Velmont"), ``year`` ("1874"), ``city`` ("Brenwick"),
``object`` ("Orvane lamp"), ``organisation`` ("Tulmar Institute") and ``date`` ("14 May").
Professions and filler sentences appear in contexts but are never answers.

Determinism
    Record ``i`` is built from its own ``random.Random`` seeded with a string made of the split,
    difficulty, seed and ``i`` (string seeds go through SHA-512, never Python's salted ``hash``).
    The same arguments therefore give identical output, and a shorter run is a prefix of a longer
    one with the same arguments.

Held-out entities
    Every invented word (given names, family names, cities, the distinctive first word of
    organisations and objects) is owned by exactly one split: ``crc32(word) % 10`` puts buckets
    0-7 in ``train``, 8 in ``validation`` and 9 in ``test``. A split only ever uses the words it
    owns, so no person, city, organisation or object of ``validation``/``test`` appears anywhere
    in ``train``. Words are built from a shared syllable inventory, so a subword tokenizer trained
    on ``train`` still covers held-out names, and the name space is far larger than any run needs.
    Years (1700-1989) and dates ("14 May") are closed numeric classes and deliberately shared by
    all splits; only name-like answers are held out.

Difficulty
    ``easy``: one person per paragraph and at most one entity of each answer kind, so the kind
    of the question alone locates the answer. A mentor may be mentioned as a distractor person,
    but only when the question does not ask for a person.
    ``hard``: two or three people who all have the same kinds of facts stated, so the person
    (or object/organisation) named in the question has to be matched in the context.

Unanswerable questions (``unanswerable_fraction > 0``, SQuAD v2 style) have empty answers and ask
about a person or object/organisation the paragraph never mentions, or about a kind of fact the
paragraph does not state.
"""

from __future__ import annotations

import random
import string
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

SPLITS = ("train", "validation", "test")
DIFFICULTIES = ("easy", "hard")
SQUAD_VERSIONS = ("1.1", "2.0")

# Kinds of facts stated about a person, in the order used whenever a deterministic order matters.
FACT_KINDS = ("year", "city", "object", "organisation", "date")
# Fact kinds a question can ask "about <person name>"; "date" is asked about an organisation.
_PERSON_SUBJECT_KINDS = ("year", "city", "object", "organisation")
ANSWER_KINDS = ("person",) + FACT_KINDS

_MIN_WORDS = 40
_DISTRACTOR_OWNER = -1  # owner index of mentions that belong to no person in the paragraph

# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

_ONSETS = ("b", "br", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "th", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "ai", "ou")
_CODAS = ("", "", "", "", "n", "r", "l", "s", "m")
# Repeated vowels/codas weight the draw towards short, pronounceable syllables.
_SYLLABLES = tuple(onset + vowel + coda
                   for onset in _ONSETS for vowel in _VOWELS for coda in _CODAS)
_CITY_SUFFIXES = ("wick", "ford", "mere", "holm", "stead", "bury", "haven", "dale", "port", "ton")
_ORGANISATION_TYPES = ("Institute", "Society", "Company", "Guild", "Foundation", "Academy",
                       "Trust", "Museum", "Library", "Works")
_OBJECT_NOUNS = ("lamp", "engine", "loom", "compass", "press", "valve", "pump", "lens", "clock",
                 "kiln", "telescope", "sextant", "furnace", "scale", "barometer")
_PROFESSIONS = ("teacher", "engineer", "clockmaker", "chemist", "carpenter", "surveyor",
                "printer", "glassblower", "sailor", "physician", "architect", "weaver", "baker",
                "painter", "astronomer", "botanist", "mechanic", "potter", "librarian",
                "cartographer", "blacksmith", "musician", "journalist", "tailor")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_YEAR_RANGE = (1700, 1989)
_PRONOUNS = {"she": ("she", "her"), "he": ("he", "him")}

_FILLER_SUBJECTS = ("The old market", "Local historians", "Most visitors", "A later biography",
                    "The neighbours", "Several letters", "The workshop", "Critics of the time",
                    "The town council", "Early reviews", "Travelling merchants",
                    "A small museum", "Family records", "Later accounts", "The newspapers",
                    "Former colleagues", "The surrounding villages", "An old diary")
_FILLER_PREDICATES = ("remained quiet for most of the year",
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

_INTRO_TEMPLATES = ("{name} worked as {a_profession} for many years.",
                    "{name} was {a_profession} by trade.",
                    "Few people today remember {name}, {a_profession} of rare talent.",
                    "{name} trained as {a_profession} before turning to invention.")
_GROUP_INTRO_TEMPLATES = ("This account follows {count} inventors of the same era.",
                          "The archive describes {count} people who once shared a workshop.",
                          "Local records mention {count} notable figures from the period.")
_BIRTH_TEMPLATES = {
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
_OBJECT_TEMPLATES = ("{S} invented the {object}.",
                     "{S} is best known for inventing the {object}.",
                     "The {object} was invented by {o}.",
                     "Years of patient work led {o} to invent the {object}.")
_ORGANISATION_TEMPLATES = ("{S} founded the {organisation}.",
                           "Later in life, {s} established the {organisation}.",
                           "{S} went on to found the {organisation}.")
_ORGANISATION_DATE_TEMPLATES = ("{S} founded the {organisation}, which opened on {date}.",
                                "{S} established the {organisation}; it first opened its doors "
                                "on {date}.",
                                "On {date}, {s} opened the {organisation}, which {p} had "
                                "founded.")
_MENTOR_TEMPLATES = ("{S} learned the trade from {mentor}.",
                     "{S} studied for a time under {mentor}.",
                     "As a young apprentice, {s} assisted {mentor}.")

_QUESTION_TEMPLATES = {
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
_PERSON_QUESTION_TEMPLATES = {
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

def _owning_split(word: str) -> str:
    """The only split allowed to use ``word`` (stable across runs and machines)."""
    bucket = zlib.crc32(word.encode("utf-8")) % 10
    return "train" if bucket < 8 else ("validation" if bucket == 8 else "test")


@dataclass(frozen=True)
class _Person:
    name: str
    pronoun: str
    profession: str
    facts: Mapping[str, str]  # fact kind -> surface form, whether or not the paragraph states it


class _EntityFactory:
    """Draws entities owned by one split, never repeating a surface form within a paragraph."""

    def __init__(self, rng: random.Random, split: str):
        self._rng = rng
        self._split = split
        self._used: set[str] = set()

    def _syllable(self) -> str:
        # Inline index arithmetic: rng.choice is the generator's hot spot under rejection sampling.
        return _SYLLABLES[int(self._rng.random() * len(_SYLLABLES))]

    def _word(self, syllables: int, suffix: str = "") -> str:
        # Rejection sampling: held-out splits own only a tenth of all words, which is still plenty.
        while True:
            word = ("".join([self._syllable() for _ in range(syllables)]) + suffix).capitalize()
            if word not in self._used and _owning_split(word) == self._split:
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
        return self._word(self._rng.choice((1, 2)), suffix=self._rng.choice(_CITY_SUFFIXES))

    def organisation(self) -> str:
        return f"{self._word(2)} {self._rng.choice(_ORGANISATION_TYPES)}"

    def invention(self) -> str:
        return f"{self._word(2)} {self._rng.choice(_OBJECT_NOUNS)}"

    def year(self) -> str:
        return self._unique(lambda: str(self._rng.randint(*_YEAR_RANGE)))

    def date(self) -> str:
        return self._unique(lambda: f"{self._rng.randint(1, 28)} {self._rng.choice(_MONTHS)}")

    def person(self) -> _Person:
        facts = {"year": self.year(), "city": self.city(), "object": self.invention(),
                 "organisation": self.organisation(), "date": self.date()}
        return _Person(name=self.person_name(), pronoun=self._rng.choice(tuple(_PRONOUNS)),
                       profession=self._rng.choice(_PROFESSIONS), facts=facts)


# ---------------------------------------------------------------------------------------------
# Sentences with tracked entity mentions
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Mention:
    kind: str
    owner: int  # index of the person in the paragraph, or _DISTRACTOR_OWNER
    text: str
    start: int


@dataclass(frozen=True)
class _Sentence:
    text: str
    mentions: tuple[_Mention, ...]  # starts relative to the sentence


def _render(template: str, values: Mapping[str, str],
            tracked: Mapping[str, tuple[str, int]]) -> _Sentence:
    """Fill ``template`` and record where each tracked field (-> (kind, owner)) landed."""
    pieces: list[str] = []
    mentions: list[_Mention] = []
    offset = 0
    for literal, field_name, _, _ in string.Formatter().parse(template):
        pieces.append(literal)
        offset += len(literal)
        if field_name is None:
            continue
        value = values[field_name]
        if field_name in tracked:
            kind, owner = tracked[field_name]
            mentions.append(_Mention(kind, owner, value, offset))
        pieces.append(value)
        offset += len(value)
    return _Sentence("".join(pieces), tuple(mentions))


def _join(sentences: Sequence[_Sentence]) -> tuple[str, tuple[_Mention, ...]]:
    mentions: list[_Mention] = []
    offset = 0
    for sentence in sentences:
        mentions.extend(_Mention(m.kind, m.owner, m.text, m.start + offset)
                        for m in sentence.mentions)
        offset += len(sentence.text) + 1  # the joining space
    return " ".join(s.text for s in sentences), tuple(mentions)


def _with_article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _person_fields(person: _Person, owner: int,
                   name_as_subject: bool) -> tuple[dict[str, str], dict[str, tuple[str, int]]]:
    """Template values for ``person`` and which of them are tracked entity mentions."""
    nominative, objective = _PRONOUNS[person.pronoun]
    subject = person.name if name_as_subject else nominative
    values = {"S": subject[0].upper() + subject[1:], "s": subject,
              "o": person.name if name_as_subject else objective, "p": nominative,
              "name": person.name, "a_profession": _with_article(person.profession),
              **person.facts}
    tracked = {kind: (kind, owner) for kind in person.facts}
    subject_fields = ("name", "S", "s", "o") if name_as_subject else ("name",)
    tracked.update({field_name: ("person", owner) for field_name in subject_fields})
    return values, tracked


def _fact_templates(rng: random.Random, stated: Sequence[str]) -> list[str]:
    templates = []
    birth_kinds = tuple(kind for kind in ("year", "city") if kind in stated)
    if birth_kinds:
        templates.append(rng.choice(_BIRTH_TEMPLATES[birth_kinds]))
    if "object" in stated:
        templates.append(rng.choice(_OBJECT_TEMPLATES))
    if "date" in stated:
        templates.append(rng.choice(_ORGANISATION_DATE_TEMPLATES))
    elif "organisation" in stated:
        templates.append(rng.choice(_ORGANISATION_TEMPLATES))
    rng.shuffle(templates)
    return templates


def _fact_sentences(rng: random.Random, person: _Person, owner: int, stated: Sequence[str],
                    name_first: bool) -> list[_Sentence]:
    sentences = []
    for position, template in enumerate(_fact_templates(rng, stated)):
        name_as_subject = name_first and position == 0
        values, tracked = _person_fields(person, owner, name_as_subject=name_as_subject)
        sentences.append(_render(template, values, tracked))
    return sentences


def _intro_sentence(rng: random.Random, person: _Person, owner: int) -> _Sentence:
    values, tracked = _person_fields(person, owner, name_as_subject=True)
    return _render(rng.choice(_INTRO_TEMPLATES), values, tracked)


def _filler_sentence(rng: random.Random) -> _Sentence:
    return _Sentence(f"{rng.choice(_FILLER_SUBJECTS)} {rng.choice(_FILLER_PREDICATES)}.", ())


def _insert_after_first(rng: random.Random, sentences: list[_Sentence],
                        extra: Iterable[_Sentence]) -> None:
    # Position 0 stays first: it introduces the paragraph that later pronouns refer back to.
    for sentence in extra:
        sentences.insert(rng.randint(1, len(sentences)), sentence)


def _word_count(sentences: Sequence[_Sentence]) -> int:
    return sum(len(s.text.split()) for s in sentences)


def _pad_to_min_words(rng: random.Random, sentences: list[_Sentence]) -> None:
    while _word_count(sentences) < _MIN_WORDS:
        _insert_after_first(rng, sentences, [_filler_sentence(rng)])


# ---------------------------------------------------------------------------------------------
# Paragraphs
# ---------------------------------------------------------------------------------------------

def _choose_stated_kinds(rng: random.Random, difficulty: str, num_people: int) -> tuple[str, ...]:
    """Fact kinds the paragraph states (for every person in it)."""
    if difficulty == "easy":
        stated = [kind for kind in _PERSON_SUBJECT_KINDS if rng.random() < 0.75]
    else:
        # Fewer kinds with three people keeps paragraphs near the easy length.
        size = 2 if num_people == 3 else rng.randint(2, 3)
        stated = sorted(rng.sample(_PERSON_SUBJECT_KINDS, size), key=FACT_KINDS.index)
    while len(stated) < 2:
        missing = [kind for kind in _PERSON_SUBJECT_KINDS if kind not in stated]
        stated.append(rng.choice(missing))
    if "organisation" in stated and rng.random() < 0.6:
        stated.append("date")
    return tuple(kind for kind in FACT_KINDS if kind in stated)


def _easy_sentences(rng: random.Random, person: _Person, stated: Sequence[str],
                    mentor: str | None) -> list[_Sentence]:
    sentences = [_intro_sentence(rng, person, 0)]
    extra = _fact_sentences(rng, person, 0, stated, name_first=False)
    if mentor is not None:
        values, tracked = _person_fields(person, 0, name_as_subject=False)
        values["mentor"] = mentor
        tracked["mentor"] = ("person", _DISTRACTOR_OWNER)
        extra.append(_render(rng.choice(_MENTOR_TEMPLATES), values, tracked))
    extra += [_filler_sentence(rng) for _ in range(rng.randint(1, 2))]
    rng.shuffle(extra)
    return sentences + extra


def _hard_sentences(rng: random.Random, people: Sequence[_Person],
                    stated: Sequence[str]) -> list[_Sentence]:
    count = "two" if len(people) == 2 else "three"
    sentences = [_Sentence(rng.choice(_GROUP_INTRO_TEMPLATES).format(count=count), ())]
    for owner, person in enumerate(people):
        with_intro = rng.random() < 0.3
        if with_intro:
            sentences.append(_intro_sentence(rng, person, owner))
        sentences += _fact_sentences(rng, person, owner, stated, name_first=not with_intro)
    if rng.random() < 0.5:
        sentences.append(_filler_sentence(rng))
    return sentences


# ---------------------------------------------------------------------------------------------
# Questions
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Question:
    text: str
    kind: str  # answer kind asked for
    subject: str  # the entity the question names
    answerable: bool


def _ask(rng: random.Random, kind: str, subject_kind: str, subject: str) -> str:
    """A question for ``kind`` naming ``subject`` (a person, or a fact of kind ``subject_kind``)."""
    if kind == "person":
        template = rng.choice(_PERSON_QUESTION_TEMPLATES[subject_kind])
        return template.format(**{subject_kind: subject})
    if kind == "date":
        return rng.choice(_QUESTION_TEMPLATES["date"]).format(organisation=subject)
    return rng.choice(_QUESTION_TEMPLATES[kind]).format(name=subject)


def _answerable_question(rng: random.Random, person: _Person,
                         stated: Sequence[str]) -> _Question:
    handles = [kind for kind in _PERSON_SUBJECT_KINDS if kind in stated]
    kind = rng.choice(list(stated) + ["person"])
    if kind == "person":
        handle = rng.choice(handles)
        subject = person.facts[handle]
        return _Question(_ask(rng, kind, handle, subject), kind, subject, True)
    subject = person.facts["organisation"] if kind == "date" else person.name
    return _Question(_ask(rng, kind, "person", subject), kind, subject, True)


def _unanswerable_question(rng: random.Random, factory: _EntityFactory, person: _Person,
                           stated: Sequence[str]) -> _Question:
    missing = [kind for kind in _PERSON_SUBJECT_KINDS if kind not in stated]
    if "organisation" in stated and "date" not in stated:
        missing.append("date")
    strategies = ["absent_person", "absent_thing"] + (["missing_fact"] if missing else [])
    strategy = rng.choice(strategies)
    if strategy == "absent_person":
        kind, subject = rng.choice(_PERSON_SUBJECT_KINDS), factory.person_name()
        return _Question(_ask(rng, kind, "person", subject), kind, subject, False)
    if strategy == "absent_thing":
        handle = rng.choice(("object", "organisation"))
        subject = factory.invention() if handle == "object" else factory.organisation()
        return _Question(_ask(rng, "person", handle, subject), "person", subject, False)
    kind = rng.choice(missing)
    subject = person.facts["organisation"] if kind == "date" else person.name
    return _Question(_ask(rng, kind, "person", subject), kind, subject, False)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Sample:
    """A record plus what the generator knows about it (used by tests, never serialised)."""
    record: dict
    kind: str
    subject: str
    mentions: tuple[_Mention, ...]


def _validate_arguments(num_examples: int, difficulty: str, split: str,
                        unanswerable_fraction: float, long_context_sentences: int) -> None:
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0.0 <= unanswerable_fraction <= 1.0:
        raise ValueError(f"unanswerable_fraction must be in [0, 1], got {unanswerable_fraction}")
    if long_context_sentences < 0:
        raise ValueError(f"long_context_sentences must be >= 0, got {long_context_sentences}")


def _answers(question: _Question, mentions: Sequence[_Mention], target: int) -> dict:
    if not question.answerable:
        return {"text": [], "answer_start": []}
    answer = next(m for m in mentions if m.kind == question.kind and m.owner == target)
    return {"text": [answer.text], "answer_start": [answer.start]}


def _generate_sample(record_id: str, rng: random.Random, split: str, difficulty: str,
                     unanswerable_fraction: float, long_context_sentences: int) -> _Sample:
    factory = _EntityFactory(rng, split)
    answerable = rng.random() >= unanswerable_fraction
    people = [factory.person() for _ in range(1 if difficulty == "easy" else rng.choice((2, 3)))]
    stated = _choose_stated_kinds(rng, difficulty, len(people))
    target = rng.randrange(len(people))
    question = (_answerable_question(rng, people[target], stated) if answerable
                else _unanswerable_question(rng, factory, people[target], stated))
    if difficulty == "easy":
        # A mentor is a second person, so only allowed when the question does not ask for one.
        with_mentor = question.kind != "person" and rng.random() < 0.5
        mentor = factory.person_name() if with_mentor else None
        sentences = _easy_sentences(rng, people[0], stated, mentor)
        title = people[0].name
    else:
        sentences = _hard_sentences(rng, people, stated)
        title = " and ".join(person.name for person in people)
    _pad_to_min_words(rng, sentences)
    _insert_after_first(rng, sentences,
                        [_filler_sentence(rng) for _ in range(long_context_sentences)])
    context, mentions = _join(sentences)
    record = {"id": record_id, "title": title, "context": context, "question": question.text,
              "answers": _answers(question, mentions, target)}
    return _Sample(record, question.kind, question.subject, mentions)


def _generate_samples(num_examples: int, *, seed: int = 0, difficulty: str = "easy",
                      split: str = "train", unanswerable_fraction: float = 0.0,
                      long_context_sentences: int = 0) -> list[_Sample]:
    _validate_arguments(num_examples, difficulty, split, unanswerable_fraction,
                        long_context_sentences)
    samples = []
    for index in range(num_examples):
        rng = random.Random(f"qaexp-synthetic|{split}|{difficulty}|{seed}|{index}")
        record_id = f"syn-{split}-{difficulty}-{seed}-{index:06d}"
        samples.append(_generate_sample(record_id, rng, split, difficulty,
                                        unanswerable_fraction, long_context_sentences))
    return samples


def generate_examples(num_examples: int, *, seed: int = 0, difficulty: str = "easy",
                      split: str = "train", unanswerable_fraction: float = 0.0,
                      long_context_sentences: int = 0) -> list[dict]:
    """``num_examples`` flat SQuAD records, fully determined by the arguments.

    ``split`` selects the entity pool (``train``, ``validation`` or ``test``; the pools share no
    name-like entity). ``difficulty`` is ``easy`` or ``hard`` (see the module docstring).
    ``unanswerable_fraction`` is the expected share of records with empty answers.
    ``long_context_sentences`` inserts that many extra filler sentences into every context,
    which is handy for exercising document striding.
    """
    return [sample.record for sample in _generate_samples(
        num_examples, seed=seed, difficulty=difficulty, split=split,
        unanswerable_fraction=unanswerable_fraction,
        long_context_sentences=long_context_sentences)]


# ---------------------------------------------------------------------------------------------
# Official nested format
# ---------------------------------------------------------------------------------------------

def _official_qa(record: Mapping, version: str) -> dict:
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


def to_squad_json(records: Iterable[Mapping], version: str = "1.1") -> dict:
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
