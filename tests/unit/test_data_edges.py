"""Data at its edges, in process: byte-order marks, CRLF and blank lines, U+2028 inside a JSON string, SQuAD v1/v2
mix-ups, ids shared by the splits, a 200,000-character context, NUL and control characters, not-JSON files.

The failing cases also run through the real CLI in tests/faults/test_errors.py's table.
"""
import json
import logging

import pytest
from omegaconf import OmegaConf

from helpers.window_checks import assert_windows_consistent
from qaexp.data.squad import load_splits, read_records
from qaexp.errors import DataError

CONTEXT = "Ada grew up in Lyon and later moved to Paris to study."


def record(qid, context=CONTEXT, answer="Lyon", question="Where did Ada grow up?"):
    answers = {"text": [answer], "answer_start": [context.index(answer)]} if answer else {"text": [],
                                                                                         "answer_start": []}
    return {"id": qid, "title": "Ada", "context": context, "question": question, "answers": answers}


def data_config(train, validation, version_2=False):
    return OmegaConf.create({"source": "json", "train_file": str(train) if train else None,
                             "validation_file": str(validation) if validation else None, "on_bad_answer": "error",
                             "max_train_samples": None, "max_eval_samples": None,
                             "version_2_with_negative": version_2})


def write_jsonl(path, records, newline="\n", blank_lines=False, bom=False):
    lines = [json.dumps(r) for r in records]
    if blank_lines:
        lines = ["", *(line for pair in zip(lines, [""] * len(lines)) for line in pair), "   "]
    text = newline.join(lines) + newline
    path.write_bytes(("\ufeff" if bom else "").encode("utf-8") + text.encode("utf-8"))
    return path


@pytest.mark.parametrize("variant", [dict(bom=True), dict(newline="\r\n"), dict(blank_lines=True),
                                     dict(bom=True, newline="\r\n", blank_lines=True)],
                         ids=["BOM", "CRLF", "blank lines", "all three"])
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_bom_crlf_and_blank_lines_read_like_a_clean_file(tmp_path, variant, suffix):
    records = [record(f"q{n}") for n in range(3)]
    clean = read_records(str(write_jsonl(tmp_path / f"clean{suffix}", records)))
    assert read_records(str(write_jsonl(tmp_path / f"edgy{suffix}", records, **variant))) == clean
    assert [r["id"] for r in clean] == ["q0", "q1", "q2"]


def test_a_nested_squad_file_with_a_bom_and_crlf_loads(tmp_path):
    document = {"version": "1.1", "data": [{"title": "Ada", "paragraphs": [
        {"context": CONTEXT, "qas": [{"id": "q0", "question": "Where?", "answers": [{"text": "Lyon",
                                                                                   "answer_start": 15}]}]}]}]}
    path = tmp_path / "nested.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(document, indent=1).replace("\n", "\r\n").encode())
    assert [r["answers"] for r in read_records(str(path))] == [{"text": ["Lyon"], "answer_start": [15]}]


