"""RoBERTa and XLM-RoBERTa (the same architecture): BERT whose position ids count only non-padding tokens,
starting after `pad_token_id` (transformers' `create_position_ids_from_input_ids`), and no token types as input
(its single token-type embedding is still added, as transformers does).

PyTorch names: `roberta.` + BERT's.
"""
from __future__ import annotations

from keras import ops

from qaexp.model.families.bert import BertBackbone

MODEL_TYPES = ("roberta", "xlm-roberta")
PREFIX = "roberta"
INPUTS = ("input_ids", "attention_mask")
ARCHITECTURE = {"roberta": "RobertaForQuestionAnswering", "xlm-roberta": "XLMRobertaForQuestionAnswering"}


class RobertaBackbone(BertBackbone):
    PAD_TOKEN_ID = 1
    POSITION_PADDING = True  # padded positions get position id `pad`, whose row transformers never trains

    def position_ids(self, input_ids):
        pad = self.config.get("pad_token_id", self.PAD_TOKEN_ID)
        real = ops.cast(ops.not_equal(input_ids, pad), "int32")
        return ops.cumsum(real, axis=1) * real + pad


def build_backbone(config: dict) -> RobertaBackbone:
    return RobertaBackbone(config, name="roberta")
