"""ModernBERT (answerdotai/ModernBERT-base/large, jhu-clsp/mmBERT): a pre-norm encoder with rotary positions (one
theta for the global layers, another for the local ones), GeGLU feed-forward, bias-free layers in the released
configs, alternating global / sliding-window attention, a final norm, and a QA model with a prediction head
(dense + activation + norm) before its output Linear, as transformers 5's `ModernBertForQuestionAnswering`.

PyTorch names: `model.embeddings.tok_embeddings`, `model.embeddings.norm`, `model.layers.N.{attn_norm (not in
layer 0: transformers has an Identity there), attn.Wqkv, attn.Wo, mlp_norm, mlp.Wi, mlp.Wo}`, `model.final_norm`,
then outside the encoder `head.{dense,norm}` (the same names as the masked-LM checkpoint's head, so a pretrained
`ModernBertForMaskedLM` fills them) and `classifier` (the start/end Linear, always with a bias). Biases exist only
where `attention_bias` / `mlp_bias` / `norm_bias` / `classifier_bias` say so.

Both config styles on the hub are read: transformers 4.4x's `global_attn_every_n_layers`, `global_rope_theta`,
`local_rope_theta` and transformers 5's `layer_types`, `rope_parameters` (which win where both are present, as
transformers 5 writes both `layer_types` and `global_attn_every_n_layers`). `classifier_pooling` is for sequence
classification only: the QA model reads every token.
"""
from __future__ import annotations

import math

import numpy as np
from keras import layers, ops

from qaexp.model.families.common import (Composite, Embedding, activation, attend, dense, key_mask, merge_heads,
                                         named_weights)

MODEL_TYPES = ("modernbert",)
PREFIX = "model"
INPUTS = ("input_ids", "attention_mask")  # no token types
ARCHITECTURE = "ModernBertForQuestionAnswering"
OUTPUT_NAME = "classifier"

GLOBAL, LOCAL = "full_attention", "sliding_attention"
# transformers' defaults when a config names no theta (ModernBertConfig.default_theta)
DEFAULT_THETA = {GLOBAL: 160_000.0, LOCAL: 10_000.0}
_OLD_THETA_KEY = {GLOBAL: "global_rope_theta", LOCAL: "local_rope_theta"}


def attention_layout(config: dict) -> tuple[list[str], dict[str, float]]:
    """(each layer's attention type, {type: rope theta}) from either config style."""
    layers_n = config["num_hidden_layers"]
    types = config.get("layer_types")
    if types is None:
        every = config.get("global_attn_every_n_layers") or 3
        types = [LOCAL if i % every else GLOBAL for i in range(layers_n)]
    types = list(types)
    if len(types) != layers_n or set(types) - {GLOBAL, LOCAL}:
        raise ValueError(f"ModernBERT config: layer_types {types} must name {layers_n} layers, each "
                         f"{GLOBAL!r} or {LOCAL!r}")
    if config.get("rope_scaling"):
        raise ValueError(f"ModernBERT config: rope_scaling {config['rope_scaling']!r} is not supported by qaexp "
                         "(plain rotary positions only)")
    rope = config.get("rope_parameters") or {}
    if set(rope) - {GLOBAL, LOCAL}:
        raise ValueError(f"ModernBERT config: rope_parameters must be keyed by {GLOBAL!r} / {LOCAL!r}, got "
                         f"{sorted(rope)}")
    thetas = {}
    for kind in (GLOBAL, LOCAL):
        params = rope.get(kind) or {}
        rope_type = params.get("rope_type", "default")
        if rope_type != "default":
            raise ValueError(f"ModernBERT config: rope_type {rope_type!r} for {kind} is not supported by qaexp "
                             "(plain rotary positions only)")
        thetas[kind] = float(params.get("rope_theta") or config.get(_OLD_THETA_KEY[kind]) or DEFAULT_THETA[kind])
    return types, thetas


