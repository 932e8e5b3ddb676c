"""A Hugging Face hub cache laid out exactly as huggingface_hub 0.36 writes it, holding small random models.

Layout (huggingface_hub/file_download.py: `repo_folder_name`, `_cache_commit_hash_for_specific_revision`,
`_create_symlink`, `_get_pointer_path`)::

    HF_HOME/hub/models--ORG--NAME/
        refs/main                      the 40-hex commit of the branch, no newline
        blobs/<etag>                   file bytes; etag = sha256 for LFS files, the git blob sha1 otherwise
        snapshots/<commit>/<filename>  relative symlink to ../../blobs/<etag>

Every hub entry of conf/model/*.yaml (a `checkpoint` that is neither null nor `pkg:...`) gets a repo whose
files are those of the real one: a checkpoint of the entry's `family` (the transformers model_type: right
architecture, 2 layers, hidden 32, every tensor drawn from a seeded NumPy generator, so no tensor is zero or a
library default) and a tokenizer of the real kind trained here on synthetic text:

    family        tokenizer                                 weight files
    bert          WordPiece vocab.txt + tokenizer.json      model.safetensors (PyTorch format) + tf_model.h5
    distilbert    WordPiece vocab.txt + tokenizer.json      model.safetensors + tf_model.h5
    electra       WordPiece (uncased)                       model.safetensors + tf_model.h5
    roberta       byte-level BPE vocab.json + merges.txt    model.safetensors + tf_model.h5
    xlm-roberta   SentencePiece sentencepiece.bpe.model     model.safetensors + tf_model.h5
    albert        SentencePiece spiece.model (uncased)      model.safetensors + tf_model.h5
    deberta-v2    SentencePiece spm.model, NO tokenizer.json tf_model.h5 + pytorch_model.bin placeholder
    modernbert    byte-level BPE tokenizer.json only        model.safetensors (no TF class ever existed)
                  (answerdotai/ModernBERT-*), or Gemma-style
                  BPE with byte fallback (jhu-clsp/mmBERT-*)

A family's usual tokenizer can differ by checkpoint (CHECKPOINT_TOKENIZERS): mmBERT is model_type modernbert with
Gemma 2's tokenizer, so its entries get their own built source.

The checkpoints are base (pretraining) checkpoints, not QA models: encoder tensors under the base prefix
(`bert.`, `roberta.`, `deberta.`, `model.`, ...), the pretraining head (`cls.predictions.*`, `lm_head.*`,
`discriminator_predictions.*`, `predictions.*`, `vocab_transform`/`vocab_projector`, ModernBERT's `head.*` and
`decoder.bias`) and, where the real
checkpoints have one, the pooler; no `qa_outputs`. No TensorFlow model class and no torch builds them: the
encoder's PyTorch names and shapes come from qaexp's own Keras 3 model of the family
(`qaexp.model.families.build_qa_model` + `export_weights`), the values from NumPy, and each file is written
from those tensors: model.safetensors by hand, tf_model.h5 with h5py in the layout TF `save_pretrained`
(tf-keras `save_weights`) wrote for the family's `TF...ForMaskedLM` / `TFElectraForPreTraining` (learnt from
transformers 4.57; tests/hub/test_tf_h5.py compares the two while transformers still has TF classes).
transformers is used only for config.json and the tokenizers, which transformers 5 still has.

Nothing here is a test. tests/conftest.py loads this module as a pytest plugin (`pytest_plugins`), so its
session fixtures `hub_build` / `hub_home` reach every test that names them; tests import its functions.
"""
from __future__ import annotations

import hashlib
import heapq
import http.server
import io
import json
import os
import pathlib
import shutil
import struct
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import pytest
import yaml

from helpers.repo import REPO
from helpers.shared_runs import once_per_session

MODEL_CONF = REPO / "conf" / "model"

# ---- which tokenizer and weights each family has ------------------------------------------------------

# Pretraining-head tensors {PyTorch name: shape} of a family's checkpoint, as a function of (hidden size,
# embedding size, vocabulary size). The names are those the real hub checkpoints (and transformers' TF
# pretraining classes) have; qaexp's loaders must leave them unused.
HeadShapes = Callable[[int, int, int], dict]


def _mlm_transform_head(prefix: str) -> HeadShapes:  # BERT's and DeBERTa's `cls.predictions`
    return lambda h, e, v: {f"{prefix}.bias": (v,), f"{prefix}.transform.dense.weight": (h, h),
                            f"{prefix}.transform.dense.bias": (h,), f"{prefix}.transform.LayerNorm.weight": (h,),
                            f"{prefix}.transform.LayerNorm.bias": (h,)}


def _roberta_head(h, e, v):
    return {"lm_head.bias": (v,), "lm_head.dense.weight": (h, h), "lm_head.dense.bias": (h,),
            "lm_head.layer_norm.weight": (h,), "lm_head.layer_norm.bias": (h,)}


def _distilbert_head(h, e, v):
    return {"vocab_transform.weight": (h, h), "vocab_transform.bias": (h,), "vocab_layer_norm.weight": (h,),
            "vocab_layer_norm.bias": (h,), "vocab_projector.bias": (v,)}


def _electra_head(h, e, v):  # the discriminator's replaced-token detection head
    return {"discriminator_predictions.dense.weight": (h, h), "discriminator_predictions.dense.bias": (h,),
            "discriminator_predictions.dense_prediction.weight": (1, h),
            "discriminator_predictions.dense_prediction.bias": (1,)}


def _albert_head(h, e, v):  # ALBERT's MLM head projects back to the factorised embedding size
    return {"predictions.bias": (v,), "predictions.dense.weight": (e, h), "predictions.dense.bias": (e,),
            "predictions.LayerNorm.weight": (e,), "predictions.LayerNorm.bias": (e,), "predictions.decoder.bias": (v,)}


def _modernbert_head(h, e, v):
    # ModernBertForMaskedLM: `head.{dense,norm}` (bias-free in the released configs) and the decoder's bias; the
    # decoder weight is the tied embedding table, which the saved file holds once (as the encoder's). A QA model
    # of the family has the same `head` (transformers' ModernBertForQuestionAnswering), so it loads these two.
    return {"head.dense.weight": (h, h), "head.norm.weight": (h,), "decoder.bias": (v,)}


def _pooler(name: str) -> HeadShapes:  # bert-base-*, roberta-*, xlm-roberta-*, albert-*: a pooler no QA model uses
    return lambda h, e, v: {f"{name}.weight": (h, h), f"{name}.bias": (h,)}


