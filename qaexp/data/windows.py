"""Tokenisation of question/context pairs into overlapping windows, with answer labels and offsets.

Windows are columnar (flat token arrays plus row bounds, no Python lists per window), so the window cache can
hold them as memory-mapped files. One pass serves training and evaluation: every window carries its start/end labels (the CLS position when
the answer is not inside it, or the question has none), the index of its example, and an offset mapping in
which every token that is not context is (-1, -1), so predicted spans map back to context text.
"""
from __future__ import annotations

import contextlib
import logging
import mmap
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

from qaexp.data.checks import placed_answer
from qaexp.data.window_rule import check_window, question_room

log = logging.getLogger(__name__)

NOT_CONTEXT = -1


@dataclass(frozen=True)
class Rows:
    """Variable-length rows stored flat (columnar): row i is values[bounds[i]:bounds[i + 1]].

    The values may be a memory-mapped file (the window cache): rows are views, read from disk when used.
    """

    values: np.ndarray  # (tokens,) or (tokens, 2)
    bounds: np.ndarray  # (rows + 1,) int64, starting at 0

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.bounds[i]: self.bounds[i + 1]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.bounds)

    def slice(self, lo: int, hi: int) -> "Rows":
        return Rows(self.values[self.bounds[lo]: self.bounds[hi]], self.bounds[lo: hi + 1] - self.bounds[lo])

    def padded(self, idx: np.ndarray, width: int, fill: int) -> np.ndarray:
        """Rows `idx`, cut or padded with `fill` to `width`, gathered in one vectorised read."""
        lengths = np.minimum(self.bounds[idx + 1] - self.bounds[idx], width)
        inside = np.arange(width)[None, :] < lengths[:, None]
        flat = np.where(inside, self.bounds[idx][:, None] + np.arange(width)[None, :], 0)
        if not len(self.values):
            return np.full(flat.shape + self.values.shape[1:], fill, np.int32)
        gathered = self.values[flat]
        mask = inside.reshape(inside.shape + (1,) * (gathered.ndim - 2))
        return np.where(mask, gathered, fill).astype(np.int32)

    def release_pages(self) -> None:
        """Give back the resident pages of a memory-mapped file (they are read again from the page cache if used)."""
        release_mapped_pages(self.values)

    @staticmethod
    def concat(parts: list["Rows"]) -> "Rows":
        lengths = np.concatenate([part.lengths for part in parts])
        return Rows(np.concatenate([part.values for part in parts]), np.concatenate([[0], np.cumsum(lengths)]))

    @staticmethod
    def from_lists(rows: list, dtype=np.int32) -> "Rows":
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        values = np.fromiter(chain.from_iterable(rows), dtype=dtype, count=int(lengths.sum()))
        return Rows(values, np.concatenate([[0], np.cumsum(lengths)]))


def release_mapped_pages(array: np.ndarray) -> None:
    """madvise(DONTNEED) on the mmap under `array`, if any: the process's resident set stays flat on big files."""
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    if base is not None and hasattr(mmap, "MADV_DONTNEED"):
        base.madvise(mmap.MADV_DONTNEED)


@dataclass
class Windows:
    """Unpadded windows in columnar form: flat token rows plus aligned NumPy label arrays."""

    inputs: dict[str, Rows]  # input_ids, attention_mask and (for BERT) token_type_ids
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray
    cls_index: np.ndarray
    offsets: Rows  # (len, 2) per window, -1 outside the context

    def __len__(self) -> int:
        return len(self.start_positions)

    @property
    def lengths(self) -> np.ndarray:
        return self.offsets.lengths

    def padded_offsets(self) -> np.ndarray:
        return self.offsets.padded(np.arange(len(self)), int(self.lengths.max()), NOT_CONTEXT)

    def slice(self, lo: int, hi: int, first_example: int = 0) -> "Windows":
        """Windows lo..hi-1 (views), their example indices counted from `first_example`."""
        return Windows({name: rows.slice(lo, hi) for name, rows in self.inputs.items()},
                       self.start_positions[lo:hi], self.end_positions[lo:hi],
                       self.example_index[lo:hi] - first_example, self.cls_index[lo:hi], self.offsets.slice(lo, hi))

    def release_pages(self) -> None:
        for rows in (*self.inputs.values(), self.offsets):
            rows.release_pages()


