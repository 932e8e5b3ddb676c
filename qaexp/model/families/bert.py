"""BERT (bert-base/large, MiniLM): learned absolute positions, token types, post-LayerNorm encoder.

PyTorch names: `bert.embeddings.{word,position,token_type}_embeddings`, `bert.embeddings.LayerNorm`,
`bert.encoder.layer.N.<TransformerLayer.BERT_NAMES>`, `qa_outputs`. RoBERTa and ELECTRA reuse this backbone with
their own position ids / embedding projection (their modules).
"""
from __future__ import annotations

from keras import layers, ops

from qaexp.model.families.common import Composite, Embedding, TransformerLayer, key_mask, layer_norm, named_weights

MODEL_TYPES = ("bert",)
PREFIX = "bert"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ARCHITECTURE = "BertForQuestionAnswering"


class BertBackbone(Composite):
    """Embeddings (word + position + token type, LayerNorm, dropout) then the encoder layers; returns the last
    hidden states. `embedding_size` differs from `hidden_size` in ELECTRA (a projection follows)."""

    PAD_TOKEN_ID = 0  # transformers' default where config.json names none (RoBERTa's is 1)
    POSITION_PADDING = False  # RoBERTa's position table has a padding row too

    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        hidden = config["hidden_size"]
        emb = config.get("embedding_size") or hidden
        eps = config.get("layer_norm_eps", 1e-12)
        pad = config.get("pad_token_id", self.PAD_TOKEN_ID)
        self.word_embeddings = Embedding(config["vocab_size"], emb, padding_idx=pad, name="word_embeddings")
        self.position_embeddings = Embedding(config.get("max_position_embeddings", 512), emb,
                                             padding_idx=pad if self.POSITION_PADDING else None,
                                             name="position_embeddings")
        types = config.get("type_vocab_size", 2)  # 0: no token types (DistilBERT)
        self.token_type_embeddings = layers.Embedding(types, emb, name="token_type_embeddings") if types else None
        self.embeddings_norm = layer_norm(eps, "embeddings_norm")
        self.dropout = layers.Dropout(config.get("hidden_dropout_prob", 0.1))
        self.encoder_layers = [
            TransformerLayer(hidden, config["num_attention_heads"], config["intermediate_size"],
                             config.get("hidden_act", "gelu"), eps, config.get("hidden_dropout_prob", 0.1),
                             config.get("attention_probs_dropout_prob", 0.1), name=f"layer_{i}")
            for i in range(config["num_hidden_layers"])]

    def position_ids(self, input_ids):
        return ops.broadcast_to(ops.arange(ops.shape(input_ids)[1], dtype="int32")[None, :], ops.shape(input_ids))

    def embed(self, inputs, training=None):
        input_ids = inputs["input_ids"]
        x = self.word_embeddings(input_ids) + self.position_embeddings(self.position_ids(input_ids))
        if self.token_type_embeddings is not None:
            token_types = inputs.get("token_type_ids")
            x = x + self.token_type_embeddings(ops.zeros_like(input_ids) if token_types is None else token_types)
        return self.dropout(self.embeddings_norm(x), training=training)

    def call(self, inputs, training=None):
        x = self.embed(inputs, training=training)
        mask = key_mask(inputs)
        for layer in self.encoder_layers:
            x = layer(x, mask, training=training)
        return x

    def embedding_hf_weights(self) -> dict:
        return named_weights("embeddings.", [
            ("word_embeddings", self.word_embeddings), ("position_embeddings", self.position_embeddings),
            ("token_type_embeddings", self.token_type_embeddings), ("LayerNorm", self.embeddings_norm)])

    def hf_weights(self) -> dict:
        out = self.embedding_hf_weights()
        for i, layer in enumerate(self.encoder_layers):
            out.update(layer.hf_weights(f"encoder.layer.{i}."))
        return out


def build_backbone(config: dict) -> BertBackbone:
    return BertBackbone(config, name="bert")