@dataclass(frozen=True)
class Family:
    tokenizer: str  # wordpiece | byte_bpe | spm_xlmr | spm_albert | spm_deberta (gemma_bpe: CHECKPOINT_TOKENIZERS)
    architecture: str  # config.json's `architectures` on the hub (the PyTorch pretraining class)
    tf_scope: str  # the scope TF `save_pretrained` named weights with: the TF pretraining class, snake-cased
    heads: tuple[HeadShapes, ...]  # pretraining head and pooler tensors beside the encoder's
    weights: tuple[str, ...]  # weight files of the real hub repo
    uncased: bool = False  # the family's vocabulary is lower-cased whatever the repo id says
    fast_class: str = ""  # transformers fast tokenizer class used to write tokenizer.json (see tokenizer_class)
    # TF layer names that differ from the PyTorch module's: BERT's MLM head is the TF layer `mlm___cls`
    tf_layers: Mapping[str, str] = field(default_factory=dict)
    # TF layers that also list another layer's weights in tf_model.h5: each MLM head's output layer holds the
    # embedding layer it is tied to, so tf-keras saves that layer's weights again under the head's group
    tf_shared: Mapping[str, str] = field(default_factory=dict)


FAMILIES = {
    "bert": Family("wordpiece", "BertForMaskedLM", "tf_bert_for_masked_lm",
                   (_mlm_transform_head("cls.predictions"), _pooler("bert.pooler.dense")),
                   ("model.safetensors", "tf_model.h5"), fast_class="BertTokenizerFast",
                   tf_layers={"cls": "mlm___cls"}, tf_shared={"mlm___cls": "bert.embeddings."}),
    "distilbert": Family("wordpiece", "DistilBertForMaskedLM", "tf_distil_bert_for_masked_lm", (_distilbert_head,),
                         ("model.safetensors", "tf_model.h5"), fast_class="DistilBertTokenizerFast",
                         tf_shared={"vocab_projector": "distilbert.embeddings."}),
    "electra": Family("wordpiece", "ElectraForPreTraining", "tf_electra_for_pre_training", (_electra_head,),
                      ("model.safetensors", "tf_model.h5"), uncased=True, fast_class="ElectraTokenizerFast"),
    "roberta": Family("byte_bpe", "RobertaForMaskedLM", "tf_roberta_for_masked_lm",
                      (_roberta_head, _pooler("roberta.pooler.dense")), ("model.safetensors", "tf_model.h5"),
                      fast_class="RobertaTokenizerFast", tf_shared={"lm_head": "roberta.embeddings."}),
    "xlm-roberta": Family("spm_xlmr", "XLMRobertaForMaskedLM", "tfxlm_roberta_for_masked_lm",
                          (_roberta_head, _pooler("roberta.pooler.dense")), ("model.safetensors", "tf_model.h5"),
                          fast_class="XLMRobertaTokenizerFast", tf_shared={"lm_head": "roberta.embeddings."}),
    "albert": Family("spm_albert", "AlbertForMaskedLM", "tf_albert_for_masked_lm",
                     (_albert_head, _pooler("albert.pooler")), ("model.safetensors", "tf_model.h5"), uncased=True,
                     fast_class="AlbertTokenizerFast", tf_shared={"predictions": "albert.embeddings."}),
    # microsoft/deberta-v3-*: tf_model.h5 and pytorch_model.bin, no safetensors, no tokenizer.json.
    "deberta-v2": Family("spm_deberta", "DebertaV2ForMaskedLM", "tf_deberta_v2_for_masked_lm",
                         (_mlm_transform_head("cls.predictions"),), ("tf_model.h5", "pytorch_model.bin"),
                         fast_class="DebertaV2TokenizerFast", tf_shared={"cls": "deberta.embeddings."}),
    # answerdotai/ModernBERT-*: model.safetensors only (transformers never had a TF ModernBERT: no tf_model.h5;
    # tf_scope only names the layout the h5 reader tests write). transformers 5 loads every modernbert repo's
    # tokenizer.json with its generic tokenizers-backed class, whatever tokenizer_config.json names.
    "modernbert": Family("byte_bpe", "ModernBertForMaskedLM", "tf_modern_bert_for_masked_lm", (_modernbert_head,),
                         ("model.safetensors",), fast_class="PreTrainedTokenizerFast"),
}

# Checkpoints whose tokenizer is not their family's usual one: {repo id prefix: tokenizer kind}.
CHECKPOINT_TOKENIZERS = {"jhu-clsp/mmBERT-": "gemma_bpe"}  # mmBERT: ModernBERT with Gemma 2's tokenizer
# Families whose real repos ship tf_model.h5 (the h5 format tests apply to them only).
H5_FAMILIES = [name for name, spec in FAMILIES.items() if "tf_model.h5" in spec.weights]

# Tokenizer kinds of the label-recovery test: (kind, uncased, a family that uses it).
TOKENIZER_KINDS = {
    "wordpiece-cased": ("wordpiece", False, "bert"),
    "wordpiece-uncased": ("wordpiece", True, "bert"),
    "byte-level-bpe": ("byte_bpe", False, "roberta"),
    "sentencepiece-albert": ("spm_albert", True, "albert"),
    "sentencepiece-deberta-v3": ("spm_deberta", False, "deberta-v2"),
    "sentencepiece-xlm-r": ("spm_xlmr", False, "xlm-roberta"),
    "byte-level-bpe-modernbert": ("byte_bpe", False, "modernbert"),  # [CLS]/[SEP] template, offsets untrimmed
    "gemma-bpe-mmbert": ("gemma_bpe", False, "modernbert"),  # "▁" for spaces, byte fallback, no pre-tokenizer
}

HIDDEN, LAYERS, HEADS, INTERMEDIATE = 32, 2, 2, 64
# A placeholder where the real repo has pytorch_model.bin: qaexp never reads it (it cannot without torch), and a
# pickle-free byte string makes any attempt to read it fail loudly instead of loading something.
PYTORCH_BIN_PLACEHOLDER = b"not a real pytorch_model.bin: a placeholder written by tests/helpers/hub_cache.py\n"


@dataclass(frozen=True)
class Entry:
    """One hub model of the model group: conf/model/<name>.yaml."""

    name: str
    checkpoint: str
    family: str
    uncased: bool
    tokenizer: str = ""  # the tokenizer kind where it is not the family's usual one (CHECKPOINT_TOKENIZERS)

    @property
    def source_key(self) -> str:  # entries with the same key share one built model and tokenizer
        kind = f"{self.tokenizer}-" if self.tokenizer else ""
        return f"{self.family}-{kind}{'uncased' if self.uncased else 'cased'}"

    @property
    def tokenizer_kind(self) -> str:
        return self.tokenizer or FAMILIES[self.family].tokenizer


