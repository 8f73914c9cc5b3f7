"""Rules of the fully connected layers: `keras.layers.Dense` and `SpectralDense`."""

import keras
import numpy as np

from keras_spectral import eigenvectors as eigenvector_modes
from keras_spectral.cloning import clone_layer
from keras_spectral.eigenvectors import _constant
from keras_spectral.graph.rules.base import OPAQUE, PRODUCE, Produce, describe, input_rank, register_rule
from keras_spectral.graph.rules.weights import build_with_eigenvectors, numpy, with_spectral_state
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


register_rule(keras.layers.Dense, DenseRule())
register_rule(SpectralDense, SpectralDenseRule())
