"""Multi-head attention whose heads can be removed: `SpectralMultiHeadAttention`.

In the spectral picture a head is a block of input nodes of the output projection (its
`value_dim` features); one eigenvalue per head, shared by those nodes, scales the head's
rows of the output projection: `W_o[h] = λ_h φ_h` (the output projection's `λ_in`, tied
over the head, with its `λ_out = 0` as after conversion). `spectralize` puts this layer in
place of `keras.layers.MultiHeadAttention` with `λ_h = 1` and `φ = W_o` (same outputs);
the eigenvalues train with the rest, and `|λ_h|` ranks the heads. Removing a head (the
pruning tools set its `head_mask` to 0) silences its output; `compact` makes a layer of
the same class with fewer heads (its query, key and value columns and output rows gone),
and `collapse` a plain `keras.layers.MultiHeadAttention`.
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

    def build(self, query_shape, value_shape, key_shape=None):
        super().build(query_shape, value_shape, key_shape)
        self.head_eigenvalues = self.add_weight(
            name="head_eigenvalues", shape=(self._num_heads,), initializer="ones", trainable=True
        )
        self.head_mask = self.add_weight(name="head_mask", shape=(self._num_heads,), initializer="ones", trainable=False)

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False, use_causal_mask=False):
        output, scores = super()._compute_attention(
            query, key, value, attention_mask=attention_mask, training=training,
            return_attention_scores=return_attention_scores, use_causal_mask=use_causal_mask,
        )
        scale = ops.cast(self.head_eigenvalues * self.head_mask, output.dtype)
        return output * ops.expand_dims(scale, -1), scores  # output: (..., heads, value_dim)

    @classmethod
    def from_layer(cls, layer):
        """The spectral layer of a built `keras.layers.MultiHeadAttention` (same outputs)."""
        if not layer.built:
            raise ValueError(f"Layer '{layer.name}' is not built; call the model on data (or build it) first.")
        new = cls.from_config(layer.get_config())
        new.build_from_config(layer.get_build_config())
        for target, source in zip(projections(new), projections(layer)):
            for t, s in zip(target.weights, source.weights):
                t.assign(s)
        return new

    def to_layer(self):
        """The plain `keras.layers.MultiHeadAttention` with the same outputs (each head's
        eigenvalue and mask folded into its rows of the output projection)."""
        plain = keras.layers.MultiHeadAttention.from_config(self.get_config())
        plain.build_from_config(self.get_build_config())
        scale = np.asarray(ops.convert_to_numpy(self.head_eigenvalues * self.head_mask))
        for target, source in zip(projections(plain), projections(self)):
            for t, s in zip(target.weights, source.weights):
                value = np.asarray(ops.convert_to_numpy(s))
                if s is self._output_dense.kernel:
                    value = value * scale.reshape((-1,) + (1,) * (value.ndim - 1))
                t.assign(value)
        return plain


def projections(layer):
    """The EinsumDense projections of a built MultiHeadAttention: query, key, value (and
    gate), whose kernels end in `(heads, dim)`, then the output one, which starts with
    `(heads, value_dim)`."""
    inner = [layer._query_dense, layer._key_dense, layer._value_dense]
    if getattr(layer, "_gate_dense", None) is not None:
        inner.append(layer._gate_dense)
    return inner + [layer._output_dense]
