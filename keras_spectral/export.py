"""Serving: turn spectral models into plain Keras models, and export them.

`collapse(model)` replaces every `SpectralDense` with the equivalent `keras.layers.Dense`,
every spectral convolution with the equivalent Keras convolution and every masked
normalization without removed features with the plain one (same outputs), so the served
model (of a compacted model) needs neither this package nor the spectral arithmetic. Export either model with Keras' own
`model.export(path, format="tf_saved_model")`; see `docs/deployment.md`.
"""

import keras
from keras import ops

from keras_spectral import extensions
from keras_spectral.attention import SpectralMultiHeadAttention
from keras_spectral.cloning import replace_layers
from keras_spectral.embedding import SpectralEmbedding
from keras_spectral.graph.model_graph import functional_of
from keras_spectral.convolutional import _SpectralConv
from keras_spectral.layers import SpectralDense
from keras_spectral.normalization import MaskedLayerNormalization, MaskedRMSNormalization


def _plain(layer):
    if isinstance(layer, SpectralDense):
        return layer.to_dense()
    if isinstance(layer, _SpectralConv):
        return layer.to_conv()
    if isinstance(layer, (MaskedLayerNormalization, MaskedRMSNormalization)) and ops.convert_to_numpy(layer.feature_mask).all():
        return layer.to_layer()  # with removed features it stays masked (compact first)
    if isinstance(layer, (SpectralMultiHeadAttention, SpectralEmbedding)):
        return layer.to_layer()
    hub = extensions.hub()
    if hub is not None and isinstance(layer, hub.SPECTRAL_CLASSES) and not layer.holds_removed_features():
        return layer.to_layer()
    return None


def collapse(model):
    """An equivalent model in which every `SpectralDense` is a `keras.layers.Dense` and
    every spectral convolution the matching `keras.layers.Conv*D`.

    Works for Sequential and functional models of any topology, nested models included;
    other layers are copied with their weights. The inverse of `spectralize`. The result
    is compiled like the input where that was compiled (same loss, metrics and optimizer
    configuration, fresh optimizer state). The input model is not modified.

    Example:

    >>> served = collapse(model)  # doctest: +SKIP
    >>> served.export("serving/1", format="tf_saved_model")  # doctest: +SKIP
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model. Received: model={model!r}")
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built, so its SpectralDense layers have no weights "
            "yet: call it on data (or build it) before collapse()."
        )
    if functional_of(model) is None:
        raise ValueError(
            f"collapse() supports Sequential and functional models and could not rebuild "
            f"model '{model.name}' ({type(model).__name__}), a subclassed model; call "
            "`layer.to_dense()` on its SpectralDense layers (`to_conv()` on spectral convolutions) instead."
        )
    return replace_layers(model, _plain)
