import re

import pytest

from helpers.squad_json import to_squad_json
from qaexp.data.synthetic import (
    ANSWER_KINDS,
    _DISTRACTOR_OWNER,
    _generate_samples,
    generate_examples,
)
from qaexp.data.synthetic_words import owning_split as _owning_split

YEAR = re.compile(r"\b\d{4}\b")
DATE = re.compile(r"\b\d{1,2} (?:January|February|March|April|May|June|July|August|September"
                  r"|October|November|December)\b")
NAME_KINDS = ("person", "city", "object", "organisation")


def answer_text(record):
    return record["answers"]["text"][0]


def flatten_squad_json(squad):
    records = []
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = qa["answers"]
                records.append({"id": qa["id"], "title": article["title"],
                                "context": paragraph["context"], "question": qa["question"],
                                "answers": {"text": [a["text"] for a in answers],
                                            "answer_start": [a["answer_start"] for a in answers]}})
    return records


@pytest.fixture(scope="module")
def train_records():
    return (generate_examples(3000, split="train", difficulty="easy")
            + generate_examples(3000, split="train", difficulty="hard"))


def test_same_arguments_give_identical_output():
    kwargs = dict(seed=7, difficulty="hard", split="validation", unanswerable_fraction=0.3)
    assert generate_examples(50, **kwargs) == generate_examples(50, **kwargs)


def test_seed_and_split_change_the_output():
    base = generate_examples(20, seed=0)
    other_seed = generate_examples(20, seed=1)
    other_split = generate_examples(20, seed=0, split="test")
    assert [r["context"] for r in base] != [r["context"] for r in other_seed]
    assert {r["context"] for r in base}.isdisjoint(r["context"] for r in other_split)


def test_shorter_run_is_a_prefix_of_a_longer_one():
    assert generate_examples(30, seed=3) == generate_examples(80, seed=3)[:30]


def test_record_layout_and_id_format():
    record = generate_examples(1, seed=4, split="test", difficulty="hard")[0]
    assert set(record) == {"id", "title", "context", "question", "answers"}
    assert set(record["answers"]) == {"text", "answer_start"}
    assert record["id"] == "syn-test-hard-4-000000"
    assert record["question"].endswith("?")


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_every_answer_is_located_at_its_start(difficulty):
    records = generate_examples(1000, difficulty=difficulty, unanswerable_fraction=0.2,
                                long_context_sentences=2)
    answered = [r for r in records if r["answers"]["text"]]
    assert len(answered) > 700
    for record in answered:
        (text,), (start,) = record["answers"]["text"], record["answers"]["answer_start"]
        assert record["context"][start:start + len(text)] == text


def test_ids_are_unique_across_difficulties_and_splits():
    records = [record for split in ("train", "validation") for difficulty in ("easy", "hard")
               for record in generate_examples(500, split=split, difficulty=difficulty)]
    assert len({r["id"] for r in records}) == len(records)


@pytest.mark.parametrize("held_out_split", ["validation", "test"])
def test_held_out_answers_never_appear_as_train_answers(train_records, held_out_split):
    held_out = (generate_examples(1500, split=held_out_split, difficulty="easy")
                + generate_examples(1500, split=held_out_split, difficulty="hard"))

    def name_like_answers(records):
        # Years and dates are shared between splits by design (see the module docstring).
        return {answer_text(r) for r in records
                if not YEAR.fullmatch(answer_text(r)) and not DATE.fullmatch(answer_text(r))}

    held_out_answers = name_like_answers(held_out)
    assert len(held_out_answers) > 1500
    assert held_out_answers.isdisjoint(name_like_answers(train_records))


def test_held_out_entity_words_never_appear_anywhere_in_train_text(train_records):
    train_words = {word for r in train_records for word in (r["context"] + " " + r["question"])
                   .replace(".", " ").replace(",", " ").replace("?", " ").split()}
    samples = _generate_samples(500, split="validation", difficulty="hard",
                                unanswerable_fraction=0.5)
    entity_words = {word for s in samples for m in s.mentions if m.kind in NAME_KINDS
                    for word in m.text.split()}
    entity_words |= {word for s in samples for word in s.subject.split()}
    shared_type_words = {"Institute", "Society", "Company", "Guild", "Foundation", "Academy",
                         "Trust", "Museum", "Library", "Works", "lamp", "engine", "loom",
                         "compass", "press", "valve", "pump", "lens", "clock", "kiln",
                         "telescope", "sextant", "furnace", "scale", "barometer"}
    held_out_words = entity_words - shared_type_words - {w for w in entity_words if w.isdigit()}
    assert len(held_out_words) > 1000
    assert held_out_words.isdisjoint(train_words)


def test_entity_words_are_owned_by_exactly_one_split():
    assert _owning_split("Brenwick") in ("train", "validation", "test")
    owners = {_owning_split(f"Word{i}") for i in range(200)}
    assert owners == {"train", "validation", "test"}


def test_easy_questions_have_a_single_candidate_of_the_answer_kind():
    samples = _generate_samples(2000, difficulty="easy")
    assert {s.kind for s in samples} == set(ANSWER_KINDS)
    for sample in samples:
        candidates = {m.text for m in sample.mentions if m.kind == sample.kind}
        assert candidates == {answer_text(sample.record)}


@pytest.mark.parametrize("pattern", [YEAR, DATE], ids=["year", "date"])
def test_easy_contexts_hold_one_year_or_date_when_asked_for_one(pattern):
    asked = [r for r in generate_examples(2000, difficulty="easy")
             if pattern.fullmatch(answer_text(r))]
    assert len(asked) > 100
    for record in asked:
        assert pattern.findall(record["context"]) == [answer_text(record)]


