"""Exact conversion of trained `keras.layers.Dense` layers into `SpectralDense`.

Any kernel `W` is a spectral kernel with `φᵀ = W`, `λ_in = 1`, `λ_out = 0`:
`φᵀ ⊙ (λ_in − λ_out) = W`. So a conventionally trained model can be converted without
changing its outputs, then pruned by eigenvalue (`EigenvaluePruning`, `prune_nodes`),
compacted (`compact`) and collapsed back to Dense (`collapse`, the inverse).

| `eigenvectors=` | conversion |
|---|---|
| `"trainable"` (default), `"frozen"` | exact: φᵀ = W stored whole |
| `"svd"`, `"qr"`, `"qr_full"` | exact up to float rounding: W factored with dense bases |
| `"lowrank"` | an approximation: the best rank-`eigenvector_rank` W (a warning gives the error) |

Kronecker bases and seeded φ cannot hold a given W and are refused.
"""

import keras

from keras_spectral import eigenvectors as eigenvector_modes
from keras_spectral.cloning import replace_layers
from keras_spectral.layers import SpectralDense
from keras_spectral.validation import check_choice


def from_dense(layer, eigenvectors="trainable", eigenvector_rank=None, **kwargs):
    """A `SpectralDense` with the same outputs as the built `keras.layers.Dense` `layer`:
    `SpectralDense.from_dense` (its docstring has the arguments; the table above says
    which modes are exact)."""
    return SpectralDense.from_dense(layer, eigenvectors=eigenvectors, eigenvector_rank=eigenvector_rank, **kwargs)


def _selector(layers):
    """A predicate `(layer) -> bool` from `layers=` (None, names, or a predicate)."""
    if layers is None:
        return lambda layer: True
    if callable(layers):
        return layers
    if isinstance(layers, str):
        layers = [layers]
    if isinstance(layers, (list, tuple, set)) and all(isinstance(n, str) for n in layers):
        names = set(layers)
        return lambda layer: layer.name in names
    raise TypeError(
        "Received an invalid value for `layers`, expected None, a layer name, a list of "
        f"names or a predicate `fn(layer) -> bool`. Received: layers={layers!r}"
    )


def _dense_layers(model):
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Dense):
            found.append(layer)
    return found


def spectralize(model, layers=None, eigenvectors="trainable", **kwargs):
    """A new model in which the chosen `keras.layers.Dense` layers are `SpectralDense`
    layers with the same outputs (`from_dense`); every other layer is copied with its
    weights.

    Args:
        model: A built Sequential or functional model (nested models, several inputs and
            outputs, inputs of any rank).
        layers: Which Dense layers to convert: None (all), a name, a list of names, or a
            predicate `fn(layer) -> bool`.
        eigenvectors: The mode of the new layers (`from_dense` says which are exact).
        **kwargs: Passed to `from_dense` (e.g. `eigenvector_rank`, `train_eigenvalues_in`).

    Returns:
        A new model of the same kind and structure; `collapse` is its inverse. The input
        model is not modified.

    Example:

    >>> spectral = spectralize(trained_dense_model)  # doctest: +SKIP
    >>> spectral.compile("adam", "sparse_categorical_crossentropy")  # doctest: +SKIP
    >>> spectral.fit(x, y, epochs=3, callbacks=[EigenvaluePruning(
    ...     PolynomialDecay(0.0, 0.9, begin_step=0, end_step=1000))])  # doctest: +SKIP
    >>> small = collapse(compact(spectral))  # doctest: +SKIP
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model. Received: model={model!r}")
    check_choice("eigenvectors", eigenvectors, eigenvector_modes.MODES)
    selected = _selector(layers)
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built; call it on data (or build it) first.")
    dense = [layer for layer in _dense_layers(model) if not isinstance(layer, SpectralDense)]
    if not dense:
        raise ValueError(f"Model '{model.name}' has no keras.layers.Dense layer to convert.")
    chosen = [layer for layer in dense if selected(layer)]
    if not chosen:
        raise ValueError(
            f"No Dense layer of model '{model.name}' matches `layers`. Its Dense layers: "
            f"{[layer.name for layer in dense]}. Received: layers={layers!r}"
        )
    if isinstance(layers, (list, tuple, set, str)) and not callable(layers):
        names = {layers} if isinstance(layers, str) else set(layers)
        missing = sorted(names - {layer.name for layer in dense})
        if missing:
            raise ValueError(
                f"Model '{model.name}' has no Dense layer named {missing}; its Dense layers: "
                f"{[layer.name for layer in dense]}. Received: layers={layers!r}"
            )
    # Convert first, so a layer that cannot be converted leaves nothing half built.
    converted = {id(layer): from_dense(layer, eigenvectors, **kwargs) for layer in chosen}
    return replace_layers(model, lambda layer: converted.get(id(layer)))