def hub_entries(conf_dir: pathlib.Path = MODEL_CONF) -> list[Entry]:
    """Every entry of the model group that names a hub checkpoint; an unknown family is an error."""
    entries = []
    for path in sorted(conf_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        checkpoint = data.get("checkpoint")
        if not checkpoint or str(checkpoint).startswith("pkg:"):
            continue
        family = data.get("family")
        if family not in FAMILIES:
            raise ValueError(f"{path.name}: family {family!r} has no test model in tests/helpers/hub_cache.py "
                             f"(known: {', '.join(sorted(FAMILIES))}); add it to FAMILIES")
        uncased = bool(data.get("lowercase")) or "uncased" in checkpoint.lower() or FAMILIES[family].uncased
        tokenizer = next((kind for prefix, kind in CHECKPOINT_TOKENIZERS.items() if checkpoint.startswith(prefix)), "")
        entries.append(Entry(path.stem, checkpoint, family, uncased, tokenizer))
    return entries


# ---- the cache writer -----------------------------------------------------------------------------------

# Files the hub stores in git-LFS (its default .gitattributes): their etag, and blob name, is the sha256.
LFS_SUFFIXES = (".bin", ".h5", ".safetensors", ".model", ".msgpack", ".ot", ".onnx", ".pt", ".pth")
LFS_SIZE = 10 * 1024 * 1024  # the hub stores larger files in LFS whatever their name


def blob_name(filename: str, data: bytes) -> str:
    if filename.endswith(LFS_SUFFIXES) or len(data) > LFS_SIZE:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's object id of a regular file


class HubCache:
    """Writes repos into HF_HOME/hub the way huggingface_hub's downloads leave them."""

    def __init__(self, hf_home: os.PathLike):
        self.home = pathlib.Path(hf_home)
        self.cache = self.home / "hub"

    def repo_folder(self, repo_id: str) -> pathlib.Path:
        return self.cache / "--".join(["models", *repo_id.split("/")])

    def add_snapshot(self, repo_id: str, files: Mapping[str, bytes], ref: str | None = "main",
                     commit: str | None = None) -> pathlib.Path:
        """One commit of `repo_id` holding `files` (name -> bytes); `ref` (a branch) points at it. Returns the
        snapshot directory."""
        folder = self.repo_folder(repo_id)
        if commit is None:
            digest = hashlib.sha1(repo_id.encode())
            for name in sorted(files):
                digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
            commit = digest.hexdigest()
        assert len(commit) == 40 and all(c in "0123456789abcdef" for c in commit), commit
        snapshot = folder / "snapshots" / commit
        for name, data in files.items():
            blob = folder / "blobs" / blob_name(name, data)
            blob.parent.mkdir(parents=True, exist_ok=True)
            if not blob.exists():
                blob.write_bytes(data)
            pointer = snapshot / name
            pointer.parent.mkdir(parents=True, exist_ok=True)
            if pointer.is_symlink() or pointer.exists():
                pointer.unlink()
            os.symlink(os.path.relpath(blob, pointer.parent), pointer)
        snapshot.mkdir(parents=True, exist_ok=True)
        if ref is not None:  # a branch, a tag, or a hub PR ref such as refs/pr/1 (stored as refs/refs/pr/1)
            (folder / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
            (folder / "refs" / ref).write_text(commit)  # huggingface_hub writes the bare hash, no newline
        return snapshot


def read_dir(directory: os.PathLike, names: Iterable[str] | None = None) -> dict[str, bytes]:
    directory = pathlib.Path(directory)
    names = sorted(p.name for p in directory.iterdir()) if names is None else names
    return {name: (directory / name).read_bytes() for name in names}


# ---- text to train tokenizers on ------------------------------------------------------------------------


def synthetic_texts(n: int = 600) -> list[str]:
    """Contexts and questions of qaexp's synthetic data (train and validation entities), offline and fixed."""
    from qaexp.data.synthetic import generate_examples

    texts = []
    for split in ("train", "validation"):
        for record in generate_examples(n, split=split):
            texts += [record["context"], record["question"]]
    return texts


# ---- tokenizers of the real kinds, trained deterministically --------------------------------------------


def _wordpiece_vocab(texts: Iterable[str], uncased: bool, size: int) -> list[str]:
    """BERT-style vocab.txt lines: special tokens, every character (word-initial and ##), then the most useful
    whole words and word pieces by frequency x length (ties by string): deterministic, unlike the `tokenizers`
    trainer, which breaks ties in hash order."""
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=uncased, strip_accents=uncased or None)
    pre = pre_tokenizers.BertPreTokenizer()
    words = Counter()
    for text in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = special + chars + ["##" + c for c in chars]
    pieces = Counter()
    for word, count in words.items():
        if len(word) > 1:
            pieces[word] += count * len(word)
        for start in range(1, len(word) - 1):
            for length in (2, 3, 4):
                if start + length <= len(word):
                    pieces["##" + word[start:start + length]] += count * length
        for length in (2, 3, 4, 5):
            if length < len(word):
                pieces[word[:length]] += count * length
    known = set(vocab)
    ranked = sorted((p for p in pieces if p not in known), key=lambda p: (-pieces[p], p))
    return vocab + ranked[: max(0, size - len(vocab))]


def _byte_level_merges(texts: Iterable[str], merges_wanted: int) -> list[tuple[str, str]]:
    """BPE merges over words pre-tokenised by tokenizers' ByteLevel pre-tokenizer (GPT-2, RoBERTa, OLMo)."""
    from tokenizers import pre_tokenizers

    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    counts = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(text))
    return _learn_merges(counts, merges_wanted)


def _learn_merges(counts: Counter, merges_wanted: int) -> list[tuple[str, str]]:
    """BPE merges learnt from {word: count} (each word starts as its characters) with a deterministic tie-break
    (the most frequent pair, then the smallest pair), unlike the `tokenizers` trainer's hash order."""
    words = [list(w) for w in sorted(counts)]
    freq = [counts[w] for w in sorted(counts)]
    pairs: Counter = Counter()
    where: dict = defaultdict(set)
    for i, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:]):
            pairs[pair] += freq[i]
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in pairs.items()]
    heapq.heapify(heap)
    merges = []
    while heap and len(merges) < merges_wanted:
        negative, pair = heapq.heappop(heap)
        if pairs.get(pair, 0) != -negative or -negative < 2:
            continue  # stale entry (its count changed since it was pushed), or nothing left worth merging
        merges.append(pair)
        merged = pair[0] + pair[1]
        changed = set()
        for i in sorted(where.pop(pair, ())):
            symbols = words[i]
            for old in zip(symbols, symbols[1:]):
                pairs[old] -= freq[i]
                changed.add(old)
            out, k = [], 0
            while k < len(symbols):
                if k + 1 < len(symbols) and (symbols[k], symbols[k + 1]) == pair:
                    out.append(merged)
                    k += 2
                else:
                    out.append(symbols[k])
                    k += 1
            words[i] = out
            for new in zip(out, out[1:]):
                pairs[new] += freq[i]
                where[new].add(i)
                changed.add(new)
        pairs.pop(pair, None)
        for p in changed:
            if pairs.get(p, 0) > 0:
                heapq.heappush(heap, (-pairs[p], p))
    return merges


