"""How each layer type treats the feature (channel) axis, for the node-group analysis.

A tensor's features are its last axis, or axis 1 for a channels-first spatial tensor
(`first=True`: made by a `data_format="channels_first"` layer; `first=None` for a tensor
that holds no node group's features, such as a model input, where nothing is checked).
`role(call, graph, first)` answers, for a call whose first input has that layout, one of:

- `FULLY_CONNECTED`: Dense / SpectralDense and the convolutions (Conv1D/2D/3D and the
  spectral ones, ungrouped). Read the input's features (channels) as rows of their kernel
  and produce new ones (a group's producer and consumer).
- `PER_FEATURE`: output feature `i` depends only on input feature `i`: activations,
  Dropout and the noise layers (SpatialDropout included), BatchNormalization on the
  feature axis, PReLU shared over the other axes, Identity, ActivityRegularization, and
  the spatial layers that act channel by channel: Max / Average / Global pooling,
  ZeroPadding, Cropping, UpSampling. Features pass through unchanged.
- `FLATTEN`: Flatten of a spatial tensor: each channel becomes the features of its
  positions (`flatten_channels` says which).
- `JOIN`: elementwise merges of same-shaped inputs (Add, Subtract, Multiply, Average,
  Maximum, Minimum): feature `i` of every input becomes feature `i` of the output, so the
  producers of those features are coupled.
- `CONCATENATE`: Concatenate on the feature axis: the inputs' features side by side.
- `OPAQUE`, with a reason: anything else (LayerNormalization, Softmax, Reshape, attention,
  depthwise convolutions, ...). Features that reach it cannot be removed.

To teach the analysis a new per-feature layer, add its class to `PER_FEATURE_LAYERS` (or a
check to `_per_feature_reason`); if it holds per-feature weights, give it a slicing
function in `keras_spectral.graph.slicing` too.
"""

import keras
import numpy as np

from keras_spectral.convolutional import _SpectralConv
from keras_spectral.layers import SpectralDense

FULLY_CONNECTED = "fully_connected"
PER_FEATURE = "per_feature"
FLATTEN = "flatten"
JOIN = "join"
CONCATENATE = "concatenate"
OPAQUE = "opaque"

DENSE_LAYERS = (SpectralDense, keras.layers.Dense)
CONVOLUTION_LAYERS = (_SpectralConv, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
FULLY_CONNECTED_LAYERS = DENSE_LAYERS + CONVOLUTION_LAYERS

POOLING_LAYERS = (
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
)
GLOBAL_POOLING_LAYERS = (
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
)
SPATIAL_LAYERS = POOLING_LAYERS + GLOBAL_POOLING_LAYERS + (
    keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D, keras.layers.Cropping2D, keras.layers.Cropping3D,
    keras.layers.UpSampling1D, keras.layers.UpSampling2D, keras.layers.UpSampling3D,
)

PER_FEATURE_LAYERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
    keras.layers.Dropout,  # and SpatialDropout1D/2D/3D, its subclasses
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
    keras.layers.BatchNormalization,
) + SPATIAL_LAYERS

JOIN_LAYERS = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)

# Activations that mix the features they act on.
MIXING_ACTIVATIONS = ("softmax", "log_softmax", "glu", "sparsemax")


def width(layer):
    """The number of output features (units) or channels (filters) of a fully connected layer."""
    return layer.units if isinstance(layer, DENSE_LAYERS) else layer.filters


def channels_first(layer):
    """Whether `layer` (a convolution or spatial layer) takes its channels on axis 1."""
    return getattr(layer, "data_format", "channels_last") == "channels_first"


def channel_axis(layer):
    """The axis of `layer`'s input whose entries its per-feature weights index: 1 for a
    channels-first convolution, BatchNormalization's `axis`, else the last."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    return 1 if isinstance(layer, CONVOLUTION_LAYERS) and channels_first(layer) else -1


def activation_reason(layer):
    """Why `layer`'s activation does not act feature by feature, or None if it does."""
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    name = getattr(activation, "__name__", None)
    if name in MIXING_ACTIVATIONS:
        return f"its activation '{name}' mixes features"
    try:
        known = keras.activations.get(name) is activation
    except (ValueError, TypeError):
        known = False
    if not known:
        return f"its activation {activation!r} is not a Keras activation known to act feature by feature"
    return None


