"""Data loading (official nested SQuAD, JSON lists, JSON lines) and every validation rule of qaexp.data.squad."""
import json
import logging

import pytest
from omegaconf import OmegaConf

from qaexp.data.checks import UNPLACED, check_records, mostly_dropped
from qaexp.data.squad import load_splits, read_records
from qaexp.errors import DataError

CONTEXT = "Ada grew up in Lyon. She moved to Paris in 1990."


def record(id_="q1", context=CONTEXT, question="Where did Ada grow up?", text="Lyon", start=15, **extra):
    return {"id": id_, "title": "Ada", "context": context, "question": question,
            "answers": {"text": [text], "answer_start": [start]}, **extra}


def nested(*records):
    return {"version": "1.1", "data": [{"title": "Ada", "paragraphs": [
        {"context": r["context"], "qas": [{"id": r["id"], "question": r["question"],
                                            "answers": [{"text": t, "answer_start": s} for t, s in
                                                        zip(r["answers"]["text"], r["answers"]["answer_start"])]}]}
        for r in records]}]}


def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def jsonl(*records):
    return "\n".join(json.dumps(r) for r in records) + "\n"


# ---- loaders -------------------------------------------------------------------------------------------


def test_official_squad_file_loads(squad_v1_dev):
    records = read_records(str(squad_v1_dev))
    assert len(records) == 10570
    first = records[0]
    assert set(first) == {"id", "title", "context", "question", "answers"}
    for text, start in zip(first["answers"]["text"], first["answers"]["answer_start"]):
        assert first["context"][start:start + len(text)] == text


def test_squad_v2_unanswerable_questions_have_no_answers(squad_v2_dev):
    records = read_records(str(squad_v2_dev))
    assert any(not r["answers"]["text"] for r in records)
    assert any(r["answers"]["text"] for r in records)


@pytest.mark.parametrize("name, content", [
    ("nested.json", nested(record("a"), record("b"))),
    ("list.json", [record("a"), record("b")]),
    ("lines.jsonl", jsonl(record("a"), record("b"))),
    ("lines.json", jsonl(record("a"), record("b"))),  # JSON lines under a .json name
    ("answer_list.jsonl", jsonl(*[{**record(i), "answers": [{"text": "Lyon", "answer_start": 15}]} for i in "ab"])),
])
def test_every_format_gives_the_same_flat_records(tmp_path, name, content):
    records = read_records(write(tmp_path, name, content))
    assert [r["id"] for r in records] == ["a", "b"]
    assert records[0]["answers"] == {"text": ["Lyon"], "answer_start": [15]}
    assert records[0]["context"] == CONTEXT


# ---- file-level and shape errors -------------------------------------------------------------------------

BAD_FILES = [
    ("invalid JSON", "bad.json", '{"data": [\n  {"title": "x",\n  "paragraphs": [}\n]}', ["bad.json", "line 3, column"]),
    ("invalid JSON line", "bad.jsonl", jsonl(record("a")) + "{not json}\n", ["bad.jsonl", "line 2"]),
    ("empty file", "empty.json", "  \n", ["empty.json", "is empty"]),
    ("not UTF-8", "latin1.json", json.dumps([record("a", question="Où est né Ada?")], ensure_ascii=False).encode("latin-1"),
     ["latin1.json", "not UTF-8"]),
    ("scalar document", "number.json", "42", ["number.json", "not in SQuAD format", "a JSON int"]),
    ("article without paragraphs", "noparas.json", {"data": [{"title": "x"}]}, ["data[0]", "'paragraphs'"]),
    ("paragraph without context", "noctx.json", {"data": [{"paragraphs": [{"qas": []}]}]},
     ["data[0].paragraphs[0]", "'context'"]),
    ("question without id", "noid.json",
     {"data": [{"paragraphs": [{"context": "c", "qas": [{"question": "q?", "answers": []}]}]}]},
     ["data[0].paragraphs[0].qas[0]", "'id'"]),
    ("paragraphs not a list", "paras.json", {"data": [{"paragraphs": "text"}]}, ["data[0]", "must be a list"]),
    ("record without question", "noq.jsonl", jsonl(record("a"), {k: v for k, v in record("b").items()
                                                                 if k != "question"}),
     ["noq.jsonl: line 2", "'question'"]),
    ("record not an object", "list.json", [record("a"), ["not", "a", "record"]], ["record 2", "JSON object"]),
    ("answer_start not an int", "start.jsonl", jsonl(record("a", start="x")), ["line 1", "answer_start", "integer"]),
    ("answer_start a string", "start.jsonl", jsonl(record("a", start="15")),
     ["line 1", "answer_start '15' is a string", "number 15", "without quotes"]),
    ("answer_start a float", "float.jsonl", jsonl(record("a", start=15.0)), ["answer_start", "integer"]),
    ("lengths differ", "pairs.jsonl",
     jsonl({**record("a"), "answers": {"text": ["Lyon", "Paris"], "answer_start": [15]}}),
     ["2 'text'", "1 'answer_start'", "pair up"]),
    ("answers not a dict", "ans.jsonl", jsonl({**record("a"), "answers": "Lyon"}), ["'answers' must be"]),
    ("context not a string", "ctx.jsonl", jsonl(record("a", context=["a", "b"])), ["'context' must be a string"]),
    ("nested answer without start", "nostart.json",
     {"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "1", "question": "q?",
                                                          "answers": [{"text": "c"}]}]}]}]},
     ["qas[0]: answers[0]", "'answer_start'"]),
]


