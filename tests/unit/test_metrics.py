"""SQuAD v1.1 / v2.0 metrics, pinned with hand-computed cases."""
import json

import pytest

from helpers.repo import FIXTURES
from qaexp.evaluation.metrics import (
    evaluate_v1,
    evaluate_v2,
    exact_match,
    f1,
    gold_answers,
    normalize_answer,
    squad_metrics,
)

@pytest.mark.parametrize(
    "raw, expected",
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("an apple a day", "apple day"),
        ("theatre then another anthem", "theatre then another anthem"),  # articles only as whole words
        ("U.S.A.", "usa"),
        ("  spaced\tout\n text ", "spaced out text"),
        ("a-the-an", "athean"),  # punctuation goes first, so the pieces merge into one word
        ("Ünïcödé CAFÉ", "ünïcödé café"),
        ("café—the best", "café— best"),  # the em dash is not ASCII punctuation; "the" is still a word
        ("", ""),
        ("the a an", ""),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_exact_match_ignores_case_punctuation_and_articles():
    assert exact_match("the Denver Broncos.", "Denver Broncos") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0
    assert exact_match("", "the") == 1.0  # both normalise to ""


def test_f1_token_overlap():
    # pred tokens [cat, sat], gold [cat, sat, down]: P = 1, R = 2/3 -> F1 = 0.8
    assert f1("The cat sat.", "cat sat down") == pytest.approx(0.8)
    # repeated tokens count once per match: common {x: 1, y: 1} -> P = R = 2/3
    assert f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert f1("dog", "cat") == 0.0


def test_f1_empty_sides_follow_v2_rule():
    assert f1("", "") == 1.0
    assert f1("the", ".") == 1.0  # both empty after normalisation
    assert f1("", "Paris") == 0.0
    assert f1("Paris", "") == 0.0


def test_gold_answers_reads_both_answer_layouts():
    examples = [
        {"id": "q1", "context": "c", "answers": {"text": ["a1", "a2"], "answer_start": [0, 3]}},
        {"id": "q2", "context": "c", "answers": [{"text": "b", "answer_start": 1}]},
        {"id": "q3", "context": "c", "answers": {"text": [], "answer_start": []}},
    ]
    assert gold_answers(examples) == {"q1": ["a1", "a2"], "q2": ["b"], "q3": []}


def test_evaluate_v1_max_over_golds_and_missing_predictions_score_zero():
    gold = {
        "q1": ["Denver Broncos", "Broncos"],
        "q2": ["cat sat down", "a dog"],
        "q3": ["Paris"],
    }
    predictions = {"q1": "broncos", "q2": "the cat sat", "extra": "ignored"}
    with pytest.warns(UserWarning, match="1 of 3"):
        result = evaluate_v1(gold, predictions)
    # q1: EM 1, F1 1; q2: EM 0, F1 0.8 (best gold "cat sat down"); q3 missing: 0 / 0
    assert result == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(180 / 3)}


def test_evaluate_v1_empty_gold_gets_exact_match_but_no_f1():
    # The official v1.1 script: "" vs "." is an exact match, yet F1 is 0 when a side is empty.
    assert evaluate_v1({"q": ["."]}, {"q": ""}) == {"exact_match": 100.0, "f1": 0.0}


def test_evaluate_v1_without_gold_is_an_error():
    with pytest.raises(ValueError):
        evaluate_v1({}, {})


GOLD_V2 = {
    "q1": ["Paris"],
    "q2": ["red green blue yellow"],
    "q3": [],
    "q4": [],
}
PREDS_V2 = {"q1": "Paris", "q2": "red green", "q3": "x", "q4": ""}
# q2: P = 1, R = 1/2 -> F1 = 2/3
NA_PROBS = {"q1": 0.1, "q2": 0.3, "q3": 0.6, "q4": 0.8}


def test_evaluate_v2_groups_and_no_answer_cases():
    result = evaluate_v2(GOLD_V2, PREDS_V2)
    assert result == pytest.approx({
        "exact": 100 * 2 / 4,
        "f1": 100 * (1 + 2 / 3 + 0 + 1) / 4,
        "total": 4,
        "HasAns_exact": 100 * 1 / 2,
        "HasAns_f1": 100 * (1 + 2 / 3) / 2,
        "HasAns_total": 2,
        "NoAns_exact": 100 * 1 / 2,
        "NoAns_f1": 100 * 1 / 2,
        "NoAns_total": 2,
    })
    assert list(result) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
                            "NoAns_exact", "NoAns_f1", "NoAns_total"]


