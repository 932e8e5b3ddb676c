"""DeBERTa-v2 / DeBERTa-v3 (v3 checkpoints say model_type deberta-v2): disentangled attention. Besides content-to-
content scores, each head scores content-to-position (c2p) and position-to-content (p2c) against shared relative
position embeddings (LayerNorm-ed with norm_rel_ebd "layer_norm"); distances beyond position_buckets/2 fall in
logarithmic buckets; every score is divided by sqrt(head_dim * (1 + number of position terms)). No absolute
positions unless position_biased_input; token types only when type_vocab_size > 0 (v3 has none).

PyTorch names: `deberta.embeddings.{word_embeddings, position_embeddings?, token_type_embeddings?, embed_proj?,
LayerNorm}`, `deberta.encoder.{rel_embeddings, LayerNorm}`, `deberta.encoder.layer.N.attention.self.{query_proj,
key_proj, value_proj, pos_key_proj?, pos_query_proj?}`, then BERT's `attention.output`, `intermediate`, `output`.
"""
from __future__ import annotations

import math

from keras import layers, ops

from qaexp.model.families.common import (Composite, Embedding, activation, dense, layer_norm, masked_fill_value,
                                         merge_heads, named_weights, split_heads)

MODEL_TYPES = ("deberta-v2",)
PREFIX = "deberta"
ARCHITECTURE = "DebertaV2ForQuestionAnswering"


def INPUTS(config: dict) -> tuple:  # noqa: N802  (the registry reads INPUTS; here it depends on the config)
    types = ("token_type_ids",) if config.get("type_vocab_size", 0) > 0 else ()
    return ("input_ids", "attention_mask") + types


def relative_positions(length, buckets: int, max_position: int):
    """(length, length) int32 query-minus-key distances, log-bucketed past buckets/2 as transformers does (in
    float32, so the bucket edges fall where its ceil puts them)."""
    ids = ops.arange(length, dtype="int32")
    rel = ids[:, None] - ids[None, :]
    if buckets <= 0 or max_position <= 0:
        return rel
    mid = buckets // 2
    sign = ops.sign(rel)
    abs_pos = ops.where((rel < mid) & (rel > -mid), mid - 1, ops.abs(rel))
    scale = ops.log(ops.convert_to_tensor((max_position - 1) / mid, dtype="float32"))
    log_pos = ops.ceil(ops.log(ops.cast(abs_pos, "float32") / mid) / scale * (mid - 1)) + mid
    return ops.cast(ops.where(abs_pos <= mid, ops.cast(rel, "float32"), log_pos * ops.cast(sign, "float32")), "int32")


def max_relative_positions(config: dict) -> int:
    value = config.get("max_relative_positions", -1)
    return value if value >= 1 else config.get("max_position_embeddings", 512)


def relative_span(config: dict) -> int:
    """Half the rows of the relative-position table: position_buckets when bucketed."""
    buckets = config.get("position_buckets", -1)
    return buckets if buckets > 0 else max_relative_positions(config)


