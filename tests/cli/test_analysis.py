"""Error analysis and run comparison: slices partition the questions and recompute from the predictions, the
paired bootstrap is seeded and tightens with more questions, and the CLI writes analysis.md / compare.md."""
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.cli import run_cli
from qaexp.analysis.bootstrap import paired_bootstrap
from qaexp.analysis.questions import answer_type, build_questions, question_word, window_features
from qaexp.analysis.slices import SLICINGS, groups, slice_table, wilson_interval
from qaexp.data.synthetic import generate_examples
from qaexp.evaluation.metrics import evaluate_v1, evaluate_v2, gold_answers


def _predictions(examples, seed):
    """A mix of right, partly right, wrong and empty answers."""
    rng = np.random.default_rng(seed)
    predictions = {}
    for example in examples:
        gold = example["answers"]["text"]
        roll = rng.random()
        if not gold:
            predictions[example["id"]] = "" if roll < 0.5 else example["context"].split()[0]
        elif roll < 0.4:
            predictions[example["id"]] = gold[0]
        elif roll < 0.7:
            predictions[example["id"]] = gold[0] + " " + example["context"].split()[-1]
        else:
            predictions[example["id"]] = "" if roll < 0.8 else example["context"].split()[1]
    return predictions


@pytest.mark.parametrize("version_2", [False, True])
def test_slices_partition_the_questions_and_recompute_from_the_predictions(version_2):
    examples = generate_examples(120, seed=3, difficulty="hard", split="validation",
                                 unanswerable_fraction=0.3 if version_2 else 0.0)
    predictions = _predictions(examples, seed=1)
    questions = build_questions(examples, predictions, version_2)
    official = (evaluate_v2 if version_2 else evaluate_v1)(gold_answers(examples), predictions)
    rows = slice_table(questions)
    for slicing in SLICINGS[:3]:  # the window slicings need windows (below)
        members = [row for row in rows if row.slicing == slicing.title]
        assert sum(row.count for row in members) == len(examples), slicing.title
        assert sum(row.f1 * row.count for row in members) / len(examples) == pytest.approx(official["f1"])
        for row, (name, group) in zip(members, groups(questions, slicing).items()):
            assert row.name == name
            subset = {q.id for q in group}
            gold = {k: v for k, v in gold_answers(examples).items() if k in subset}
            expected = (evaluate_v2 if version_2 else evaluate_v1)(gold, predictions)
            assert row.exact_match == pytest.approx(expected["exact" if version_2 else "exact_match"])
            assert row.f1 == pytest.approx(expected["f1"])
            assert row.exact_interval[0] <= row.exact_match <= row.exact_interval[1]
            assert row.f1_interval[0] <= row.f1 + 1e-9 and row.f1 <= row.f1_interval[1] + 1e-9


def test_window_features_find_answers_across_a_window_boundary():
    context = "aaaa bbbb cccc dddd eeee"
    examples = [{"id": "inside", "context": context, "answers": {"text": ["bbbb"], "answer_start": [5]}},
                {"id": "across", "context": context, "answers": {"text": ["cccc dddd"], "answer_start": [10]}},
                {"id": "single", "context": "xx yy", "answers": {"text": ["yy"], "answer_start": [3]}},
                {"id": "none", "context": context, "answers": {"text": [], "answer_start": []}}]
    words = [(0, 4), (5, 9), (10, 14), (15, 19), (20, 24)]

    def window(spans):
        return np.array([(-1, -1), *spans, (-1, -1)])

    windows = SimpleNamespace(
        offsets=[window(words[:3]), window(words[2:]), window(words[:2]), window(words[3:]), window([(0, 2), (3, 5)]),
                 window(words)],
        example_index=np.array([0, 0, 1, 1, 2, 3]))
    tokens, where = window_features(examples, windows)
    assert tokens == [5, 4, 2, 5]
    assert where == ["inside a window", "crosses a boundary", "one window", "no answer"]


def test_question_words_and_answer_types():
    assert [question_word(q) for q in ("In what year?", "Who?", "How many?", "Name the river.")] == \
        ["what", "who", "how", "other"]
    assert [answer_type(a) for a in (["1871"], ["March 3, 1999"], ["42%"], ["Ada Lovelace"], ["the river"], [])] == \
        ["date", "date", "number", "person-like", "other", "no answer"]


def test_wilson_interval_narrows_with_more_questions_and_holds_its_proportion():
    widths = [np.subtract(*wilson_interval(0.3 * n, n)[::-1]) for n in (10, 100, 1000)]
    assert widths[0] > widths[1] > widths[2] > 0
    low, high = wilson_interval(0, 5)
    assert low == 0.0 and high > 30  # no successes in 5: still a wide interval, not [0, 0]


def test_paired_bootstrap_is_seeded_and_its_interval_shrinks_as_questions_are_added():
    rng = np.random.default_rng(7)
    a, b = rng.random(50), np.clip(rng.random(50) + 0.05, 0, 1)
    first, again = paired_bootstrap(a, b, samples=500, seed=3), paired_bootstrap(a, b, samples=500, seed=3)
    assert first == again
    assert paired_bootstrap(a, b, samples=500, seed=4) != first
    assert first.difference == pytest.approx(100 * (b - a).mean())
    widths = [paired_bootstrap(np.tile(a, k), np.tile(b, k), samples=500, seed=3) for k in (1, 4, 16)]
    spans = [r.high - r.low for r in widths]
    assert spans[0] > spans[1] > spans[2] > 0
    assert all(r.low <= r.difference <= r.high and 0 <= r.b_wins <= 1 for r in widths)


@pytest.mark.slow
def test_analyze_and_compare_cli(v2_run, tmp_path):
    result = run_cli(["-m", "qaexp.analyze", str(v2_run), "--output", str(tmp_path / "analysis")])
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "analysis" / "analysis.md").read_text()
    for heading in ("By question word", "By answer type", "By context length (tokens)", "By answer position",
                    "Answer / no-answer (SQuAD v2)", "The 20 worst-scoring questions"):
        assert heading in text
    assert (tmp_path / "analysis" / "analysis_slices.png").stat().st_size > 1000
    # run B: the same run with 5 of its wrong answers replaced by the gold answer
    run_b = tmp_path / "run_b"
    shutil.copytree(v2_run, run_b, ignore=shutil.ignore_patterns("model", "extra_eval"))
    shutil.copytree(v2_run / "model", run_b / "model")
    predictions = json.loads((v2_run / "predictions.json").read_text())
    examples = [json.loads(line) for line in (v2_run / "validation.jsonl").read_text().splitlines()]
    fixed = [e["id"] for e in examples if e["answers"]["text"] and predictions[e["id"]] != e["answers"]["text"][0]][:5]
    assert len(fixed) == 5
    changed = {**predictions, **{e["id"]: e["answers"]["text"][0] for e in examples if e["id"] in fixed}}
    (run_b / "predictions.json").write_text(json.dumps(changed))
    result = run_cli(["-m", "qaexp.analyze", "--compare", str(v2_run), str(run_b), "--output",
                      str(tmp_path / "cmp"), "--samples", "300"])
    assert result.returncode == 0, result.stderr[-3000:]
    compare = (tmp_path / "cmp" / "compare.md").read_text()
    assert "## 5 questions B gets right and A does not" in compare
    assert "## 0 questions A gets right and B does not" in compare
    assert "B beats A in" in compare and "F1 difference B - A: +" in compare


def test_analyze_cli_bad_input_is_one_line(tmp_path):
    result = run_cli(["-m", "qaexp.analyze", str(tmp_path)])
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "not a qaexp run directory" in result.stderr
