"""Rules of the fully connected layers: `keras.layers.Dense`, `SpectralDense`,
`keras.layers.EinsumDense` where its equation is a Dense on the last axis
(`"...c,cd->...d"`, `"abc,cd->abd"`, with a bias on `d` or none), and the embedding
tables (`keras.layers.Embedding`, `SpectralEmbedding`: a Dense on one-hot tokens, which
produces features and reads none)."""

import keras
import numpy as np

from keras_spectral import eigenvectors as eigenvector_modes
from keras_spectral.cloning import clone_layer
from keras_spectral.eigenvectors import _constant
from keras_spectral.graph.rules.base import OPAQUE, PRODUCE, Produce, describe, input_rank, register_rule
from keras_spectral.graph.rules.weights import build_with_eigenvectors, numpy, with_spectral_state
from keras_spectral.embedding import SpectralEmbedding
from keras_spectral.layers import SpectralDense


class DenseRule(Produce):
    """Dense: reads the last axis, makes `units` features."""

    def width(self, layer):
        return layer.units

    def feature_axis(self, layer):
        return -1

    def flow(self, call, graph, first):
        if first and input_rank(call, graph) > 2:
            return OPAQUE, (f"reaches {describe(call.layer)}: it reads the last axis, but the channels "
                            "are on axis 1 (channels first)")
        return PRODUCE, None

    def output_first(self, call, graph, first):
        return False

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        new = clone_layer(layer, units=len(keep_out), use_bias=bias is not None)
        new.build(tuple(input_shape[:-1]) + (len(keep_in),))
        new.kernel.assign(numpy(layer.kernel)[np.ix_(keep_in, keep_out)])
        if bias is not None:
            new.bias.assign(bias)
        return new

    def multiply_adds(self, call, graph):
        shape = graph.tensors[call.inputs[0]].shape
        positions = int(np.prod([d or 1 for d in shape[1:-1]]))
        return positions * int(shape[-1]) * self.width(call.layer)


class SpectralDenseRule(DenseRule):
    """SpectralDense: sliced to the kept block of φ (decomposed modes refactored exactly,
    with dense bases), eigenvalues and masks; `eigenvectors` (compact's argument) may
    change the mode."""

    def slice(self, layer, keep_in, keep_out, input_shape, bias, eigenvectors=None):
        mode = eigenvectors or layer.eigenvector_mode
        n_in, units = len(keep_in), len(keep_out)
        rank = layer.eigenvector_rank if mode == layer.eigenvector_mode else None
        if eigenvector_modes.takes_rank(mode):
            rank = min(rank or min(n_in, units), n_in, units)
        new = clone_layer(
            layer,
            units=units,
            eigenvectors=mode,
            eigenvector_rank=rank,
            # Only dense bases factor the kept block of φ exactly (Kronecker ones would not).
            eigenvector_basis="dense",
            # A seed regenerates φ for the full shape only: the sliced layer stores its block.
            eigenvector_seed=None,
            use_bias=bias is not None,
        )
        # The decomposed modes factor whatever φᵀ the initializer gives: start from the kept block.
        block = _constant(numpy(layer.eigenvectors)[np.ix_(keep_in, keep_out)])
        build_with_eigenvectors(new, tuple(input_shape[:-1]) + (n_in,), block)
        return with_spectral_state(new, layer, keep_in, keep_out, bias)


def _last_axis_equation(layer):
    """`(input letters, kernel letters, output letters)` when the EinsumDense equation
    multiplies the last axis by a `(in, out)` kernel and keeps the others, else None."""
    try:
        inputs, output = layer.equation.replace(" ", "").split("->")
        x, kernel = inputs.split(",")
    except ValueError:
        return None
    if len(kernel) != 2 or not x or x[-1] != kernel[0] or output != x[:-1] + kernel[1] or kernel[1] in x:
        return None
    if layer.bias_axes not in (None, kernel[1]):
        return None
    return x, kernel, output


class EinsumDenseRule(DenseRule):
    """EinsumDense with a Dense-like equation: reads the last axis, makes `kernel.shape[-1]`
    features; any other equation is opaque."""

    def width(self, layer):
        return int(layer.kernel.shape[-1])

    def flow(self, call, graph, first):
        if _last_axis_equation(call.layer) is None:
            return OPAQUE, (f"reaches {describe(call.layer)}, whose equation '{call.layer.equation}' (bias_axes "
                            f"{call.layer.bias_axes!r}) is not a Dense on the last axis")
        return super().flow(call, graph, first)

    def bias(self, layer):
        return getattr(layer, "bias", None)

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        shape = layer.get_config()["output_shape"]
        shape = tuple(shape[:-1]) + (len(keep_out),) if isinstance(shape, (list, tuple)) else len(keep_out)
        new = clone_layer(layer, output_shape=shape, bias_axes=_last_axis_equation(layer)[1][1] if bias is not None else None)
        new.build(tuple(input_shape[:-1]) + (len(keep_in),))
        new.kernel.assign(numpy(layer.kernel)[np.ix_(keep_in, keep_out)])
        if bias is not None:
            new.bias.assign(bias)
        return new


class EmbeddingRule(Produce):
    """Embedding: produces `output_dim` features from token ids (no features read)."""

    def width(self, layer):
        return layer.output_dim

    def flow(self, call, graph, first):
        return PRODUCE, None

    def output_first(self, call, graph, first):
        return False

    def feature_axis(self, layer):
        return -1

    def kernel(self, layer):
        return layer.table if isinstance(layer, SpectralEmbedding) else layer.embeddings

    def bias(self, layer):
        return None

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        """The kept features' columns (every token stays)."""
        new = clone_layer(layer, output_dim=len(keep_out))
        new.build()
        new._embeddings.assign(numpy(layer.embeddings)[:, keep_out])
        if isinstance(layer, SpectralEmbedding):
            new.eigenvalues_in.assign(numpy(layer.eigenvalues_in))
            new.eigenvalues_in_mask.assign(numpy(layer.eigenvalues_in_mask))
            new.eigenvalues_out.assign(numpy(layer.eigenvalues_out)[keep_out])
            new.eigenvalues_out_mask.assign(numpy(layer.eigenvalues_out_mask)[keep_out])
        return new


register_rule(keras.layers.Dense, DenseRule())
register_rule(keras.layers.EinsumDense, EinsumDenseRule())
register_rule(keras.layers.Embedding, EmbeddingRule())
register_rule(SpectralEmbedding, EmbeddingRule())
register_rule(SpectralDense, SpectralDenseRule())
