"""Rules of the merging layers: elementwise merges couple their inputs' features
(broadcast over positions allowed, as in a squeeze-excite gate), Concatenate joins them;
plus `keras.applications`' CustomScaleLayer (InceptionResNetV2: `x + r * scale`)."""

import keras

from keras_spectral.graph.rules.base import Couple, Join, register_rule

COUPLING_LAYERS = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)

for _layer in COUPLING_LAYERS:
    register_rule(_layer, Couple())
register_rule(keras.layers.Concatenate, Join())
try:  # keras.applications' residual scaling layer (a private path of Keras)
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer
except ImportError:  # pragma: no cover
    CustomScaleLayer = None
if CustomScaleLayer is not None:
    register_rule(CustomScaleLayer, Couple())
