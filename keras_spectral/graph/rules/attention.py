"""Rules of attention: `keras.layers.MultiHeadAttention` and `SpectralMultiHeadAttention`.

- Its heads are a node group of their own (an `InnerGroup`: a head's query, key and value
  columns and its rows of the output projection, removed whole), prunable once
  `spectralize` has made the layer a `SpectralMultiHeadAttention`, which holds a mask and
  an eigenvalue per head.
- Self-attention (one tensor as query, value and key) reads its input's features as the
  rows of its query, key and value kernels and produces its output features, like a
  Dense layer: a residual stream through attention blocks is one node group.
- Cross-attention is opaque to the features it reads and writes.
"""

import keras
import numpy as np

from keras_spectral.attention import SpectralMultiHeadAttention, projections, self_attention_node
from keras_spectral.cloning import clone_layer
from keras_spectral.graph.rules.base import OPAQUE, PRODUCE, Produce, describe, input_rank, register_rule
from keras_spectral.graph.rules.weights import numpy


def _positions(shape):
    return int(np.prod([d or 1 for d in shape[1:-1]]))


class AttentionRule(Produce):
    """MultiHeadAttention: in self-attention a producer of its output features and a
    reader of its input's; its heads are an inner node group."""

    masks = {"heads": "head_mask"}
    folds = False  # its inputs are masked instead (query, key and value read them)

    def flow(self, call, graph, first):
        layer = call.layer
        if not isinstance(layer, SpectralMultiHeadAttention):
            return OPAQUE, (f"reaches {describe(layer)}, which holds no masks of its features: convert it with "
                            "keras_spectral.spectralize (SpectralMultiHeadAttention)")
        if not self_attention_node(call.node):
            return OPAQUE, (f"reaches {describe(layer)}, a cross-attention: the features it reads and writes are "
                            "not prunable (its heads are)")
        if first and input_rank(call, graph) > 2:
            return OPAQUE, f"reaches {describe(layer)}: it reads the last axis, but the features are on axis 1"
        if len(layer._output_dense.kernel.shape) != 3:
            return OPAQUE, f"reaches {describe(layer)}, whose output_shape has several axes"
        if not layer.self_attention:
            return OPAQUE, (f"reaches {describe(layer)}, made without self_attention=True: convert the model "
                            "again with keras_spectral.spectralize")
        return PRODUCE, None

    def output_first(self, call, graph, first):
        return False

    def feature_axis(self, layer):
        return -1

    def width(self, layer):
        return int(layer._output_dense.kernel.shape[-1])

    def kernel(self, layer):
        """The output projection as `(heads · value_dim, outputs)`, heads' eigenvalues in."""
        kernel = numpy(layer._output_dense.kernel)
        if isinstance(layer, SpectralMultiHeadAttention):
            kernel = kernel * numpy(layer.head_eigenvalues * layer.head_mask)[:, None, None]
        return kernel.reshape(-1, kernel.shape[-1])

    def bias(self, layer):
        return layer._output_dense.bias

    def inner(self, layer):
        return {"heads": layer._num_heads}

    def holds_masks(self, layer):
        return isinstance(layer, SpectralMultiHeadAttention)

    def inner_scores(self, layer, score, kind="heads"):
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
        """Fewer heads (`keep_heads`) and, in self-attention, fewer input and output
        features: the kept rows of the query, key and value kernels, the kept columns and
        `bias` of the output projection."""
        heads = np.arange(layer._num_heads) if keep_heads is None else np.asarray(keep_heads)
        shapes = layer.get_build_config()["shapes_dict"]
        outputs = np.asarray(keep_out)
        # Input features go only in self-attention (one tensor read by query, key, value).
        rows = np.asarray(keep_in) if getattr(layer, "self_attention", False) else None
        resized = {name: tuple(shape[:-1]) + (len(rows),) if rows is not None else tuple(shape)
                   for name, shape in shapes.items()}
        new = clone_layer(layer, num_heads=len(heads), output_shape=len(outputs))
        new.build(**resized)
        for target, source in zip(projections(new), projections(layer)):
            last = source is layer._output_dense
            for t, s in zip(target.weights, source.weights):
                value = numpy(s)
                if last and s is source.kernel:
                    value = value[heads][..., outputs]
                elif last:  # the output bias
                    value = value[outputs] if bias is None else np.asarray(bias)
                elif s is source.kernel:  # (features, heads, dim)
                    value = (value if rows is None else value[rows])[:, heads]
                else:  # (heads, dim)
                    value = value[heads]
                t.assign(value)
        if isinstance(layer, SpectralMultiHeadAttention):
            new.head_eigenvalues.assign(numpy(layer.head_eigenvalues)[heads])
            new.head_mask.assign(numpy(layer.head_mask)[heads])
            kept = slice(None) if rows is None else rows
            new.eigenvalues_in.assign(numpy(layer.eigenvalues_in)[kept])
            new.eigenvalues_in_mask.assign(numpy(layer.eigenvalues_in_mask)[kept])
            new.eigenvalues_out.assign(numpy(layer.eigenvalues_out)[outputs])
            new.eigenvalues_out_mask.assign(numpy(layer.eigenvalues_out_mask)[outputs])
        return new

    def _shapes(self, call, graph):
        layer = call.layer
        query = graph.tensors[call.inputs[0]].shape
        value = graph.tensors[call.inputs[1]].shape if len(call.inputs) > 1 else query
        return _positions(query), _positions(value), layer._num_heads, layer._key_dim, layer._value_dim

    def cost(self, call, graph, kept_in, kept_out, kept_heads=1.0):
        """`(multiply_adds, parameters)` with the fractions of input features, output
        features and heads kept (input features count in self-attention only)."""
        layer = call.layer
        t, s, heads, key_dim, value_dim = self._shapes(call, graph)
        ins = [int(d.kernel.shape[0]) * (kept_in if _self else 1.0)
               for d, _self in ((layer._query_dense, True), (layer._key_dense, True), (layer._value_dense, True))]
        out = self.width(layer) * kept_out
        h = heads * kept_heads
        gate = getattr(layer, "_gate_dense", None) is not None
        macs = h * (t * ins[0] * key_dim + s * ins[1] * key_dim + s * ins[2] * value_dim
                    + t * s * (key_dim + value_dim) + t * value_dim * out + (t * ins[0] * value_dim if gate else 0))
        biased = layer._use_bias
        kernels = ins[0] * key_dim + ins[1] * key_dim + ins[2] * value_dim + value_dim * out
        biases = 2 * key_dim + value_dim if biased else 0
        if gate:
            kernels += ins[0] * value_dim
            biases += value_dim if biased else 0
        params = h * (kernels + biases) + (out if biased else 0)
        return macs, params

    def multiply_adds(self, call, graph):
        return self.cost(call, graph, 1.0, 1.0)[0]

    def parameters(self, layer):
        return sum(int(np.prod(w.shape)) for dense in projections(layer) for w in dense.weights)


register_rule(keras.layers.MultiHeadAttention, AttentionRule())
register_rule(SpectralMultiHeadAttention, AttentionRule())