def _layout_reason(layer, first, rank):
    """Why `layer` would read another axis than the features of a tensor laid out with
    `first` (channels on axis 1), or None."""
    if rank <= 2 or first is None:
        return None
    if isinstance(layer, DENSE_LAYERS) and first:
        return "it reads the last axis, but the channels are on axis 1 (channels first)"
    if isinstance(layer, CONVOLUTION_LAYERS + SPATIAL_LAYERS) and channels_first(layer) != first:
        return (f"it takes data_format='{getattr(layer, 'data_format', 'channels_last')}', but the "
                f"channels are on axis {1 if first else -1}")
    return None


def _per_feature_reason(layer, call, graph, first):
    if isinstance(layer, keras.layers.Activation):
        return activation_reason(layer)
    rank = len(graph.tensors[call.inputs[0]].shape)
    if isinstance(layer, keras.layers.BatchNormalization):
        axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
        if first is not None and (axis is None or axis % rank != ((1 if first and rank > 2 else -1) % rank)):
            return f"it normalizes axis {layer.axis}, not the feature axis"
    if isinstance(layer, keras.layers.PReLU):
        if first and rank > 2:
            return "it is applied to channels-first features (PReLU's alpha is laid out channels last)"
        if any(d != 1 for d in layer.alpha.shape[:-1]):
            return "its alpha is not shared over the axes before the features (set shared_axes)"
    return _layout_reason(layer, first, rank)


def role(call, graph, first=False):
    """`(role, reason)` of a layer call whose first input has its channels on axis 1
    (`first`) or last; `reason` explains an `OPAQUE` role."""
    layer = call.layer
    what = f"{type(layer).__name__} '{layer.name}'"
    rank = len(graph.tensors[call.inputs[0]].shape) if call.inputs else 0
    if isinstance(layer, FULLY_CONNECTED_LAYERS):
        if getattr(layer, "groups", 1) != 1:
            return OPAQUE, f"reaches {what}, a grouped convolution (groups={layer.groups})"
        reason = _layout_reason(layer, first, rank)
        return (FULLY_CONNECTED, None) if reason is None else (OPAQUE, f"reaches {what}: {reason}")
    if isinstance(layer, PER_FEATURE_LAYERS):
        reason = _per_feature_reason(layer, call, graph, first)
        return (PER_FEATURE, None) if reason is None else (OPAQUE, f"reaches {what}: {reason}")
    if isinstance(layer, keras.layers.Flatten):
        if None in tuple(graph.tensors[call.inputs[0]].shape[1:]):
            return OPAQUE, f"reaches {what}, whose input has dimensions of unknown size"
        if rank > 2 and not first and layer.data_format == "channels_first":
            return OPAQUE, f"reaches {what}: it takes data_format='channels_first', but the channels are last"
        return FLATTEN, None
    if isinstance(layer, JOIN_LAYERS):
        shapes = {tuple(graph.tensors[key].shape[1:]) for key in call.inputs}
        if len(shapes) != 1:
            return OPAQUE, f"reaches {what}, which broadcasts inputs of shapes {sorted(shapes)}"
        return JOIN, None
    if isinstance(layer, keras.layers.Concatenate):
        feature_axis = 1 if first and rank > 2 else rank - 1
        if layer.axis % rank != feature_axis:
            return OPAQUE, f"reaches {what}, which joins axis {layer.axis}, not the feature axis"
        return CONCATENATE, None
    return OPAQUE, f"reaches {what}"


def output_first(call, graph, first):
    """Whether the output of a call (of any role but OPAQUE) has its channels on axis 1
    (None: unknown, for the outputs of per-feature layers on such tensors)."""
    layer = call.layer
    if len(graph.tensors[call.outputs[0]].shape) <= 2:
        return False
    if isinstance(layer, CONVOLUTION_LAYERS):
        return channels_first(layer)
    return first


def flatten_channels(call, graph, first):
    """For a FLATTEN call: the input channel each output feature comes from (an int array
    of the output's length), as Flatten lays them out."""
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