@pytest.mark.parametrize("case, name, content, words", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_malformed_files_name_the_problem_and_where(tmp_path, case, name, content, words):
    with pytest.raises(DataError) as caught:
        read_records(write(tmp_path, name, content))
    for word in words:
        assert word in str(caught.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="not found: .*nope.json"):
        read_records(str(tmp_path / "nope.json"))


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(DataError, match="directory"):
        read_records(str(tmp_path))


# ---- record checks and the bad-answer policy --------------------------------------------------------------


def checked(records, policy="fix"):
    repairs = {}
    return check_records(records, "train", policy, repairs), repairs


@pytest.mark.parametrize("bad, words", [
    ([record(context="   ")], ["train record 'q1' has an empty context: ", "fill them in or remove those records"]),
    ([record(question="")], ["train record 'q1' has an empty question: "]),
    ([record(question=""), record(id_="q2"), record(id_="q3", context=" ", question=" ")],
     ["train record 'q1' has an empty question (and 1 other record(s) an empty question or context): "]),
])
def test_an_empty_context_or_question_is_named_with_how_many_and_the_fix(bad, words):
    with pytest.raises(DataError) as caught:
        checked(bad)
    for word in words:
        assert word in str(caught.value)


def test_duplicate_ids():
    with pytest.raises(DataError, match="duplicate id 'q1'"):
        checked([record(), record()])


def test_no_records():
    with pytest.raises(DataError, match="train data has no records"):
        checked([])


def test_correct_answers_pass_unchanged():
    kept, repairs = checked([record(), record("q2", text="Paris", start=34)], policy="error")
    assert [r["answers"]["answer_start"] for r in kept] == [[15], [34]]
    assert repairs == {}


def test_error_policy_names_record_and_offset():
    with pytest.raises(DataError, match=r"'q1'.*'Lyon'.*answer_start=12.*on_bad_answer"):
        checked([record(start=12)], policy="error")


def test_fix_policy_moves_the_answer_to_its_one_nearby_occurrence():
    kept, repairs = checked([record(start=12), record("q2")], policy="fix")
    assert kept[0]["answers"]["answer_start"] == [15]
    assert repairs == {"train_fixed": 1}


def test_fix_policy_skips_answers_found_nowhere_or_ambiguously():
    ambiguous = record("q2", context="Lyon or Lyon, said Ada.", start=3)
    kept, repairs = checked([record(text="Berlin"), ambiguous, record("q3")], policy="fix")
    assert [r["id"] for r in kept] == ["q3"]
    assert repairs == {"train_skipped": 2}


def test_skip_policy_drops_without_fixing():
    kept, repairs = checked([record(start=12), record("q2")], policy="skip")
    assert [r["id"] for r in kept] == ["q2"]
    assert repairs == {"train_skipped": 1}


@pytest.mark.parametrize("text, start", [("", 15), ("Lyon", -5), ("Lyon", 10_000)])
def test_empty_text_and_out_of_range_starts_are_bad_answers(text, start):
    with pytest.raises(DataError, match="is not at answer_start"):
        checked([record(text=text, start=start)], policy="error")


def test_unanswerable_records_are_kept():
    kept, _ = checked([{**record(), "answers": {"text": [], "answer_start": []}}], policy="error")
    assert kept[0]["answers"]["text"] == []


def test_empty_after_skipping_is_an_error_not_an_empty_run():
    with pytest.raises(DataError, match="empty after validation: all 2 records were skipped"):
        checked([record(start=12), record("q2", start=40)], policy="skip")


@pytest.mark.parametrize("policy", ["fix", "skip"])
def test_evaluation_records_keep_answers_off_their_offsets_for_scoring(policy):
    """Scores need the gold texts only: a validation question is never dropped for its offsets (fix still moves
    what it can; the rest is kept unplaced, which labels no window)."""
    two = {**record("q3"), "answers": {"text": ["Berlin", "Lyon"], "answer_start": [0, 15]}}
    repairs = {}
    kept = check_records([record(text="Berlin"), record("q2", start=12), two], "validation", policy, repairs,
                         scored=True)
    assert [r["id"] for r in kept] == ["q1", "q2", "q3"]
    moved = [15] if policy == "fix" else [UNPLACED]
    assert [r["answers"]["answer_start"] for r in kept] == [[UNPLACED], moved, [UNPLACED, 15]]
    assert [r["answers"]["text"] for r in kept] == [["Berlin"], ["Lyon"], ["Berlin", "Lyon"]]
    assert repairs == ({"validation_unplaced": 2, "validation_fixed": 1} if policy == "fix"
                       else {"validation_unplaced": 3})


def test_a_training_set_kept_below_half_is_said_and_half_is_not():
    assert mostly_dropped("training", given=10, kept=5, on_bad_answer="fix") is None
    note = mostly_dropped("training", given=10, kept=4, on_bad_answer="skip")
    assert note.startswith("only 4 of the 10 training questions were used: 6 were dropped") and "skip" in note


def test_unplaced_questions_label_no_window_and_stay_out_of_the_loss():
    from qaexp.data.windows import tokenize_windows
    from qaexp.evaluation.inference import labelled_questions, labelled_windows
    from qaexp.model.build import build_tokenizer

    records = [record(), {**record("q2"), "answers": {"text": ["Lyon"], "answer_start": [UNPLACED]}},
               {**record("q3"), "answers": {"text": [], "answer_start": []}}]
    tokenizer = build_tokenizer(OmegaConf.create({"checkpoint": None, "from_scratch": True, "lowercase": True,
                                                  "tokenizer_vocab_size": 200, "padding_side": "right"}),
                                [CONTEXT, "Where did Ada grow up?"])
    windows = tokenize_windows(records, tokenizer, 64, 16, progress=False)
    labels = dict(zip(windows.example_index.tolist(), zip(windows.start_positions.tolist(),
                                                          windows.cls_index.tolist())))
    assert labels[0][0] != labels[0][1] and labels[1][0] == labels[1][1]  # q2: CLS, as if it had no answer...
    assert labelled_windows(records, windows.example_index).tolist() == [True, False, True]  # ...but no label
    assert labelled_questions(records) == 2


def test_load_splits_logs_and_counts_repairs(tmp_path, caplog):
    train = write(tmp_path, "train.jsonl", jsonl(record("a", start=12), record("b"), record("c", text="Rome")))
    dev = write(tmp_path, "dev.jsonl", jsonl(record("d")))
    cfg = OmegaConf.create({"source": "json", "train_file": train, "validation_file": dev, "on_bad_answer": "fix",
                            "max_train_samples": None, "max_eval_samples": None, "version_2_with_negative": False})
    with caplog.at_level(logging.WARNING, logger="qaexp.data.squad"):
        splits = load_splits(cfg)
    assert [r["id"] for r in splits.train] == ["a", "b"]
    assert splits.repairs == {"train_fixed": 1, "train_skipped": 1}
    assert "train_fixed 1" in caplog.text and "train_skipped 1" in caplog.text


# ---- questions longer than the window ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    from qaexp.model.build import train_wordpiece_tokenizer

    return train_wordpiece_tokenizer(["where is the cat the dog sat on a mat"] * 20, 200, lowercase=True)


def test_overlong_questions_are_truncated_with_one_warning(tokenizer, caplog):
    from qaexp.data.windows import tokenize_windows, truncate_long_questions

    context = "the cat sat on a mat " * 60
    examples = [{"id": str(n), "question": "where is the cat " * n, "context": context,
                 "answers": {"text": ["mat"], "answer_start": [len(context) - 4]}} for n in (2, 40, 60)]
    with caplog.at_level(logging.WARNING, logger="qaexp.data.windows"):
        kept = truncate_long_questions(examples, tokenizer, max_length=128, doc_stride=32)
    limit = 128 - 3 - 32 - 1  # [CLS] q [SEP] c [SEP]; the context must get more than doc_stride tokens
    lengths = [len(tokenizer(ex["question"], add_special_tokens=False)["input_ids"]) for ex in kept]
    assert lengths == [8, limit, limit]
    assert kept[0] is examples[0]
    assert caplog.text.count("truncated") == 1 and "2 question(s)" in caplog.text
    windows = tokenize_windows(examples, tokenizer, 128, 32, progress=False)  # the tokenizer would panic
    assert windows.lengths.max() <= 128
    assert len(set(windows.example_index.tolist())) == 3


def test_short_questions_are_left_alone(tokenizer, caplog):
    from qaexp.data.windows import truncate_long_questions

    examples = [{"id": "1", "question": "where is the cat?", "context": "on a mat",
                 "answers": {"text": [], "answer_start": []}}]
    with caplog.at_level(logging.WARNING):
        assert truncate_long_questions(examples, tokenizer, 128, 32) is examples
    assert "truncated" not in caplog.text


def test_every_missing_data_file_is_named_in_one_line(tmp_path):
    from helpers.cli import run_cli

    result = run_cli(["-m", "qaexp", "model=tiny", "data=json", f"data.train_file={tmp_path}/train.json",
                      f"data.validation_file={tmp_path}/dev.json", f"hydra.run.dir={tmp_path / 'run'}"], timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "not found" in last and f"{tmp_path}/train.json" in last and f"{tmp_path}/dev.json" in last, last