def _byte_bpe(texts: Iterable[str], merges_wanted: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """GPT-2/RoBERTa byte-level BPE (vocab.json, merges.txt) with RoBERTa's special tokens."""
    from tokenizers import pre_tokenizers

    merges = _byte_level_merges(texts, merges_wanted)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = ["<s>", "<pad>", "</s>", "<unk>"] + alphabet + [a + b for a, b in merges]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    vocab["<mask>"] = len(vocab)  # last, as in roberta-base (50264)
    return vocab, merges


SPM_OPTIONS = {
    # pieces 0-2 are <unk> <s> </s>; transformers' converter shifts them by fairseq's offset (+<pad>, +<mask>)
    "spm_xlmr": dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1),
    # ALBERT: <pad>=0 <unk>=1 [CLS]=2 [SEP]=3 [MASK]=4, trained on lower-cased text
    "spm_albert": dict(pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"]),
    # DeBERTa-v3: [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3; [MASK] is added by the tokenizer after the last piece
    "spm_deberta": dict(pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
                        eos_piece="[SEP]", unk_piece="[UNK]"),
}
SPM_FILE = {"spm_xlmr": "sentencepiece.bpe.model", "spm_albert": "spiece.model", "spm_deberta": "spm.model"}


def _sentencepiece(texts: list[str], kind: str, size: int) -> bytes:
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=buffer, vocab_size=size,
                                   model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
                                   num_threads=1, minloglevel=2, **SPM_OPTIONS[kind])
    return buffer.getvalue()


def _modernbert_tokenizer(texts: list[str], size: int):
    """answerdotai/ModernBERT-*'s tokenizer.json: OLMo's byte-level BPE (NFC, the ByteLevel pre-tokenizer without a
    prefix space, GPT-NeoX's <|endoftext|> and <|padding|> first) with BERT's special tokens appended ([MASK]
    taking the space before it) and a `[CLS] A [SEP] B [SEP]` template. A template post-processor does not trim
    offsets as RoBERTa's ByteLevel one does: a word's token covers the space before it ("ĠVelmont")."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    merges = _byte_level_merges(texts, size)
    tokens = ["<|endoftext|>", "<|padding|>", *sorted(pre_tokenizers.ByteLevel.alphabet()),
              *(a + b for a, b in merges), *MODERNBERT_SPECIAL]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A:0 [SEP]", pair="[CLS] $A:0 [SEP] $B:0 [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer.add_special_tokens([AddedToken("<|endoftext|>", special=True), AddedToken("<|padding|>", special=True),
                                  *(AddedToken(t, special=True, lstrip=t == "[MASK]") for t in MODERNBERT_SPECIAL)])
    return tokenizer


def _gemma_tokenizer(texts: list[str], size: int):
    """jhu-clsp/mmBERT-*'s tokenizer.json, Gemma 2's kind: BPE learnt on SentencePiece-style pieces (a space is
    "▁", marking the start of the next piece; no prefix space), run on the whole normalised text (no
    pre-tokenizer), characters outside the vocabulary as byte tokens <0xNN> (byte fallback); special tokens
    <pad> <eos> <bos> <unk> <mask> first, as in Gemma's vocabulary; `<bos> A <eos> B <eos>` around a pair
    (mmBERT's exact pair template: unconfirmed)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    pieces = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    counts = Counter()
    for text in texts:
        counts.update(w for w, _ in pieces.pre_tokenize_str(text))
    merges = _learn_merges(counts, size)
    tokens = [*GEMMA_SPECIAL, *(f"<0x{b:02X}>" for b in range(256)), *sorted({c for w in counts for c in w}),
              *(a + b for a, b in merges)]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A:0 <eos>", pair="<bos> $A:0 <eos> $B:0 <eos>",
        special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])])
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in GEMMA_SPECIAL])
    return tokenizer


MODERNBERT_SPECIAL = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
GEMMA_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
# tokenizer_config.json and special_tokens_map.json of the two tokenizer.json-only kinds. Both repos' configs
# allow 8,192 tokens; mmBERT's tokenizer_class is unconfirmed (transformers 5 ignores it for model_type modernbert).
TOKENIZER_JSON_KINDS = {
    "byte_bpe_modernbert": (_modernbert_tokenizer, dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                                        mask_token="[MASK]", unk_token="[UNK]")),
    "gemma_bpe": (_gemma_tokenizer, dict(bos_token="<bos>", eos_token="<eos>", cls_token="<bos>", sep_token="<eos>",
                                         pad_token="<pad>", mask_token="<mask>", unk_token="<unk>")),
}


def _write_tokenizer_json(kind: str, texts: list[str], directory: pathlib.Path, size: int) -> list[str]:
    build, special = TOKENIZER_JSON_KINDS[kind]
    build(texts, size).save(str(directory / "tokenizer.json"))
    config = {**special, "clean_up_tokenization_spaces": True, "model_input_names": ["input_ids", "attention_mask"],
              "model_max_length": 8192, "tokenizer_class": "PreTrainedTokenizerFast"}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2, sort_keys=True))
    return ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def tokenizer_class(family: str) -> type:
    """The fast (tokenizers-backed) tokenizer class of `family`. transformers 5 keeps the `...TokenizerFast` names
    as aliases of its tokenizers-backed `...Tokenizer` classes (ELECTRA's is BertTokenizer), so the same name
    gives the right class in 4.x and 5."""
    import transformers

    return getattr(transformers, FAMILIES[family].fast_class)


