"""Tokenised windows cached on disk, so a second run or a sweep over learning rates does not tokenise again.

An entry is keyed by the SHA-256 of: the cache format, the tokenizer's full serialised content (vocabulary,
normaliser, pre-tokeniser, post-processor, special tokens, padding side), the content of the records (after
sample limits and answer repairs), max_length, doc_stride and the sample limit.

An entry is a directory of columnar .npy files (never pickles): each token column (input ids, attention mask,
token types, offsets) flat, one row-bounds array, and the per-window label arrays. It is written chunk by chunk
while tokenising and stored by data/cache_store.py: written once under a lock, its manifest (each file's size
and SHA-256) written last, verified on every read and rebuilt with one warning when damaged, so concurrent runs
share one entry and never read a partial or corrupt one. It is read back memory-mapped: however many windows a data set has, neither tokenising nor training holds them all
in memory.
"""
from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import shutil
from typing import Callable, Iterable, Optional

import numpy as np

from qaexp.data import cache_store, windows
from qaexp.data.windows import Rows, Windows

log = logging.getLogger(__name__)

FORMAT = "qaexp-windows-v2"  # v2: a directory of memory-mapped columns  # change when windows.tokenize_windows' output changes for the same input
TOKENIZER_FORMAT = "qaexp-tokenizer-2"  # 2: vocabularies learned by model/wordpiece.py (deterministic)


def windows_for(records: list[dict], tokenizer, max_length: int, doc_stride: int, cache_dir: Optional[str], *,
                sample_limit: Optional[int] = None, split: str = "windows") -> Windows:
    """windows.tokenize_windows' result, read from `cache_dir` when present there (no cache if it is None).

    `split` names the records in the progress bar and the log ("train")."""
    desc = f"tokenising {split}"
    key = cache_key(records, tokenizer, max_length, doc_stride, sample_limit) if cache_dir else None
    if key is None:
        return windows.tokenize_windows(records, tokenizer, max_length, doc_stride, desc=desc)
    path = os.path.join(os.path.expanduser(cache_dir), key)
    built = []

    def write(directory: str) -> None:
        built.append(directory)
        chunks = windows.window_chunks(records, tokenizer, max_length, doc_stride, desc=desc)
        write_columns(directory, chunks, tokenizer.model_input_names)

    def read(directory: str) -> Windows:
        cached = load(directory)
        if built:  # read back right after this run tokenised them: not a cache hit
            log.info("%s: %d windows, built and written to the window cache %s", desc, len(cached), directory)
        else:
            log.info("%s: %d windows read from the window cache %s (no tokenising)", split, len(cached), directory)
        return cached

    def in_memory() -> Windows:  # the cache could not be written: it costs only the cache
        return windows.tokenize_windows(records, tokenizer, max_length, doc_stride, desc=desc)

    return cache_store.written_in_place(path, "window cache", write, read, in_memory)


def trained_tokenizer_for(records: list[dict], vocab_size: int, lowercase: bool, cache_dir: Optional[str],
                          train: Callable[[], object]):
    """A tokenizer trained on `records` by `train()`, or the one trained earlier on the same records and settings."""
    if cache_dir is None:
        return train()
    from transformers import AutoTokenizer

    key = hashlib.sha256("\n".join([TOKENIZER_FORMAT, records_fingerprint(records), str(vocab_size),
                                    str(lowercase)]).encode()).hexdigest()
    path = os.path.join(os.path.expanduser(cache_dir), "tokenizers", key)

    def read(directory: str):
        log.info("tokenizer from the cache %s", directory)
        return AutoTokenizer.from_pretrained(directory)

    return cache_store.cached(path, "tokenizer cache", train, lambda tokenizer, d: tokenizer.save_pretrained(d), read)