def rotary_tables(theta: float, head_dim: int, length):
    """(cos, sin), each (length, head_dim) float32: angle position * theta^(-2i/dim), the half-split layout
    (frequencies repeated as [f0..f(d/2-1), f0..f(d/2-1)]), computed in float32 as transformers does."""
    inv_freq = (1.0 / (np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim))))
    freqs = ops.cast(ops.arange(length), "float32")[:, None] * ops.convert_to_tensor(inv_freq.astype(np.float32))
    angles = ops.concatenate([freqs, freqs], axis=-1)
    return ops.cos(angles), ops.sin(angles)


def apply_rotary(x, tables):
    """x * cos + rotate_half(x) * sin with rotate_half(x) = [-x2, x1] over the two halves of each head; in float32
    whatever the compute dtype (transformers upcasts here too; Keras hands the tables in at the compute dtype, as
    transformers does too)."""
    cos, sin = (ops.cast(table, "float32") for table in tables)
    dtype = x.dtype
    x = ops.cast(x, "float32")
    half = ops.shape(x)[-1] // 2
    rotated = ops.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return ops.cast(x * cos + rotated * sin, dtype)


def norm(eps: float, bias: bool, name: str) -> layers.LayerNormalization:
    # norm_bias false (the released configs): a LayerNorm with a scale and no shift
    return layers.LayerNormalization(epsilon=eps, center=bias, name=name)


class ModernBertAttention(Composite):
    """One fused query/key/value Linear (`Wqkv`, laid out [q | k | v], each heads x head_dim), rotary on q and k,
    masked softmax, `Wo`; dropout on the probabilities and after `Wo`, both at `attention_dropout`."""

    def __init__(self, hidden: int, heads: int, bias: bool, dropout: float, **kwargs):
        super().__init__(**kwargs)
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of the {heads} attention heads")
        self.heads = heads
        self.head_dim = hidden // heads
        self.Wqkv = dense(3 * hidden, "Wqkv", use_bias=bias)
        self.Wo = dense(hidden, "Wo", use_bias=bias)
        self.dropout = layers.Dropout(dropout)
        self.out_drop = layers.Dropout(dropout)

    def call(self, x, mask, tables, training=None):
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        qkv = ops.transpose(ops.reshape(self.Wqkv(x), (batch, seq, 3, self.heads, self.head_dim)), (2, 0, 3, 1, 4))
        q, k, v = apply_rotary(qkv[0], tables), apply_rotary(qkv[1], tables), qkv[2]
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * ops.cast(1.0 / math.sqrt(self.head_dim), q.dtype)
        attended = merge_heads(attend(scores, v, mask, self.dropout, training))
        return self.out_drop(self.Wo(attended), training=training)


class ModernBertLayer(Composite):
    """Pre-norm: x += attn(attn_norm(x)); x += Wo(act(a) * g) with [a | g] = Wi(mlp_norm(x)). Layer 0 has no
    attn_norm (the embedding norm just ran)."""

    def __init__(self, config: dict, index: int, **kwargs):
        super().__init__(**kwargs)
        hidden = config["hidden_size"]
        eps = config.get("norm_eps", 1e-5)
        norm_bias = bool(config.get("norm_bias", False))
        mlp_bias = bool(config.get("mlp_bias", False))
        self.attn_norm = None if index == 0 else norm(eps, norm_bias, "attn_norm")
        self.attn = ModernBertAttention(hidden, config["num_attention_heads"], bool(config.get("attention_bias", False)),
                                        config.get("attention_dropout", 0.0), name="attn")
        self.mlp_norm = norm(eps, norm_bias, "mlp_norm")
        self.Wi = dense(2 * config["intermediate_size"], "Wi", use_bias=mlp_bias)
        self.Wo = dense(hidden, "Wo", use_bias=mlp_bias)
        self.act = activation(config.get("hidden_activation", "gelu"))
        self.mlp_drop = layers.Dropout(config.get("mlp_dropout", 0.0))

    def call(self, x, mask, tables, training=None):
        normed = x if self.attn_norm is None else self.attn_norm(x)
        x = x + self.attn(normed, mask, tables, training=training)
        inner, gate = ops.split(self.Wi(self.mlp_norm(x)), 2, axis=-1)
        return x + self.Wo(self.mlp_drop(self.act(inner) * gate, training=training))

    def hf_weights(self, prefix: str) -> dict:
        return named_weights(prefix, [("attn_norm", self.attn_norm), ("attn.Wqkv", self.attn.Wqkv),
                                      ("attn.Wo", self.attn.Wo), ("mlp_norm", self.mlp_norm), ("mlp.Wi", self.Wi),
                                      ("mlp.Wo", self.Wo)])