def test_evaluate_v2_omits_empty_groups():
    result = evaluate_v2({"q1": ["Paris"]}, {"q1": "Paris"})
    assert set(result) == {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total"}
    result = evaluate_v2({"q1": []}, {"q1": ""})
    assert set(result) == {"exact", "f1", "total", "NoAns_exact", "NoAns_f1", "NoAns_total"}
    assert result["exact"] == 100.0


def test_evaluate_v2_golds_empty_after_normalisation_expect_empty_prediction():
    # "." is dropped; with nothing left the only correct answer is "", but the question
    # still counts as HasAns because its answer list was not empty.
    result = evaluate_v2({"q": ["."]}, {"q": ""})
    assert result["exact"] == 100.0 and result["f1"] == 100.0 and result["HasAns_total"] == 1
    mixed = evaluate_v2({"q": [".", "x y"]}, {"q": "x y"})
    assert mixed["exact"] == 100.0


def test_evaluate_v2_na_prob_threshold_turns_answers_into_no_answer():
    # q3 (0.6) and q4 (0.8) exceed 0.5 -> treated as "" -> both correct (unanswerable);
    # q1, q2 keep their scores.
    result = evaluate_v2(GOLD_V2, PREDS_V2, na_probs=NA_PROBS, na_prob_thresh=0.5)
    assert result["exact"] == pytest.approx(100 * 3 / 4)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 1) / 4)
    assert result["NoAns_exact"] == 100.0


def test_evaluate_v2_best_thresholds_by_hand():
    # Start with all "no answer": 2 correct (q3, q4). Sweep by na prob:
    #   EM: q1 +1 -> 3 (best, thresh 0.1); q2 +0 -> 3; q3 -1 -> 2; q4 +0 -> 2
    #   F1: q1 +1 -> 3 (0.1); q2 +2/3 -> 3.667 (best, thresh 0.3); q3 -1; q4 +0
    result = evaluate_v2(GOLD_V2, PREDS_V2, na_probs=NA_PROBS)
    assert result["best_exact"] == pytest.approx(100 * 3 / 4)
    assert result["best_exact_thresh"] == 0.1
    assert result["best_f1"] == pytest.approx(100 * (3 + 2 / 3) / 4)
    assert result["best_f1_thresh"] == 0.3
    # the default threshold 1.0 leaves the main figures untouched
    assert result["exact"] == pytest.approx(50.0)


def test_evaluate_v2_best_threshold_stays_zero_when_no_answer_everywhere_is_best():
    gold = {"q1": [], "q2": ["Rome"]}
    predictions = {"q1": "wrong", "q2": "Milan"}
    result = evaluate_v2(gold, predictions, na_probs={"q1": 0.2, "q2": 0.4})
    # start: 1 (q1 correct as ""); q1 -1 -> 0; q2 +0 -> 0: never above the start
    assert result["best_exact"] == 50.0 and result["best_exact_thresh"] == 0.0


def test_evaluate_v2_missing_prediction_is_wrong_and_warned():
    with pytest.warns(UserWarning, match="1 of 2"):
        result = evaluate_v2({"q1": [], "q2": ["Rome"]}, {"q2": "Rome"})
    assert result["exact"] == 50.0 and result["NoAns_exact"] == 0.0


def test_squad_metrics_aliases_for_v2():
    examples = [
        {"id": "q1", "context": "Paris is big", "answers": {"text": ["Paris"], "answer_start": [0]}},
        {"id": "q2", "context": "Rome", "answers": {"text": [], "answer_start": []}},
    ]
    v1 = squad_metrics(examples[:1], {"q1": "paris"})
    assert v1 == {"exact_match": 100.0, "f1": 100.0}
    v2 = squad_metrics(examples, {"q1": "Paris", "q2": "Rome"}, version_2=True)
    assert v2["exact_match"] == v2["exact"] == 50.0
    assert v2["f1"] == 50.0 and v2["NoAns_total"] == 1


# transformers' SQuAD code (removed in transformers 5) as recorded by
# tests/fixtures/squad_reference/make_reference.py with transformers 4.57.6 (its docstring says how to rerun it)
REFERENCE = FIXTURES / "squad_reference"


def reference_fixture(name: str):
    return json.loads((REFERENCE / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", reference_fixture("answer_pairs.json"), ids=lambda case: repr(case["prediction"]))
def test_normalisation_exact_and_f1_equal_transformers_reference(case):
    assert normalize_answer(case["gold"]) == case["normalized_gold"]
    assert normalize_answer(case["prediction"]) == case["normalized_prediction"]
    assert exact_match(case["prediction"], case["gold"]) == case["exact"]
    assert f1(case["prediction"], case["gold"]) == pytest.approx(case["f1"], abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("thresh", ["1.0", "0.5"])
def test_evaluate_v2_equals_transformers_squad_evaluate_on_real_data(squad_v2_dev, thresh):
    """The seeded predictions over the real v2 dev part score exactly as transformers' squad_evaluate scored them
    (every figure, the best thresholds included; the probabilities are rounded so the sweep meets ties)."""
    import hashlib
    import importlib.util

    recorded = reference_fixture("metrics_v2.json")
    if hashlib.sha256(squad_v2_dev.read_bytes()).hexdigest() != recorded["data_sha256"]:
        pytest.skip(f"{squad_v2_dev} is not the file the reference was recorded on (its SHA-256 differs)")
    spec = importlib.util.spec_from_file_location("make_reference", REFERENCE / "make_reference.py")
    make_reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_reference)  # only its seeded inputs: nothing there imports transformers
    gold, predictions, na_probs = make_reference.seeded_v2_inputs(json.loads(squad_v2_dev.read_text()))
    assert len(gold) == recorded["questions"]
    assert evaluate_v2(gold, predictions, na_probs, float(thresh)) == recorded["results"][thresh]