def write_tokenizer(kind: str, texts: list[str], directory: os.PathLike, uncased: bool = False,
                    family: str | None = None, size: int = 800) -> dict[str, bytes]:
    """Train a tokenizer of `kind` on `texts` and write the files the real hub repo of `family` has into
    `directory`. Returns them (name -> bytes)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    family = family or next(f for f, spec in FAMILIES.items() if spec.tokenizer == kind)
    fast_class = tokenizer_class(family)
    if kind == "byte_bpe" and family == "modernbert" or kind == "gemma_bpe":
        # the repo holds tokenizer.json as its tokenizer (no vocab.json / merges.txt / SentencePiece model)
        kind = "byte_bpe_modernbert" if kind == "byte_bpe" else kind
        return read_dir(directory, _write_tokenizer_json(kind, texts, directory, size))
    work = directory / ".work"
    work.mkdir(exist_ok=True)
    if kind == "wordpiece":
        (directory / "vocab.txt").write_text("\n".join(_wordpiece_vocab(texts, uncased, size)) + "\n",
                                             encoding="utf-8")
        # tokenizer_config.json as on the hub (bert-base-cased: do_lower_case false). Without it the fast class
        # would apply its default do_lower_case=True and lower-case a cased model's input.
        (directory / "tokenizer_config.json").write_text(
            json.dumps({"do_lower_case": uncased, "model_max_length": 512}))
        names = ["vocab.txt", "tokenizer.json", "tokenizer_config.json"]
    elif kind == "byte_bpe":
        vocab, merges = _byte_bpe(texts, size)
        (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
                                              encoding="utf-8")
        names = ["vocab.json", "merges.txt", "tokenizer.json"]  # roberta-base has no tokenizer_config.json
    elif kind in SPM_FILE:
        spm_name = SPM_FILE[kind]
        train_texts = [t.lower() for t in texts] if uncased else texts
        (directory / spm_name).write_bytes(_sentencepiece(train_texts, kind, size))
        if kind == "spm_deberta":
            # microsoft/deberta-v3-base: spm.model + tokenizer_config.json, no tokenizer.json: the fast tokenizer
            # is converted from SentencePiece when it is loaded.
            (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False,
                                                                         "vocab_type": "spm"}))
            names = [spm_name, "tokenizer_config.json"]
        else:
            names = [spm_name, "tokenizer.json"]  # albert-base-v2, xlm-roberta-base: no tokenizer_config.json
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    # Loaded from the files just written, as transformers loads a hub repo without tokenizer.json: the fast
    # tokenizer is converted from them (the constructors changed in transformers 5: vocab= instead of vocab_file=;
    # from_pretrained reads the same files in 4.x and 5).
    (directory / "tokenizer.json").unlink(missing_ok=True)  # a stale one would be loaded instead of the files
    fast = fast_class.from_pretrained(str(directory))
    fast.save_pretrained(str(work))
    if "tokenizer.json" in names:
        shutil.copyfile(work / "tokenizer.json", directory / "tokenizer.json")
    shutil.rmtree(work)
    return read_dir(directory, names)


# ---- models ---------------------------------------------------------------------------------------------


def model_config(family: str, vocab_size: int, special: Mapping[str, int]):
    """A small config of `family` with the real model's structural choices (RoBERTa's 514 positions, ALBERT's
    factorised embedding, ELECTRA's embedding projection, DeBERTa-v3's relative attention, ...)."""
    from transformers import AutoConfig

    common = dict(vocab_size=vocab_size, num_attention_heads=HEADS, hidden_act="gelu",
                  pad_token_id=special.get("pad", 0))
    sizes = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, intermediate_size=INTERMEDIATE,
                 max_position_embeddings=512)
    if family == "bert":
        config = AutoConfig.for_model("bert", **common, **sizes, type_vocab_size=2)
    elif family == "distilbert":
        config = AutoConfig.for_model("distilbert", vocab_size=vocab_size, dim=HIDDEN, n_layers=LAYERS,
                                      n_heads=HEADS, hidden_dim=INTERMEDIATE, max_position_embeddings=512,
                                      pad_token_id=special.get("pad", 0))
    elif family == "electra":
        config = AutoConfig.for_model("electra", **common, **sizes, embedding_size=16, type_vocab_size=2)
    elif family in ("roberta", "xlm-roberta"):
        config = AutoConfig.for_model(family, **common, **{**sizes, "max_position_embeddings": 514},
                                      type_vocab_size=1, bos_token_id=special["bos"], eos_token_id=special["eos"])
    elif family == "albert":
        config = AutoConfig.for_model("albert", **common, **sizes, embedding_size=16, type_vocab_size=2,
                                      bos_token_id=special["bos"], eos_token_id=special["eos"])
    elif family == "deberta-v2":  # microsoft/deberta-v3-base's config.json, scaled down
        config = AutoConfig.for_model("deberta-v2", **common, **sizes, relative_attention=True,
                                      position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
                                      pos_att_type=["p2c", "c2p"], max_relative_positions=-1,
                                      position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7)
    elif family == "modernbert":  # answerdotai/ModernBERT-base's config.json, scaled down (8,192 positions: rotary)
        config = AutoConfig.for_model("modernbert", vocab_size=vocab_size, hidden_size=HIDDEN,
                                      num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                      intermediate_size=INTERMEDIATE, max_position_embeddings=8192,
                                      hidden_activation="gelu", pad_token_id=special.get("pad", 0),
                                      bos_token_id=special.get("bos"), cls_token_id=special.get("bos"),
                                      eos_token_id=special.get("eos"), sep_token_id=special.get("eos"),
                                      global_attn_every_n_layers=3, local_attention=128, global_rope_theta=160000.0,
                                      local_rope_theta=10000.0)
    else:
        raise ValueError(f"no test model for family {family!r}")
    config.architectures = [FAMILIES[family].architecture]  # what the hub's config.json says
    return config


def is_norm(name: str) -> bool:
    """Whether a PyTorch tensor name belongs to a LayerNorm (LayerNorm, layer_norm, sa_layer_norm, ...)."""
    module = name.rsplit(".", 2)[-2]
    return module.endswith("LayerNorm") or module.endswith("layer_norm")


def random_tensor(rng: np.random.Generator, name: str, shape: tuple) -> np.ndarray:
    """Fresh values: none zero or equal to a library initialiser's output (LayerNorm scales around 1), so a
    weight that is not loaded cannot pass for a loaded one."""
    values = rng.normal(0.0, 0.05, size=shape).astype(np.float32)
    return values + np.float32(1.0) if is_norm(name) and name.endswith(".weight") else values


def pretraining_tensors(family: str, config, seed: int) -> dict[str, np.ndarray]:
    """{PyTorch name: float32 array} of a base checkpoint of `family`: the encoder's tensors (names and shapes of
    qaexp's Keras 3 model of the family, its `qa_outputs` dropped: a base checkpoint has no QA head), then the
    family's pretraining head and pooler, every value from a NumPy generator seeded by `seed`."""
    from qaexp.model.families import build_qa_model
    from qaexp.model.families.weights import HEAD_PREFIXES, export_weights

    config = config if isinstance(config, dict) else config.to_dict()
    shapes = {name: array.shape for name, array in export_weights(build_qa_model(config)).items()
              if not name.startswith(HEAD_PREFIXES)}
    hidden = config.get("hidden_size", config.get("dim"))
    embedding = config.get("embedding_size", hidden)
    for head in FAMILIES[family].heads:
        shapes.update(head(hidden, embedding, config["vocab_size"]))
    return tensors_of_shapes(shapes, seed)


def tensors_of_shapes(shapes: Mapping[str, tuple], seed: int) -> dict[str, np.ndarray]:
    """{name: float32 array of that shape}, every value from a NumPy generator seeded by `seed`: another checkpoint
    of the same model is `tensors_of_shapes({n: t.shape for n, t in tensors.items()}, other_seed)`, without
    building the model again for its shapes."""
    rng = np.random.default_rng(seed)
    return {name: random_tensor(rng, name, tuple(shape)) for name, shape in shapes.items()}


