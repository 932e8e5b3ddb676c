"""A Hugging Face hub cache laid out exactly as huggingface_hub 0.36 writes it, holding small random models.

Layout (huggingface_hub/file_download.py: `repo_folder_name`, `_cache_commit_hash_for_specific_revision`,
`_create_symlink`, `_get_pointer_path`)::

    HF_HOME/hub/models--ORG--NAME/
        refs/main                      the 40-hex commit of the branch, no newline
        blobs/<etag>                   file bytes; etag = sha256 for LFS files, the git blob sha1 otherwise
        snapshots/<commit>/<filename>  relative symlink to ../../blobs/<etag>

Every hub entry of conf/model/*.yaml (a `checkpoint` that is neither null nor `pkg:...`) gets a repo whose
files are those of the real one: a model of the entry's `family` (the transformers model_type: right
architecture, 2 layers, hidden 32, random weights from a seeded NumPy generator, so no tensor is zero or a
library default) and a tokenizer of the real kind trained here on synthetic text:

    family        tokenizer                                 weight files
    bert          WordPiece vocab.txt + tokenizer.json      model.safetensors (PyTorch format) + tf_model.h5
    distilbert    WordPiece vocab.txt + tokenizer.json      model.safetensors + tf_model.h5
    electra       WordPiece (uncased)                       model.safetensors + tf_model.h5
    roberta       byte-level BPE vocab.json + merges.txt    model.safetensors + tf_model.h5
    xlm-roberta   SentencePiece sentencepiece.bpe.model     model.safetensors + tf_model.h5
    albert        SentencePiece spiece.model (uncased)      model.safetensors + tf_model.h5
    deberta-v2    SentencePiece spm.model, NO tokenizer.json tf_model.h5 + pytorch_model.bin placeholder

The checkpoints are base (pretraining) models, not QA models: encoder tensors under the base prefix
(`bert.`, `roberta.`, `deberta.`, ...) plus the pretraining head (`cls.predictions.*`, `lm_head.*`, ...).
PyTorch-format safetensors are written without torch: each TF variable's name goes through transformers'
`convert_tf_weight_name_to_pt_weight_name`, dense kernels are transposed back to PyTorch's (out, in).

Nothing here is a test; `hub_build` / `hub_home` are session fixtures for the tests that import them.
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
from typing import Iterable, Mapping

import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO = pathlib.Path(__file__).resolve().parents[1]
MODEL_CONF = REPO / "conf" / "model"

# ---- which tokenizer and weights each family has ------------------------------------------------------


@dataclass(frozen=True)
class Family:
    tokenizer: str  # wordpiece | byte_bpe | spm_xlmr | spm_albert | spm_deberta
    pretraining_class: str  # the TF class whose weights the real checkpoint holds (base model + pretraining head)
    weights: tuple[str, ...]  # weight files of the real hub repo
    uncased: bool = False  # the family's vocabulary is lower-cased whatever the repo id says
    fast_class: str = ""  # transformers fast tokenizer class used to write tokenizer.json


FAMILIES = {
    "bert": Family("wordpiece", "TFBertForMaskedLM", ("model.safetensors", "tf_model.h5"),
                   fast_class="BertTokenizerFast"),
    "distilbert": Family("wordpiece", "TFDistilBertForMaskedLM", ("model.safetensors", "tf_model.h5"),
                         fast_class="DistilBertTokenizerFast"),
    "electra": Family("wordpiece", "TFElectraForPreTraining", ("model.safetensors", "tf_model.h5"), uncased=True,
                      fast_class="ElectraTokenizerFast"),
    "roberta": Family("byte_bpe", "TFRobertaForMaskedLM", ("model.safetensors", "tf_model.h5"),
                      fast_class="RobertaTokenizerFast"),
    "xlm-roberta": Family("spm_xlmr", "TFXLMRobertaForMaskedLM", ("model.safetensors", "tf_model.h5"),
                          fast_class="XLMRobertaTokenizerFast"),
    "albert": Family("spm_albert", "TFAlbertForMaskedLM", ("model.safetensors", "tf_model.h5"), uncased=True,
                     fast_class="AlbertTokenizerFast"),
    # microsoft/deberta-v3-*: tf_model.h5 and pytorch_model.bin, no safetensors, no tokenizer.json.
    "deberta-v2": Family("spm_deberta", "TFDebertaV2ForMaskedLM", ("tf_model.h5", "pytorch_model.bin"),
                         fast_class="DebertaV2TokenizerFast"),
}

# Tokenizer kinds of the label-recovery test: (kind, uncased, a family that uses it).
TOKENIZER_KINDS = {
    "wordpiece-cased": ("wordpiece", False, "bert"),
    "wordpiece-uncased": ("wordpiece", True, "bert"),
    "byte-level-bpe": ("byte_bpe", False, "roberta"),
    "sentencepiece-albert": ("spm_albert", True, "albert"),
    "sentencepiece-deberta-v3": ("spm_deberta", False, "deberta-v2"),
    "sentencepiece-xlm-r": ("spm_xlmr", False, "xlm-roberta"),
}

HIDDEN, LAYERS, HEADS, INTERMEDIATE = 32, 2, 2, 64
# A placeholder where the real repo has pytorch_model.bin: qaexp never reads it (it cannot without torch), and a
# pickle-free byte string makes any attempt to read it fail loudly instead of loading something.
PYTORCH_BIN_PLACEHOLDER = b"not a real pytorch_model.bin: a placeholder written by tests/hub_cache.py\n"


@dataclass(frozen=True)
class Entry:
    """One hub model of the model group: conf/model/<name>.yaml."""

    name: str
    checkpoint: str
    family: str
    uncased: bool

    @property
    def source_key(self) -> str:  # entries with the same key share one built model and tokenizer
        return f"{self.family}-{'uncased' if self.uncased else 'cased'}"


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
            raise ValueError(f"{path.name}: family {family!r} has no test model in tests/hub_cache.py "
                             f"(known: {', '.join(sorted(FAMILIES))}); add it to FAMILIES")
        uncased = bool(data.get("lowercase")) or "uncased" in checkpoint.lower() or FAMILIES[family].uncased
        entries.append(Entry(path.stem, checkpoint, family, uncased))
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


def _byte_bpe(texts: Iterable[str], merges_wanted: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """GPT-2/RoBERTa byte-level BPE (vocab.json, merges.txt) learnt with a deterministic tie-break (the most
    frequent pair, then the smallest pair), on words pre-tokenised by tokenizers' ByteLevel pre-tokenizer."""
    from tokenizers import pre_tokenizers

    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    counts = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(text))
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


