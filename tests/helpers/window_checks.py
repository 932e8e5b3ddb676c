"""What every tokenised set of windows must satisfy, whatever the records: labels inside the window's context
and covering the gold answer, CLS exactly when the answer is not wholly inside, offsets only on context tokens."""
import numpy as np

from qaexp.data.checks import placed_answer
from qaexp.data.windows import NOT_CONTEXT


def assert_windows_consistent(records: list[dict], windows, max_length: int) -> None:
    assert len(windows.inputs["input_ids"]) == len(windows) == len(windows.offsets)
    assert set(windows.example_index.tolist()) == set(range(len(records))), "an example got no window"
    for i in range(len(windows)):
        ids, offsets = windows.inputs["input_ids"][i], windows.offsets[i]
        assert len(ids) == len(offsets) <= max_length
        record = records[windows.example_index[i]]
        context = offsets[offsets[:, 0] != NOT_CONTEXT]
        assert ((context[:, 0] >= 0) & (context[:, 0] <= context[:, 1])
                & (context[:, 1] <= len(record["context"]))).all(), "an offset outside the context"
        start, end, cls = windows.start_positions[i], windows.end_positions[i], windows.cls_index[i]
        answers = record["answers"]
        placed = placed_answer(answers)  # an evaluation record's unplaced answers label nothing
        if not answers["text"] or not len(context) or placed is None:
            assert start == end == cls
            continue
        gold_start = answers["answer_start"][placed]
        gold_end = gold_start + len(answers["text"][placed])
        inside = context[0, 0] <= gold_start and context[-1, 1] >= gold_end
        if not inside:
            assert start == end == cls, f"window {i}: the answer is not inside, but labelled {start}..{end}"
            continue
        assert start != cls and start <= end, f"window {i}: the answer is inside, but labelled CLS"
        span_start, span_end = offsets[start, 0], offsets[end, 1]
        assert NOT_CONTEXT not in (span_start, span_end), f"window {i}: a label on a non-context token"
        assert span_start <= gold_start and span_end >= gold_end, f"window {i}: the labels miss the answer"


def context_token_counts(windows) -> np.ndarray:
    return np.array([(off[:, 0] != NOT_CONTEXT).sum() for off in windows.offsets])
