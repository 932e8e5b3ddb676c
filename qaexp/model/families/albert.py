"""ALBERT: BERT's embeddings at `embedding_size`, projected to `hidden_size` by
`encoder.embedding_hidden_mapping_in`, then `num_hidden_layers` passes through `num_hidden_groups` shared layer
groups (layer i uses group int(i / (num_hidden_layers / num_hidden_groups)), each group runs its `inner_group_num`
layers), so the variables exist once per group, not once per layer.

PyTorch names: `albert.embeddings.*` (as BERT's), `albert.encoder.embedding_hidden_mapping_in`,
`albert.encoder.albert_layer_groups.G.albert_layers.J.{attention.{query,key,value,dense,LayerNorm}, ffn,
ffn_output, full_layer_layer_norm}`.
"""
from __future__ import annotations

from qaexp.model.families.bert import BertBackbone
from qaexp.model.families.common import TransformerLayer, dense, key_mask, named_weights

MODEL_TYPES = ("albert",)
PREFIX = "albert"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ARCHITECTURE = "AlbertForQuestionAnswering"
NAMES = {
    "query": "attention.query", "key": "attention.key", "value": "attention.value",
    "attention_output": "attention.dense", "attention_norm": "attention.LayerNorm",
    "intermediate": "ffn", "output": "ffn_output", "output_norm": "full_layer_layer_norm",
}


class AlbertBackbone(BertBackbone):
    def __init__(self, config: dict, **kwargs):
        # BERT's embeddings without BERT's per-layer encoder: ALBERT's layers are the shared groups below.
        super().__init__(dict(config, num_hidden_layers=0), **kwargs)
        hidden = config["hidden_size"]
        eps = config.get("layer_norm_eps", 1e-12)
        self.layer_count = config["num_hidden_layers"]
        self.group_count = config.get("num_hidden_groups", 1)
        self.embedding_hidden_mapping_in = dense(hidden, "embedding_hidden_mapping_in")
        self.groups = [
            [TransformerLayer(hidden, config["num_attention_heads"], config["intermediate_size"],
                              config.get("hidden_act", "gelu_new"), eps, config.get("hidden_dropout_prob", 0.0),
                              config.get("attention_probs_dropout_prob", 0.0), name=f"group_{g}_layer_{j}")
             for j in range(config.get("inner_group_num", 1))]
            for g in range(self.group_count)]

    def call(self, inputs, training=None):
        x = self.embedding_hidden_mapping_in(self.embed(inputs, training=training))
        mask = key_mask(inputs)
        for i in range(self.layer_count):
            for layer in self.groups[int(i / (self.layer_count / self.group_count))]:
                x = layer(x, mask, training=training)
        return x

    def hf_weights(self) -> dict:
        out = self.embedding_hf_weights()
        out.update(named_weights("encoder.", [("embedding_hidden_mapping_in", self.embedding_hidden_mapping_in)]))
        for g, group in enumerate(self.groups):
            for j, layer in enumerate(group):
                out.update(layer.hf_weights(f"encoder.albert_layer_groups.{g}.albert_layers.{j}.", NAMES))
        return out


def build_backbone(config: dict) -> AlbertBackbone:
    return AlbertBackbone(config, name="albert")