def write_tokenizer(kind: str, texts: list[str], directory: os.PathLike, uncased: bool = False,
                    family: str | None = None, size: int = 800) -> dict[str, bytes]:
    """Train a tokenizer of `kind` on `texts` and write the files the real hub repo of `family` has into
    `directory`. Returns them (name -> bytes)."""
    import transformers

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    family = family or next(f for f, spec in FAMILIES.items() if spec.tokenizer == kind)
    fast_class = getattr(transformers, FAMILIES[family].fast_class)
    work = directory / ".work"
    work.mkdir(exist_ok=True)
    if kind == "wordpiece":
        (directory / "vocab.txt").write_text("\n".join(_wordpiece_vocab(texts, uncased, size)) + "\n",
                                             encoding="utf-8")
        # tokenizer_config.json as on the hub (bert-base-cased: do_lower_case false). Without it the fast class
        # would apply its default do_lower_case=True and lower-case a cased model's input.
        (directory / "tokenizer_config.json").write_text(
            json.dumps({"do_lower_case": uncased, "model_max_length": 512}))
        fast = fast_class(vocab_file=str(directory / "vocab.txt"), do_lower_case=uncased)
        names = ["vocab.txt", "tokenizer.json", "tokenizer_config.json"]
    elif kind == "byte_bpe":
        vocab, merges = _byte_bpe(texts, size)
        (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
                                              encoding="utf-8")
        fast = fast_class(vocab_file=str(directory / "vocab.json"), merges_file=str(directory / "merges.txt"))
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
            fast = fast_class(vocab_file=str(directory / spm_name), do_lower_case=False)
            names = [spm_name, "tokenizer_config.json"]
        else:
            fast = fast_class(vocab_file=str(directory / spm_name))
            names = [spm_name, "tokenizer.json"]  # albert-base-v2, xlm-roberta-base: no tokenizer_config.json
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
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
        return AutoConfig.for_model("bert", **common, **sizes, type_vocab_size=2)
    if family == "distilbert":
        return AutoConfig.for_model("distilbert", vocab_size=vocab_size, dim=HIDDEN, n_layers=LAYERS,
                                    n_heads=HEADS, hidden_dim=INTERMEDIATE, max_position_embeddings=512,
                                    pad_token_id=special.get("pad", 0))
    if family == "electra":
        return AutoConfig.for_model("electra", **common, **sizes, embedding_size=16, type_vocab_size=2)
    if family in ("roberta", "xlm-roberta"):
        return AutoConfig.for_model(family, **common, **{**sizes, "max_position_embeddings": 514},
                                    type_vocab_size=1, bos_token_id=special["bos"], eos_token_id=special["eos"])
    if family == "albert":
        return AutoConfig.for_model("albert", **common, **sizes, embedding_size=16, type_vocab_size=2,
                                    bos_token_id=special["bos"], eos_token_id=special["eos"])
    if family == "deberta-v2":  # microsoft/deberta-v3-base's config.json, scaled down
        return AutoConfig.for_model("deberta-v2", **common, **sizes, relative_attention=True,
                                    position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
                                    pos_att_type=["p2c", "c2p"], max_relative_positions=-1,
                                    position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7)
    raise ValueError(f"no test model for family {family!r}")


