"""Span search and n-best merging in qaexp.evaluation.postprocess."""
import json
import math
import os

import numpy as np
import pytest

from qaexp.evaluation.postprocess import Predictions, postprocess_predictions

NO = (-1, -1)


def word_offsets(context: str) -> list[tuple[int, int]]:
    """Character span of every whitespace-separated word: one token per word."""
    spans, position = [], 0
    for word in context.split():
        begin = context.index(word, position)
        position = begin + len(word)
        spans.append((begin, position))
    return spans


def window(context_offsets, question_tokens=2, seq_len=None):
    """Offsets of one window: [CLS] question [SEP] context [SEP] padding."""
    offsets = [NO] * (1 + question_tokens + 1) + list(context_offsets) + [NO]
    seq_len = seq_len or len(offsets)
    return offsets + [NO] * (seq_len - len(offsets))


def first_context_position(question_tokens=2):
    return question_tokens + 2


CONTEXT = "alpha beta gamma delta epsilon zeta eta theta"
WORDS = word_offsets(CONTEXT)
P0 = first_context_position()  # token position of the first context word


def single_window_inputs(seq_len=16):
    offsets = np.array([window(WORDS, seq_len=seq_len)])
    start = np.zeros((1, seq_len), np.float32)
    end = np.zeros((1, seq_len), np.float32)
    return [{"id": "q", "context": CONTEXT}], np.array([0]), offsets, start, end


def test_best_span_text_is_the_context_slice():
    examples, index, offsets, start, end = single_window_inputs()
    start[0, P0 + 1] = 5.0  # "beta"
    end[0, P0 + 3] = 4.0  # "delta"
    result = postprocess_predictions(examples, index, offsets, start, end)
    assert result.predictions == {"q": "beta gamma delta"}
    top = result.nbest["q"][0]
    assert (top["text"], top["start_logit"], top["end_logit"]) == ("beta gamma delta", 5.0, 4.0)
    assert result.null_odds == {}


def test_never_predicts_outside_the_context():
    examples, index, offsets, start, end = single_window_inputs()
    not_context = offsets[0, :, 0] < 0
    start[0, not_context] = 100.0  # CLS, question, separators and padding look best
    end[0, not_context] = 100.0
    start[0, P0 + 2] = 1.0
    result = postprocess_predictions(examples, index, offsets, start, end)
    assert result.predictions["q"] == "gamma"
    for entry in result.nbest["q"]:
        assert entry["text"] and entry["text"] in CONTEXT
        assert abs(entry["start_logit"]) < 100 and abs(entry["end_logit"]) < 100


def test_respects_max_answer_length_and_span_order():
    examples, index, offsets, start, end = single_window_inputs()
    start[0, P0] = 10.0  # "alpha"
    end[0, P0 + 5] = 10.0  # "zeta": six tokens, too long for 3
    end[0, P0 + 1] = 2.0  # "beta"
    start[0, P0 + 7] = 9.0  # ("theta", "zeta") would score 19 if an end could precede its start
    result = postprocess_predictions(examples, index, offsets, start, end, max_answer_length=3)
    assert result.predictions["q"] == "alpha beta"
    for entry in result.nbest["q"]:
        assert 1 <= len(entry["text"].split()) <= 3
    texts = [entry["text"] for entry in result.nbest["q"]]
    assert "alpha beta gamma delta epsilon zeta" not in texts


def test_max_answer_length_one_gives_single_tokens():
    examples, index, offsets, start, end = single_window_inputs()
    start[0, P0 + 2], end[0, P0 + 4] = 3.0, 3.0
    result = postprocess_predictions(examples, index, offsets, start, end, max_answer_length=1)
    assert all(len(e["text"].split()) == 1 for e in result.nbest["q"])
    assert result.predictions["q"] in {"gamma", "epsilon"}


def test_nbest_sorted_with_softmax_probabilities_and_size_limit():
    examples, index, offsets, start, end = single_window_inputs()
    rng = np.random.default_rng(3)
    start[:] = rng.normal(size=start.shape)
    end[:] = rng.normal(size=end.shape)
    result = postprocess_predictions(examples, index, offsets, start, end, n_best_size=5)
    nbest = result.nbest["q"]
    assert len(nbest) == 5
    scores = [e["start_logit"] + e["end_logit"] for e in nbest]
    assert scores == sorted(scores, reverse=True)
    exp = [math.exp(s - scores[0]) for s in scores]
    assert [e["probability"] for e in nbest] == pytest.approx([x / sum(exp) for x in exp])
    assert result.predictions["q"] == nbest[0]["text"]