LABEL_COLUMNS = ("start_positions", "end_positions", "example_index", "cls_index")


def tokenize_windows(examples: list[dict], tokenizer, max_length: int, doc_stride: int,
                     chunk_size: int = 1000, progress: bool = True, desc: str = "tokenising") -> Windows:
    parts = list(window_chunks(examples, tokenizer, max_length, doc_stride, chunk_size, progress, desc))
    return concat_windows(parts, tokenizer.model_input_names)


def window_chunks(examples: list[dict], tokenizer, max_length: int, doc_stride: int, chunk_size: int = 1000,
                  progress: bool = True, desc: str = "tokenising") -> Iterator[Windows]:
    """The windows of each chunk of `chunk_size` examples, in order (example indices count from the first example)."""
    question_first = tokenizer.padding_side == "right"
    examples = truncate_long_questions(examples, tokenizer, max_length, doc_stride)
    chunks = range(0, len(examples), chunk_size)
    # disable=None: the bar only on a terminal (in a log file its carriage returns pile up on one line).
    for lo in tqdm(chunks, desc=desc, unit="chunk", disable=True if not progress or len(chunks) < 2 else None):
        yield _tokenize_chunk(examples[lo: lo + chunk_size], lo, tokenizer, max_length, doc_stride, question_first)


def truncate_long_questions(examples: list[dict], tokenizer, max_length: int, doc_stride: int) -> list[dict]:
    """Keep the first tokens of questions that leave the context no more than doc_stride tokens of the window.

    The fast tokenizer cannot make overlapping windows then (it panics), so such questions are cut, with one
    warning. Returns `examples` itself when no question is too long. Settings that leave too little room for
    any question with this tokenizer's special tokens are refused (window_rule.check_window).
    """
    special_tokens = tokenizer.num_special_tokens_to_add(pair=True)
    check_window(max_length, doc_stride, special_tokens)
    limit = question_room(max_length, doc_stride, special_tokens)
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


def _tokenize_chunk(examples, first_index, tokenizer, max_length, doc_stride, question_first) -> Windows:
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
    inputs = {name: Rows.from_lists(encoded[name]) for name in tokenizer.model_input_names if name in encoded}
    return Windows(inputs, starts, ends, sample_map + first_index, cls_positions, offsets)


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

    # The first answer with a known place (an evaluation record may hold unplaced ones, data/checks.py); none:
    # (cls, cls), and inference leaves such a question out of the loss.
    placed = [placed_answer(a) for a in answers]
    answered = np.array([n is not None for n in placed])
    start_char = np.array([0 if n is None else a["answer_start"][n] for a, n in zip(answers, placed)],
                          dtype=np.int64)
    end_char = start_char + [0 if n is None else len(a["text"][n]) for a, n in zip(answers, placed)]
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
    return Rows(masked.astype(np.int32), np.concatenate([[0], np.cumsum(lengths)])), starts, ends


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


def concat_windows(parts: list[Windows], input_names) -> Windows:
    names = [name for name in input_names if parts and name in parts[0].inputs]
    inputs = {name: Rows.concat([part.inputs[name] for part in parts]) for name in names}
    labels = {name: _concat_column([getattr(part, name) for part in parts]) for name in LABEL_COLUMNS}
    offsets = Rows.concat([part.offsets for part in parts]) if parts else Rows(np.zeros((0, 2), np.int32),
                                                                                np.zeros(1, np.int64))
    return Windows(inputs=inputs, offsets=offsets, **labels)


def _concat_column(columns: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(c, dtype=np.int64) for c in columns]) if columns else np.zeros(0, np.int64)


@contextlib.contextmanager
def without_call_state(tokenizer) -> Iterator[None]:
    """A fast tokenizer (or its backend) without the truncation and padding settings its last call left, restored
    afterwards: what is saved or fingerprinted inside is the same whether or not it has tokenised anything yet
    (a run that read its windows from the cache saves the same tokenizer.json as one that tokenised them)."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    truncation, padding = backend.truncation, backend.padding
    backend.no_truncation()
    backend.no_padding()
    try:
        yield
    finally:
        if truncation is not None:
            backend.enable_truncation(**truncation)
        if padding is not None:
            backend.enable_padding(**padding)
