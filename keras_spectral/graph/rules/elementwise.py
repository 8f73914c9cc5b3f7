"""Rules of the layers that act on each feature alone and hold no per-feature weights:
activations, Dropout and the noise layers, Identity, ActivityRegularization, and
`keras.applications`' StochasticDepth (ConvNeXt)."""

import keras

from keras_spectral.graph.rules.base import PerFeature, register_rule

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


class ActivationRule(PerFeature):
    """`keras.layers.Activation`: per feature unless its function mixes features."""

    def reason(self, call, graph, first):
        return activation_reason(call.layer)


ELEMENTWISE_LAYERS = (
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
)

register_rule(keras.layers.Activation, ActivationRule())
for _layer in ELEMENTWISE_LAYERS:
    register_rule(_layer, PerFeature())
try:  # keras.applications' drop-path layer (a private path of Keras): identity at inference
    from keras.src.applications.convnext import StochasticDepth
except ImportError:  # pragma: no cover
    StochasticDepth = None
if StochasticDepth is not None:
    register_rule(StochasticDepth, PerFeature())
