"""Rules of the layers that move positions, not features: pooling, padding, cropping,
up-sampling (channel by channel), Flatten (a channel becomes the features of its
positions) and Reshape (features kept when only axes of size 1 come or go)."""

import keras
import numpy as np

from keras_spectral.cloning import clone_layer
from keras_spectral.graph.rules.base import (
    OPAQUE, PER_FEATURE, PerFeature, Relay, Rule, data_format_first, describe, input_rank, register_rule,
)

SPATIAL_LAYERS = (
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D, keras.layers.Cropping2D, keras.layers.Cropping3D,
    keras.layers.UpSampling1D, keras.layers.UpSampling2D, keras.layers.UpSampling3D,
)


class SpatialRule(PerFeature):
    """A layer with a `data_format` that acts channel by channel."""

    def reason(self, call, graph, first):
        if first is None or input_rank(call, graph) <= 2 or data_format_first(call.layer) == first:
            return None
        return (f"it takes data_format='{call.layer.data_format}', but the channels are on axis "
                f"{1 if first else -1}")

    def output_first(self, call, graph, first):
        if len(graph.tensors[call.outputs[0]].shape) <= 2:
            return False
        return data_format_first(call.layer)


class FlattenRule(Relay):
    """Flatten: each channel becomes the features of its positions."""

    def flow(self, call, graph, first):
        layer, rank = call.layer, input_rank(call, graph)
        if None in tuple(graph.tensors[call.inputs[0]].shape[1:]):
            return OPAQUE, f"reaches {describe(layer)}, whose input has dimensions of unknown size"
        if rank > 2 and not first and layer.data_format == "channels_first":
            return OPAQUE, f"reaches {describe(layer)}: it takes data_format='channels_first', but the channels are last"
        return super().flow(call, graph, first)

    def output_first(self, call, graph, first):
        return False

    def index(self, call, graph, first):
        """The input channel each output feature comes from, as Flatten lays them out."""
        shape = tuple(graph.tensors[call.inputs[0]].shape[1:])
        if len(shape) < 2:
            return np.arange(shape[0] if shape else 1)
        axis = 0 if first else len(shape) - 1
        ids = np.broadcast_to(
            np.arange(shape[axis]).reshape([-1 if a == axis else 1 for a in range(len(shape))]), shape
        )
        if call.layer.data_format == "channels_first":  # Flatten moves axis 1 last first
            ids = np.moveaxis(ids, 0, -1)
        return np.ascontiguousarray(ids).reshape(-1)


def unit_axes_moved(call, graph, first):
    """For a reshape-like call: `(True, output_first)` when the feature axis stays whole at
    the same end (last, or first for channels first) and only the other axes change
    (axes of size 1 come or go, positions merge or split: a ViT's patches `(H, W, C)` →
    `(H·W, C)`), else `(False, reason)`."""
    before = tuple(graph.tensors[call.inputs[0]].shape[1:])
    after = tuple(graph.tensors[call.outputs[0]].shape[1:])
    if None in before or None in after:
        return False, "its shapes have dimensions of unknown size"
    if len(before) > 1 and len(after) > 1:
        end = 0 if first else -1
        rest = (lambda shape: shape[1:]) if first else (lambda shape: shape[:-1])
        if before[end] == after[end] != 1 and np.prod(rest(before)) == np.prod(rest(after)):
            return True, bool(first)
    if [d for d in before if d != 1] != [d for d in after if d != 1]:
        return False, (f"it reshapes {before} into {after}, not only adding or removing axes of size 1 or "
                       "merging positions")
    features = before[0] if first and len(before) > 1 else before[-1]
    if after[-1] == features and (features != 1):
        return True, False
    if after and after[0] == features and len(after) > 1 and features != 1:
        return True, True
    return False, f"it moves the features of {before} off the first and last axes of {after}"


class UnitAxesRule(Rule):
    """A reshape-like layer or operation: features kept where only axes of size 1 are
    added or removed, or positions merged or split, the feature axis whole at its end."""

    def flow(self, call, graph, first):
        ok, detail = unit_axes_moved(call, graph, first)
        return (PER_FEATURE, None) if ok else (OPAQUE, f"reaches {describe(call.layer)}: {detail}")

    def output_first(self, call, graph, first):
        ok, detail = unit_axes_moved(call, graph, first)
        return detail if ok else first


class ReshapeRule(UnitAxesRule):
    """Reshape: its target shape follows the kept features."""

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        """The target shape with its feature entry (last, else first) set to the kept count."""
        before = tuple(layer.input.shape[1:])
        features = before[-1] if before[-1] != 1 else before[0]
        target = list(layer.target_shape)
        target[-1 if target[-1] == features else 0] = len(keep_in)
        return clone_layer(layer, target_shape=tuple(target))


for _layer in SPATIAL_LAYERS:
    register_rule(_layer, SpatialRule())
register_rule(keras.layers.Flatten, FlattenRule())
register_rule(keras.layers.Reshape, ReshapeRule())
