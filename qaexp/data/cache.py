"""Tokenised windows cached on disk, so a second run or a sweep over learning rates does not tokenise again.

An entry is keyed by the SHA-256 of: the cache format, the tokenizer's full serialised content (vocabulary,
normaliser, pre-tokeniser, post-processor, special tokens, padding side), the content of the records (after
sample limits and answer repairs), max_length, doc_stride and the sample limit. Entries are directories stored by
data/cache_store.py: written once under a lock, verified against a manifest on every read, and rebuilt with one
warning when damaged, so concurrent runs share one entry and never read a partial or corrupt one.
A cached Windows' token rows are int32 NumPy arrays (views of one array: building millions of Python ints
would cost more than a third of tokenising again); they index, slice and pad like the token lists they replace.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Callable, Optional

import numpy as np

from qaexp.data import cache_store, windows
from qaexp.data.windows import Windows

log = logging.getLogger(__name__)

FORMAT = "qaexp-windows-v1"  # change when windows.tokenize_windows' output changes for the same input
TOKENIZER_FORMAT = "qaexp-tokenizer-2"  # 2: vocabularies learned by model/wordpiece.py (deterministic)
WINDOWS_FILE = "windows.npz"  # inside an entry's directory
LABEL_ARRAYS = ("start_positions", "end_positions", "example_index", "cls_index")


def windows_for(records: list[dict], tokenizer, max_length: int, doc_stride: int, cache_dir: Optional[str], *,
                sample_limit: Optional[int] = None, desc: str = "tokenising") -> Windows:
    """windows.tokenize_windows' result, read from `cache_dir` when present there (no cache if it is None)."""
    def tokenize() -> Windows:
        return windows.tokenize_windows(records, tokenizer, max_length, doc_stride, desc=desc)

    key = cache_key(records, tokenizer, max_length, doc_stride, sample_limit) if cache_dir else None
    if key is None:
        return tokenize()
    path = os.path.join(os.path.expanduser(cache_dir), key)

    def read(directory: str) -> Windows:
        cached = load(directory)
        log.info("%s: %d windows from the feature cache %s", desc, len(cached), directory)
        return cached

    return cache_store.cached(path, "feature cache", tokenize, save, read)


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
    from qaexp.model.build import without_call_state

    with without_call_state(backend):
        return backend.to_str()


def records_fingerprint(records: list[dict]) -> str:
    digest = hashlib.sha256()
    for record in records:
        answers = record["answers"]
        fields = (record["question"], record["context"], repr(answers["text"]), repr(answers["answer_start"]))
        # Length-prefixed, so that no two different records can produce the same bytes.
        digest.update("".join(f"{len(text)}:{text}" for text in fields).encode())
    return digest.hexdigest()


def save(windows: Windows, directory: str) -> None:
    lengths = windows.lengths
    arrays = {f"input:{name}": np.concatenate([np.asarray(row, dtype=np.int32) for row in rows])
              for name, rows in windows.inputs.items()}
    arrays.update({name: getattr(windows, name) for name in LABEL_ARRAYS})
    arrays["lengths"] = lengths
    arrays["offsets"] = np.concatenate(windows.offsets).astype(np.int32) if len(windows) else np.zeros((0, 2), np.int32)
    np.savez(os.path.join(directory, WINDOWS_FILE), **arrays)


def load(directory: str) -> Windows:
    """The windows of a verified cache entry (cache_store rebuilds the entry if this raises)."""
    with np.load(os.path.join(directory, WINDOWS_FILE), allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    ends = np.cumsum(arrays["lengths"]).tolist()
    bounds = list(zip([0] + ends[:-1], ends))
    inputs = {name[len("input:"):]: [values[lo:hi] for lo, hi in bounds] for name, values in arrays.items()
              if name.startswith("input:")}
    return Windows(inputs=inputs, offsets=[arrays["offsets"][lo:hi] for lo, hi in bounds],
                   **{name: arrays[name] for name in LABEL_ARRAYS})
