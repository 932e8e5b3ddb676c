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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from qaexp.data import synthetic_words as words

SPLITS = ("train", "validation", "test")
DIFFICULTIES = ("easy", "hard")

# Kinds of facts stated about a person, in the order used whenever a deterministic order matters.
FACT_KINDS = ("year", "city", "object", "organisation", "date")
# Fact kinds a question can ask "about <person name>"; "date" is asked about an organisation.
_PERSON_SUBJECT_KINDS = ("year", "city", "object", "organisation")
ANSWER_KINDS = ("person",) + FACT_KINDS

_MIN_WORDS = 40
_DISTRACTOR_OWNER = -1  # owner index of mentions that belong to no person in the paragraph

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


def _person_fields(person: words.Person, owner: int,
                   name_as_subject: bool) -> tuple[dict[str, str], dict[str, tuple[str, int]]]:
    """Template values for ``person`` and which of them are tracked entity mentions."""
    nominative, objective = words.PRONOUNS[person.pronoun]
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
        templates.append(rng.choice(words.BIRTH_TEMPLATES[birth_kinds]))
    if "object" in stated:
        templates.append(rng.choice(words.OBJECT_TEMPLATES))
    if "date" in stated:
        templates.append(rng.choice(words.ORGANISATION_DATE_TEMPLATES))
    elif "organisation" in stated:
        templates.append(rng.choice(words.ORGANISATION_TEMPLATES))
    rng.shuffle(templates)
    return templates


def _fact_sentences(rng: random.Random, person: words.Person, owner: int, stated: Sequence[str],
                    name_first: bool) -> list[_Sentence]:
    sentences = []
    for position, template in enumerate(_fact_templates(rng, stated)):
        name_as_subject = name_first and position == 0
        values, tracked = _person_fields(person, owner, name_as_subject=name_as_subject)
        sentences.append(_render(template, values, tracked))
    return sentences


def _intro_sentence(rng: random.Random, person: words.Person, owner: int) -> _Sentence:
    values, tracked = _person_fields(person, owner, name_as_subject=True)
    return _render(rng.choice(words.INTRO_TEMPLATES), values, tracked)


def _filler_sentence(rng: random.Random) -> _Sentence:
    return _Sentence(f"{rng.choice(words.FILLER_SUBJECTS)} {rng.choice(words.FILLER_PREDICATES)}.", ())


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


def _easy_sentences(rng: random.Random, person: words.Person, stated: Sequence[str],
                    mentor: str | None) -> list[_Sentence]:
    sentences = [_intro_sentence(rng, person, 0)]
    extra = _fact_sentences(rng, person, 0, stated, name_first=False)
    if mentor is not None:
        values, tracked = _person_fields(person, 0, name_as_subject=False)
        values["mentor"] = mentor
        tracked["mentor"] = ("person", _DISTRACTOR_OWNER)
        extra.append(_render(rng.choice(words.MENTOR_TEMPLATES), values, tracked))
    extra += [_filler_sentence(rng) for _ in range(rng.randint(1, 2))]
    rng.shuffle(extra)
    return sentences + extra


def _hard_sentences(rng: random.Random, people: Sequence[words.Person],
                    stated: Sequence[str]) -> list[_Sentence]:
    count = "two" if len(people) == 2 else "three"
    sentences = [_Sentence(rng.choice(words.GROUP_INTRO_TEMPLATES).format(count=count), ())]
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
        template = rng.choice(words.PERSON_QUESTION_TEMPLATES[subject_kind])
        return template.format(**{subject_kind: subject})
    if kind == "date":
        return rng.choice(words.QUESTION_TEMPLATES["date"]).format(organisation=subject)
    return rng.choice(words.QUESTION_TEMPLATES[kind]).format(name=subject)


def _answerable_question(rng: random.Random, person: words.Person,
                         stated: Sequence[str]) -> _Question:
    handles = [kind for kind in _PERSON_SUBJECT_KINDS if kind in stated]
    kind = rng.choice(list(stated) + ["person"])
    if kind == "person":
        handle = rng.choice(handles)
        subject = person.facts[handle]
        return _Question(_ask(rng, kind, handle, subject), kind, subject, True)
    subject = person.facts["organisation"] if kind == "date" else person.name
    return _Question(_ask(rng, kind, "person", subject), kind, subject, True)


def _unanswerable_question(rng: random.Random, factory: words.EntityFactory, person: words.Person,
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
    factory = words.EntityFactory(rng, split)
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
