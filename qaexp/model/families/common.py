"""Pieces every Keras 3 family shares: activations, masked attention, the post-LayerNorm transformer layer, the
question-answering model around a backbone, and the helpers that name a layer's variables as PyTorch does.

Backend-neutral on purpose: only `keras` and `keras.ops` (no TensorFlow import), so the same models run on the JAX
backend. A family module (one per architecture, see `qaexp.model.families`) builds a backbone layer out of these
and says, in `hf_weights()`, which PyTorch tensor name fills each of its variables.
"""
from __future__ import annotations

import math

import keras
from keras import layers, ops

# Hugging Face's activation names -> the same function. "gelu" is the exact erf form; "gelu_new" and
# "gelu_pytorch_tanh" are the tanh approximation (mixing them up costs ~1e-3 in the logits).
_ACTIVATIONS = {
    "gelu": lambda x: ops.gelu(x, approximate=False),
    "gelu_new": lambda x: ops.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: ops.gelu(x, approximate=True),
    "gelu_fast": lambda x: ops.gelu(x, approximate=True),
    "relu": ops.relu,
    "silu": ops.silu,
    "swish": ops.silu,
    "tanh": ops.tanh,
}


def activation(name: str):
    if name not in _ACTIVATIONS:
        raise ValueError(f"hidden activation {name!r} is not supported by qaexp's Keras models "
                         f"(supported: {', '.join(sorted(_ACTIVATIONS))})")
    return _ACTIVATIONS[name]


def masked_fill_value(dtype) -> float:
    """A score that softmax turns into an exact 0 without overflowing the compute dtype (float16 tops out at
    65504)."""
    return -6.0e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1.0e9


def key_mask(inputs: dict):
    """(batch, 1, 1, keys) booleans: which keys each query may attend to (all of them without an attention_mask)."""
    mask = inputs.get("attention_mask")
    if mask is None:
        mask = ops.ones_like(inputs["input_ids"])
    # expand_dims, not [:, None, None, :]: TensorFlow Lite cannot convert a StridedSlice that inserts an axis before
    # a sliced one of a tensor of unknown shape (x[:, None, :] and x[..., None] fail; x[None] and x[:, None]
    # convert), so the indexing form made every model unconvertible by `qaexp export --format tflite`.
    return ops.expand_dims(ops.expand_dims(ops.cast(mask, "bool"), 1), 1)


def split_heads(x, heads: int):
    """(batch, seq, heads*dim) -> (batch, heads, seq, dim)."""
    batch, seq = ops.shape(x)[0], ops.shape(x)[1]
    return ops.transpose(ops.reshape(x, (batch, seq, heads, -1)), (0, 2, 1, 3))


def merge_heads(x):
    """(batch, heads, seq, dim) -> (batch, seq, heads*dim)."""
    x = ops.transpose(x, (0, 2, 1, 3))
    batch, seq = ops.shape(x)[0], ops.shape(x)[1]
    return ops.reshape(x, (batch, seq, -1))


def attend(scores, values, mask, dropout, training):
    """softmax over the allowed keys, then the weighted values. `scores` (batch, heads, q, k) are already scaled."""
    scores = ops.where(mask, scores, ops.cast(masked_fill_value(scores.dtype), scores.dtype))
    probs = dropout(ops.softmax(scores, axis=-1), training=training)
    return ops.matmul(probs, values)


