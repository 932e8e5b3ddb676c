"""Tokenised windows cached on disk, so a second run or a sweep over learning rates does not tokenise again.

An entry is keyed by the SHA-256 of: the cache format, the tokenizer's full serialised content (vocabulary,
normaliser, pre-tokeniser, post-processor, special tokens, padding side), the content of the records (after
sample limits and answer repairs), max_length, doc_stride and the sample limit. Entries are uncompressed .npz
files written atomically (a temporary file renamed into place), so concurrent runs never read a partial entry.
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

from qaexp.data import windows
from qaexp.data.windows import Windows
from qaexp.output.files import atomic_file, save_directory_atomic

log = logging.getLogger(__name__)

FORMAT = "qaexp-windows-v1"  # change when windows.tokenize_windows' output changes for the same input
TOKENIZER_FORMAT = "qaexp-tokenizer-2"  # 2: vocabularies learned by model/wordpiece.py (deterministic)
LABEL_ARRAYS = ("start_positions", "end_positions", "example_index", "cls_index")


def windows_for(records: list[dict], tokenizer, max_length: int, doc_stride: int, cache_dir: Optional[str], *,
                sample_limit: Optional[int] = None, desc: str = "tokenising") -> Windows:
    """windows.tokenize_windows' result, read from `cache_dir` when present there (no cache if it is None)."""
    def tokenize() -> Windows:
        return windows.tokenize_windows(records, tokenizer, max_length, doc_stride, desc=desc)

    key = cache_key(records, tokenizer, max_length, doc_stride, sample_limit) if cache_dir else None
    if key is None:
        return tokenize()
    path = os.path.join(os.path.expanduser(cache_dir), f"{key}.npz")
    cached = load(path)
    if cached is not None:
        log.info("%s: %d windows from the feature cache %s", desc, len(cached), path)
        return cached
    built = tokenize()
    try:
        save(path, built)
    except OSError as err:  # a read-only or full disk costs only the cache
        log.warning("could not write the feature cache %s: %s", path, err)
    return built


def trained_tokenizer_for(records: list[dict], vocab_size: int, lowercase: bool, cache_dir: Optional[str],
                          train: Callable[[], object]):
    """A tokenizer trained on `records` by `train()`, or the one trained earlier on the same records and settings."""
    if cache_dir is None:
        return train()
    from transformers import AutoTokenizer

    from qaexp.errors import QAExpError

    key = hashlib.sha256("\n".join([TOKENIZER_FORMAT, records_fingerprint(records), str(vocab_size),
                                    str(lowercase)]).encode()).hexdigest()
    path = os.path.join(os.path.expanduser(cache_dir), "tokenizers", key)
    if os.path.isfile(os.path.join(path, "tokenizer.json")):
        log.info("tokenizer from the cache %s", path)
        return AutoTokenizer.from_pretrained(path)
    tokenizer = train()
    try:
        save_directory_atomic(path, tokenizer.save_pretrained)
    except (OSError, QAExpError) as err:
        log.warning("could not write the tokenizer cache %s: %s", path, err)
    return tokenizer


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
    truncation, padding = backend.truncation, backend.padding
    backend.no_truncation()
    backend.no_padding()
    try:
        return backend.to_str()
    finally:
        if truncation is not None:
            backend.enable_truncation(**truncation)
        if padding is not None:
            backend.enable_padding(**padding)


def records_fingerprint(records: list[dict]) -> str:
    digest = hashlib.sha256()
    for record in records:
        answers = record["answers"]
        fields = (record["question"], record["context"], repr(answers["text"]), repr(answers["answer_start"]))
        # Length-prefixed, so that no two different records can produce the same bytes.
        digest.update("".join(f"{len(text)}:{text}" for text in fields).encode())
    return digest.hexdigest()


def save(path: str, windows: Windows) -> None:
    lengths = windows.lengths
    arrays = {f"input:{name}": np.concatenate([np.asarray(row, dtype=np.int32) for row in rows])
              for name, rows in windows.inputs.items()}
    arrays.update({name: getattr(windows, name) for name in LABEL_ARRAYS})
    arrays["lengths"] = lengths
    arrays["offsets"] = np.concatenate(windows.offsets).astype(np.int32) if len(windows) else np.zeros((0, 2), np.int32)
    with atomic_file(path, "wb") as f:
        np.savez(f, **arrays)


def load(path: str) -> Optional[Windows]:
    """The cached windows, or None when the entry is absent or unreadable (then it is rebuilt)."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError) as err:
        log.warning("ignoring the unreadable feature cache entry %s: %s", path, err)
        return None
    ends = np.cumsum(arrays["lengths"]).tolist()
    bounds = list(zip([0] + ends[:-1], ends))
    inputs = {name[len("input:"):]: [values[lo:hi] for lo, hi in bounds] for name, values in arrays.items()
              if name.startswith("input:")}
    return Windows(inputs=inputs, offsets=[arrays["offsets"][lo:hi] for lo, hi in bounds],
                   **{name: arrays[name] for name in LABEL_ARRAYS})