def test_easy_contexts_are_short_paragraphs():
    lengths = [len(r["context"].split()) for r in generate_examples(2000, difficulty="easy")]
    assert min(lengths) >= 40
    assert max(lengths) <= 120
    assert max(lengths) - min(lengths) >= 15  # varied, not one fixed shape


def test_easy_answers_are_short_spans():
    for record in generate_examples(1000, difficulty="easy"):
        assert 1 <= len(answer_text(record).split()) <= 3


def test_hard_paragraphs_state_the_same_facts_for_several_people():
    samples = _generate_samples(1000, difficulty="hard")
    for sample in samples:
        people = {m.owner for m in sample.mentions
                  if m.kind == "person" and m.owner != _DISTRACTOR_OWNER}
        assert len(people) >= 2
        if sample.kind != "person":
            # The asked-for kind has one candidate per person, so the question must be matched.
            assert len({m.text for m in sample.mentions if m.kind == sample.kind}) == len(people)
    year_questions = [s.record for s in samples if s.kind == "year"]
    assert year_questions
    assert all(len(YEAR.findall(r["context"])) >= 2 for r in year_questions)


def test_hard_answers_belong_to_the_entity_named_in_the_question():
    for sample in _generate_samples(500, difficulty="hard"):
        subject_owner = next(m.owner for m in sample.mentions if m.text == sample.subject)
        answer = next(m for m in sample.mentions
                      if m.start == sample.record["answers"]["answer_start"][0])
        assert sample.subject in sample.record["question"]
        assert answer.owner == subject_owner


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_unanswerable_fraction_is_roughly_honoured(difficulty):
    records = generate_examples(2000, difficulty=difficulty, unanswerable_fraction=0.3)
    unanswerable = [r for r in records if not r["answers"]["text"]]
    assert abs(len(unanswerable) / len(records) - 0.3) < 0.04
    assert all(r["answers"] == {"text": [], "answer_start": []} for r in unanswerable)


def test_no_unanswerable_questions_by_default():
    assert all(r["answers"]["text"] for r in generate_examples(500, difficulty="hard"))


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_unanswerable_questions_ask_about_something_the_context_lacks(difficulty):
    samples = [s for s in _generate_samples(1000, difficulty=difficulty, unanswerable_fraction=0.5)
               if not s.record["answers"]["text"]]
    assert len(samples) > 400
    for sample in samples:
        context = sample.record["context"]
        subject_absent = sample.subject not in context
        kind_absent = all(m.kind != sample.kind for m in sample.mentions)
        assert subject_absent or kind_absent
        assert sample.subject in sample.record["question"]


def test_long_context_sentences_lengthen_contexts_and_keep_answers_aligned():
    short = generate_examples(50, seed=5)
    long = generate_examples(50, seed=5, long_context_sentences=30)
    for record in long:
        (text,), (start,) = record["answers"]["text"], record["answers"]["answer_start"]
        assert record["context"][start:start + len(text)] == text
    words = [len(r["context"].split()) for r in long]
    assert min(words) > max(len(r["context"].split()) for r in short)
    # Fillers are spread through the paragraph, so some answers sit far from the start.
    assert max(r["answers"]["answer_start"][0] for r in long) > 1000


@pytest.mark.parametrize("kwargs", [
    dict(difficulty="medium"), dict(split="dev"), dict(unanswerable_fraction=1.5),
    dict(long_context_sentences=-1),
])
def test_invalid_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        generate_examples(3, **kwargs)


def test_zero_examples_gives_an_empty_list():
    assert generate_examples(0) == []


@pytest.mark.parametrize("version,fraction", [("1.1", 0.0), ("2.0", 0.3)])
def test_to_squad_json_round_trips(version, fraction):
    records = generate_examples(200, difficulty="hard", unanswerable_fraction=fraction)
    squad = to_squad_json(records, version=version)
    assert squad["version"] == version
    by_id = {r["id"]: r for r in flatten_squad_json(squad)}
    assert by_id == {r["id"]: r for r in records}


def test_to_squad_json_marks_impossible_questions_only_for_version_2():
    records = generate_examples(100, unanswerable_fraction=0.5)
    qas_v2 = [qa for article in to_squad_json(records, version="2.0")["data"]
              for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    assert [qa["is_impossible"] for qa in qas_v2] == [not r["answers"]["text"] for r in records]
    answerable = [r for r in records if r["answers"]["text"]]
    qas_v1 = [qa for article in to_squad_json(answerable)["data"]
              for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    assert all("is_impossible" not in qa for qa in qas_v1)


def test_to_squad_json_rejects_unanswerable_records_for_version_1():
    records = generate_examples(20, unanswerable_fraction=1.0)
    with pytest.raises(ValueError, match="2.0"):
        to_squad_json(records, version="1.1")


def test_to_squad_json_rejects_unknown_versions():
    with pytest.raises(ValueError):
        to_squad_json([], version="3.0")


def test_to_squad_json_groups_by_title_then_context():
    def record(record_id, title, context):
        return {"id": record_id, "title": title, "context": context, "question": "Q?",
                "answers": {"text": [context[:1]], "answer_start": [0]}}

    records = [record("a", "T1", "c1"), record("b", "T2", "c3"), record("c", "T1", "c2"),
               record("d", "T1", "c1")]
    data = to_squad_json(records)["data"]
    assert [article["title"] for article in data] == ["T1", "T2"]
    paragraphs = data[0]["paragraphs"]
    assert [p["context"] for p in paragraphs] == ["c1", "c2"]
    assert [qa["id"] for qa in paragraphs[0]["qas"]] == ["a", "d"]
    assert paragraphs[0]["qas"][0]["answers"] == [{"text": "c", "answer_start": 0}]