class DisentangledAttention(Composite):
    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.head_dim = hidden // self.heads
        self.pos_types = [t.strip() for t in (config.get("pos_att_type") or [])]
        self.relative = bool(config.get("relative_attention", False))
        self.share_att_key = bool(config.get("share_att_key", False))
        self.query_proj = dense(hidden, "query_proj")
        self.key_proj = dense(hidden, "key_proj")
        self.value_proj = dense(hidden, "value_proj")
        self.pos_key_proj = (dense(hidden, "pos_key_proj")
                             if self.relative and not self.share_att_key and "c2p" in self.pos_types else None)
        self.pos_query_proj = (dense(hidden, "pos_query_proj")
                               if self.relative and not self.share_att_key and "p2c" in self.pos_types else None)
        self.output_dense = dense(hidden, "output")
        self.dropout = layers.Dropout(config.get("attention_probs_dropout_prob", 0.1))
        self.pos_dropout = layers.Dropout(config.get("hidden_dropout_prob", 0.1))
        self.scale_factor = 1 + sum(t in self.pos_types for t in ("c2p", "p2c"))
        self.span = relative_span(config)

    def call(self, x, mask, rel_pos=None, rel_embeddings=None, training=None):
        span = self.span
        q = split_heads(self.query_proj(x), self.heads)
        k = split_heads(self.key_proj(x), self.heads)
        v = split_heads(self.value_proj(x), self.heads)
        scale = ops.cast(math.sqrt(self.head_dim * self.scale_factor), q.dtype)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / scale
        if self.relative:
            rel = self.pos_dropout(rel_embeddings, training=training)[None]  # (1, 2*span, hidden)
            batch, heads, length = ops.shape(q)[0], self.heads, ops.shape(q)[2]
            index_shape = (batch, heads, length, length)
            if "c2p" in self.pos_types:
                pos_k = split_heads((self.key_proj if self.share_att_key else self.pos_key_proj)(rel), self.heads)
                c2p = ops.matmul(q, ops.transpose(pos_k, (0, 1, 3, 2)))  # (batch, heads, query, 2*span)
                index = ops.broadcast_to(ops.clip(rel_pos + span, 0, 2 * span - 1)[None, None], index_shape)
                scores = scores + ops.take_along_axis(c2p, index, axis=-1) / scale
            if "p2c" in self.pos_types:
                pos_q = split_heads((self.query_proj if self.share_att_key else self.pos_query_proj)(rel), self.heads)
                p2c = ops.matmul(k, ops.transpose(pos_q, (0, 1, 3, 2)))  # (batch, heads, key, 2*span)
                index = ops.broadcast_to(ops.clip(-rel_pos + span, 0, 2 * span - 1)[None, None], index_shape)
                scores = scores + ops.transpose(ops.take_along_axis(p2c, index, axis=-1), (0, 1, 3, 2)) / scale
        scores = ops.where(mask, scores, ops.cast(masked_fill_value(scores.dtype), scores.dtype))
        probs = self.dropout(ops.softmax(scores, axis=-1), training=training)
        return self.output_dense(merge_heads(ops.matmul(probs, v)))

    def hf_weights(self, prefix: str) -> dict:
        projections = ("query_proj", "key_proj", "value_proj", "pos_key_proj", "pos_query_proj")
        return named_weights(prefix, [(f"attention.self.{name}", getattr(self, name)) for name in projections]
                             + [("attention.output.dense", self.output_dense)])


class DebertaLayer(Composite):
    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        eps = config.get("layer_norm_eps", 1e-7)
        self.attention = DisentangledAttention(config, name="attention")
        self.attention_norm = layer_norm(eps, "attention_norm")
        self.intermediate = dense(config["intermediate_size"], "intermediate")
        self.output_dense = dense(config["hidden_size"], "output")
        self.output_norm = layer_norm(eps, "output_norm")
        self.act = activation(config.get("hidden_act", "gelu"))
        self.dropout = layers.Dropout(config.get("hidden_dropout_prob", 0.1))

    def call(self, x, mask, rel_pos=None, rel_embeddings=None, training=None):
        attended = self.attention(x, mask, rel_pos=rel_pos, rel_embeddings=rel_embeddings, training=training)
        x = self.attention_norm(x + self.dropout(attended, training=training))
        y = self.dropout(self.output_dense(self.act(self.intermediate(x))), training=training)
        return self.output_norm(x + y)

    def hf_weights(self, prefix: str) -> dict:
        return {**self.attention.hf_weights(prefix), **named_weights(prefix, [
            ("attention.output.LayerNorm", self.attention_norm), ("intermediate.dense", self.intermediate),
            ("output.dense", self.output_dense), ("output.LayerNorm", self.output_norm)])}


