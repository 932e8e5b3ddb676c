"""The from-scratch WordPiece vocabulary is a pure function of its training text and settings."""
import hashlib
from collections import Counter

from helpers.cli import run_cli
from qaexp.model.wordpiece import learn_vocabulary

SPECIAL = ["[PAD]", "[UNK]"]


def test_the_most_frequent_pair_is_merged_first():
    # abc -> a ##b ##c (pairs a+##b and ##b+##c, 5 each); xy -> x ##y (3). Alphabet: 5 pieces.
    vocab = learn_vocabulary(Counter({"abc": 5, "xy": 3}), vocab_size=10, special=SPECIAL)
    assert vocab[:2] == SPECIAL and sorted(vocab[2:7]) == ["##b", "##c", "##y", "a", "x"]
    # The two pairs of count 5 first ("##b"+"##c" sorts before "a"+"##b"), then "a"+"##bc", then x+##y (3).
    assert vocab[7:] == ["##bc", "abc", "xy"]


def test_ties_go_to_the_alphabetically_first_pair_whatever_the_input_order():
    words = {"xy": 4, "ab": 4, "mn": 4}
    forward = learn_vocabulary(Counter(words), vocab_size=100, special=SPECIAL)
    backward = learn_vocabulary(Counter(dict(reversed(list(words.items())))), vocab_size=100, special=SPECIAL)
    assert forward == backward
    assert forward[-3:] == ["ab", "mn", "xy"]


def test_pairs_below_the_minimum_frequency_are_not_merged():
    vocab = learn_vocabulary(Counter({"ab": 1}), vocab_size=100, special=SPECIAL)
    assert "ab" not in vocab and set(vocab) == {*SPECIAL, "a", "##b"}


def test_repeated_pairs_inside_one_word_are_counted_each_time():
    # aaaa -> a ##a ##a ##a: ##a+##a occurs twice (count 2), ties with a+##b of "ab" x 2 and sorts first.
    vocab = learn_vocabulary(Counter({"aaaa": 1, "ab": 2}), vocab_size=len(SPECIAL) + 4, special=SPECIAL)
    assert vocab[-1] == "##aa"
    vocab = learn_vocabulary(Counter({"aaaa": 1, "ab": 3}), vocab_size=len(SPECIAL) + 4, special=SPECIAL)
    assert vocab[-1] == "ab"


TRAIN_IN_A_FRESH_PROCESS = """
import hashlib, sys
from qaexp.model.build import train_wordpiece_tokenizer
from qaexp.data.synthetic import generate_examples
records = generate_examples(300, seed=0)
texts = [t for r in records for t in (r["question"], r["context"])]
tokenizer = train_wordpiece_tokenizer(texts, 1000, lowercase=False)
print(hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest())
"""


def test_two_processes_learn_byte_identical_tokenizers():
    # tokenizers' own trainer broke ties in per-process hash order: 300 synthetic questions gave three different
    # vocabularies in three processes.
    digests = {run_cli(["-c", TRAIN_IN_A_FRESH_PROCESS], check=True).stdout.strip() for _ in range(3)}
    assert len(digests) == 1 and len(next(iter(digests))) == len(hashlib.sha256().hexdigest())