def legacy_layer_norm_names(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`tensors` with LayerNorm.weight / LayerNorm.bias renamed LayerNorm.gamma / LayerNorm.beta, as in checkpoints
    converted from the original TF BERT (google-bert/bert-base-uncased's files still use them; transformers renames
    them when loading)."""
    return {name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): value
            for name, value in tensors.items()}


def tf_weight_name(family: str, name: str, ndim: int) -> tuple[str, str, bool]:
    """(TF layer, TF weight name, whether the array is stored transposed) that TF `save_pretrained` gives the
    PyTorch tensor `name`: the inverse of `qaexp.model.tf_h5.pytorch_name`, with the TF layers' own naming of
    embedding tables (`word_embeddings/weight`, `position_embeddings/embeddings`, DeBERTa's one-part
    `rel_embeddings.weight`)."""
    spec = FAMILIES[family]
    parts: list[str] = []
    for part in name.split("."):
        if part.isdigit():  # a ModuleList index: TF named the sublayer `layer_._0`
            parts[-1] += f"_._{part}"
        else:
            parts.append(part)
    parts[0] = spec.tf_layers.get(parts[0], parts[0])
    module, leaf = parts[-2], parts[-1]
    transpose = False
    if is_norm(name):
        parts[-1] = {"weight": "gamma", "bias": "beta"}[leaf]
    elif leaf == "weight" and module == "rel_embeddings":
        parts[-2:] = ["rel_embeddings.weight"]
    elif leaf == "weight" and module.endswith("_embeddings") and module != "word_embeddings":
        parts[-1] = "embeddings"
    elif leaf == "weight" and module != "word_embeddings" and ndim == 2:
        parts[-1], transpose = "kernel", True
    return parts[0], f"{spec.tf_scope}/{'/'.join(parts)}:0", transpose


# ---- weight files ---------------------------------------------------------------------------------------

SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}



def float32_to_bfloat16_bits(array: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) of float32 values, rounded to nearest even (as torch's .to(bfloat16))."""
    bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def safetensors_bytes(tensors: Mapping[str, np.ndarray], dtype: str = "F32") -> bytes:
    """A safetensors file written by hand (8-byte little-endian header length, JSON header, data), with every
    float tensor stored as `dtype` (F32, F16 or BF16) and metadata format=pt, as PyTorch's save_file writes."""
    header: dict = {"__metadata__": {"format": "pt"}}
    chunks, offset = [], 0
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        if array.dtype.kind == "f":
            stored = dtype
            raw = (float32_to_bfloat16_bits(array) if dtype == "BF16"
                   else np.ascontiguousarray(array, dtype=SAFETENSORS_DTYPES[dtype])).tobytes()
        else:
            stored = {np.dtype(np.int64): "I64", np.dtype(np.int32): "I32"}[array.dtype]
            raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": stored, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # safetensors pads the header to 8 bytes with spaces
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks)


def safetensors_header(path: os.PathLike) -> dict:
    data = pathlib.Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length])


def read_safetensors_file(path: os.PathLike) -> dict[str, np.ndarray]:
    """A safetensors file's tensors as float32/int NumPy arrays, read by hand (BF16 included): the reference
    the loaded model is compared with, independent of qaexp's reader."""
    data = pathlib.Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    body = data[8 + length:]
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = body[begin:end]
        if info["dtype"] == "BF16":
            array = bfloat16_bits_to_float32(np.frombuffer(raw, dtype=np.uint16))
        else:
            array = np.frombuffer(raw, dtype=SAFETENSORS_DTYPES[info["dtype"]]).astype(
                np.float32 if info["dtype"].startswith("F") else SAFETENSORS_DTYPES[info["dtype"]])
        out[name] = array.reshape(info["shape"])
    return out



def sharded_safetensors(tensors: Mapping[str, np.ndarray], shards: int = 2) -> dict[str, bytes]:
    """model-0000i-of-0000n.safetensors + model.safetensors.index.json, as PyTorch's save_pretrained shards."""
    names = sorted(tensors)
    files: dict[str, bytes] = {}
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        files[shard] = safetensors_bytes({n: tensors[n] for n in part})
        weight_map.update({n: shard for n in part})
    total = sum(np.asarray(t).nbytes for t in tensors.values())
    files["model.safetensors.index.json"] = json.dumps(
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2).encode()
    return files




# tf-keras' save_weights stores the Keras version beside the weights; this is the one that wrote the layout
# copied here (tf-keras 2.21, transformers 4.57). Loaders only look at it for Keras 1 files.
KERAS_VERSION = "2.21.0"


def _h5_strings(values: Iterable[str]) -> np.ndarray:
    import h5py

    # tf-keras writes its name lists as variable-length ASCII strings
    return np.array(list(values), dtype=h5py.string_dtype("ascii"))


def tf_layers(family: str, tensors: Mapping[str, np.ndarray]) -> dict[str, list[tuple[str, np.ndarray]]]:
    """{TF layer: [(TF weight name, array in TF layout)]} of `tensors` (PyTorch names), in tensor order."""
    layers: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, value in tensors.items():
        layer, weight, transpose = tf_weight_name(family, name, np.ndim(value))
        layers.setdefault(layer, []).append((weight, np.ascontiguousarray(value.T if transpose else value)))
    by_tf = tensors_by_tf(family, tensors)
    for layer, prefix in FAMILIES[family].tf_shared.items():
        layers[layer] += [(weight, by_tf[weight]) for weight in
                          (tf_weight_name(family, name, np.ndim(value))[1] for name, value in tensors.items()
                           if name.startswith(prefix))]
    return layers


