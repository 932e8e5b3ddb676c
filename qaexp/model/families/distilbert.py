"""DistilBERT: BERT's layer with its own names and config keys (dim, n_heads, n_layers, hidden_dim), no token
types, LayerNorm epsilon fixed at 1e-12, positions learned (or the sinusoids `sinusoidal_pos_embds` stores in the
same weight).

PyTorch names: `distilbert.embeddings.{word,position}_embeddings`, `distilbert.embeddings.LayerNorm`,
`distilbert.transformer.layer.N.{attention.{q,k,v,out}_lin, sa_layer_norm, ffn.lin1, ffn.lin2, output_layer_norm}`.
"""
from __future__ import annotations

from keras import layers, ops

from qaexp.model.families.common import (Composite, Embedding, TransformerLayer, embedding_weights, key_mask,
                                         layer_norm, norm_weights)

MODEL_TYPES = ("distilbert",)
PREFIX = "distilbert"
INPUTS = ("input_ids", "attention_mask")
ARCHITECTURE = "DistilBertForQuestionAnswering"
EPS = 1e-12  # hard-coded in transformers' DistilBERT
NAMES = {
    "query": "attention.q_lin", "key": "attention.k_lin", "value": "attention.v_lin",
    "attention_output": "attention.out_lin", "attention_norm": "sa_layer_norm",
    "intermediate": "ffn.lin1", "output": "ffn.lin2", "output_norm": "output_layer_norm",
}


class DistilBertBackbone(Composite):
    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        dim = config["dim"]
        self.word_embeddings = Embedding(config["vocab_size"], dim, padding_idx=config.get("pad_token_id", 0),
                                         name="word_embeddings")
        self.position_embeddings = layers.Embedding(config.get("max_position_embeddings", 512), dim,
                                                    name="position_embeddings")
        self.embeddings_norm = layer_norm(EPS, "embeddings_norm")
        self.dropout = layers.Dropout(config.get("dropout", 0.1))
        self.encoder_layers = [
            TransformerLayer(dim, config["n_heads"], config["hidden_dim"], config.get("activation", "gelu"), EPS,
                             config.get("dropout", 0.1), config.get("attention_dropout", 0.1), name=f"layer_{i}")
            for i in range(config["n_layers"])]
        self.qa_dropout = layers.Dropout(config.get("qa_dropout", 0.1))

    def call(self, inputs, training=None):
        input_ids = inputs["input_ids"]
        positions = ops.arange(ops.shape(input_ids)[1], dtype="int32")[None, :]
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = self.dropout(self.embeddings_norm(x), training=training)
        mask = key_mask(inputs)
        for layer in self.encoder_layers:
            x = layer(x, mask, training=training)
        return self.qa_dropout(x, training=training)  # DistilBertForQuestionAnswering's dropout before qa_outputs

    def hf_weights(self) -> dict:
        out = {}
        out.update(embedding_weights("embeddings.word_embeddings", self.word_embeddings))
        out.update(embedding_weights("embeddings.position_embeddings", self.position_embeddings))
        out.update(norm_weights("embeddings.LayerNorm", self.embeddings_norm))
        for i, layer in enumerate(self.encoder_layers):
            out.update(layer.hf_weights(f"transformer.layer.{i}.", NAMES))
        return out


def build_backbone(config: dict) -> DistilBertBackbone:
    return DistilBertBackbone(config, name="distilbert")
