"""DistilBERT: BERT's layer with its own names and config keys (dim, n_heads, n_layers, hidden_dim), no token
types, LayerNorm epsilon fixed at 1e-12, positions learned (or the sinusoids `sinusoidal_pos_embds` stores in the
same weight).

PyTorch names: `distilbert.embeddings.{word,position}_embeddings`, `distilbert.embeddings.LayerNorm`,
`distilbert.transformer.layer.N.{attention.{q,k,v,out}_lin, sa_layer_norm, ffn.lin1, ffn.lin2, output_layer_norm}`.
"""
from __future__ import annotations

from keras import layers

from qaexp.model.families.bert import BertBackbone

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


def bert_config(config: dict) -> dict:
    """A DistilBERT config.json under BERT's keys: the same embeddings (without token types) and layers."""
    return dict(vocab_size=config["vocab_size"], hidden_size=config["dim"], num_attention_heads=config["n_heads"],
                intermediate_size=config["hidden_dim"], num_hidden_layers=config["n_layers"],
                hidden_act=config.get("activation", "gelu"), hidden_dropout_prob=config.get("dropout", 0.1),
                attention_probs_dropout_prob=config.get("attention_dropout", 0.1), layer_norm_eps=EPS,
                max_position_embeddings=config.get("max_position_embeddings", 512), type_vocab_size=0,
                pad_token_id=config.get("pad_token_id", 0))


class DistilBertBackbone(BertBackbone):
    """BERT's backbone without token types, plus the dropout DistilBertForQuestionAnswering puts before
    qa_outputs; the layers under DistilBERT's names."""

    def __init__(self, config: dict, **kwargs):
        super().__init__(bert_config(config), **kwargs)
        self.qa_dropout = layers.Dropout(config.get("qa_dropout", 0.1))

    def call(self, inputs, training=None):
        return self.qa_dropout(super().call(inputs, training=training), training=training)

    def hf_weights(self) -> dict:
        out = self.embedding_hf_weights()
        for i, layer in enumerate(self.encoder_layers):
            out.update(layer.hf_weights(f"transformer.layer.{i}.", NAMES))
        return out


def build_backbone(config: dict) -> DistilBertBackbone:
    return DistilBertBackbone(config, name="distilbert")
