"""The window rule (which doc_stride a max_length allows) and the default window and answer settings.

A window holds the special tokens, the question and a slice of the context; consecutive windows of one context
share doc_stride context tokens, so the context must get more than doc_stride tokens of every window, or the
fast tokenizer cannot make overlapping windows (it panics). Questions longer than `question_room` tokens are
cut to it while tokenising; the rule keeps that room at MIN_QUESTION_TOKENS or more.

`check_window` is the one check, with one message, wherever a window setting comes in: `config.validation.validate`
(training, before TensorFlow loads), `model/saved.answer_settings` (predict, serve and export: flags, the
model's qaexp.json or its run config, before the model loads) and `data/windows.py` (while tokenising). Before
a tokenizer is known it counts SPECIAL_TOKENS_ALLOWANCE special tokens, the most any supported tokenizer adds to
a pair; windows.py checks again with the tokenizer's own count, which is never stricter for those tokenizers.

This module imports nothing heavy: config.py and the tools' argument parsing import it.
"""
from __future__ import annotations

from qaexp.errors import ConfigError

# The defaults of data.max_length, data.doc_stride, data.max_answer_length and data.n_best_size (config.DataConfig),
# and of the tools when a model brings no settings of its own (model/saved.DEFAULTS). The answer settings
# sit beside the window ones because every reader of a saved model takes the four together.
MAX_LENGTH = 384
DOC_STRIDE = 128
MAX_ANSWER_LENGTH = 30
N_BEST_SIZE = 20

SPECIAL_TOKENS_ALLOWANCE = 4  # RoBERTa's pairs: <s> q </s></s> c </s>
MIN_QUESTION_TOKENS = 8


_FLAGS = "(predict, serve, export: --doc-stride, --max-length)"


def question_room(max_length: int, doc_stride: int, special_tokens: int) -> int:
    """The most question tokens a window holds so that its context still gets more than doc_stride tokens."""
    return max_length - special_tokens - doc_stride - 1


def check_window(max_length: int, doc_stride: int, special_tokens: int = SPECIAL_TOKENS_ALLOWANCE) -> None:
    """ConfigError (one line, the same from training and every tool) unless doc_stride fits max_length.

    The keys are named as in the run config (the tools' settings are the run's), with the tools' flags."""
    if not 0 < doc_stride < max_length:
        raise ConfigError(f"data.doc_stride={doc_stride} must be > 0 and < data.max_length={max_length} {_FLAGS}")
    if question_room(max_length, doc_stride, special_tokens) < MIN_QUESTION_TOKENS:
        bound = max_length - special_tokens - MIN_QUESTION_TOKENS
        raise ConfigError(
            f"data.doc_stride={doc_stride} leaves no room for the question in data.max_length={max_length}: "
            f"it must be < {bound} (max_length - {special_tokens} special tokens - {MIN_QUESTION_TOKENS} "
            f"question tokens): lower doc_stride or raise max_length {_FLAGS}")