class ModernBertBackbone(Composite):
    """tok_embeddings -> norm -> dropout, the layers (each with its type's mask and rotary tables), final_norm."""

    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        hidden = config["hidden_size"]
        self.layer_types, self.thetas = attention_layout(config)
        self.head_dim = hidden // config["num_attention_heads"]
        # A local layer sees local_attention // 2 tokens on each side (distance <= that), as transformers' mask
        self.half_window = int(config.get("local_attention", 128)) // 2
        eps = config.get("norm_eps", 1e-5)
        norm_bias = bool(config.get("norm_bias", False))
        # padding_idx as transformers' nn.Embedding(padding_idx=config.pad_token_id): that row gets no gradient
        self.tok_embeddings = Embedding(config["vocab_size"], hidden, padding_idx=config.get("pad_token_id", 50283),
                                        name="tok_embeddings")
        self.embeddings_norm = norm(eps, norm_bias, "embeddings_norm")
        self.dropout = layers.Dropout(config.get("embedding_dropout", 0.0))
        self.encoder_layers = [ModernBertLayer(config, i, name=f"layer_{i}") for i in range(config["num_hidden_layers"])]
        self.final_norm = norm(eps, norm_bias, "final_norm")

    def call(self, inputs, training=None):
        input_ids = inputs["input_ids"]
        seq = ops.shape(input_ids)[1]
        x = self.dropout(self.embeddings_norm(self.tok_embeddings(input_ids)), training=training)
        keys = key_mask(inputs)  # (batch, 1, 1, keys)
        positions = ops.arange(seq)
        near = ops.abs(positions[:, None] - positions[None, :]) <= self.half_window
        masks = {GLOBAL: keys, LOCAL: ops.logical_and(keys, near[None, None])}
        tables = {kind: rotary_tables(self.thetas[kind], self.head_dim, seq) for kind in set(self.layer_types)}
        for layer, kind in zip(self.encoder_layers, self.layer_types):
            x = layer(x, masks[kind], tables[kind], training=training)
        return self.final_norm(x)

    def hf_weights(self) -> dict:
        out = named_weights("embeddings.", [("tok_embeddings", self.tok_embeddings), ("norm", self.embeddings_norm)])
        for i, layer in enumerate(self.encoder_layers):
            out.update(layer.hf_weights(f"layers.{i}."))
        return {**out, **named_weights("", [("final_norm", self.final_norm)])}


class ModernBertPredictionHead(Composite):
    """transformers' `head` then `drop`: norm(act(dense(x))), dropout at `classifier_dropout`; runs on every
    token before the start/end Linear."""

    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense(config["hidden_size"], "dense", use_bias=bool(config.get("classifier_bias", False)))
        self.act = activation(config.get("classifier_activation", "gelu"))
        self.norm = norm(config.get("norm_eps", 1e-5), bool(config.get("norm_bias", False)), "norm")
        self.drop = layers.Dropout(config.get("classifier_dropout", 0.0))

    def call(self, x, training=None):
        return self.drop(self.norm(self.act(self.dense(x))), training=training)

    def hf_weights(self) -> dict:
        """Top-level names (outside the `model.` encoder)."""
        return named_weights("head.", [("dense", self.dense), ("norm", self.norm)])


def build_backbone(config: dict) -> ModernBertBackbone:
    return ModernBertBackbone(config, name="model")


def build_head(config: dict) -> ModernBertPredictionHead:
    return ModernBertPredictionHead(config, name="head")
