"""The on-disk feature cache: a hit returns equal windows without tokenising; any key ingredient changes the key."""
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
    for name in cache.LABEL_ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert all(np.array_equal(x, y) for x, y in zip(a.offsets, b.offsets))


def test_second_call_reads_the_cache_without_tokenising(examples_and_tokenizer, tmp_path, monkeypatch):
    examples, tokenizer = examples_and_tokenizer
    first = cache.windows_for(examples, tokenizer, 96, 32, str(tmp_path), sample_limit=30)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1

    def fail(*args, **kwargs):
        raise AssertionError("tokenised again despite a cached entry")

    monkeypatch.setattr(windows, "tokenize_windows", fail)
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
    (tmp_path / key).write_bytes(b"not a cache entry")
    windows = cache.windows_for(examples, tokenizer, 96, 32, str(tmp_path))
    assert_equal_windows(windows, cache.load(str(tmp_path / key)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [key, f"{key}.lock"]  # no temporary file left behind


def test_no_cache_dir_means_no_cache(examples_and_tokenizer, tmp_path, monkeypatch):
    examples, tokenizer = examples_and_tokenizer
    monkeypatch.chdir(tmp_path)
    cache.windows_for(examples, tokenizer, 96, 32, None)
    assert os.listdir(tmp_path) == []