class Embedding(layers.Embedding):
    """`layers.Embedding` whose `padding_idx` row never receives a gradient, as torch.nn.Embedding(padding_idx=...)
    in transformers' models: qaexp's loss takes a softmax over every position of a window, padded ones included,
    so without this the padding tokens' row would be trained (as the old TF classes trained it) while transformers
    keeps it as the checkpoint has it. The forward values are unchanged (see docs/architecture.md)."""

    def __init__(self, input_dim: int, output_dim: int, padding_idx=None, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        self.padding_idx = padding_idx

    def call(self, inputs):
        out = super().call(inputs)
        if self.padding_idx is None:
            return out
        frozen = ops.expand_dims(ops.equal(inputs, self.padding_idx), -1)
        return ops.where(frozen, ops.stop_gradient(out), out)


def dense(units: int, name: str, use_bias: bool = True) -> layers.Dense:
    return layers.Dense(units, use_bias=use_bias, name=name)


def layer_norm(eps: float, name: str) -> layers.LayerNormalization:
    return layers.LayerNormalization(epsilon=eps, name=name)


# --- PyTorch names of Keras variables --------------------------------------------------------------------------
# A weight map is {pytorch_name: (keras_variable, transpose)}: torch.nn.Linear stores (out, in), Keras Dense
# (in, out), so Linear weights are transposed on the way in and back on the way out; everything else is copied.

def linear_weights(name: str, layer: layers.Dense) -> dict:
    out = {f"{name}.weight": (layer.kernel, True)}
    if layer.use_bias:
        out[f"{name}.bias"] = (layer.bias, False)
    return out


def norm_weights(name: str, layer: layers.LayerNormalization) -> dict:
    out = {f"{name}.weight": (layer.gamma, False)}
    if layer.center:  # ModernBERT's norms have no bias (norm_bias false)
        out[f"{name}.bias"] = (layer.beta, False)
    return out


def embedding_weights(name: str, layer: layers.Embedding) -> dict:
    return {f"{name}.weight": (layer.embeddings, False)}


def named_weights(prefix: str, named) -> dict:
    """The weight map of several layers given as (PyTorch module name, Keras layer) pairs, in the checkpoint's
    order (which `initialise_like_transformers` draws in): each named by its kind's rule above. A None layer (one
    this config does not have) is skipped."""
    out = {}
    for name, layer in named:
        if layer is None:
            continue
        if isinstance(layer, layers.Dense):
            out.update(linear_weights(prefix + name, layer))
        elif isinstance(layer, layers.LayerNormalization):
            out.update(norm_weights(prefix + name, layer))
        elif isinstance(layer, layers.Embedding):
            out.update(embedding_weights(prefix + name, layer))
        else:
            raise TypeError(f"no PyTorch naming rule for {name!r}, a {type(layer).__name__}")
    return out


class Composite(layers.Layer):
    """A layer made of other layers, which build themselves from their real input shapes on its first call.

    Without a `build` of its own, Keras builds such a layer by tracing `call` on symbolic inputs first (a TensorFlow
    graph of the whole layer, again for each nested layer), which was most of the 0.7-1.1 CPU s that building even a
    2-layer model took (measured 2026-12-07 on the 2-core VM). Nothing here owns a variable of its own: a layer
    that does (DeBERTa's relative table, RoFormer's sinusoids) overrides `build` to make it."""

    def build(self, input_shape=None):
        pass


class SelfAttention(Composite):
    """Multi-head scaled dot-product self-attention: query/key/value projections, an optional rotary step on the
    projected heads (RoFormer), the output projection. The residual and LayerNorm live in `TransformerLayer`."""

    def __init__(self, hidden: int, heads: int, dropout: float, rotary=None, rotary_value: bool = False, **kwargs):
        super().__init__(**kwargs)
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of the {heads} attention heads")
        self.heads = heads
        self.head_dim = hidden // heads
        self.query = dense(hidden, "query")
        self.key = dense(hidden, "key")
        self.value = dense(hidden, "value")
        self.output_dense = dense(hidden, "output")
        self.dropout = layers.Dropout(dropout)
        self.rotary = rotary
        self.rotary_value = rotary_value

    def call(self, x, mask, training=None, positions=None):
        q = split_heads(self.query(x), self.heads)
        k = split_heads(self.key(x), self.heads)
        v = split_heads(self.value(x), self.heads)
        if self.rotary is not None:
            q, k = self.rotary(q, positions), self.rotary(k, positions)
            if self.rotary_value:
                v = self.rotary(v, positions)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * ops.cast(1.0 / math.sqrt(self.head_dim), q.dtype)
        return self.output_dense(merge_heads(attend(scores, v, mask, self.dropout, training)))


class TransformerLayer(Composite):
    """The post-LayerNorm encoder layer BERT, RoBERTa, ELECTRA, DistilBERT, ALBERT and RoFormer all share:
    x = LN(x + attention(x)); x = LN(x + W2 act(W1 x)). Only the PyTorch names differ, hence `names`."""

    # slot -> PyTorch sub-name for BERT-style checkpoints; other families pass their own.
    BERT_NAMES = {
        "query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
        "attention_output": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
        "intermediate": "intermediate.dense", "output": "output.dense", "output_norm": "output.LayerNorm",
    }

    def __init__(self, hidden: int, heads: int, intermediate: int, act: str, eps: float, dropout: float,
                 attention_dropout: float, rotary=None, rotary_value: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.attention = SelfAttention(hidden, heads, attention_dropout, rotary=rotary, rotary_value=rotary_value,
                                       name="attention")
        self.attention_norm = layer_norm(eps, "attention_norm")
        self.intermediate = dense(intermediate, "intermediate")
        self.output_dense = dense(hidden, "output")
        self.output_norm = layer_norm(eps, "output_norm")
        self.act = activation(act)
        self.dropout = layers.Dropout(dropout)

    def call(self, x, mask, training=None, positions=None):
        attended = self.dropout(self.attention(x, mask, training=training, positions=positions), training=training)
        x = self.attention_norm(x + attended)
        y = self.dropout(self.output_dense(self.act(self.intermediate(x))), training=training)
        return self.output_norm(x + y)

    def hf_weights(self, prefix: str, names: dict | None = None) -> dict:
        names = names or self.BERT_NAMES
        a = self.attention
        return named_weights(prefix, [(names[slot], layer) for slot, layer in (
            ("query", a.query), ("key", a.key), ("value", a.value), ("attention_output", a.output_dense),
            ("intermediate", self.intermediate), ("output", self.output_dense),
            ("attention_norm", self.attention_norm), ("output_norm", self.output_norm))])


class QuestionAnsweringModel(keras.Model):
    """A family's backbone plus `qa_outputs` (Dense(2) over each token's final hidden state, split into start and
    end logits), as transformers' `...ForQuestionAnswering`. The logits are float32 whatever the precision policy.

    `input_names` says which inputs the architecture takes (DistilBERT and RoBERTa take no token_type_ids);
    `select_inputs` keeps just those from a batch that has more. A family may put a `head` layer between the
    backbone and the Dense(2) (ModernBERT's dense + act + norm; its `hf_weights()` names are top-level) and name
    the Dense(2) otherwise (`output_name`: ModernBERT's `classifier`).
    """

    def __init__(self, backbone, family: str, prefix: str, input_names: tuple, architecture: str, config: dict,
                 head=None, output_name: str = "qa_outputs", **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.head = head
        self.qa_outputs = dense(2, "qa_outputs")
        self.output_name = output_name
        self.family = family
        self.prefix = prefix
        self.input_names = tuple(input_names)
        self.architecture = architecture
        self.hf_config = dict(config)

    def build(self, input_shape=None):
        pass  # as Composite's: the backbone, head and qa_outputs build themselves on the first call

    def select_inputs(self, features: dict) -> dict:
        return {name: features[name] for name in self.input_names if name in features}

    def call(self, inputs, training=None):
        unexpected = sorted(set(inputs) - set(self.input_names))
        if unexpected:
            raise ValueError(f"a {self.family} model takes {', '.join(self.input_names)}, not {', '.join(unexpected)} "
                             "(pass the batch through model.select_inputs first)")
        hidden = self.backbone(inputs, training=training)
        if self.head is not None:
            hidden = self.head(hidden, training=training)
        logits = ops.cast(self.qa_outputs(hidden), "float32")
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}

    def hf_weights(self) -> dict:
        """{PyTorch name as `...ForQuestionAnswering.save_pretrained` writes it: (variable, transpose)}."""
        out = {f"{self.prefix}.{name}": spec for name, spec in self.backbone.hf_weights().items()}
        if self.head is not None:
            out.update(self.head.hf_weights())
        out.update(linear_weights(self.output_name, self.qa_outputs))
        return out
