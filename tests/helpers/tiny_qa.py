"""Small offline question-answering pieces for training tests: synthetic records, a WordPiece tokenizer trained on
them, their windows and a tiny randomly initialised BERT (no dropout, so runs are deterministic)."""
from __future__ import annotations

import qaexp  # noqa: F401  (sets KERAS_BACKEND before Keras is imported)


def records(n: int = 40, seed: int = 0) -> list[dict]:
    from qaexp.data.synthetic import generate_examples

    return generate_examples(n, seed=seed)


def tokenizer_for(examples: list[dict]):
    from qaexp.model.build import train_wordpiece_tokenizer

    return train_wordpiece_tokenizer((ex[k] for ex in examples for k in ("question", "context")), 300, False)


def windows_for(examples: list[dict], tokenizer, max_length: int = 96, doc_stride: int = 32):
    from qaexp.data.windows import tokenize_windows

    return tokenize_windows(examples, tokenizer, max_length, doc_stride, progress=False)


def tiny_model(tokenizer, seed: int = 1):
    import keras
    from transformers import BertConfig

    from qaexp.model.families import build_qa_model

    keras.utils.set_random_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=48, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, pad_token_id=tokenizer.pad_token_id)
    return build_qa_model(config.to_dict())
