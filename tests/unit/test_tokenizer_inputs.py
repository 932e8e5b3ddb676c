"""The inputs a loaded tokenizer gives are the ones the checkpoint's architecture takes.

transformers 5's ALBERT tokenizer dropped token_type_ids from its model_input_names (4.x listed them), so without
qaexp's correction an ALBERT model would see every token as segment 0 instead of question 0 / context 1, as it
was pretrained. The tokenizer here is a real Unigram (SentencePiece-style) tokenizer trained on the spot and saved
as an AlbertTokenizer, then loaded the way a run loads a checkpoint's tokenizer."""
import json

import numpy as np
from omegaconf import OmegaConf

TEXTS = ["who won the game in denver", "the broncos won the super bowl in santa clara"] * 20


def unigram_checkpoint(directory, model_type: str):
    """A checkpoint directory whose tokenizer is a trained Unigram AlbertTokenizer and whose config.json names
    `model_type`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AlbertTokenizer

    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer, backend.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    backend.train_from_iterator(TEXTS, trainers.UnigramTrainer(
        vocab_size=60, special_tokens=["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], unk_token="<unk>"))
    cls, sep = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    AlbertTokenizer(tokenizer_object=backend).save_pretrained(str(directory))
    (directory / "config.json").write_text(json.dumps({"model_type": model_type, "vocab_size": 60}))
    return directory


def load(directory):
    from qaexp.model.build import build_tokenizer

    return build_tokenizer(OmegaConf.create({"checkpoint": str(directory), "revision": None,
                                             "padding_side": "right", "trust_remote_code": False}))


def context_segments(tokenizer) -> np.ndarray:
    from qaexp.data.windows import tokenize_windows

    context = "the broncos won the game in santa clara"
    record = {"id": "1", "question": "who won", "context": context,
              "answers": {"text": ["broncos"], "answer_start": [context.index("broncos")]}}
    windows = tokenize_windows([record], tokenizer, 32, 8, progress=False)
    assert "token_type_ids" in windows.inputs, sorted(windows.inputs)
    return np.asarray(windows.inputs["token_type_ids"][0])  # the first window


def test_an_albert_checkpoints_windows_carry_the_context_segment(tmp_path):
    tokenizer = load(unigram_checkpoint(tmp_path / "albert", "albert"))
    segments = context_segments(tokenizer)
    # [CLS] question [SEP] are segment 0, the context and its [SEP] segment 1
    first_context = int(np.argmax(segments))
    assert segments[0] == 0 and first_context > 2 and (segments[first_context:] == 1).all()


def test_the_segment_inputs_survive_saving_the_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = load(unigram_checkpoint(tmp_path / "albert", "albert"))
    tokenizer.save_pretrained(str(tmp_path / "saved"))
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path / "saved"))  # as a saved model's tokenizer is read back
    assert "token_type_ids" in reloaded.model_input_names
    assert (context_segments(reloaded) == context_segments(tokenizer)).all()


def test_an_architecture_without_token_types_gets_none_added(tmp_path):
    tokenizer = load(unigram_checkpoint(tmp_path / "roberta", "roberta"))  # RoBERTa takes no token_type_ids
    names = list(tokenizer.model_input_names)
    from transformers import AlbertTokenizer

    assert names == list(AlbertTokenizer.model_input_names)


def test_a_model_type_qaexp_has_no_family_for_leaves_the_tokenizer_alone(tmp_path):
    directory = unigram_checkpoint(tmp_path / "other", "no-such-family")
    from transformers import AlbertTokenizer

    assert list(load(directory).model_input_names) == list(AlbertTokenizer.model_input_names)
