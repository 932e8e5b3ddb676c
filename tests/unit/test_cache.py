"""The on-disk window cache: a hit returns equal windows without tokenising; any key ingredient changes the key."""
import os

import numpy as np
import pytest

from helpers import tiny_qa
from qaexp.data import cache, windows


@pytest.fixture(scope="module")
def examples_and_tokenizer():
    examples = tiny_qa.records(30)
    return examples, tiny_qa.tokenizer_for(examples)


def assert_equal_windows(a, b):
    assert len(a) == len(b)
    assert a.inputs.keys() == b.inputs.keys()
    for name in a.inputs:
        assert all(np.array_equal(x, y) for x, y in zip(a.inputs[name], b.inputs[name]))
    for name in windows.LABEL_COLUMNS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert all(np.array_equal(x, y) for x, y in zip(a.offsets, b.offsets))


def test_second_call_reads_the_cache_without_tokenising(examples_and_tokenizer, tmp_path, monkeypatch):
    examples, tokenizer = examples_and_tokenizer
    first = cache.windows_for(examples, tokenizer, 96, 32, str(tmp_path), sample_limit=30)
    entries = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(entries) == 1 and (entries[0] / "input_input_ids.npy").is_file()

    def fail(*args, **kwargs):
        raise AssertionError("tokenised again despite a cached entry")

    monkeypatch.setattr(windows, "tokenize_windows", fail)
    monkeypatch.setattr(windows, "window_chunks", fail)
    second = cache.windows_for(examples, tokenizer, 96, 32, str(tmp_path), sample_limit=30)
    assert_equal_windows(first, second)


def test_cached_windows_equal_freshly_tokenised_ones(examples_and_tokenizer, tmp_path):
    examples, tokenizer = examples_and_tokenizer
    cache.windows_for(examples, tokenizer, 96, 32, str(tmp_path))
    cached = cache.windows_for(examples, tokenizer, 96, 32, str(tmp_path))
    assert_equal_windows(cached, tiny_qa.windows_for(examples, tokenizer, 96, 32))


def test_key_changes_with_each_ingredient(examples_and_tokenizer):
    examples, tokenizer = examples_and_tokenizer
    base = cache.cache_key(examples, tokenizer, 96, 32, 30)
    edited = [dict(examples[0], question=examples[0]["question"] + "?")] + examples[1:]
    other_tokenizer = tiny_qa.tokenizer_for(tiny_qa.records(30, seed=5))
    variants = [cache.cache_key(examples, tokenizer, 128, 32, 30), cache.cache_key(examples, tokenizer, 96, 16, 30),
                cache.cache_key(examples, tokenizer, 96, 32, None),
                cache.cache_key(examples[:-1], tokenizer, 96, 32, 30), cache.cache_key(edited, tokenizer, 96, 32, 30),
                cache.cache_key(examples, other_tokenizer, 96, 32, 30)]
    assert len({base, *variants}) == 1 + len(variants)


def test_key_ignores_the_tokenizers_call_state(examples_and_tokenizer):
    examples, tokenizer = examples_and_tokenizer
    before = cache.tokenizer_fingerprint(tokenizer)
    tokenizer(["a question"], ["a context"], truncation="only_second", max_length=17, stride=3,
              return_overflowing_tokens=True, padding="max_length")
    assert cache.tokenizer_fingerprint(tokenizer) == before
    assert tokenizer.backend_tokenizer.truncation["max_length"] == 17  # the state is restored, not cleared


def test_an_unreadable_entry_is_rebuilt(examples_and_tokenizer, tmp_path):
    examples, tokenizer = examples_and_tokenizer
    key = cache.cache_key(examples, tokenizer, 96, 32)
    (tmp_path / key).write_bytes(b"not a cache entry")  # a file where the entry directory belongs
    windows = cache.windows_for(examples, tokenizer, 96, 32, str(tmp_path))
    assert_equal_windows(windows, cache.load(str(tmp_path / key)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [key, f"{key}.lock"]  # no temporary file left behind


def test_a_damaged_column_is_rebuilt_with_one_warning(examples_and_tokenizer, tmp_path, caplog):
    examples, tokenizer = examples_and_tokenizer
    key = cache.cache_key(examples, tokenizer, 96, 32)
    cache.windows_for(examples, tokenizer, 96, 32, str(tmp_path))
    (tmp_path / key / "offsets.npy").write_bytes(b"not an npy file")
    with caplog.at_level("WARNING", logger="qaexp.data.cache_store"):
        windows = cache.windows_for(examples, tokenizer, 96, 32, str(tmp_path))
    assert len(caplog.records) == 1 and "offsets.npy" in caplog.records[0].getMessage()
    assert_equal_windows(windows, tiny_qa.windows_for(examples, tokenizer, 96, 32))


def test_cached_windows_are_memory_mapped_columns_without_pickles(examples_and_tokenizer, tmp_path):
    examples, tokenizer = examples_and_tokenizer
    cached = cache.windows_for(examples, tokenizer, 96, 32, str(tmp_path))
    (entry,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for path in entry.glob("*.npy"):
        assert np.load(path, mmap_mode="r", allow_pickle=False).dtype.kind == "i", path
    ids = cached.inputs["input_ids"]
    assert ids.values.base is not None and not ids.values.flags.writeable  # a read-only map, not a copy
    assert len(ids.values) == int(cached.lengths.sum()) and ids.bounds[-1] == len(ids.values)
    cached.release_pages()  # gives back resident pages; the data reads the same afterwards
    assert_equal_windows(cached, tiny_qa.windows_for(examples, tokenizer, 96, 32))


def test_no_cache_dir_means_no_cache(examples_and_tokenizer, tmp_path, monkeypatch):
    examples, tokenizer = examples_and_tokenizer
    monkeypatch.chdir(tmp_path)
    cache.windows_for(examples, tokenizer, 96, 32, None)
    assert os.listdir(tmp_path) == []
