"""Tokenisation of question/context pairs into overlapping windows, with answer labels and offsets.

One pass serves training and evaluation: every window carries its start/end labels (the CLS position when
the answer is not inside it, or the question has none), the index of its example, and an offset mapping in
which every token that is not context is (-1, -1), so predicted spans map back to context text.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

import numpy as np
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

NOT_CONTEXT = -1


@dataclass
class Windows:
    """Unpadded features: per-window token lists plus aligned NumPy label arrays."""

    inputs: dict[str, list[list[int]]]  # input_ids, attention_mask and (for BERT) token_type_ids
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray
    cls_index: np.ndarray
    offsets: list[np.ndarray]  # (len, 2) per window, -1 outside the context

    def __len__(self) -> int:
        return len(self.start_positions)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.inputs["input_ids"]), dtype=np.int64, count=len(self))

    def padded_offsets(self) -> np.ndarray:
        width = int(self.lengths.max())
        out = np.full((len(self), width, 2), NOT_CONTEXT, dtype=np.int32)
        for i, off in enumerate(self.offsets):
            out[i, : len(off)] = off
        return out


@dataclass(frozen=True)
class _Chunk:
    """The windows of one chunk of examples, before the chunks are concatenated."""

    inputs: dict[str, list[list[int]]]
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray
    cls_index: np.ndarray
    offsets: list[np.ndarray]


_LABEL_COLUMNS = ("start_positions", "end_positions", "example_index", "cls_index")


def tokenize_windows(examples: list[dict], tokenizer, max_length: int, doc_stride: int,
                     chunk_size: int = 1000, progress: bool = True, desc: str = "tokenising") -> Windows:
    question_first = tokenizer.padding_side == "right"
    examples = truncate_long_questions(examples, tokenizer, max_length, doc_stride)
    parts = []
    chunks = range(0, len(examples), chunk_size)
    for lo in tqdm(chunks, desc=desc, unit="chunk", disable=not progress or len(chunks) < 2):
        parts.append(_tokenize_chunk(examples[lo: lo + chunk_size], lo, tokenizer, max_length, doc_stride,
                                     question_first))
    return _concat(parts, tokenizer.model_input_names)


def truncate_long_questions(examples: list[dict], tokenizer, max_length: int, doc_stride: int) -> list[dict]:
    """Keep the first tokens of questions that leave the context no more than doc_stride tokens of the window.

    The fast tokenizer cannot make overlapping windows then (it panics), so such questions are cut, with one
    warning. Returns `examples` itself when no question is too long.
    """
    limit = max_length - tokenizer.num_special_tokens_to_add(pair=True) - doc_stride - 1
    # Every token covers at least one UTF-8 byte, plus at most one word-start marker (SentencePiece):
    # only questions with more than limit / 2 bytes can be too long, so most are never tokenised here.
    candidates = [i for i, ex in enumerate(examples) if 2 * len(ex["question"].lstrip().encode("utf-8")) > limit]
    if not candidates:
        return examples
    questions = [examples[i]["question"].lstrip() for i in candidates]
    offsets = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    cut = {i: q[: off[limit - 1][1]] for i, q, off in zip(candidates, questions, offsets) if len(off) > limit}
    if not cut:
        return examples
    log.warning("%d question(s) longer than %d tokens were truncated to their first %d tokens, so that "
                "data.max_length=%d leaves the context more than data.doc_stride=%d tokens",
                len(cut), limit, limit, max_length, doc_stride)
    return [{**ex, "question": cut[i]} if i in cut else ex for i, ex in enumerate(examples)]


def _tokenize_chunk(examples, first_index, tokenizer, max_length, doc_stride, question_first) -> _Chunk:
    questions = [ex["question"].lstrip() for ex in examples]
    contexts = [ex["context"] for ex in examples]
    pair = (questions, contexts) if question_first else (contexts, questions)
    encoded = tokenizer(*pair, truncation="only_second" if question_first else "only_first",
                        max_length=max_length, stride=doc_stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True, padding=False)
    context_id = 1 if question_first else 0
    sample_map = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
    cls_positions = np.array([_cls_position(ids, tokenizer.cls_token_id) for ids in encoded["input_ids"]],
                             dtype=np.int64)
    spans = [_context_span(encoded.sequence_ids(i), context_id) for i in range(len(sample_map))]
    offsets, starts, ends = _label_windows(encoded["offset_mapping"], spans,
                                           [examples[i]["answers"] for i in sample_map], cls_positions,
                                           (contexts, sample_map))
    inputs = {name: encoded[name] for name in tokenizer.model_input_names if name in encoded}
    return _Chunk(inputs, starts, ends, sample_map + first_index, cls_positions, offsets)


def _context_span(sequence_ids: list, context_id: int) -> tuple[int, int]:
    """[first, last + 1) of the context's tokens, which are contiguous in every pair template; (0, 0) if none."""
    try:
        first = sequence_ids.index(context_id)
    except ValueError:
        return 0, 0
    return first, len(sequence_ids) - sequence_ids[::-1].index(context_id)


