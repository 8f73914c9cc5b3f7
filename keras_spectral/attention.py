"""Multi-head attention whose heads and features can be removed: `SpectralMultiHeadAttention`.

In the spectral picture (`w = φ (λ_in − λ_out)` between two sets of nodes):

- a head is a block of input nodes of the output projection (its `value_dim` features);
  one eigenvalue per head, shared by those nodes, scales the head's rows of the output
  projection, `W_o[h] = λ_h φ_h` (the output projection's `λ_out` is 0, as after
  conversion, and is not trained);
- in self-attention each input feature (a node of the stream it reads) has an eigenvalue
  `λ_in` scaling its rows of the query, key and value projections at once.

`spectralize` puts this layer in place of `keras.layers.MultiHeadAttention` with `λ_h = 1`,
`λ_in = 1` and `φ` the trained kernels (same outputs); the eigenvalues train with the
rest, and `|λ_h|` ranks the heads. The pruning tools set `head_mask` (a removed head is
silenced), `eigenvalues_in_mask` (a removed input feature is read as 0, self-attention
only) and `eigenvalues_out_mask` (a removed output feature outputs its bias). `compact`
makes a layer of the same class with fewer heads and features, and `collapse` a plain
`keras.layers.MultiHeadAttention`.
"""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralMultiHeadAttention(keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` with one trainable eigenvalue per head
    (`head_eigenvalues`, initially 1) scaling the head's output, and a `head_mask`
    (1 = kept, 0 = removed) set by the pruning tools. Arguments as for
    `keras.layers.MultiHeadAttention`.

    Example:

    >>> attention = SpectralMultiHeadAttention.from_layer(trained_attention)  # doctest: +SKIP
    >>> plain = attention.to_layer()  # doctest: +SKIP
    """

    def __init__(self, num_heads, key_dim, self_attention=False, **kwargs):
        super().__init__(num_heads, key_dim, **kwargs)
        self.self_attention = bool(self_attention)

    def build(self, query_shape, value_shape, key_shape=None):
        super().build(query_shape, value_shape, key_shape)
        self.head_eigenvalues = self.add_weight(
            name="head_eigenvalues", shape=(self._num_heads,), initializer="ones", trainable=True
        )
        self.head_mask = self.add_weight(name="head_mask", shape=(self._num_heads,), initializer="ones", trainable=False)
        features, outputs = query_shape[-1], self._output_dense.kernel.shape[-1]
        self.eigenvalues_in = self.add_weight(
            name="eigenvalues_in", shape=(features,), initializer="ones", trainable=self.self_attention
        )
        self.eigenvalues_in_mask = self.add_weight(
            name="eigenvalues_in_mask", shape=(features,), initializer="ones", trainable=False
        )
        self.eigenvalues_out = self.add_weight(
            name="eigenvalues_out", shape=(outputs,), initializer="zeros", trainable=False
        )
        self.eigenvalues_out_mask = self.add_weight(
            name="eigenvalues_out_mask", shape=(outputs,), initializer="ones", trainable=False
        )

    def call(self, query, value, key=None, **kwargs):
        if self.self_attention:
            if (value is not query) or (key is not None and key is not query):
                raise ValueError(
                    f"Layer '{self.name}' was made for self-attention (`self_attention=True`): call it with the "
                    "same tensor as query, value (and key)."
                )
            scale = ops.cast(self.eigenvalues_in * self.eigenvalues_in_mask, query.dtype)
            scaled = query * scale
            mask = getattr(query, "_keras_mask", None)
            if mask is not None:
                scaled._keras_mask = mask  # the padding mask, which attention reads from its query
            query = value = scaled
            key = None
        result = super().call(query, value, key, **kwargs)
        output, scores = result if isinstance(result, tuple) else (result, None)
        mask_out = ops.cast(self.eigenvalues_out_mask, output.dtype)
        bias = self._output_dense.bias
        kept = output * mask_out
        output = kept if bias is None else kept + ops.cast(bias, output.dtype) * (1.0 - mask_out)
        return (output, scores) if isinstance(result, tuple) else output

    def get_config(self):
        return {**super().get_config(), "self_attention": self.self_attention}

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False, use_causal_mask=False):
        output, scores = super()._compute_attention(
            query, key, value, attention_mask=attention_mask, training=training,
            return_attention_scores=return_attention_scores, use_causal_mask=use_causal_mask,
        )
        scale = ops.cast(self.head_eigenvalues * self.head_mask, output.dtype)
        return output * ops.expand_dims(scale, -1), scores  # output: (..., heads, value_dim)

    @classmethod
    def from_layer(cls, layer, self_attention=False):
        """The spectral layer of a built `keras.layers.MultiHeadAttention` (same outputs);
        `self_attention`: whether it is called with one tensor as query, value and key
        (then its input features can be removed too)."""
        if not layer.built:
            raise ValueError(f"Layer '{layer.name}' is not built; call the model on data (or build it) first.")
        new = cls.from_config({**layer.get_config(), "self_attention": self_attention})
        new.build_from_config(layer.get_build_config())
        for target, source in zip(projections(new), projections(layer)):
            for t, s in zip(target.weights, source.weights):
                t.assign(ops.convert_to_numpy(s))  # a copy: a shared JAX buffer could be donated by fit
        return new

    def to_layer(self):
        """The plain `keras.layers.MultiHeadAttention` with the same outputs (each head's
        eigenvalue and mask folded into its rows of the output projection)."""
        config = self.get_config()
        del config["self_attention"]
        plain = keras.layers.MultiHeadAttention.from_config(config)
        plain.build_from_config(self.get_build_config())
        heads = _numpy(self.head_eigenvalues * self.head_mask)
        rows = _numpy(self.eigenvalues_in * self.eigenvalues_in_mask) if self.self_attention else None
        mask_out = _numpy(self.eigenvalues_out_mask)  # a removed output's column: zero (it outputs its bias)
        for target, source in zip(projections(plain), projections(self)):
            for t, s in zip(target.weights, source.weights):
                value = _numpy(s)
                if s is self._output_dense.kernel:
                    value = value * heads.reshape((-1,) + (1,) * (value.ndim - 1)) * mask_out
                elif rows is not None and s is source.kernel:  # query, key, value (gate): rows first
                    value = value * rows.reshape((-1,) + (1,) * (value.ndim - 1))
                t.assign(value)
        return plain


def self_attention_node(node):
    """Whether a call (a Keras graph node) of an attention layer passes one tensor as
    query, value and key."""
    arguments = node.arguments
    given = list(arguments.args[:3]) + [arguments.kwargs.get(k) for k in ("query", "value", "key")]
    return len({id(t) for t in given if isinstance(t, keras.KerasTensor)}) == 1


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def projections(layer):
    """The EinsumDense projections of a built MultiHeadAttention: query, key, value (and
    gate), whose kernels end in `(heads, dim)`, then the output one, which starts with
    `(heads, value_dim)`."""
    inner = [layer._query_dense, layer._key_dense, layer._value_dense]
    if getattr(layer, "_gate_dense", None) is not None:
        inner.append(layer._gate_dense)
    return inner + [layer._output_dense]