def tensors_by_tf(family: str, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{TF weight name: array in TF layout} of `tensors` (PyTorch names)."""
    out = {}
    for name, value in tensors.items():
        _, weight, transpose = tf_weight_name(family, name, np.ndim(value))
        out[weight] = np.ascontiguousarray(value.T if transpose else value)
    return out


def tf_h5_bytes(family: str, tensors: Mapping[str, np.ndarray]) -> bytes:
    """tf_model.h5 as TF `save_pretrained` of the family's pretraining class wrote it: root attributes `layer_names`,
    `backend`, `keras_version`; a group per TF layer whose attribute `weight_names` lists its weights; each weight a
    float32 dataset at `<layer>/<weight name>` (the name's slashes make the intermediate groups)."""
    import h5py

    buffer = io.BytesIO()
    layers = tf_layers(family, tensors)
    with h5py.File(buffer, "w") as f:
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = KERAS_VERSION
        f.attrs["layer_names"] = _h5_strings(layers)
        for layer, weights in layers.items():
            group = f.create_group(layer)
            group.attrs["weight_names"] = _h5_strings(weight for weight, _ in weights)
            for weight, value in weights:
                group.create_dataset(weight, data=np.asarray(value, dtype=np.float32))
    return buffer.getvalue()


def sharded_h5(family: str, tensors: Mapping[str, np.ndarray], shards: int = 2) -> dict[str, bytes]:
    """tf_model-0000i-of-0000n.h5 + tf_model.h5.index.json as TF `save_pretrained(max_shard_size=...)` writes them:
    each shard stores its weights at their names without the model-class scope and lists those names in its
    `layer_names`; the index maps every scoped weight name to its shard."""
    import h5py

    weights = sorted(tensors_by_tf(family, tensors).items())
    files: dict[str, bytes] = {}
    weight_map = {}
    size = -(-len(weights) // shards)  # contiguous runs, as the saver fills one shard after another
    for i in range(shards):
        part = weights[i * size:(i + 1) * size]
        shard = f"tf_model-{i + 1:05d}-of-{shards:05d}.h5"
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as f:
            for weight, value in part:
                f.create_dataset(weight.split("/", 1)[1], data=np.asarray(value, dtype=np.float32))
            f.attrs["layer_names"] = _h5_strings(weight.split("/", 1)[1] for weight, _ in part)
        files[shard] = buffer.getvalue()
        weight_map.update({weight: shard for weight, _ in part})
    total = sum(value.nbytes for _, value in weights)
    files["tf_model.h5.index.json"] = json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                 indent=2).encode()
    return files


def h5_layout(data: bytes | os.PathLike) -> dict:
    """What a tf_model.h5 holds, for comparing two files' layouts: root attributes, each layer's weight_names (as
    a set: the order of a layer's weights is the model's variable order, which differs between two models of
    the same checkpoint), every dataset's path, shape and dtype, and how the name lists are stored."""
    import h5py

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with h5py.File(source, "r") as f:
        datasets = {}
        f.visititems(lambda name, obj: datasets.__setitem__(name, (obj.shape, str(obj.dtype)))
                     if isinstance(obj, h5py.Dataset) else None)
        layers = [str(n) for n in f.attrs["layer_names"]]
        return {"root_attrs": sorted(f.attrs), "layer_names": sorted(layers),
                "weight_names": {layer: sorted(str(w) for w in f[layer].attrs["weight_names"]) for layer in layers},
                "string_dtype": str(h5py.check_string_dtype(f.attrs.get_id("layer_names").dtype)),
                "datasets": datasets}


# ---- the fixture: one built checkpoint per (family, casing), one repo per entry ---------------------------


@dataclass
class Source:
    """A built checkpoint: its directory holds every file a repo of it may contain."""

    key: str
    family: str
    uncased: bool
    directory: pathlib.Path
    tokenizer_files: list[str]
    tensors: dict = field(repr=False)  # {PyTorch name: float32 array}: what every weight file of it holds
    legacy_layer_norm_names: bool = False  # its model.safetensors says LayerNorm.gamma/.beta

    @property
    def config(self) -> dict:
        return json.loads((self.directory / "config.json").read_text())

    @property
    def prefix(self) -> str:  # the encoder's PyTorch name prefix (`bert`, `roberta`, `deberta`, ...)
        from qaexp.model.families import family_module

        return family_module(self.family).PREFIX

    @property
    def encoder(self) -> dict[str, np.ndarray]:
        """The encoder's tensors: those a QA model of the family loads from this checkpoint."""
        return {name: value for name, value in self.tensors.items() if name.startswith(self.prefix + ".")
                and ".pooler." not in name}

    @property
    def safetensors_tensors(self) -> dict[str, np.ndarray]:
        """The tensors as its model.safetensors names them."""
        return legacy_layer_norm_names(self.tensors) if self.legacy_layer_norm_names else dict(self.tensors)

    def files(self, weights: Iterable[str] | None = None, extra: Mapping[str, bytes] | None = None) -> dict:
        """config.json + tokenizer files + `weights` (default: the real repo's weight files)."""
        names = ["config.json", *self.tokenizer_files, *(FAMILIES[self.family].weights if weights is None
                                                         else weights)]
        return {**read_dir(self.directory, names), **(extra or {})}


@dataclass
class HubBuild:
    home: pathlib.Path
    entries: list[Entry]
    sources: dict[str, Source]
    snapshots: dict[str, pathlib.Path]  # checkpoint id -> snapshot directory

    def source(self, entry_or_family: str) -> Source:
        for entry in self.entries:
            if entry_or_family in (entry.name, entry.checkpoint):
                return self.sources[entry.source_key]
        return next(s for s in self.sources.values() if s.family == entry_or_family)


def source_seed(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


def write_config(family: str, directory: os.PathLike):
    """config.json for the tokenizer in `directory` (its vocabulary size and special ids); returns the config."""
    tokenizer = tokenizer_class(family).from_pretrained(str(directory))
    special = {"pad": tokenizer.pad_token_id, "bos": tokenizer.cls_token_id, "eos": tokenizer.sep_token_id}
    config = model_config(family, len(tokenizer), special)
    config.save_pretrained(str(directory))
    if family == "modernbert":
        # The released repos' config.json was written by transformers 4.4x: the old attention/rotary keys
        # (global_attn_every_n_layers, global/local_rope_theta), not transformers 5's layer_types / rope_parameters.
        path = directory / "config.json"
        saved = json.loads(path.read_text())
        for key in ("layer_types", "rope_parameters"):
            saved.pop(key, None)
        saved.update(global_attn_every_n_layers=3, global_rope_theta=160000.0, local_rope_theta=10000.0)
        path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    return config


def write_weights(source: Source) -> None:
    """Every weight file a repo of `source` may hold, each written from `source.tensors`."""
    (source.directory / "model.safetensors").write_bytes(safetensors_bytes(source.safetensors_tensors))
    (source.directory / "tf_model.h5").write_bytes(tf_h5_bytes(source.family, source.tensors))
    (source.directory / "pytorch_model.bin").write_bytes(PYTORCH_BIN_PLACEHOLDER)


def build_source(key: str, family: str, uncased: bool, directory: pathlib.Path, texts: list[str],
                 tokenizer: str = "") -> Source:
    kind = tokenizer or FAMILIES[family].tokenizer
    tokenizer_files = list(write_tokenizer(kind, texts, directory, uncased=uncased, family=family))
    config = write_config(family, directory)
    source = Source(key, family, uncased, directory, tokenizer_files,
                    pretraining_tensors(family, config, source_seed(key)),
                    legacy_layer_norm_names=family == "bert" and uncased)
    write_weights(source)
    return source


def build_hub(hf_home: os.PathLike, workdir: os.PathLike, entries: list[Entry] | None = None) -> HubBuild:
    entries = hub_entries() if entries is None else entries
    texts = synthetic_texts()
    cache = HubCache(hf_home)
    sources: dict[str, Source] = {}
    snapshots = {}
    for entry in entries:
        if entry.source_key not in sources:
            sources[entry.source_key] = build_source(entry.source_key, entry.family, entry.uncased,
                                                     pathlib.Path(workdir) / entry.source_key, texts,
                                                     entry.tokenizer)
        snapshots[entry.checkpoint] = cache.add_snapshot(entry.checkpoint, sources[entry.source_key].files())
    return HubBuild(pathlib.Path(hf_home), entries, sources, snapshots)


MANIFEST = "hub_build.json"


def write_manifest(build: HubBuild, path: pathlib.Path) -> None:
    """What `read_hub` needs besides the files: each source's tokenizer files and its tensors' names in order."""
    sources = {key: {"family": s.family, "uncased": s.uncased, "directory": str(s.directory),
                     "tokenizer_files": s.tokenizer_files, "tensors": list(s.tensors),
                     "legacy_layer_norm_names": s.legacy_layer_norm_names} for key, s in build.sources.items()}
    path.write_text(json.dumps({"sources": sources, "snapshots": {k: str(v) for k, v in build.snapshots.items()}}))


def read_hub(hf_home: pathlib.Path, manifest: pathlib.Path) -> HubBuild:
    """The HubBuild that `build_hub` returned, from the files it wrote: each source's tensors are read back from its
    model.safetensors (float32, so exactly the values written; legacy LayerNorm names mapped back)."""
    data = json.loads(manifest.read_text())
    sources = {}
    for key, info in data["sources"].items():
        directory = pathlib.Path(info["directory"])
        stored = read_safetensors_file(directory / "model.safetensors")
        renamed = legacy_layer_norm_names if info["legacy_layer_norm_names"] else (lambda t: t)
        tensors = {name: stored[next(iter(renamed({name: None})))] for name in info["tensors"]}
        sources[key] = Source(key, info["family"], info["uncased"], directory, info["tokenizer_files"], tensors,
                              legacy_layer_norm_names=info["legacy_layer_norm_names"])
    entries = hub_entries()
    assert {e.checkpoint for e in entries} == set(data["snapshots"]), "conf/model changed during the session"
    return HubBuild(hf_home, entries, sources, {k: pathlib.Path(v) for k, v in data["snapshots"].items()})


@pytest.fixture(scope="session")
def hub_build(tmp_path_factory) -> HubBuild:
    """Every hub entry of conf/model in a hub cache under a temporary HF_HOME, built once per session, across
    pytest-xdist workers too (the other workers read what the first one wrote). Read-only."""
    def make(root: pathlib.Path) -> None:
        write_manifest(build_hub(root / "hf_home", root / "sources"), root / MANIFEST)

    root = once_per_session(tmp_path_factory, "hub_cache", make)
    return read_hub(root / "hf_home", root / MANIFEST)


@pytest.fixture(scope="session")
def hub_home(hub_build) -> pathlib.Path:
    """HF_HOME of the cache of `hub_build`."""
    return hub_build.home


# ---- edge-case checkpoints ------------------------------------------------------------------------------


def with_qa_head(source: Source, head_seed: int = 7, head_scale: float = 0.5) -> dict[str, np.ndarray]:
    """The tensors of a SQuAD-fine-tuned checkpoint of `source`: its encoder, and a `qa_outputs` head with large
    random values (no initialiser would produce them); no pretraining head, as such checkpoints have none."""
    rng = np.random.default_rng(head_seed)
    hidden = source.config.get("hidden_size", source.config.get("dim"))
    return {**source.encoder,
            "qa_outputs.weight": rng.normal(0.0, head_scale, size=(2, hidden)).astype(np.float32),
            "qa_outputs.bias": rng.normal(0.0, head_scale, size=(2,)).astype(np.float32)}


def with_config_change(files: Mapping[str, bytes], **changes) -> dict[str, bytes]:
    """`files` with config.json edited (e.g. intermediate_size): weights that no longer match it."""
    config = json.loads(files["config.json"])
    return {**files, "config.json": json.dumps({**config, **changes}, indent=2).encode()}


def truncated(files: Mapping[str, bytes], name: str) -> dict[str, bytes]:
    """`files` with `name` cut to half its bytes, as an interrupted download leaves it."""
    return {**files, name: files[name][: len(files[name]) // 2]}


def closed_port() -> int:
    """A local TCP port nothing listens on (connecting is refused: the network is down)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubRequest(http.server.BaseHTTPRequestHandler):
    """One request to a LoopbackHub: GET and HEAD both go to the hub's `answer`, HEAD without a body."""

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def reply(self, status: int, payload: bytes, headers: Mapping[str, str], body: bool) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(payload))}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def do_GET(self):
        self.server.hub.answer(self, self.path.split("?")[0], body=True)

    def do_HEAD(self):
        self.server.hub.answer(self, self.path.split("?")[0], body=False)


class LoopbackHub:
    """A stand-in HF_ENDPOINT: `with` serves it on a free 127.0.0.1 port (its address in `url`) from a
    background thread, and stops it on leaving. Subclasses route each request in `answer(request, path, body)`
    (path without its query), answering with `request.reply(status, payload, headers, body)`."""

    def answer(self, request: HubRequest, path: str, body: bool) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HubRequest)
        self.server.hub = self  # each HubRequest finds its hub through the server that made it
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class FakeHub(LoopbackHub):
    """A local HTTP endpoint (HF_ENDPOINT) that answers as huggingface.co does for a repository that does not
    exist (401 + X-Error-Code: RepoNotFound) and for a gated one (its model info, then 401 + X-Error-Code:
    GatedRepo for every file). The tests have no network, so this is the only way to reach those answers of
    huggingface_hub's real client code."""

    COMMIT = "0123456789abcdef0123456789abcdef01234567"
    FAILING = "qaexp-test/server-error"  # a repository whose every request gets 503, as from a hub in trouble

    def __init__(self, gated: Mapping[str, list[str]]):
        self.gated = dict(gated)  # repo id -> its file names
        self.requests: list[str] = []

    def answer(self, request: HubRequest, path: str, body: bool) -> None:
        self.requests.append(f"{request.command} {path}")
        if self.FAILING in path:
            return request.reply(503, b'{"error":"Service Unavailable"}', {"Content-Type": "application/json"}, body)
        if path.startswith("/api/models/"):
            repo = path[len("/api/models/"):].split("/revision/")[0].split("/tree/")[0]
            if repo in self.gated and "/tree/" in path:
                # huggingface_hub >= 1.x lists a snapshot's files first: a gated repo's listing is public, as on
                # huggingface.co (only the files themselves need the accepted terms and a token).
                tree = [{"type": "file", "oid": "0" * 40, "size": 1, "path": f} for f in self.gated[repo]]
                return request.reply(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body)
            if repo in self.gated:
                info = {"_id": "0" * 24, "id": repo, "modelId": repo, "sha": self.COMMIT, "private": False,
                        "gated": "manual", "disabled": False, "tags": [], "downloads": 0, "likes": 0,
                        "siblings": [{"rfilename": f} for f in self.gated[repo]]}
                return request.reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
            return request.reply(401, b'{"error":"Repository not found"}',
                                 {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, body)
        repo = path.strip("/").split("/resolve/")[0]
        if repo in self.gated:
            message = f"Access to model {repo} is restricted. You must have access to it and be authenticated."
            return request.reply(401, json.dumps({"error": message}).encode(),
                                 {"X-Error-Code": "GatedRepo", "X-Error-Message": message}, body)
        return request.reply(401, b'{"error":"Repository not found"}',
                             {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, body)
