"""Rules of attention: `keras.layers.MultiHeadAttention` and `SpectralMultiHeadAttention`.

Its heads are a node group of their own (an `InnerGroup`: a head's query, key and value
columns and its rows of the output projection, removed whole), prunable once
`spectralize` has made the layer a `SpectralMultiHeadAttention`, which holds a mask and an
eigenvalue per head. The features it reads and writes are not prunable yet: a stream
that reaches attention stays whole.
"""

import keras
import numpy as np

from keras_spectral.attention import SpectralMultiHeadAttention, projections
from keras_spectral.cloning import clone_layer
from keras_spectral.graph.rules.base import Opaque, register_rule
from keras_spectral.graph.rules.weights import numpy


def _positions(shape):
    return int(np.prod([d or 1 for d in shape[1:-1]]))


class AttentionRule(Opaque):
    """MultiHeadAttention: opaque to the features it reads and writes; its heads are
    an inner node group."""

    masks = {"heads": "head_mask"}

    def __init__(self):
        super().__init__("the features attention reads and writes are not prunable yet (its heads are, "
                         "once keras_spectral.spectralize has made it a SpectralMultiHeadAttention)")

    def inner_size(self, layer):
        return layer._num_heads

    def holds_masks(self, layer):
        return isinstance(layer, SpectralMultiHeadAttention)

    def inner_scores(self, layer, score):
        """Per head: `|λ_h|` for the spectral scores; the L1 or L2 norm of its weights
        (query, key, value columns and output rows, the eigenvalue folded in)."""
        if score in ("in", "out", "sum", "product"):
            return np.abs(numpy(layer.head_eigenvalues))
        power = 1 if score == "l1" else 2
        total = np.zeros(layer._num_heads)
        scale = numpy(layer.head_eigenvalues) if isinstance(layer, SpectralMultiHeadAttention) else 1.0
        for dense in projections(layer):
            kernel = numpy(dense.kernel)
            if dense is layer._output_dense:  # (heads, value_dim, ...)
                kernel = np.moveaxis(kernel, 0, -1) * scale
            else:  # (..., heads, dim)
                kernel = np.moveaxis(kernel, -2, -1)
            total += (np.abs(kernel) ** power).reshape(-1, layer._num_heads).sum(axis=0)
        return total if power == 1 else np.sqrt(total)

    def slice(self, layer, keep_in, keep_out, input_shape, bias, keep_heads=None):
        if keep_heads is None:
            return None
        new = clone_layer(layer, num_heads=len(keep_heads))
        new.build_from_config(layer.get_build_config())
        for target, source in zip(projections(new), projections(layer)):
            last = source is layer._output_dense
            for t, s in zip(target.weights, source.weights):
                value = numpy(s)
                if last and s is source.kernel:
                    value = value[keep_heads]
                elif not last:
                    value = np.take(value, keep_heads, axis=value.ndim - 2)  # (..., heads, dim)
                t.assign(value)
        if isinstance(layer, SpectralMultiHeadAttention):
            new.head_eigenvalues.assign(numpy(layer.head_eigenvalues)[keep_heads])
            new.head_mask.assign(numpy(layer.head_mask)[keep_heads])
        return new

    def slices(self, call):
        return False  # only when heads go (compact passes keep_heads)

    def _terms(self, call, graph):
        """`(multiply-adds that scale with the heads, those that do not)` of one sample."""
        layer = call.layer
        query = graph.tensors[call.inputs[0]].shape
        value = graph.tensors[call.inputs[1]].shape if len(call.inputs) > 1 else query
        t, s = _positions(query), _positions(value)
        heads, key_dim, value_dim = layer._num_heads, layer._key_dim, layer._value_dim
        q_in, k_in, v_in = (int(d.kernel.shape[0]) for d in (layer._query_dense, layer._key_dense, layer._value_dense))
        out = int(np.prod(layer._output_dense.kernel.shape[2:]))
        per_head = (t * q_in * key_dim + s * k_in * key_dim + s * v_in * value_dim  # projections
                    + t * s * (key_dim + value_dim)  # scores and their weighted sum
                    + t * value_dim * out)  # output projection
        if getattr(layer, "_gate_dense", None) is not None:
            per_head += t * q_in * value_dim
        return per_head * heads, 0

    def multiply_adds(self, call, graph):
        return sum(self._terms(call, graph))

    def parameters(self, layer):
        return sum(int(np.prod(w.shape)) for dense in projections(layer) for w in dense.weights)

    def inner_cost(self, call, graph, kept):
        layer = call.layer
        scaled, fixed = self._terms(call, graph)
        bias = layer._output_dense.bias
        constant = int(np.prod(bias.shape)) if bias is not None else 0
        return scaled * kept + fixed, (self.parameters(layer) - constant) * kept + constant


register_rule(keras.layers.MultiHeadAttention, AttentionRule())
register_rule(SpectralMultiHeadAttention, AttentionRule())