def test_line_separators_inside_json_strings_do_not_split_a_line(tmp_path):
    context = "Ada grew up\u2028in Lyon\u0085 and\x1c moved\u2029 to Paris."
    path = tmp_path / "separators.jsonl"
    path.write_text(json.dumps(record("q0", context), ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_records(str(path))[0]["context"] == context


def test_unanswerable_questions_need_the_v2_flag(tmp_path):
    path = write_jsonl(tmp_path / "v2.jsonl", [record("q0"), record("q1", answer=None)])
    with pytest.raises(DataError) as caught:
        load_splits(data_config(path, path))
    assert str(caught.value) == (
        "the train data has 1 unanswerable question(s) (no answers, SQuAD v2 style, e.g. 'q1') but "
        "data.version_2_with_negative=false: set data.version_2_with_negative=true to train and score them as "
        "SQuAD v2, or remove them")
    splits = load_splits(data_config(path, path, version_2=True))
    assert [r["answers"]["text"] for r in splits.validation] == [["Lyon"], []]


def test_unanswerable_questions_in_an_official_v2_file_need_the_flag(tmp_path, squad_v2_dev):
    with pytest.raises(DataError, match=r"the validation data has 3168 unanswerable question\(s\)"):
        load_splits(data_config(None, squad_v2_dev))


def test_the_v2_flag_on_v1_data_warns(tmp_path, caplog):
    train = write_jsonl(tmp_path / "train.jsonl", [record("t0")])
    dev = write_jsonl(tmp_path / "dev.jsonl", [record("d0")])
    with caplog.at_level(logging.WARNING, logger="qaexp.data.squad"):
        load_splits(data_config(train, dev, version_2=True))
    assert ("data.version_2_with_negative=true but no question in the train or validation data is unanswerable"
            in caplog.text)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qaexp.data.squad"):
        load_splits(data_config(train, dev))
    assert caplog.text == ""


def test_ids_shared_by_train_and_validation_warn(tmp_path, caplog):
    train = write_jsonl(tmp_path / "train.jsonl", [record("a"), record("b"), record("c")])
    dev = write_jsonl(tmp_path / "dev.jsonl", [record("c"), record("b"), record("z")])
    with caplog.at_level(logging.WARNING, logger="qaexp.data.squad"):
        splits = load_splits(data_config(train, dev))
    assert "2 question id(s) are in both the train and the validation data (e.g. 'b')" in caplog.text
    assert len(splits.train) == len(splits.validation) == 3  # a warning: nothing is dropped


@pytest.mark.parametrize("content, hint", [
    ("id,context,question\nq0,Ada grew up in Lyon.,Where?\n", "convert a CSV to JSON lines"),
    ("just some words\n", ""),
])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_a_file_that_is_not_json_is_named_so(tmp_path, content, hint, suffix):
    path = tmp_path / f"questions{suffix}"
    path.write_text(content)
    with pytest.raises(DataError) as caught:
        read_records(str(path), answers_optional=True)
    message = str(caught.value)
    assert message.startswith(f"{path} is not JSON (it begins {content.splitlines()[0][:40]!r})"), message
    if hint or suffix == ".csv":
        assert "convert a CSV to JSON lines" in message


def test_a_directory_is_not_a_data_file(tmp_path):
    with pytest.raises(DataError, match=f"data file is a directory, not a file: {tmp_path}"):
        read_records(str(tmp_path), answers_optional=True)


# ---- long contexts and unusual characters all the way to windows -------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    from qaexp.model.build import train_wordpiece_tokenizer

    texts = [CONTEXT, "Where did Ada grow up? number word words filler sentence about nothing"] * 20
    return train_wordpiece_tokenizer(texts, vocab_size=200, lowercase=False)


def test_a_200000_character_context_loads_and_windows_cover_the_answer(tmp_path, tokenizer):
    from qaexp.data.windows import tokenize_windows

    filler = "Filler words about nothing in particular. "
    half = (filler * (100_000 // len(filler) + 1))[:100_000 - len(CONTEXT)]
    context = half + CONTEXT + (filler * (100_000 // len(filler) + 1))[:100_000]
    assert len(context) == 200_000 and "Lyon" in context
    path = write_jsonl(tmp_path / "long.jsonl", [record("long", context)])
    records = load_splits(data_config(path, path)).train
    windows = tokenize_windows(records, tokenizer, 128, 48, progress=False)
    assert max(int(off[:, 1].max()) for off in windows.offsets) == 200_000  # the windows reach the end
    assert_windows_consistent(records, windows, 128)
    labelled = (windows.start_positions != windows.cls_index).sum()
    assert labelled >= 1


def test_nul_and_control_characters_load_and_window(tmp_path, tokenizer):
    from qaexp.data.windows import tokenize_windows

    context = "Ada\x00 grew\x07 up\x1b[0m in \x00Lyon\x7f and \u200bmoved to Paris\ufffe."
    records_in = [record("nul", context), record("ctl\x01id", context, answer="Paris", question="Where\x00 to?")]
    path = tmp_path / "control.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records_in), encoding="utf-8")
    records = load_splits(data_config(path, path)).train
    assert [r["context"] for r in records] == [context, context]
    windows = tokenize_windows(records, tokenizer, 64, 16, progress=False)
    assert_windows_consistent(records, windows, 64)
    assert (windows.start_positions != windows.cls_index).all()  # both answers fit in one window each
