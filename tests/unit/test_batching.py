"""Batching: every padding gives the same windows and labels; shuffling is per pass and resumable; eval logits
do not depend on the padding."""
import numpy as np
import pytest

from helpers import tiny_qa
from helpers.batching_oracle import padded_stream
from qaexp.data.batches import Batcher, batch_order
from qaexp.data.windows import Rows, Windows

PADDINGS = ("max_length", "dynamic", "bucketed")
PAD_ID = 0


def random_windows(n: int = 203, seed: int = 0, longest: int = 60) -> Windows:
    """Windows with random lengths; token i of window w is 1000 * w + i + 1 (never the pad id)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, longest + 1, size=n)
    ids = [[1000 * w + i + 1 for i in range(length)] for w, length in enumerate(lengths)]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return Windows(inputs={"input_ids": Rows.from_lists(ids), "attention_mask": Rows(np.ones(bounds[-1], np.int32),
                                                                                     bounds)},
                   start_positions=rng.integers(0, 5, size=n), end_positions=rng.integers(5, 10, size=n),
                   example_index=np.arange(n), cls_index=np.zeros(n, np.int64),
                   offsets=Rows(np.zeros((bounds[-1], 2), np.int32), bounds))


def batcher(windows, padding, batch_size=16, **kwargs):
    return Batcher(windows, batch_size, padding=padding, max_length=64, pad_id=PAD_ID, shuffle_seed=7, **kwargs)


@pytest.mark.parametrize("padding", PADDINGS)
def test_every_window_once_per_pass_with_its_own_tokens_and_labels(padding):
    windows = random_windows()
    seen = []
    for idx, batch in batcher(windows, padding).batches(epoch=3):
        width = batch["input_ids"].shape[1]
        assert width == 64 if padding == "max_length" else width % 8 == 0
        for row, i in enumerate(idx):
            length = len(windows.inputs["input_ids"][i])
            assert batch["input_ids"][row, :length].tolist() == windows.inputs["input_ids"][i].tolist()
            assert (batch["input_ids"][row, length:] == PAD_ID).all()
            assert batch["attention_mask"][row].sum() == length
            assert batch["start_positions"][row] == windows.start_positions[i]
            assert batch["end_positions"][row] == windows.end_positions[i]
        seen.extend(idx.tolist())
    assert sorted(seen) == list(range(len(windows)))


def test_each_pass_is_reshuffled_and_reproducible():
    b = batcher(random_windows(), "bucketed")
    first, second = b.order(0), b.order(1)
    assert [x.tolist() for x in first] == [x.tolist() for x in batcher(random_windows(), "bucketed").order(0)]
    assert [x.tolist() for x in first] != [x.tolist() for x in second]


def test_bucketing_pads_less_than_dynamic_which_pads_less_than_fixed():
    windows = random_windows(n=2000)
    cells = {p: sum(b["input_ids"].size for _, b in batcher(windows, p, bucket_window=20).batches()) for p in PADDINGS}
    assert cells["bucketed"] < 0.8 * cells["dynamic"] < 0.8 * cells["max_length"]


def test_evaluation_order_is_the_data_order():
    order = batch_order(np.array([5, 1, 9, 3, 7]), 2, "dynamic", rng=None)
    assert [x.tolist() for x in order] == [[0, 1], [2, 3], [4]]


def test_stream_resumes_at_any_global_batch_across_passes():
    b = batcher(random_windows(n=50), "bucketed")  # 4 batches per pass
    stream = padded_stream(b)
    uninterrupted = [next(stream)["input_ids"] for _ in range(11)]
    resumed = padded_stream(b, start_batch=6)
    for expected in uninterrupted[6:]:
        np.testing.assert_array_equal(next(resumed)["input_ids"], expected)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("multiple", [1, 8])
def test_dataset_yields_the_stream_exactly(padding, multiple):
    b = Batcher(random_windows(n=50), 16, padding=padding, max_length=64, pad_id=3, shuffle_seed=7,
                multiple=multiple)  # pad id 3: the dataset must pad with it, and the other inputs with 0
    stream = padded_stream(b, start_batch=3)
    for got in b.dataset(start_batch=3, count=9):
        expected = next(stream)
        assert sorted(got) == sorted(expected)
        for name, values in expected.items():
            assert got[name].dtype.name == "int32"
            np.testing.assert_array_equal(got[name].numpy(), values, err_msg=name)


def test_a_counted_dataset_ends_after_count_batches_across_passes():
    b = batcher(random_windows(n=50), "bucketed")  # 4 batches per pass
    dataset = b.dataset(start_batch=3, count=6)
    assert int(dataset.cardinality()) == 6
    counted = [batch["input_ids"].numpy() for batch in dataset]
    stream = padded_stream(b, start_batch=3)
    assert len(counted) == 6
    for got in counted:
        np.testing.assert_array_equal(got, next(stream)["input_ids"])


def test_a_final_batch_smaller_than_min_last_batch_is_dropped():
    b = batcher(random_windows(n=33), "dynamic", min_last_batch=2)  # 16 + 16 + 1
    assert len(b) == 2 and [len(idx) for idx in b.order(0)] == [16, 16]
    assert len(batcher(random_windows(n=34), "dynamic", min_last_batch=2)) == 3


@pytest.fixture(scope="module")
def tiny_setup():
    examples = tiny_qa.records(24)
    tokenizer = tiny_qa.tokenizer_for(examples)
    windows = tiny_qa.windows_for(examples, tokenizer, max_length=96, doc_stride=32)
    return examples, tokenizer, windows, tiny_qa.tiny_model(tokenizer)


def logits_with(model, windows, padding, pad_id):
    """Start/end logits of each window's real tokens, batching with the given padding (as the evaluator does)."""
    b = Batcher(windows, 5, padding=padding, max_length=96, pad_id=pad_id, with_labels=False)
    start = [None] * len(windows)
    end = [None] * len(windows)
    for idx, batch in b.batches():
        out = model(model.select_inputs(batch), training=False)
        for row, i in enumerate(idx):
            length = len(windows.inputs["input_ids"][i])
            start[i], end[i] = (np.asarray(out["start_logits"][row, :length]),
                                np.asarray(out["end_logits"][row, :length]))
    return start, end


def test_eval_logits_and_predictions_do_not_depend_on_padding(tiny_setup):
    from qaexp.evaluation.inference import FILL_LOGIT, answer
    from qaexp.evaluation.settings import AnswerSettings

    examples, tokenizer, windows, model = tiny_setup
    assert len(set(windows.lengths.tolist())) > 3  # windows of several lengths, so the paddings differ
    results = {p: logits_with(model, windows, p, tokenizer.pad_token_id) for p in PADDINGS}
    settings = AnswerSettings(max_length=96, doc_stride=32, max_answer_length=30, n_best_size=20,
                              version_2_with_negative=False, null_score_diff_threshold=0.0)
    predictions = {}
    for padding, (start, end) in results.items():
        for i in range(len(windows)):
            np.testing.assert_allclose(start[i], results["max_length"][0][i], atol=1e-4)
            np.testing.assert_allclose(end[i], results["max_length"][1][i], atol=1e-4)
        width = int(windows.lengths.max())
        padded = [np.full((len(windows), width), FILL_LOGIT, np.float32) for _ in range(2)]
        for i in range(len(windows)):
            padded[0][i, : len(start[i])], padded[1][i, : len(end[i])] = start[i], end[i]
        predictions[padding] = answer(examples, windows, padded[0], padded[1], settings).predictions
    assert predictions["dynamic"] == predictions["max_length"] == predictions["bucketed"]
