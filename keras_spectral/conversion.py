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

import warnings

import keras
import numpy as np
from keras import ops

from keras_spectral import eigenvectors as eigenvector_modes
from keras_spectral.eigenvectors import _constant
from keras_spectral.cloning import replace_layers
from keras_spectral.layers import SpectralDense
from keras_spectral.validation import check_choice


def from_dense(layer, eigenvectors="trainable", eigenvector_rank=None, **kwargs):
    """A `SpectralDense` with the same outputs as the built `keras.layers.Dense` `layer`.

    Args:
        layer: A built `keras.layers.Dense`.
        eigenvectors: The mode of the new layer (see the module docstring for which modes
            are exact).
        eigenvector_rank: With `eigenvectors="lowrank"`, the rank of the approximation.
        **kwargs: Further `SpectralDense` arguments (e.g. `train_eigenvalues_in=False`,
            regularizers), except those the conversion sets.

    Returns:
        A built `SpectralDense` named like `layer`, with `λ_in = 1`, `λ_out = 0`, φᵀ from
        the kernel and the same bias, activation and dtype policy. The kernel's
        regularizer and constraint do not carry over (there is no kernel weight).
    """
    if not isinstance(layer, keras.layers.Dense) or isinstance(layer, SpectralDense):
        raise TypeError(
            f"Received an invalid value for `layer`, expected a keras.layers.Dense. Received: layer={layer!r}"
        )
    if not layer.built:
        raise ValueError(f"Layer '{layer.name}' is not built, so it has no kernel to convert yet.")
    check_choice("eigenvectors", eigenvectors, eigenvector_modes.MODES)
    if getattr(layer, "quantization_mode", None):
        raise ValueError(
            f"Layer '{layer.name}' is quantized (quantization_mode={layer.quantization_mode!r}); "
            "only float Dense layers can be converted."
        )
    fixed = ("units", "activation", "use_bias", "eigenvectors", "eigenvector_basis", "eigenvector_seed",
             "name", "dtype")
    clash = sorted(set(kwargs) & set(fixed))
    if clash:
        raise ValueError(
            f"`from_dense` sets {', '.join(f'`{k}`' for k in clash)} from the Dense layer. "
            f"Received: {', '.join(f'{k}={kwargs[k]!r}' for k in clash)}"
        )
    kernel = np.asarray(ops.convert_to_numpy(layer.kernel), dtype="float64")
    n_in, units = kernel.shape
    if eigenvector_modes.takes_rank(eigenvectors) and eigenvector_rank is None:
        eigenvector_rank = min(n_in, units)
    spectral = SpectralDense(
        units,
        activation=layer.activation,
        use_bias=layer.use_bias,
        eigenvectors=eigenvectors,
        eigenvector_rank=eigenvector_rank,
        eigenvector_basis="dense",
        eigenvalues_in_initializer=kwargs.pop("eigenvalues_in_initializer", None),
        eigenvalues_out_initializer=kwargs.pop("eigenvalues_out_initializer", None),
        activity_regularizer=kwargs.pop("activity_regularizer", layer.activity_regularizer),
        name=layer.name,
        dtype=layer.dtype_policy,
        **kwargs,
    )
    if layer.use_bias:
        for attribute in ("bias_initializer", "bias_regularizer", "bias_constraint"):
            if attribute not in kwargs:
                setattr(spectral, attribute, getattr(layer, attribute))
    chosen = spectral.eigenvectors_initializer
    spectral.eigenvectors_initializer = _constant(kernel)  # the decomposed modes factor W
    spectral.build((None, n_in))
    spectral.eigenvectors_initializer = chosen
    spectral.eigenvalues_in.assign(np.ones(n_in, dtype="float32"))
    spectral.eigenvalues_out.assign(np.zeros(units, dtype="float32"))
    if eigenvectors == "lowrank":
        u, s, vt = np.linalg.svd(kernel, full_matrices=False)
        root = np.sqrt(s[:eigenvector_rank])
        spectral._eigenvectors.factor_in.assign(u[:, :eigenvector_rank] * root)
        spectral._eigenvectors.factor_out.assign(root[:, None] * vt[:eigenvector_rank])
        error = np.linalg.norm(s[eigenvector_rank:]) / max(np.linalg.norm(s), 1e-30)
        if error > 1e-6:
            warnings.warn(
                f"Layer '{layer.name}': eigenvectors='lowrank' with eigenvector_rank="
                f"{eigenvector_rank} approximates its kernel; relative (Frobenius) error "
                f"{error:.3g}.",
                stacklevel=2,
            )
    if layer.use_bias:
        spectral.bias.assign(ops.convert_to_numpy(layer.bias))
    return spectral


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