def _label_windows(offset_mapping, spans, answers, cls: np.ndarray, contexts_of_windows):
    """Answer labels of all windows of a chunk at once, on flat token arrays.

    A window's labels are the token positions of its example's first gold answer: the last context token
    starting at or before the answer and the first one ending at or after it; (cls, cls) when the example has
    no answer or the answer is not wholly inside the window's context. Returns (per-window offsets with
    non-context tokens at NOT_CONTEXT, start labels, end labels).
    """
    lengths = np.fromiter(map(len, offset_mapping), dtype=np.int64, count=len(offset_mapping))
    first_token = np.cumsum(lengths) - lengths  # flat index of each window's first token
    window = np.repeat(np.arange(len(lengths)), lengths)
    position = np.arange(int(lengths.sum())) - first_token[window]
    flat = np.fromiter(chain.from_iterable(chain.from_iterable(offset_mapping)), dtype=np.int32,
                       count=2 * int(lengths.sum())).reshape(-1, 2)
    lo, hi = np.array(spans, dtype=np.int64).reshape(-1, 2).T
    in_context = (position >= lo[window]) & (position < hi[window])
    contexts, example_of_window = contexts_of_windows
    _skip_leading_whitespace(flat, in_context, contexts, example_of_window[window])
    masked = np.where(in_context[:, None], flat, NOT_CONTEXT)

    answered = np.array([bool(a["answer_start"]) for a in answers])
    start_char = np.array([a["answer_start"][0] if a["answer_start"] else 0 for a in answers], dtype=np.int64)
    end_char = start_char + [len(a["text"][0]) if a["answer_start"] else 0 for a in answers]
    has_context = hi > lo
    first_context, last_context = first_token + lo, first_token + np.maximum(hi - 1, lo)
    inside = (answered & has_context & (flat[first_context, 0] <= start_char)
              & (flat[last_context, 1] >= end_char))
    # The last context token starting at or before the answer, and the first one ending at or after it.
    start = np.maximum.reduceat(np.where(in_context & (flat[:, 0] <= start_char[window]), position, -1),
                                first_token)
    end = np.minimum.reduceat(np.where(in_context & (flat[:, 1] >= end_char[window]), position, lengths.max()),
                              first_token)
    starts = np.where(inside, start, cls)
    ends = np.where(inside, np.maximum(end, start), cls)
    offsets = [masked[begin: begin + length] for begin, length in zip(first_token.tolist(), lengths.tolist())]
    return offsets, starts, ends


def _skip_leading_whitespace(flat: np.ndarray, in_context: np.ndarray, contexts: list[str],
                             example_of_token: np.ndarray) -> None:
    """Start context tokens' offsets at their first non-space character, in place.

    SentencePiece tokenizers (ALBERT, XLM-R, DeBERTa-v3) count the space before a word as part of its first
    piece ("▁Den" covers " Den"), so answers cut by offsets would begin with a space. A token of nothing but
    space (byte-level BPE's "Ġ" of a double space) becomes empty at its end: a span starting there starts at
    the next word.
    """
    codes = np.frombuffer("".join(contexts).encode("utf-32-le"), dtype=np.uint32)
    is_space = np.isin(codes, _whitespace_codes())
    text_start = np.cumsum([0] + [len(c) for c in contexts])[:-1]
    rows = np.flatnonzero(in_context & (flat[:, 0] >= 0) & (flat[:, 0] < flat[:, 1]))
    while rows.size:
        starts = flat[rows, 0]
        rows = rows[is_space[text_start[example_of_token[rows]] + starts] & (starts < flat[rows, 1])]
        flat[rows, 0] += 1
        rows = rows[flat[rows, 0] < flat[rows, 1]]


@lru_cache(maxsize=1)
def _whitespace_codes() -> np.ndarray:
    return np.array([c for c in range(0x3001) if chr(c).isspace()], dtype=np.uint32)  # U+3000 is the last


def _cls_position(input_ids: list[int], cls_token_id) -> int:
    try:
        return input_ids.index(cls_token_id)
    except ValueError:
        return 0


def _concat(parts: list[_Chunk], input_names) -> Windows:
    inputs = {name: [] for name in input_names if parts and name in parts[0].inputs}
    for part in parts:
        for name in inputs:
            inputs[name].extend(part.inputs[name])
    labels = {name: _concat_column([getattr(part, name) for part in parts]) for name in _LABEL_COLUMNS}
    return Windows(inputs=inputs, offsets=[offsets for part in parts for offsets in part.offsets], **labels)


def _concat_column(columns: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(c, dtype=np.int64) for c in columns]) if columns else np.zeros(0, np.int64)
