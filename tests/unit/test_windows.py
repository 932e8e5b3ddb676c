"""Window preparation on real SQuAD data: labels recover the gold answers, windows overlap, offsets are context-only."""
import json

import numpy as np
import pytest

from qaexp.data.squad import flatten_squad
from qaexp.data.windows import NOT_CONTEXT, tokenize_windows
from qaexp.evaluation.metrics import normalize_answer
from qaexp.model.build import train_wordpiece_tokenizer

MAX_LENGTH, STRIDE = 192, 64


@pytest.fixture(scope="module")
def squad_sample(request):
    from helpers.repo import shared_file

    with open(shared_file("dev-v1.1.json"), encoding="utf-8") as f:
        records = list(flatten_squad(json.load(f)))
    return records[::7]  # ~1,500 questions across all 48 articles


@pytest.fixture(scope="module")
def tokenizer(squad_sample):
    texts = [r["context"] for r in squad_sample] + [r["question"] for r in squad_sample]
    return train_wordpiece_tokenizer(texts, vocab_size=6000, lowercase=False)


@pytest.fixture(scope="module")
def windows(squad_sample, tokenizer):
    return tokenize_windows(squad_sample, tokenizer, MAX_LENGTH, STRIDE, progress=False)


def test_labelled_tokens_cut_the_gold_answer(squad_sample, windows):
    labelled = np.flatnonzero(windows.start_positions != windows.cls_index)
    assert len(labelled) > 1000
    contains, equal = 0, 0
    for i in labelled:
        record = squad_sample[windows.example_index[i]]
        offsets = windows.offsets[i]
        span_start, span_end = offsets[windows.start_positions[i], 0], offsets[windows.end_positions[i], 1]
        gold_start = record["answers"]["answer_start"][0]
        gold = record["answers"]["text"][0]
        assert span_start >= 0 and span_end >= 0, "a label points at a non-context token"
        contains += span_start <= gold_start and span_end >= gold_start + len(gold)
        equal += normalize_answer(record["context"][span_start:span_end]) == normalize_answer(gold)
    assert contains == len(labelled)
    assert equal / len(labelled) >= 0.99


def test_answers_outside_a_window_are_labelled_cls(squad_sample, windows):
    for i in range(len(windows)):
        record = squad_sample[windows.example_index[i]]
        context_offsets = windows.offsets[i][windows.offsets[i][:, 0] != NOT_CONTEXT]
        gold_start = record["answers"]["answer_start"][0]
        gold_end = gold_start + len(record["answers"]["text"][0])
        inside = context_offsets[0, 0] <= gold_start and context_offsets[-1, 1] >= gold_end
        is_cls = windows.start_positions[i] == windows.cls_index[i]
        assert is_cls != inside
        assert is_cls == (windows.end_positions[i] == windows.cls_index[i])


def test_long_contexts_give_overlapping_windows(windows, tokenizer):
    counts = np.bincount(windows.example_index)
    assert counts.max() >= 2, "expected some contexts longer than one window"
    example = int(np.flatnonzero(counts >= 2)[0])
    first, second = np.flatnonzero(windows.example_index == example)[:2]
    ids_first = _context_ids(windows, first)
    ids_second = _context_ids(windows, second)
    # The second window starts doc_stride tokens before the first one ends.
    assert ids_first[-STRIDE:] == ids_second[:STRIDE]
    assert all(len(windows.inputs["input_ids"][i]) <= MAX_LENGTH for i in range(len(windows)))


def _context_ids(windows, i):
    ids = np.asarray(windows.inputs["input_ids"][i])
    return ids[windows.offsets[i][:, 0] != NOT_CONTEXT].tolist()


def test_offsets_cover_only_context_tokens(windows, tokenizer):
    for i in range(0, len(windows), 50):
        ids = windows.inputs["input_ids"][i]
        token_types = windows.inputs["token_type_ids"][i]
        offsets = windows.offsets[i]
        for position, token in enumerate(ids):
            is_context = token_types[position] == 1 and token != tokenizer.sep_token_id
            assert (offsets[position, 0] != NOT_CONTEXT) == is_context
        assert windows.offsets[i][windows.cls_index[i], 0] == NOT_CONTEXT


def test_unanswerable_questions_point_at_cls(tokenizer):
    record = {"id": "x", "title": "", "context": "The sky is blue over the hills.", "question": "What is red?",
              "answers": {"text": [], "answer_start": []}}
    windows = tokenize_windows([record], tokenizer, MAX_LENGTH, STRIDE, progress=False)
    assert windows.start_positions.tolist() == windows.cls_index.tolist() == [0]
    assert windows.inputs["input_ids"][0][0] == tokenizer.cls_token_id
