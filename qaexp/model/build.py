"""Tokenizer and model construction: hub checkpoints, local directories, or a tiny model from scratch."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterable, Iterator

from omegaconf import DictConfig, OmegaConf

from qaexp.errors import ModelLoadError, first_line
from qaexp.model.locations import without_config
from qaexp.model.pretrained import check_saved_files, config_or_none, load_qa_model, model_config, resolve_checkpoint
from qaexp.model.wordpiece import count_words, learn_vocabulary

log = logging.getLogger(__name__)

SENTENCEPIECE_HINT = "install the SentencePiece converter's packages: pip install sentencepiece protobuf"
TOKENIZER_CONFIG = "tokenizer_config.json"  # names the tokenizer's class; tokenizer.save_pretrained always writes it
TOKENIZER_FILE = "tokenizer.json"  # the fast tokenizer whole: vocabulary, normaliser, pre-tokenizer, templates
COPY_BACK = "copy the model's tokenizer files back from where the model came from"


def build_tokenizer(model_cfg: DictConfig, training_texts: Iterable[str] | None = None):
    if model_cfg.checkpoint:
        return _load_tokenizer(model_cfg)
    if training_texts is None:
        raise ModelLoadError("model.from_scratch needs training data to train its tokenizer: set data.train_file "
                             "or use a saved model via model.checkpoint=")
    return train_wordpiece_tokenizer(training_texts, model_cfg.tokenizer_vocab_size, model_cfg.lowercase)


def checkpoint_directory(model_cfg: DictConfig) -> str:
    """The local directory of model.checkpoint at model.revision (hub repos are fetched into the HF cache)."""
    return resolve_checkpoint(model_cfg.checkpoint, model_cfg.get("revision"))


def _load_tokenizer(model_cfg: DictConfig):
    from transformers import AutoTokenizer

    directory = checkpoint_directory(model_cfg)
    check_saved_files(directory, "tokenizer")  # a qaexp model's tokenizer files, as they were saved
    # transformers 5 always loads the tokenizers-backed (Rust) class where the model has one (use_fast is gone);
    # a model whose tokenizer exists only in Python still loads, and is refused below.
    with _explain_load_failure(directory, "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=model_cfg.trust_remote_code)
    if not tokenizer.is_fast:
        raise ModelLoadError(f"{model_cfg.checkpoint}: qaexp needs a fast (Rust) tokenizer for offset mappings, "
                             "and this checkpoint has none")
    _require_vocabulary(tokenizer, directory)
    tokenizer.padding_side = model_cfg.padding_side
    with_model_inputs(tokenizer, directory)
    return tokenizer


def _require_vocabulary(tokenizer, directory: str) -> None:
    """A tokenizer that knows nothing but its special tokens is refused: every word would become the unknown token.

    transformers builds one, without an error, when the vocabulary's file (tokenizer.json, vocab.txt, ...) is
    missing beside a tokenizer_config.json; the model would then answer with exit status 0, and wrongly."""
    if len(tokenizer) > len(set(tokenizer.all_special_tokens)):
        return
    missing = (f"it has no {TOKENIZER_FILE}" if not os.path.exists(os.path.join(directory, TOKENIZER_FILE))
               else "its vocabulary file is missing")
    raise ModelLoadError(f"the tokenizer in {directory} knows only its {len(tokenizer)} special tokens, so every word "
                         f"would be unknown to it: {missing}; {COPY_BACK}")


def with_model_inputs(tokenizer, directory: str) -> None:
    """Make the tokenizer return token_type_ids where the checkpoint's architecture takes them.

    transformers 5's ALBERT tokenizer no longer lists token_type_ids among its model_input_names (4.x did), so its
    windows would lose the question/context segments the pretrained ALBERT was trained with. The architecture's
    own inputs (qaexp.model.families) decide; the names are stored in tokenizer_config.json too, so a saved model's
    tokenizer keeps them whatever loads it."""
    from qaexp.model.families import MODEL_TYPES, family_module

    config = config_or_none(directory)  # the model's loader reports an unreadable config.json
    if config is None or config.get("model_type") not in MODEL_TYPES:
        return
    module = family_module(config["model_type"])
    inputs = module.INPUTS(config) if callable(module.INPUTS) else module.INPUTS
    names = list(tokenizer.model_input_names)
    if "token_type_ids" in inputs and "token_type_ids" not in names:
        names.append("token_type_ids")
        tokenizer.model_input_names = names
        tokenizer.init_kwargs["model_input_names"] = names


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int, lowercase: bool):
    """A BERT-style WordPiece tokenizer trained on `texts` (needs no network)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    # transformers 5's BertTokenizer is the tokenizers-backed class (BertTokenizerFast is only an alias of it)
    from transformers import BertTokenizer

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = count_words(texts, normalizer.normalize_str, pre_tokenizer.pre_tokenize_str)
    vocab = learn_vocabulary(words, vocab_size, special)
    backend = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer, backend.pre_tokenizer, backend.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    # A freshly trained tokenizer has no post-processor: without one, pairs lack [CLS]/[SEP].
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return BertTokenizer(tokenizer_object=backend, do_lower_case=lowercase, unk_token="[UNK]",
                             sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")


def build_model(model_cfg: DictConfig, tokenizer):
    """qaexp's Keras 3 question-answering model: a checkpoint's (see model/pretrained.py) or, with no checkpoint,
    a new one of `model.architecture` (a transformers config's keys) sized to the tokenizer's vocabulary."""
    from transformers import AutoConfig

    from qaexp.model.families import build_qa_model

    if model_cfg.checkpoint:
        directory = checkpoint_directory(model_cfg)
        _check_vocabulary(tokenizer, directory)
        with _explain_load_failure(directory, "model"):
            return load_qa_model(directory, model_cfg.trust_remote_code, model_cfg.get("random_init", False))
    arch = OmegaConf.to_container(model_cfg.architecture, resolve=True)
    config = AutoConfig.for_model(**arch, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    try:
        return build_qa_model(config.to_dict())
    except ValueError as err:
        raise ModelLoadError(f"model.architecture: {first_line(err, limit=300)}") from err


def _check_vocabulary(tokenizer, directory: str) -> None:
    """A token id at or past config.json's vocab_size has no embedding: the lookup fails on the CPU with a traceback
    mid-run and gives zeros on a GPU. A tokenizer with more tokens than the model's vocabulary is another model's."""
    size = model_config(directory).get("vocab_size")
    if tokenizer is not None and isinstance(size, int) and len(tokenizer) > size:
        raise ModelLoadError(f"the tokenizer in {directory} has {len(tokenizer)} tokens, more than the model's "
                             f"vocab_size {size} (config.json): it is another model's tokenizer; put the files of the "
                             "tokenizer the model was trained with beside its config.json")


@contextlib.contextmanager
def _explain_load_failure(directory: str, what: str) -> Iterator[None]:
    try:
        yield
    except ImportError as err:  # DeBERTa-v3's spm.model is converted to a fast tokenizer by SentencePiece code
        if what == "tokenizer" and not os.path.exists(os.path.join(directory, TOKENIZER_CONFIG)):
            # Without it transformers picks a class by config.json's model_type, whose missing package (rjieba for
            # RoFormer) is then what it asks for: the missing file is the cause to name.
            model_type = (config_or_none(directory) or {}).get("model_type")
            raise ModelLoadError(f"cannot load the tokenizer in {directory}: it has no {TOKENIZER_CONFIG} (which "
                                 "names the tokenizer's class), so transformers fell back to the class for model_type "
                                 f"{model_type!r}, which cannot load here; {COPY_BACK}") from err
        raise ModelLoadError(f"cannot load the {what} in {directory}: {first_line(err, limit=300)}; {SENTENCEPIECE_HINT}") \
            from err
    except (OSError, ValueError, EnvironmentError) as err:
        if not os.path.exists(os.path.join(directory, "config.json")):
            raise without_config(f"the {what}", directory) from err
        # transformers 5 fails on the tokenizer files of a config.json without a model_type with a vaguer message
        model_config(directory)
        raise ModelLoadError(f"cannot load the {what} from {directory!r}: {first_line(err, limit=300)}") from err
