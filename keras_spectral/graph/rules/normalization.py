"""Rules of the per-channel layers with weights: BatchNormalization, PReLU,
`keras.applications`' LayerScale (ConvNeXt), and the normalizations over the feature axis
(LayerNormalization, RMSNormalization: opaque as they are, per-feature once `spectralize`
has made them masked ones that keep removed features out of their statistics)."""

import keras
import numpy as np

from keras_spectral.cloning import clone_layer
from keras_spectral.graph.rules.base import Opaque, PerFeature, input_rank, register_rule
from keras_spectral.graph.rules.weights import assign_sliced
from keras_spectral.normalization import MaskedLayerNormalization, MaskedRMSNormalization


class BatchNormalizationRule(PerFeature):
    """BatchNormalization on the feature axis: gamma, beta and the moving statistics sliced."""


    def feature_axis(self, layer):
        return layer.axis if isinstance(layer.axis, int) else layer.axis[0]

    def reason(self, call, graph, first):
        layer, rank = call.layer, input_rank(call, graph)
        axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
        if first is not None and (axis is None or axis % rank != ((1 if first and rank > 2 else -1) % rank)):
            return f"it normalizes axis {layer.axis}, not the feature axis"
        return None

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        new = clone_layer(layer)
        new.build(tuple(input_shape))
        assign_sliced(new, layer, ("gamma", "beta", "moving_mean", "moving_variance"), keep_in)
        return new


class PReLURule(PerFeature):
    """PReLU with alpha shared over every axis but the last."""


    def feature_axis(self, layer):
        return -1

    def reason(self, call, graph, first):
        if first and input_rank(call, graph) > 2:
            return "it is applied to channels-first features (PReLU's alpha is laid out channels last)"
        if any(d != 1 for d in call.layer.alpha.shape[:-1]):
            return "its alpha is not shared over the axes before the features (set shared_axes)"
        return None

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        new = clone_layer(layer)
        new.build(tuple(input_shape))
        assign_sliced(new, layer, ("alpha",), keep_in)
        return new


class LayerScaleRule(PerFeature):
    """ConvNeXt's LayerScale (`x * gamma`, one gamma per feature)."""


    def feature_axis(self, layer):
        return -1

    def reason(self, call, graph, first):
        return "it scales the last axis, but the channels are on axis 1" if first and input_rank(call, graph) > 2 else None

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        new = clone_layer(layer, projection_dim=len(keep_in))
        new.build(tuple(input_shape))
        assign_sliced(new, layer, ("gamma",), keep_in)
        return new


class MaskedNormalizationRule(PerFeature):
    """MaskedLayerNormalization / MaskedRMSNormalization: feature by feature for the
    pruning tools, which set its `feature_mask` when they remove a feature (so the
    statistics leave it out); sliced to a narrower layer of the same class."""

    masks = {"feature": "feature_mask"}

    def feature_axis(self, layer):
        return -1

    def reason(self, call, graph, first):
        return "it normalizes the last axis, but the channels are on axis 1" if first and input_rank(call, graph) > 2 else None

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        new = clone_layer(layer)
        new.build(tuple(input_shape))
        names = ("scale",) if isinstance(layer, MaskedRMSNormalization) else ("gamma", "beta")
        assign_sliced(new, layer, names + ("feature_mask",), keep_in)
        return new

    def parameters(self, layer):
        return sum(int(np.prod(w.shape)) for w in layer.weights if w is not layer.feature_mask)


_NORMALIZED = ("it normalizes over the features, so removing one changes the others: convert it with "
               "keras_spectral.spectralize (a masked normalization leaves removed features out of its statistics)")


register_rule(keras.layers.BatchNormalization, BatchNormalizationRule())
register_rule(keras.layers.LayerNormalization, Opaque(_NORMALIZED))
register_rule(keras.layers.RMSNormalization, Opaque(_NORMALIZED))
register_rule(MaskedLayerNormalization, MaskedNormalizationRule())
register_rule(MaskedRMSNormalization, MaskedNormalizationRule())
register_rule(keras.layers.PReLU, PReLURule())
try:  # keras.applications' own per-channel layer (a private path of Keras)
    from keras.src.applications.convnext import LayerScale
except ImportError:  # pragma: no cover
    LayerScale = None
if LayerScale is not None:
    register_rule(LayerScale, LayerScaleRule())