def test_best_span_across_overlapping_windows_wins_and_appears_once():
    context = "one two three four five six"
    words = word_offsets(context)
    offsets = np.array([window(words[0:4], seq_len=12), window(words[2:6], seq_len=12)])
    start = np.zeros((2, 12), np.float32)
    end = np.zeros((2, 12), np.float32)
    # "three four" lies in both windows: score 6 in the first, 7 in the second
    start[0, P0 + 2], end[0, P0 + 3] = 3.0, 3.0
    start[1, P0 + 0], end[1, P0 + 1] = 3.5, 3.5
    # "five six" exists only in the second window and scores 7.5
    start[1, P0 + 2], end[1, P0 + 3] = 4.0, 3.5
    examples = [{"id": "q", "context": context}]
    result = postprocess_predictions(examples, np.array([0, 0]), offsets, start, end)
    assert result.predictions["q"] == "five six"
    texts = [e["text"] for e in result.nbest["q"]]
    assert len(texts) == len(set(texts))
    three_four = next(e for e in result.nbest["q"] if e["text"] == "three four")
    assert (three_four["start_logit"], three_four["end_logit"]) == (3.5, 3.5)
    assert texts.index("five six") < texts.index("three four")


def two_window_v2_inputs():
    context = "red green blue"
    words = word_offsets(context)
    offsets = np.array([window(words, seq_len=10), window(words, seq_len=10)])
    start = np.zeros((2, 10), np.float32)
    end = np.zeros((2, 10), np.float32)
    start[:, P0 + 1], end[:, P0 + 2] = 2.0, 1.0  # "green blue", score 3
    start[0, 0], end[0, 0] = 4.0, 4.0  # null score 8 in window 0
    start[1, 0], end[1, 0] = 2.5, 2.5  # null score 5 in window 1: the minimum
    return [{"id": "q", "context": context}], np.array([0, 0]), offsets, start, end


def test_v2_predicts_no_answer_above_the_threshold():
    examples, index, offsets, start, end = two_window_v2_inputs()
    result = postprocess_predictions(examples, index, offsets, start, end, version_2=True)
    assert result.null_odds == {"q": pytest.approx(5.0 - 3.0)}
    assert result.predictions == {"q": ""}
    nbest = result.nbest["q"]
    assert (nbest[0]["text"], nbest[0]["start_logit"], nbest[0]["end_logit"]) == ("", 2.5, 2.5)
    assert sum(e["probability"] for e in nbest) == pytest.approx(1.0)

    kept = postprocess_predictions(examples, index, offsets, start, end, version_2=True,
                                   null_score_diff_threshold=2.5)
    assert kept.predictions == {"q": "green blue"}


def test_v2_uses_the_given_cls_positions():
    examples, index, offsets, start, end = two_window_v2_inputs()
    start[:, 1], end[:, 1] = -5.0, -5.0  # a "CLS" at position 1 makes the null score -10
    result = postprocess_predictions(examples, index, offsets, start, end, version_2=True,
                                     cls_index=np.array([1, 1]))
    assert result.null_odds["q"] == pytest.approx(-10.0 - 3.0)
    assert result.predictions["q"] == "green blue"


def test_no_valid_span_gives_empty_prediction():
    examples = [{"id": "none", "context": "abc"}, {"id": "nowindow", "context": "xyz"}]
    offsets = np.full((1, 6, 2), -1)
    logits = np.ones((1, 6), np.float32)
    for version_2 in (False, True):
        result = postprocess_predictions(examples, [0], offsets, logits, logits, version_2=version_2)
        assert result.predictions == {"none": "", "nowindow": ""}
        for qid in ("none", "nowindow"):
            assert len(result.nbest[qid]) == 1 and result.nbest[qid][0]["text"] == ""
        if version_2:
            assert result.null_odds["none"] == math.inf and result.null_odds["nowindow"] == math.inf


def test_accepts_float16_logits_and_list_inputs():
    examples, index, offsets, start, end = single_window_inputs()
    start[0, P0 + 6], end[0, P0 + 7] = 3.0, 3.0
    result = postprocess_predictions(examples, index.tolist(), offsets.tolist(),
                                     start.astype(np.float16), end.astype(np.float16))
    assert result.predictions["q"] == "eta theta"
    assert isinstance(result.nbest["q"][0]["start_logit"], float)


def test_minus_infinity_marks_impossible_positions():
    examples, index, offsets, start, end = single_window_inputs()
    start[0, P0:P0 + 3] = -np.inf  # only "delta" onwards may start an answer
    end[0, P0 + 3] = 2.0
    result = postprocess_predictions(examples, index, offsets, start, end)
    assert result.predictions["q"] == "delta"
    assert all(math.isfinite(e["start_logit"]) for e in result.nbest["q"])


def test_minus_infinity_at_cls_rules_out_the_null_answer():
    examples, index, offsets, start, end = two_window_v2_inputs()
    start[:, 0] = -np.inf
    result = postprocess_predictions(examples, index, offsets, start, end, version_2=True)
    assert result.null_odds["q"] == -math.inf
    assert result.predictions["q"] == "green blue"
    assert "" not in [e["text"] for e in result.nbest["q"]]


