"""A WordPiece vocabulary learned from text by byte-pair merges with a fixed tie-break.

`tokenizers`' WordPieceTrainer breaks ties between equally frequent pairs in hash order, which differs between
processes, so two runs on the same text could learn different vocabularies (and train different models). Here
the most frequent pair wins and ties go to the alphabetically first pair: the vocabulary is a pure function of
the text and the settings.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from typing import Iterable

CONTINUATION = "##"


def learn_vocabulary(words: Counter, vocab_size: int, special: list[str], min_frequency: int = 2) -> list[str]:
    """Special tokens, the alphabet (word-initial and ## forms), then merged pieces in the order learned."""
    pieces = {word: _characters(word) for word in words}
    alphabet = sorted({symbol for symbols in pieces.values() for symbol in symbols})
    vocab = special + [s for s in alphabet if s not in special]
    known = set(vocab)
    pairs = _PairCounts(words, pieces)
    while len(vocab) < vocab_size:
        best = pairs.most_frequent()
        if best is None or pairs.count[best] < min_frequency:
            break
        merged = best[0] + best[1][len(CONTINUATION):]
        pairs.merge(best, merged)
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
    return vocab


def count_words(texts: Iterable[str], normalize, pre_tokenize) -> Counter:
    """Word frequencies after the tokenizer's own normaliser and pre-tokeniser (`*_str` functions)."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenize(normalize(text)))
    return counts


def _characters(word: str) -> list[str]:
    return [word[0]] + [CONTINUATION + c for c in word[1:]]


class _PairCounts:
    """Frequencies of adjacent symbol pairs over all words, updated in place as pairs merge."""

    def __init__(self, words: Counter, pieces: dict[str, list[str]]):
        self.words, self.pieces = words, pieces
        self.count: Counter = Counter()
        self.where: dict[tuple[str, str], set[str]] = defaultdict(set)  # may also list words that lost the pair
        for word, symbols in pieces.items():
            for pair, times in _pairs(symbols).items():
                self.count[pair] += words[word] * times
                self.where[pair].add(word)
        self.heap = [(-count, pair) for pair, count in self.count.items()]  # stale entries skipped when popped
        heapq.heapify(self.heap)

    def most_frequent(self) -> tuple[str, str] | None:
        # Highest count first, then the alphabetically first pair: never hash order.
        while self.heap:
            negative_count, pair = self.heap[0]
            if self.count.get(pair) == -negative_count:
                return pair
            heapq.heappop(self.heap)
        return None

    def merge(self, pair: tuple[str, str], merged: str) -> None:
        change: Counter = Counter()
        for word in sorted(self.where.pop(pair, ())):
            before = self.pieces[word]
            after = _merge_symbols(before, pair, merged)
            change.subtract({p: self.words[word] * t for p, t in _pairs(before).items()})
            change.update({p: self.words[word] * t for p, t in _pairs(after).items()})
            for new_pair in _pairs(after):
                self.where[new_pair].add(word)
            self.pieces[word] = after
        for changed, amount in change.items():
            if amount:
                self._update(changed, amount)

    def _update(self, pair: tuple[str, str], amount: int) -> None:
        self.count[pair] += amount
        if self.count[pair] > 0:
            heapq.heappush(self.heap, (-self.count[pair], pair))
        else:
            del self.count[pair]
            self.where.pop(pair, None)


def _pairs(symbols: list[str]) -> Counter:
    return Counter(zip(symbols, symbols[1:]))


def _merge_symbols(symbols: list[str], pair: tuple[str, str], merged: str) -> list[str]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out
