"""ELECTRA (discriminator checkpoints): BERT's embeddings at `embedding_size`, projected to `hidden_size` by
`electra.embeddings_project` when the two differ, then BERT's encoder.

PyTorch names: `electra.` + BERT's, plus `electra.embeddings_project`.
"""
from __future__ import annotations

from qaexp.model.families.bert import BertBackbone
from qaexp.model.families.common import dense, key_mask, named_weights

MODEL_TYPES = ("electra",)
PREFIX = "electra"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ARCHITECTURE = "ElectraForQuestionAnswering"


class ElectraBackbone(BertBackbone):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        emb = config.get("embedding_size") or config["hidden_size"]
        self.embeddings_project = (dense(config["hidden_size"], "embeddings_project")
                                   if emb != config["hidden_size"] else None)

    def call(self, inputs, training=None):
        x = self.embed(inputs, training=training)
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)
        mask = key_mask(inputs)
        for layer in self.encoder_layers:
            x = layer(x, mask, training=training)
        return x

    def hf_weights(self) -> dict:
        return {**super().hf_weights(), **named_weights("", [("embeddings_project", self.embeddings_project)])}


def build_backbone(config: dict) -> ElectraBackbone:
    return ElectraBackbone(config, name="electra")
