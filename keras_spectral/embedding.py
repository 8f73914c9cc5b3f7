"""`SpectralEmbedding`: an embedding table as a spectral layer, so that the features it
writes into a stream (a transformer's token embeddings) can be removed.

A lookup is a Dense layer on one-hot tokens: token `t` is an input node, feature `o` an
output node, and the table is `w[t, o] = φ[t, o] (λ_in_t − λ_out_o)`. `spectralize` puts
this layer in place of `keras.layers.Embedding` with `φ` the trained table, `λ_in = 1`
(held) and `λ_out = 0` (trained), so the outputs are the same. The pruning tools set
`eigenvalues_out_mask` (a removed feature outputs 0); `compact` keeps the kept columns;
`collapse` returns a plain `keras.layers.Embedding`.
"""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralEmbedding(keras.layers.Embedding):
    """`keras.layers.Embedding` whose table is `φ ⊙ (λ_in[:, None] − λ_out[None, :])`, with
    a mask per token (`eigenvalues_in_mask`) and per feature (`eigenvalues_out_mask`).
    `λ_in` (one per token) is held at 1; `λ_out` (one per feature) trains. Arguments as
    for `keras.layers.Embedding`.

    Input shape: integer token ids `(...)`; output shape: `(..., output_dim)`.

    Example:

    >>> embedding = SpectralEmbedding.from_layer(trained_embedding)  # doctest: +SKIP
    >>> plain = embedding.to_layer()  # doctest: +SKIP
    """

    def build(self, input_shape=None):
        if self.built:
            return
        super().build(input_shape)
        self.eigenvalues_in = self.add_weight(
            name="eigenvalues_in", shape=(self.input_dim,), initializer="ones", trainable=False
        )
        self.eigenvalues_in_mask = self.add_weight(
            name="eigenvalues_in_mask", shape=(self.input_dim,), initializer="ones", trainable=False
        )
        self.eigenvalues_out = self.add_weight(
            name="eigenvalues_out", shape=(self.output_dim,), initializer="zeros", trainable=True
        )
        self.eigenvalues_out_mask = self.add_weight(
            name="eigenvalues_out_mask", shape=(self.output_dim,), initializer="ones", trainable=False
        )

    def call(self, inputs):
        if inputs.dtype != "int32" and inputs.dtype != "int64":
            inputs = ops.cast(inputs, "int32")
        rows = ops.take(self.embeddings, inputs, axis=0)
        token = ops.take(self.eigenvalues_in * self.eigenvalues_in_mask, inputs, axis=0)
        scale = (ops.expand_dims(token, -1) - self.eigenvalues_out) * self.eigenvalues_out_mask
        return ops.cast(rows * ops.cast(scale, rows.dtype), self.compute_dtype)

    # Keras' Embedding saves its table alone; this layer saves every variable it holds.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    @property
    def table(self):
        """The effective table `(input_dim, output_dim)` (masked), as a NumPy array."""
        phi = np.asarray(ops.convert_to_numpy(self.embeddings), dtype="float64")
        lam_in = _numpy(self.eigenvalues_in) * _numpy(self.eigenvalues_in_mask)
        return phi * (lam_in[:, None] - _numpy(self.eigenvalues_out)[None, :]) * _numpy(self.eigenvalues_out_mask)

    @classmethod
    def from_layer(cls, layer):
        """The spectral layer of a built `keras.layers.Embedding` (same outputs)."""
        if not layer.built:
            raise ValueError(f"Layer '{layer.name}' is not built; call the model on data (or build it) first.")
        if getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
            raise ValueError(f"Layer '{layer.name}' is quantized or has LoRA weights; it cannot be converted.")
        new = cls.from_config(layer.get_config())
        new.build()
        new._embeddings.assign(ops.convert_to_numpy(layer.embeddings))  # a copy, never a shared buffer
        return new

    def to_layer(self):
        """The plain `keras.layers.Embedding` with the same outputs."""
        plain = keras.layers.Embedding.from_config(self.get_config())
        plain.build()
        plain._embeddings.assign(self.table.astype(plain._embeddings.dtype))
        return plain


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")
