"""Read a transformers TensorFlow checkpoint (`tf_model.h5`, or its shards) as PyTorch-named NumPy arrays, without
TensorFlow model classes and without torch.

Some hub repos still ship only `tf_model.h5` beside a `pytorch_model.bin` (microsoft/deberta-v3-*), and qaexp cannot
read the pickle without torch; transformers 5 has no TF classes left to read the h5. This module reads the h5 with
h5py alone and renames each weight the way transformers 4.x did when it moved TF weights into PyTorch models
(`modeling_tf_pytorch_utils.convert_tf_weight_name_to_pt_weight_name`; tests/hub/test_tf_h5.py checks the two agree on
every weight of every family while transformers still has TF classes):

* a TF weight `tf_bert_for_masked_lm/bert/encoder/layer_._0/attention/self/query/kernel:0` loses its `:0` and its
  first scope (the saving model class), `_._` and `/` become `.`, and a middle scope `a___b` becomes `b` (BERT's
  MLM head is the TF layer `mlm___cls`, PyTorch's `cls`);
* the last part: `kernel` -> `weight` stored transposed (a TF Dense kernel is (in, out), a PyTorch Linear weight
  (out, in)), `gamma` / `beta` -> `weight` / `bias` (LayerNorm), `embeddings` -> `weight` (Embedding tables).

File layout, as tf-keras' `save_weights` (called by TF `save_pretrained`) writes it: root attribute `layer_names`;
one group per layer whose attribute `weight_names` lists that layer's weights, each stored at
`<layer>/<weight name>`. A sharded save (`tf_model.h5.index.json` + `tf_model-0000i-of-0000n.h5`) stores each weight
at its name without the model-class scope, and its index's `weight_map` names every weight with that scope.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from qaexp.errors import ModelLoadError, first_line

WEIGHTS_NAME = "tf_model.h5"
INDEX_NAME = "tf_model.h5.index.json"
# tf-keras splits an attribute longer than HDF5's 64 KiB object-header limit into `name0`, `name1`, ...
_CHUNKED = re.compile(r"^(.*?)(\d+)$")


def pytorch_name(tf_name: str, ndim: int) -> tuple[str, bool]:
    """(PyTorch state-dict name, whether the array must be transposed) of the TF weight `tf_name` with `ndim`
    dimensions."""
    name = tf_name.split(":", 1)[0]
    parts = re.sub(r"/+", "/", name.replace("_._", "/")).split("/")
    if len(parts) > 1:
        parts = parts[1:]  # the saving model's own scope (tf_bert_for_masked_lm) is no part of a PyTorch name
    # `a___b` renames a TF layer to PyTorch's `b`; transformers applied it to scopes only, never to the leaf.
    parts = [part.split("___", 1)[1] if "___" in part and i < len(parts) - 1 else part for i, part in enumerate(parts)]
    leaf = parts[-1]
    transpose = leaf == "kernel" and ndim == 2
    parts[-1] = {"kernel": "weight", "gamma": "weight", "embeddings": "weight", "beta": "bias"}.get(leaf, leaf)
    return ".".join(parts), transpose


def _attribute(node, name: str) -> list[str]:
    """A string-list attribute as tf-keras wrote it (whole, or chunked as name0, name1, ...), decoded."""
    if name in node.attrs:
        values = list(node.attrs[name])
    else:
        chunks = sorted((int(m.group(2)), key) for key in node.attrs
                        if (m := _CHUNKED.match(key)) and m.group(1) == name)
        if not chunks:
            raise KeyError(f"no attribute {name!r} (not a weights file written by Keras / save_pretrained)")
        values = [value for _, key in chunks for value in node.attrs[key]]
    return [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in values]


def _array(dataset) -> np.ndarray:
    return np.asarray(dataset[()], dtype=np.float32)


def _read_single(path: str) -> dict[str, np.ndarray]:
    # h5py is installed with TensorFlow and with Keras 3 (a requirement of both), so qaexp needs no extra package
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        for layer in _attribute(f, "layer_names"):
            group = f[layer]
            for weight in _attribute(group, "weight_names"):
                array = _array(group[weight])
                name, transpose = pytorch_name(weight, array.ndim)
                # A layer that holds another's weights (DistilBERT's vocab_projector, tied to the word embeddings)
                # lists them again under its own group: the same tensor, kept once.
                out.setdefault(name, np.ascontiguousarray(array.T) if transpose else array)
    return out


def _read_sharded(index_path: str) -> dict[str, np.ndarray]:
    import h5py

    with open(index_path, encoding="utf-8") as f:
        weight_map = json.load(f)["weight_map"]
    directory = os.path.dirname(index_path)
    by_shard: dict[str, list[str]] = {}
    for weight, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(weight)
    out: dict[str, np.ndarray] = {}
    for shard, weights in by_shard.items():
        shard_path = os.path.join(directory, shard)
        try:
            with h5py.File(shard_path, "r") as f:
                for weight in weights:
                    # a shard stores the weight at its name without the model-class scope
                    array = _array(f[weight.split("/", 1)[1] if "/" in weight else weight])
                    name, transpose = pytorch_name(weight, array.ndim)
                    out.setdefault(name, np.ascontiguousarray(array.T) if transpose else array)
        except (OSError, KeyError, ValueError, RuntimeError) as err:
            raise _damaged(shard_path, err) from err
    return out


def _damaged(path: str, err: BaseException) -> ModelLoadError:
    if not os.path.exists(path):
        return ModelLoadError(f"{path} does not exist (a sharded checkpoint missing a shard?); download or copy the "
                              "checkpoint again")
    return ModelLoadError(f"{path} cannot be read as a TensorFlow checkpoint ({first_line(err, limit=200)}): the file "
                          "is damaged or incomplete (an interrupted download?); download or copy it again")


def read_tf_h5(path: str) -> dict[str, np.ndarray]:
    """{PyTorch name: float32 array} of a TF checkpoint: `tf_model.h5`, a sharded save's `tf_model.h5.index.json`, or
    a directory holding either. Linear weights come out (out, in), as PyTorch stores them. A file that cannot be read
    is a one-line ModelLoadError naming it."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in (WEIGHTS_NAME, INDEX_NAME):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise ModelLoadError(f"{path} holds neither {WEIGHTS_NAME} nor {INDEX_NAME}; point at a directory "
                                 "written by TF save_pretrained")
    if path.endswith(".json"):
        try:
            return _read_sharded(path)
        except (OSError, KeyError, ValueError, TypeError) as err:
            if isinstance(err, ModelLoadError):
                raise
            raise _damaged(path, err) from err
    try:
        return _read_single(path)
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise _damaged(path, err) from err
