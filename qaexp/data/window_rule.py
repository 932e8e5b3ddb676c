"""The window rule (which doc_stride a max_length allows, and which max_length a model's positions allow) and the
default window and answer settings.

A window holds the special tokens, the question and a slice of the context; consecutive windows of one context
share doc_stride context tokens, so the context must get more than doc_stride tokens of every window, or the
fast tokenizer cannot make overlapping windows (it panics). Questions longer than `question_room` tokens are
cut to it while tokenising; the rule keeps that room at MIN_QUESTION_TOKENS or more.

`check_window` is the one check, with one message, wherever a window setting comes in: `config.validation.validate`
(training, before TensorFlow loads), `model/saved.answer_settings` (predict, serve and export: flags, the
model's qaexp.json or its run config, before the model loads) and `data/windows.py` (while tokenising). Before
a tokenizer is known it counts SPECIAL_TOKENS_ALLOWANCE special tokens, the most any supported tokenizer adds to
a pair; windows.py checks again with the tokenizer's own count, which is never stricter for those tokenizers.

`check_max_length` is the other half: a window may not be longer than the model has positions for. Training applies
it to model.architecture before TensorFlow loads and to a checkpoint's tokenizer and config once they are read
(run/experiment.py); the tools apply it to the saved model's config.json before the model loads
(`model/saved.answer_settings`).

This module imports nothing heavy: config.py and the tools' argument parsing import it.
"""
from __future__ import annotations

from typing import Optional

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
# These models number positions from padding_idx + 1 = 2, so two position embeddings are never used.
POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "longformer": 2}


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


def position_limit(model_type: Optional[str], max_position_embeddings) -> Optional[int]:
    """The longest window the model has positions for, or None when its config names no (integer) count."""
    if isinstance(max_position_embeddings, bool) or not isinstance(max_position_embeddings, int):
        return None
    return max_position_embeddings - POSITION_OFFSET.get(model_type or "", 0)


def check_max_length(max_length: int, limit: Optional[int], limit_name: str) -> None:
    """data.max_length must fit the model's position embeddings (from the config, a checkpoint's or a saved
    model's config.json, or a tokenizer's model_max_length); `limit_name` says where the limit came from."""
    if limit is not None and max_length > limit:
        raise ConfigError(f"data.max_length={max_length} exceeds the model's position limit: it must be in "
                          f"[1, {limit}] ({limit_name}={limit}; predict, serve, export: --max-length)")