class DebertaV2Backbone(Composite):
    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        if config.get("conv_kernel_size", 0) > 0:
            raise ValueError("DeBERTa-v2 checkpoints with a convolution layer (conv_kernel_size > 0, e.g. "
                             "deberta-v2-xlarge) have no Keras model in qaexp yet: use a DeBERTa-v3 checkpoint")
        hidden = config["hidden_size"]
        emb = config.get("embedding_size") or hidden
        eps = config.get("layer_norm_eps", 1e-7)
        self.word_embeddings = Embedding(config["vocab_size"], emb, padding_idx=config.get("pad_token_id", 0),
                                         name="word_embeddings")
        self.position_embeddings = (layers.Embedding(config.get("max_position_embeddings", 512), emb,
                                                     name="position_embeddings")
                                    if config.get("position_biased_input", True) else None)
        self.token_type_embeddings = (layers.Embedding(config["type_vocab_size"], emb, name="token_type_embeddings")
                                      if config.get("type_vocab_size", 0) > 0 else None)
        self.embed_proj = dense(hidden, "embed_proj", use_bias=False) if emb != hidden else None
        self.embeddings_norm = layer_norm(eps, "embeddings_norm")
        self.dropout = layers.Dropout(config.get("hidden_dropout_prob", 0.1))
        self.relative = bool(config.get("relative_attention", False))
        self.max_relative = max_relative_positions(config)
        self.buckets = config.get("position_buckets", -1)
        self.span = relative_span(config)
        self.hidden = hidden
        norm_rel = [t.strip() for t in str(config.get("norm_rel_ebd", "none")).lower().split("|")]
        self.rel_norm = layer_norm(eps, "rel_norm") if "layer_norm" in norm_rel else None
        self.encoder_layers = [DebertaLayer(config, name=f"layer_{i}") for i in range(config["num_hidden_layers"])]

    def build(self, input_shape=None):
        # The relative-position table is used whole, never looked up by id: a plain variable, not an Embedding.
        self.rel_embeddings = (self.add_weight(shape=(2 * self.span, self.hidden), initializer="random_normal",
                                               name="rel_embeddings") if self.relative else None)

    def call(self, inputs, training=None):
        input_ids = inputs["input_ids"]
        real = inputs.get("attention_mask")
        if real is None:
            real = ops.ones_like(input_ids)
        x = self.word_embeddings(input_ids)
        length = ops.shape(input_ids)[1]
        if self.position_embeddings is not None:
            x = x + self.position_embeddings(ops.arange(length, dtype="int32")[None, :])
        if self.token_type_embeddings is not None:
            types = inputs.get("token_type_ids")
            x = x + self.token_type_embeddings(ops.zeros_like(input_ids) if types is None else types)
        if self.embed_proj is not None:
            x = self.embed_proj(x)
        # transformers zeroes the padded positions' embeddings (they are masked as keys anyway).
        x = self.embeddings_norm(x) * ops.expand_dims(ops.cast(real, x.dtype), -1)  # not [..., None]: see common.key_mask
        x = self.dropout(x, training=training)
        mask = ops.expand_dims(ops.expand_dims(ops.cast(real, "bool"), 1), 1)  # not [:, None, None, :]: see common.key_mask
        rel_pos = relative_positions(length, self.buckets, self.max_relative) if self.relative else None
        rel_emb = None
        if self.relative:
            rel_emb = ops.cast(self.rel_embeddings, x.dtype)
            rel_emb = self.rel_norm(rel_emb) if self.rel_norm is not None else rel_emb
        for layer in self.encoder_layers:
            x = layer(x, mask, rel_pos=rel_pos, rel_embeddings=rel_emb, training=training)
        return x

    def hf_weights(self) -> dict:
        out = named_weights("embeddings.", [
            ("word_embeddings", self.word_embeddings), ("position_embeddings", self.position_embeddings),
            ("token_type_embeddings", self.token_type_embeddings), ("embed_proj", self.embed_proj),
            ("LayerNorm", self.embeddings_norm)])
        if self.rel_embeddings is not None:
            out["encoder.rel_embeddings.weight"] = (self.rel_embeddings, False)
        out.update(named_weights("encoder.", [("LayerNorm", self.rel_norm)]))
        for i, layer in enumerate(self.encoder_layers):
            out.update(layer.hf_weights(f"encoder.layer.{i}."))
        return out


def build_backbone(config: dict) -> DebertaV2Backbone:
    return DebertaV2Backbone(config, name="deberta")