def test_rejects_nan_logits():
    examples, index, offsets, start, end = single_window_inputs()
    start[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        postprocess_predictions(examples, index, offsets, start, end)


def test_rejects_mismatched_shapes():
    examples, index, offsets, start, end = single_window_inputs()
    with pytest.raises(ValueError):
        postprocess_predictions(examples, index, offsets[:, :-1], start, end)
    with pytest.raises(ValueError):
        postprocess_predictions(examples, np.array([1]), offsets, start, end)


def test_write_creates_files_atomically(tmp_path):
    predictions = Predictions({"q": "a"}, {"q": [{"text": "a", "probability": 1.0,
                                                  "start_logit": 1.0, "end_logit": 2.0}]}, {})
    run_dir = tmp_path / "run"
    (run_dir).mkdir()
    (run_dir / "predictions.json").write_text("old")
    predictions.write(run_dir)
    assert sorted(os.listdir(run_dir)) == ["nbest_predictions.json", "predictions.json"]
    assert json.loads((run_dir / "predictions.json").read_text()) == {"q": "a"}

    Predictions({"q": ""}, {"q": []}, {"q": 1.5}).write(run_dir)
    assert json.loads((run_dir / "null_odds.json").read_text()) == {"q": 1.5}
    assert not [name for name in os.listdir(run_dir) if name.startswith(".tmp")]


# --- randomized comparison with an exhaustive O(L^2) search -------------------------

def random_case(rng, n_examples=12):
    """Examples split into overlapping windows with question tokens, sub-word pieces and padding."""
    examples, windows, example_index = [], [], []
    seq_len = 24
    for e in range(n_examples):
        words = ["".join(rng.choice(list("abcdef"), size=rng.integers(1, 6))) for _ in range(rng.integers(1, 30))]
        context = " ".join(words)
        tokens = []
        for begin, finish in word_offsets(context):
            cut = int(rng.integers(begin + 1, finish + 1))  # sometimes two pieces per word
            tokens += [(begin, cut)] + ([(cut, finish)] if cut < finish else [])
        examples.append({"id": f"q{e}", "context": context})
        question = int(rng.integers(1, 5))
        room = seq_len - question - 3
        stride = int(rng.integers(1, room))
        first = 0
        while True:
            windows.append(window(tokens[first:first + room], question_tokens=question, seq_len=seq_len))
            example_index.append(e)
            if first + room >= len(tokens):
                break
            first += stride
    n = len(windows)
    logits = rng.normal(size=(2, n, seq_len)).astype(np.float32)
    return examples, np.array(example_index), np.array(windows), logits[0], logits[1]


def brute_force(examples, example_index, offsets, start, end, n_best, max_len):
    """Every (i, j) pair of every window; one entry per character span, best score kept."""
    best = [dict() for _ in examples]
    for w, e in enumerate(example_index):
        length = offsets.shape[1]
        for i in range(length):
            for j in range(i, min(length, i + max_len)):
                if offsets[w, i, 0] < 0 or offsets[w, j, 0] < 0:
                    continue
                key = (int(offsets[w, i, 0]), int(offsets[w, j, 1]))
                score = start[w, i] + end[w, j]  # float32 sum, as in the implementation
                if key not in best[e] or score > best[e][key][0]:
                    best[e][key] = (score, float(start[w, i]), float(end[w, j]))
    nbest = []
    for example, spans in zip(examples, best):
        ranked = sorted(spans.items(), key=lambda item: -item[1][0])[:n_best]
        nbest.append([(example["context"][a:b], s, e) for (a, b), (_, s, e) in ranked])
    return nbest


@pytest.mark.parametrize("seed", range(10))
def test_matches_exhaustive_search(seed):
    rng = np.random.default_rng(seed)
    examples, example_index, offsets, start, end = random_case(rng)
    n_best, max_len = int(rng.integers(1, 8)), int(rng.integers(1, 31))  # may exceed seq_len
    result = postprocess_predictions(examples, example_index, offsets, start, end,
                                     n_best_size=n_best, max_answer_length=max_len, version_2=True)
    expected = brute_force(examples, example_index, offsets, start, end, n_best, max_len)
    for example, reference in zip(examples, expected):
        qid = example["id"]
        got = [(e["text"], e["start_logit"], e["end_logit"]) for e in result.nbest[qid] if e["text"]]
        assert got == reference
        windows = example_index == int(qid[1:])
        null = float((start[windows, 0] + end[windows, 0]).min())
        best_score = reference[0][1] + reference[0][2]
        assert result.null_odds[qid] == pytest.approx(null - best_score, abs=1e-5)
        assert result.predictions[qid] == ("" if null - best_score > 0 else reference[0][0])