def cache_key(records: list[dict], tokenizer, max_length: int, doc_stride: int,
              sample_limit: Optional[int] = None) -> Optional[str]:
    """The entry's name, or None for a tokenizer without a serialisable (fast) backend."""
    tokenizer_hash = tokenizer_fingerprint(tokenizer)
    if tokenizer_hash is None:
        return None
    parts = [FORMAT, tokenizer_hash, records_fingerprint(records), str(max_length), str(doc_stride), str(sample_limit)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def tokenizer_fingerprint(tokenizer) -> Optional[str]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    described = {"class": type(tokenizer).__name__, "padding_side": tokenizer.padding_side,
                 "special": tokenizer.special_tokens_map, "inputs": list(tokenizer.model_input_names)}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
    digest.update(_serialised_without_call_state(backend).encode())
    return digest.hexdigest()


def _serialised_without_call_state(backend) -> str:
    """The backend's JSON without its truncation/padding settings, which each call changes (restored after)."""
    with windows.without_call_state(backend):
        return backend.to_str()


def records_fingerprint(records: list[dict]) -> str:
    digest = hashlib.sha256()
    for record in records:
        answers = record["answers"]
        fields = (record["question"], record["context"], repr(answers["text"]), repr(answers["answer_start"]))
        # Length-prefixed, so that no two different records can produce the same bytes.
        digest.update("".join(f"{len(text)}:{text}" for text in fields).encode())
    return digest.hexdigest()


def write_columns(directory: str, chunks: Iterable[Windows], input_names) -> None:
    """An entry's files in `directory` from the windows of consecutive chunks (the one writer: a run's and the
    memory benchmark's). Append each chunk's columns to raw files, then turn them into .npy files (their shape
    known only at the end)."""
    columns: dict[str, _Column] = {}
    total = 0
    for chunk in chunks:
        parts = {f"input_{name}": rows.values for name, rows in chunk.inputs.items() if name in input_names}
        parts.update({"offsets": chunk.offsets.values, "bounds": chunk.offsets.bounds[1:] + total})
        parts.update({name: getattr(chunk, name) for name in windows.LABEL_COLUMNS})
        for name, values in parts.items():
            if name not in columns:
                columns[name] = _Column(os.path.join(directory, name), _column_dtype(name))
            columns[name].append(values)
        total += int(chunk.offsets.bounds[-1])
    for name in ("bounds", "offsets", *windows.LABEL_COLUMNS):  # present even when there are no windows
        if name not in columns:
            columns[name] = _Column(os.path.join(directory, name), _column_dtype(name))
    for column in columns.values():
        column.finish()


class _Column:
    """One array written in pieces along its first axis: raw bytes first, the .npy header once the length is known."""

    def __init__(self, path: str, dtype):
        self.path, self.rows, self.dtype, self.tail = path, 0, np.dtype(dtype), (2,) if path.endswith("offsets") else ()
        self.raw = open(f"{path}.raw", "wb")

    def append(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        self.raw.write(values.tobytes())
        self.rows += len(values)

    def finish(self) -> None:
        self.raw.close()
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.rows, *self.tail)}
        with open(f"{self.path}.npy", "wb") as out, open(f"{self.path}.raw", "rb") as raw:
            np.lib.format.write_array_header_2_0(out, header)
            shutil.copyfileobj(raw, out, 1 << 22)
        os.remove(f"{self.path}.raw")


def _column_dtype(name: str):
    return np.int64 if name in windows.LABEL_COLUMNS or name == "bounds" else np.int32


def load(path: str) -> Windows:
    """The windows of the entry at `path`, memory-mapped (cache_store verifies it first, and rebuilds it if this
    raises)."""
    arrays = {name[:-len(".npy")]: _mapped(os.path.join(path, name)) for name in os.listdir(path)
              if name.endswith(".npy")}
    bounds = np.concatenate([[0], arrays["bounds"]]).astype(np.int64)
    inputs = {name[len("input_"):]: Rows(values, bounds) for name, values in arrays.items()
              if name.startswith("input_")}
    return Windows(inputs=inputs, offsets=Rows(arrays["offsets"], bounds),
                   **{name: np.array(arrays[name]) for name in windows.LABEL_COLUMNS})


def _mapped(path: str) -> np.ndarray:
    """The .npy file's array on a read-only memory map (allow_pickle=False: object arrays are refused)."""
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    mapped = getattr(array, "_mmap", None)
    if mapped is not None and hasattr(mmap, "MADV_RANDOM"):  # batches read scattered rows: no read-ahead
        mapped.madvise(mmap.MADV_RANDOM)
    return np.asarray(array)
