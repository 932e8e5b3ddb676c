"""The `python -m qaexp.evaluate` command line, run as a subprocess."""
import json
import re
from pathlib import Path

import pytest
from helpers.cli import run_cli as run_python

from qaexp.errors import QAExpError
from qaexp.tools.evaluate import read_official_gold


def run_cli(*args):
    return run_python(["-m", "qaexp.evaluate", *map(str, args)], timeout=300)


def result_of(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def official(qas_per_paragraph, version="1.1"):
    paragraphs = [{"context": "ctx", "qas": qas} for qas in qas_per_paragraph]
    return {"version": version, "data": [{"title": "t", "paragraphs": paragraphs}]}


def qa(qid, *answers, impossible=None):
    item = {"id": qid, "question": "?", "answers": [{"text": a, "answer_start": 0} for a in answers]}
    if impossible is not None:
        item["is_impossible"] = impossible
    return item


def plain_gold(path: Path) -> dict[str, list[str]]:
    """Question id -> gold answer texts, read with nothing but json: independent of the parser the CLI scores with."""
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    return {qa["id"]: [answer["text"] for answer in qa["answers"]]
            for article in document["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]}


def gold_predictions(path: Path) -> dict:
    """First gold answer per question, "" for unanswerable ones."""
    return {qid: answers[0] if answers else "" for qid, answers in plain_gold(path).items()}


# --- small files made here ---------------------------------------------------------

def test_version_from_file_and_flag(tmp_path):
    data = write_json(tmp_path / "d.json", official([[qa("a", "Paris"), qa("b", impossible=True)]], "v2.0"))
    preds = write_json(tmp_path / "p.json", {"a": "Paris", "b": ""})
    v2 = result_of(run_cli(data, preds))
    assert v2["exact"] == 100.0 and v2["NoAns_total"] == 1
    v1 = result_of(run_cli(data, preds, "--version", "1.1"))
    # v1 rules: "b" has no gold answer, so it scores 0
    assert v1 == {"exact_match": 50.0, "f1": 50.0}


def flat_records(document: dict) -> list[dict]:
    """The nested file's questions as the flat records training reads (independent of qaexp's reader)."""
    return [{"id": q["id"], "title": article["title"], "context": paragraph["context"], "question": q["question"],
             "answers": {"text": [a["text"] for a in q["answers"]],
                         "answer_start": [a["answer_start"] for a in q["answers"]]}}
            for article in document["data"] for paragraph in article["paragraphs"] for q in paragraph["qas"]]


def test_json_lines_gold_scores_as_the_nested_file_and_without_a_version_unanswerables_mean_v2(tmp_path):
    document = official([[qa("a", "Paris", "the Paris"), qa("b", impossible=True)], [qa("c", "Rome")]], "v2.0")
    nested = write_json(tmp_path / "d.json", document)
    lines = tmp_path / "d.jsonl"
    lines.write_text("".join(json.dumps(record) + "\n" for record in flat_records(document)), encoding="utf-8")
    preds = write_json(tmp_path / "p.json", {"a": "Paris", "b": "", "c": "Milan"})
    from_lines = result_of(run_cli(lines, preds))
    # JSON lines carry no version field: "b" has no answer, so v2.0's rules score it (its "" is right)
    assert from_lines == result_of(run_cli(nested, preds))
    assert from_lines["exact"] == pytest.approx(200 / 3) and from_lines["NoAns_total"] == 1


def test_every_data_shape_training_reads_gives_the_same_gold(tmp_path):
    document = official([[qa("a", "x", "y")], [qa("b", impossible=True)]], version="v2.0")
    records = flat_records(document)
    nested = read_official_gold(str(write_json(tmp_path / "d.json", document)))
    as_list = read_official_gold(str(write_json(tmp_path / "list.json", records)))
    assert nested == ("v2.0", {"a": ["x", "y"], "b": []}) and as_list == ("", nested[1])
    with pytest.raises(QAExpError, match="duplicate id 'a'"):
        read_official_gold(str(write_json(tmp_path / "twice.json", records + records[:1])))


def test_na_prob_file_threshold_and_out_file(tmp_path):
    data = write_json(tmp_path / "d.json", official([[qa("a", "Paris"), qa("b", impossible=True)]], "2.0"))
    preds = write_json(tmp_path / "p.json", {"a": "Paris", "b": "Rome"})
    na = write_json(tmp_path / "na.json", {"a": 0.1, "b": 0.9})
    out = tmp_path / "out.json"
    result = result_of(run_cli(data, preds, "--na-prob-file", na, "--na-prob-thresh", "0.5", "--out-file", out))
    # "b" is above the threshold, so it counts as answered "" -> correct
    assert result["exact"] == 100.0
    # sweep: start 1 ("b" right), "a" +1 -> 2 (best, 0.1), "b" -1 -> 1
    assert result["best_exact"] == 100.0 and result["best_exact_thresh"] == 0.1
    assert json.loads(out.read_text()) == result


def assert_bad_input(proc, pattern):
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert proc.stdout == ""


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    good_data = write_json(tmp_path / "d.json", official([[qa("a", "x")]]))
    good_preds = write_json(tmp_path / "p.json", {"a": "x"})
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [', encoding="utf-8")
    wrong_shape = write_json(tmp_path / "shape.json",
                             {"data": [{"paragraphs": [{"context": "c", "qas": [{"id": 1}]}]}]})
    not_object = write_json(tmp_path / "list.json", ["x"])
    bad_na = write_json(tmp_path / "na.json", {"a": "high"})
    # what `qaexp predict --output` writes (tools/predict.file_predictions), given where {id: text} belongs
    detailed = write_json(tmp_path / "answers.json",
                          {"a": {"answer": "x", "answers": [{"text": "x", "score": 0.9}], "no_answer": False}})

    assert_bad_input(run_cli(tmp_path / "missing.json", good_preds), "data file not found")
    assert_bad_input(run_cli(broken, good_preds), "invalid JSON at line 1")
    assert_bad_input(run_cli(wrong_shape, good_preds), r"qas\[0\]")
    assert_bad_input(run_cli(good_data, tmp_path / "missing.json"), "cannot read prediction file")
    assert_bad_input(run_cli(good_data, not_object), "JSON object")
    assert_bad_input(run_cli(good_data, detailed), r"answers\.json is what `qaexp predict --output` writes.*"
                                                   r"--official-output FILE")
    assert_bad_input(run_cli(good_data, good_preds, "--version", "2.0", "--na-prob-file", bad_na), "number")
    assert_bad_input(run_cli(good_data, good_preds, "--na-prob-file", bad_na), "2.0")


# --- the shared SQuAD dev files -----------------------------------------------------

def test_gold_answers_score_100_on_squad_v1(tmp_path, squad_v1_dev):
    preds = write_json(tmp_path / "p.json", gold_predictions(squad_v1_dev))
    assert len(json.loads(preds.read_text())) == 10570  # the dev set's question count, as published
    assert result_of(run_cli(squad_v1_dev, preds)) == {"exact_match": 100.0, "f1": 100.0}


def test_the_cli_reads_the_gold_answers_the_file_holds(tmp_path, squad_v1_dev):
    """The parser the CLI scores with agrees with a plain reading of the file, answer for answer."""
    _, parsed = read_official_gold(str(squad_v1_dev))
    assert parsed == plain_gold(squad_v1_dev)


def test_gold_answers_score_100_on_squad_v2_part(tmp_path, squad_v2_dev):
    preds = write_json(tmp_path / "p.json", gold_predictions(squad_v2_dev))
    result = result_of(run_cli(squad_v2_dev, preds))
    assert result == {
        "exact": 100.0, "f1": 100.0, "total": 6078,
        "HasAns_exact": 100.0, "HasAns_f1": 100.0, "HasAns_total": 2910,
        "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": 3168,
    }


def single_plain_gold(gold: dict) -> tuple[str, str]:
    """A question whose golds are one repeated text of plain words (no articles/punctuation)."""
    for qid, answers in gold.items():
        text = answers[0]
        words = text.split()
        if (len(set(answers)) == 1 and len(words) >= 2 and re.fullmatch(r"[A-Za-z0-9 ]+", text)
                and not {"a", "an", "the"} & {w.lower() for w in words}):
            return qid, text
    raise AssertionError("no suitable question")


def test_perturbed_predictions_on_squad_v1(tmp_path, squad_v1_dev):
    gold = plain_gold(squad_v1_dev)
    preds = gold_predictions(squad_v1_dev)
    ids = list(preds)
    for qid in ids[10:13]:  # removed: score 0
        del preds[qid]
    for qid in ids[20:22]:  # wrong: score 0
        preds[qid] = "zzzz qqqq"
    partial_id, text = single_plain_gold({q: gold[q] for q in ids[30:]})
    k = len(text.split())
    preds[partial_id] = text + " zzzz"  # precision k/(k+1), recall 1
    n = len(gold)
    proc = run_cli(squad_v1_dev, write_json(tmp_path / "p.json", preds))
    result = result_of(proc)
    assert "3 of 10570" in proc.stderr
    assert result["exact_match"] == pytest.approx(100 * (n - 6) / n)
    assert result["f1"] == pytest.approx(100 * (n - 6 + 2 * k / (2 * k + 1)) / n)


def test_perturbed_predictions_on_squad_v2_part(tmp_path, squad_v2_dev):
    gold = plain_gold(squad_v2_dev)
    preds = gold_predictions(squad_v2_dev)
    answerable = [q for q, a in gold.items() if a]
    unanswerable = [q for q, a in gold.items() if not a]
    preds[answerable[0]] = ""  # wrong, score 0
    preds[unanswerable[0]] = "something"  # wrong, score 0
    n, h, u = len(gold), len(answerable), len(unanswerable)
    pred_file = write_json(tmp_path / "p.json", preds)
    result = result_of(run_cli(squad_v2_dev, pred_file))
    assert result["exact"] == pytest.approx(100 * (n - 2) / n)
    assert result["f1"] == pytest.approx(100 * (n - 2) / n)
    assert result["HasAns_exact"] == pytest.approx(100 * (h - 1) / h)
    assert result["NoAns_exact"] == pytest.approx(100 * (u - 1) / u)

    na = write_json(tmp_path / "na.json", {q: 0.9 if q == unanswerable[0] else 0.0 for q in gold})
    result = result_of(run_cli(squad_v2_dev, pred_file, "--na-prob-file", na, "--na-prob-thresh", "0.5"))
    # the wrong non-empty answer is now overruled by its 0.9 no-answer probability
    assert result["exact"] == pytest.approx(100 * (n - 1) / n)
    # sweep: the 0.0 group brings the best total (n - 1 right); adding the 0.9 question loses one
    assert result["best_exact"] == pytest.approx(100 * (n - 1) / n)
    assert result["best_exact_thresh"] == 0.0
