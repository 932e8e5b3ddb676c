"""Tokenizer and model construction: hub checkpoints, local directories, or a tiny model from scratch."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterable, Iterator

from omegaconf import DictConfig, OmegaConf

from qaexp.model.pretrained import has_only_pytorch_safetensors, load_pytorch_safetensors, resolve_checkpoint
from qaexp.errors import ModelLoadError

log = logging.getLogger(__name__)

OFFLINE_HINT = ("Use experiment=quickstart or model=tiny (no download needed), "
                "or model.checkpoint=/path/to/a/saved/model")


def build_tokenizer(model_cfg: DictConfig, training_texts: Iterable[str] | None = None):
    if model_cfg.checkpoint:
        return _load_tokenizer(model_cfg)
    if training_texts is None:
        raise ModelLoadError("model.from_scratch needs training data to train its tokenizer: set data.train_file "
                             "or use a saved model via model.checkpoint=")
    return train_wordpiece_tokenizer(training_texts, model_cfg.tokenizer_vocab_size, model_cfg.lowercase)


def _load_tokenizer(model_cfg: DictConfig):
    from transformers import AutoTokenizer

    checkpoint = resolve_checkpoint(model_cfg.checkpoint)
    with _explain_load_failure(checkpoint, "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, use_fast=True,
                                                  trust_remote_code=model_cfg.trust_remote_code)
    if not tokenizer.is_fast:
        raise ModelLoadError(f"{model_cfg.checkpoint}: qaexp needs a fast (Rust) tokenizer for offset mappings, "
                             "and this checkpoint has none")
    tokenizer.padding_side = model_cfg.padding_side
    return tokenizer


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int, lowercase: bool):
    """A BERT-style WordPiece tokenizer trained on `texts` (needs no network)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special,
                                                                 show_progress=False))
    # The trainer numbers tokens in a random (hash) order: renumber them sorted, so the same texts give the same
    # token ids in every process (reproducible runs, feature-cache hits, resuming with the checkpoint's ids).
    learned = sorted(set(backend.get_vocab()) - set(special))
    backend.model = models.WordPiece({token: i for i, token in enumerate(special + learned)}, unk_token="[UNK]")
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    # A freshly trained tokenizer has no post-processor: without one, pairs lack [CLS]/[SEP].
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return BertTokenizerFast(tokenizer_object=backend, do_lower_case=lowercase, unk_token="[UNK]",
                             sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")


def build_model(model_cfg: DictConfig, tokenizer):
    from transformers import AutoConfig, TFAutoModelForQuestionAnswering

    if model_cfg.checkpoint:
        checkpoint = resolve_checkpoint(model_cfg.checkpoint)
        if model_cfg.get("random_init", False) or has_only_pytorch_safetensors(checkpoint):
            return load_pytorch_safetensors(checkpoint, random_init=model_cfg.get("random_init", False))[0]
        with _explain_load_failure(checkpoint, "model"):
            return TFAutoModelForQuestionAnswering.from_pretrained(
                checkpoint, trust_remote_code=model_cfg.trust_remote_code)
    arch = OmegaConf.to_container(model_cfg.architecture, resolve=True)
    config = AutoConfig.for_model(**arch, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    model = TFAutoModelForQuestionAnswering.from_config(config)
    model(model.dummy_inputs, training=False)  # create the weights now, so save_pretrained works
    return model


@contextlib.contextmanager
def _explain_load_failure(checkpoint: str, what: str) -> Iterator[None]:
    try:
        yield
    except (OSError, ValueError, EnvironmentError) as err:
        if os.path.isdir(checkpoint) and not os.path.exists(os.path.join(checkpoint, "config.json")):
            raise ModelLoadError(f"cannot load the {what} from local directory {checkpoint!r}: it has no config.json, "
                                 "so it was not written by save_pretrained (a qaexp run saves one in <run dir>/model)") \
                from err
        if os.path.isdir(checkpoint):
            raise ModelLoadError(f"cannot load the {what} from local directory {checkpoint!r}: {_first_line(err)}") \
                from err
        if _looks_like_path(checkpoint):
            raise ModelLoadError(f"model.checkpoint={checkpoint!r} is not an existing directory. "
                                 f"{OFFLINE_HINT}") from err
        raise ModelLoadError(f"cannot load {what} {checkpoint!r}: it is not a local directory and cannot be "
                             f"downloaded from the Hugging Face hub (no network?). {OFFLINE_HINT}") from err


def _looks_like_path(checkpoint: str) -> bool:
    # Hub names are "name" or "org/name"; anything else with a separator is meant as a local path.
    return checkpoint.startswith((".", "~", os.sep)) or checkpoint.count("/") > 1


def _first_line(err: Exception, limit: int = 300) -> str:
    line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."  # transformers lists every model type
