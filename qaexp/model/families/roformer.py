"""RoFormer (qaexp's tiny from-scratch model): BERT without absolute position embeddings, with rotary position
embeddings applied to each head's queries and keys (and values with `rotary_value`).

PyTorch names: `roformer.embeddings.{word,token_type}_embeddings`, `roformer.embeddings.LayerNorm`,
`roformer.embeddings_project` (only when embedding_size != hidden_size), `roformer.encoder.embed_positions.weight`
(the frozen sinusoid table, kept as a non-trainable variable so it round-trips), BERT-named encoder layers.
"""
from __future__ import annotations

import numpy as np
from keras import layers, ops

from qaexp.model.families.common import (Composite, Embedding, TransformerLayer, dense, key_mask, layer_norm,
                                         named_weights)

MODEL_TYPES = ("roformer",)
PREFIX = "roformer"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ARCHITECTURE = "RoFormerForQuestionAnswering"


def sinusoid_table(positions: int, dim: int) -> np.ndarray:
    """transformers' RoFormer table: sin(pos / 10000^(2i/dim)) in the first half of each row, cos in the second
    (computed in float64, stored float32, as transformers does)."""
    angle = np.array([[pos / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)] for pos in range(positions)])
    half = dim // 2 if dim % 2 == 0 else dim // 2 + 1
    out = np.empty((positions, dim), dtype=np.float32)
    out[:, :half] = np.sin(angle[:, 0::2])
    out[:, half:] = np.cos(angle[:, 1::2])
    return out


def apply_rotary(x, positions):
    """x * cos + rotate_half(x) * sin, with transformers' interleaved layout: the pair (x[2i], x[2i+1]) rotates
    by angle i, so sin/cos are repeated element-wise ([s0, s0, s1, s1, ...]) and
    rotate_half(x) = [-x1, x0, -x3, x2, ...]."""
    sin, cos = positions
    shape = ops.shape(x)
    pairs = ops.reshape(x, (shape[0], shape[1], shape[2], -1, 2))
    rotated = ops.reshape(ops.stack([-pairs[..., 1], pairs[..., 0]], axis=-1), shape)
    return x * cos + rotated * sin


class RoFormerBackbone(Composite):
    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        hidden = config["hidden_size"]
        emb = config.get("embedding_size") or hidden
        eps = config.get("layer_norm_eps", 1e-12)
        heads = config["num_attention_heads"]
        self.head_dim = hidden // heads
        self.max_positions = config.get("max_position_embeddings", 1536)
        self.word_embeddings = Embedding(config["vocab_size"], emb, padding_idx=config.get("pad_token_id", 0),
                                         name="word_embeddings")
        self.token_type_embeddings = layers.Embedding(config.get("type_vocab_size", 2), emb,
                                                      name="token_type_embeddings")
        self.embeddings_norm = layer_norm(eps, "embeddings_norm")
        self.embeddings_project = dense(hidden, "embeddings_project") if emb != hidden else None
        self.dropout = layers.Dropout(config.get("hidden_dropout_prob", 0.1))
        self.encoder_layers = [
            TransformerLayer(hidden, heads, config["intermediate_size"], config.get("hidden_act", "gelu"), eps,
                             config.get("hidden_dropout_prob", 0.1), config.get("attention_probs_dropout_prob", 0.1),
                             rotary=apply_rotary, rotary_value=bool(config.get("rotary_value", False)),
                             name=f"layer_{i}")
            for i in range(config["num_hidden_layers"])]

    def build(self, input_shape=None):
        table = sinusoid_table(self.max_positions, self.head_dim)
        self.embed_positions = self.add_weight(shape=table.shape, initializer=lambda shape, dtype=None: table,
                                               trainable=False, name="embed_positions")

    def call(self, inputs, training=None):
        input_ids = inputs["input_ids"]
        token_types = inputs.get("token_type_ids")
        if token_types is None:
            token_types = ops.zeros_like(input_ids)
        x = self.embeddings_norm(self.word_embeddings(input_ids) + self.token_type_embeddings(token_types))
        x = self.dropout(x, training=training)
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)
        table = ops.cast(self.embed_positions[: ops.shape(input_ids)[1]], x.dtype)
        half = (self.head_dim + 1) // 2
        positions = (ops.repeat(table[:, :half], 2, axis=-1), ops.repeat(table[:, half:], 2, axis=-1))
        mask = key_mask(inputs)
        for layer in self.encoder_layers:
            x = layer(x, mask, training=training, positions=positions)
        return x

    def hf_weights(self) -> dict:
        out = named_weights("embeddings.", [("word_embeddings", self.word_embeddings),
                                            ("token_type_embeddings", self.token_type_embeddings),
                                            ("LayerNorm", self.embeddings_norm)])
        out.update(named_weights("", [("embeddings_project", self.embeddings_project)]))
        out["encoder.embed_positions.weight"] = (self.embed_positions, False)
        for i, layer in enumerate(self.encoder_layers):
            out.update(layer.hf_weights(f"encoder.layer.{i}."))
        return out


def build_backbone(config: dict) -> RoFormerBackbone:
    return RoFormerBackbone(config, name="roformer")
