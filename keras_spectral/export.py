"""Serving: turn spectral models into plain Keras models, and export them.

`collapse(model)` replaces every `SpectralDense` with the equivalent `keras.layers.Dense`
(same outputs), so the served model needs neither this package nor the spectral
arithmetic. Export either model with Keras' own
`model.export(path, format="tf_saved_model")`; see `docs/deployment.md`.
"""

import keras

from keras_spectral.layers import SpectralDense


def collapse(model):
    """An equivalent model in which every `SpectralDense` is a `keras.layers.Dense`.

    Works for Sequential and functional models of any topology; other layers are cloned
    with their weights. The input model is not modified.

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
    originals = []

    def replace(layer):
        if isinstance(layer, SpectralDense):
            return layer.to_dense()
        clone = layer.__class__.from_config(layer.get_config())
        originals.append((layer, clone))
        return clone

    try:
        collapsed = keras.models.clone_model(model, clone_function=replace)
    except ValueError as error:
        raise ValueError(
            f"collapse() supports Sequential and functional models and could not rebuild "
            f"model '{model.name}' ({type(model).__name__}); for a subclassed model, call "
            f"`layer.to_dense()` on its SpectralDense layers instead. Keras said: {error}"
        ) from error
    for layer, clone in originals:
        if layer.weights:
            clone.set_weights(layer.get_weights())
    return collapsed