def randomise(model, seed: int) -> None:
    """Give every weight fresh values from a seeded NumPy generator: none is zero or equal to a library
    initialiser's output, so a weight that is not loaded cannot pass for a loaded one."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        values = rng.normal(0.0, 0.05, size=shape).astype(np.float32)
        if weight.name.split("/")[-1].startswith("gamma"):
            values += 1.0
        weight.assign(values)


def build_pretrained(family: str, tokenizer_dir: os.PathLike, seed: int):
    """The pretraining-head TF model of `family` sized for the tokenizer in `tokenizer_dir`, random weights."""
    import transformers

    tokenizer = getattr(transformers, FAMILIES[family].fast_class).from_pretrained(str(tokenizer_dir))
    special = {"pad": tokenizer.pad_token_id, "bos": tokenizer.cls_token_id, "eos": tokenizer.sep_token_id}
    config = model_config(family, len(tokenizer), special)
    model = getattr(transformers, FAMILIES[family].pretraining_class)(config)
    model(model.dummy_inputs, training=False)
    randomise(model, seed)
    return model


def pytorch_names(model, legacy_layer_norm_names: bool = False) -> dict[str, tuple[str, bool]]:
    """{TF weight name without the model's scope: (PyTorch state-dict key, whether PyTorch stores it transposed)}.

    `legacy_layer_norm_names`: LayerNorm.gamma / LayerNorm.beta, as in checkpoints converted from the original
    TF BERT (google-bert/bert-base-uncased's files still use them; transformers renames them when loading)."""
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    names = {}
    for weight in model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(weight.name, tf_weight_shape=weight.shape)
        if transpose not in (TransposeType.NO, TransposeType.SIMPLE):
            raise AssertionError(f"{weight.name}: unexpected transpose {transpose}")
        if legacy_layer_norm_names and "LayerNorm." in name:
            name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        names[weight.name.split("/", 1)[1]] = (name, transpose == TransposeType.SIMPLE)
    assert len({key for key, _ in names.values()}) == len(names), "two weights share a PyTorch key"
    return names


def pytorch_state_dict(model, legacy_layer_norm_names: bool = False) -> dict[str, np.ndarray]:
    """The model's weights under PyTorch names and layouts, as `save_pretrained` in PyTorch would write them
    (dense kernels as (out, in), TF keeps (in, out))."""
    names = pytorch_names(model, legacy_layer_norm_names)
    tensors = {}
    for weight in model.weights:
        key, transposed = names[weight.name.split("/", 1)[1]]
        array = weight.numpy()
        tensors[key] = np.ascontiguousarray(array.T if transposed else array)
    return tensors


def tf_weights_by_name(model) -> dict[str, np.ndarray]:
    """TF weights keyed by their name without the model's own scope (`bert/embeddings/...:0`)."""
    return {weight.name.split("/", 1)[1]: weight.numpy() for weight in model.weights}


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


def read_h5_weights(paths: Iterable[os.PathLike]) -> dict[str, np.ndarray]:
    """TF weights stored by save_pretrained in tf_model.h5 (or its shards), keyed `bert/embeddings/...:0`
    (the layer group and the saving model's own name dropped)."""
    import h5py

    out = {}
    for path in paths:
        with h5py.File(path, "r") as f:
            # tf_model.h5 groups datasets as <layer>/<saving model's name>/<weight>; the shards of a sharded
            # save store each weight under its name directly (and list those names in `layer_names`).
            sharded = any("/" in str(name) for name in f.attrs["layer_names"])

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    out[name if sharded else name.split("/", 2)[2]] = obj[()]
            f.visititems(visit)
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


def sharded_h5(model, directory: os.PathLike) -> dict[str, bytes]:
    """tf_model-0000i-of-0000n.h5 + tf_model.h5.index.json from TF's own save_pretrained(max_shard_size=...)."""
    directory = pathlib.Path(directory)
    total = sum(weight.numpy().nbytes for weight in model.weights)
    model.save_pretrained(str(directory), max_shard_size=int(total * 0.6))  # few shards: each costs a load
    names = sorted(p.name for p in directory.iterdir() if p.name.startswith("tf_model"))
    assert "tf_model.h5.index.json" in names and len(names) >= 3, names  # an index and two or more shards
    return read_dir(directory, names)


# ---- the fixture: one built model per (family, casing), one repo per entry --------------------------------


@dataclass
class Source:
    """A built checkpoint: its directory holds every file a repo of it may contain."""

    key: str
    family: str
    uncased: bool
    directory: pathlib.Path
    tokenizer_files: list[str]
    model: object = field(repr=False, default=None)  # the TF pretraining model (kept for edge-case repos)
    legacy_layer_norm_names: bool = False  # its model.safetensors says LayerNorm.gamma/.beta

    @property
    def pt_names(self) -> dict[str, tuple[str, bool]]:
        return pytorch_names(self.model, self.legacy_layer_norm_names)

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


def build_source(key: str, family: str, uncased: bool, directory: pathlib.Path, texts: list[str]) -> Source:
    spec = FAMILIES[family]
    tokenizer_files = list(write_tokenizer(spec.tokenizer, texts, directory, uncased=uncased, family=family))
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    model = build_pretrained(family, directory, seed)
    model.save_pretrained(str(directory))  # config.json + tf_model.h5
    legacy = family == "bert" and uncased
    (directory / "model.safetensors").write_bytes(safetensors_bytes(pytorch_state_dict(model, legacy)))
    (directory / "pytorch_model.bin").write_bytes(PYTORCH_BIN_PLACEHOLDER)
    return Source(key, family, uncased, directory, tokenizer_files, model, legacy)


def build_hub(hf_home: os.PathLike, workdir: os.PathLike, entries: list[Entry] | None = None) -> HubBuild:
    entries = hub_entries() if entries is None else entries
    texts = synthetic_texts()
    cache = HubCache(hf_home)
    sources: dict[str, Source] = {}
    snapshots = {}
    for entry in entries:
        if entry.source_key not in sources:
            sources[entry.source_key] = build_source(entry.source_key, entry.family, entry.uncased,
                                                     pathlib.Path(workdir) / entry.source_key, texts)
        snapshots[entry.checkpoint] = cache.add_snapshot(entry.checkpoint, sources[entry.source_key].files())
    return HubBuild(pathlib.Path(hf_home), entries, sources, snapshots)


@pytest.fixture(scope="session")
def hub_build(tmp_path_factory) -> HubBuild:
    """Every hub entry of conf/model in a hub cache under a temporary HF_HOME (built once per session)."""
    root = tmp_path_factory.mktemp("hub_cache")
    return build_hub(root / "hf_home", root / "sources")


@pytest.fixture(scope="session")
def hub_home(hub_build) -> pathlib.Path:
    """HF_HOME of the cache of `hub_build`."""
    return hub_build.home


# ---- edge-case checkpoints ------------------------------------------------------------------------------


def qa_model_with_head(source: Source, head_seed: int = 7, head_scale: float = 0.5):
    """A TF question-answering model of `source`'s architecture: its encoder weights, and a QA head with large
    random values (as a SQuAD-fine-tuned checkpoint has; no initialiser would produce them)."""
    from transformers import TFAutoModelForQuestionAnswering

    model = TFAutoModelForQuestionAnswering.from_config(source.model.config)
    model(model.dummy_inputs, training=False)
    pretrained = tf_weights_by_name(source.model)
    rng = np.random.default_rng(head_seed)
    for weight in model.weights:
        key = weight.name.split("/", 1)[1]
        weight.assign(pretrained[key] if key in pretrained
                      else rng.normal(0.0, head_scale, size=tuple(weight.shape)).astype(np.float32))
    return model


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

    def __init__(self, gated: Mapping[str, list[str]]):
        self.gated = dict(gated)  # repo id -> its file names
        self.requests: list[str] = []

    def answer(self, request: HubRequest, path: str, body: bool) -> None:
        self.requests.append(f"{request.command} {path}")
        if path.startswith("/api/models/"):
            repo = path[len("/api/models/"):].split("/revision/")[0]
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
