"""How each layer type treats the feature (last) axis, for the node-group analysis.

`role(call, graph)` answers one of:

- `FULLY_CONNECTED`: Dense / SpectralDense. Reads its input's features as rows of its
  kernel and produces new features (a group's producer and consumer).
- `PER_FEATURE`: output feature `i` depends only on input feature `i` (activations,
  Dropout and the noise layers, BatchNormalization on the feature axis, PReLU shared over
  the other axes, Identity, ActivityRegularization). Features pass through unchanged.
- `JOIN`: elementwise merges of same-shaped inputs (Add, Subtract, Multiply, Average,
  Maximum, Minimum): feature `i` of every input becomes feature `i` of the output, so the
  producers of those features are coupled.
- `CONCATENATE`: Concatenate on the feature axis: the inputs' features side by side.
- `OPAQUE`, with a reason: anything else (LayerNormalization, Softmax, Reshape / Flatten,
  attention, convolutions, ...). Features that reach it cannot be removed.

To teach the analysis a new per-feature layer, add its class to `PER_FEATURE_LAYERS` (or a
check to `_per_feature_reason`); if it holds per-feature weights, give it a slicing
function in `keras_spectral.graph.slicing` too.
"""

import keras

from keras_spectral.layers import SpectralDense

FULLY_CONNECTED = "fully_connected"
PER_FEATURE = "per_feature"
JOIN = "join"
CONCATENATE = "concatenate"
OPAQUE = "opaque"

FULLY_CONNECTED_LAYERS = (SpectralDense, keras.layers.Dense)

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
)

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


def _per_feature_reason(layer, call, graph):
    if isinstance(layer, keras.layers.Activation):
        return activation_reason(layer)
    rank = len(graph.tensors[call.inputs[0]].shape)
    if isinstance(layer, keras.layers.BatchNormalization):
        axis = layer.axis if isinstance(layer.axis, int) else None
        if axis not in (-1, rank - 1):
            return f"it normalizes axis {layer.axis}, not the feature axis"
    if isinstance(layer, keras.layers.PReLU):
        if any(d != 1 for d in layer.alpha.shape[:-1]):
            return "its alpha is not shared over the axes before the features (set shared_axes)"
    return None


def role(call, graph):
    """`(role, reason)` of a layer call; `reason` explains an `OPAQUE` role."""
    layer = call.layer
    what = f"{type(layer).__name__} '{layer.name}'"
    if isinstance(layer, FULLY_CONNECTED_LAYERS):
        return FULLY_CONNECTED, None
    if isinstance(layer, PER_FEATURE_LAYERS):
        reason = _per_feature_reason(layer, call, graph)
        return (PER_FEATURE, None) if reason is None else (OPAQUE, f"reaches {what}: {reason}")
    if isinstance(layer, JOIN_LAYERS):
        shapes = {tuple(graph.tensors[key].shape[1:]) for key in call.inputs}
        if len(shapes) != 1:
            return OPAQUE, f"reaches {what}, which broadcasts inputs of shapes {sorted(shapes)}"
        return JOIN, None
    if isinstance(layer, keras.layers.Concatenate):
        rank = len(graph.tensors[call.inputs[0]].shape)
        if layer.axis not in (-1, rank - 1):
            return OPAQUE, f"reaches {what}, which joins axis {layer.axis}, not the feature axis"
        return CONCATENATE, None
    return OPAQUE, f"reaches {what}"
