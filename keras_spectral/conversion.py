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
from keras_spectral import extensions
from keras_spectral.attention import SpectralMultiHeadAttention, self_attention_node
from keras_spectral.embedding import SpectralEmbedding
from keras_spectral.cloning import replace_layers
from keras_spectral.convolutional import CONV_MODES, PADDINGS, SPECTRAL_CONVS
from keras_spectral.layers import SpectralDense
from keras_spectral.normalization import MASKED_NORMALIZATIONS
from keras_spectral.separable import SPECTRAL_SEPARABLE_CONVS
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
    if isinstance(layers, keras.layers.Layer):
        raise TypeError(
            "Received an invalid value for `layers`, expected None, a layer name, a list of names or a "
            f"predicate `fn(layer) -> bool`, not a layer (pass its name: layers='{layers.name}'). "
            f"Received: layers={layers!r}"
        )
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


# The Keras convolutions spectralize converts, and their spectral classes.
_CONVERSIONS = {**SPECTRAL_CONVS, **SPECTRAL_SEPARABLE_CONVS}

# Arguments that only SpectralDense takes: a convolution is converted without them.
_DENSE_ONLY = ("eigenvector_rank", "eigenvector_basis", "eigenvector_seed", "kernel_sparsity")


def _convertible(layer, eigenvectors):
    """Whether `spectralize` converts `layer` with mode `eigenvectors`: any Dense; a Conv1D,
    Conv2D, Conv3D (ungrouped), SeparableConv1D or SeparableConv2D in a mode the spectral
    convolutions have."""
    if type(layer) is keras.layers.Dense:  # a subclass may compute something else (its own call)
        return True
    spectral = _CONVERSIONS.get(type(layer))
    depthwise = getattr(layer, "groups", 1) > 1 and layer.kernel.shape[-2] == 1  # passes channels as it is
    return spectral is not None and not depthwise and eigenvectors in CONV_MODES and layer.padding in PADDINGS


def _convert(layer, eigenvectors, kwargs):
    """The spectral layer of `layer`; a failure names the layer."""
    try:
        if isinstance(layer, keras.layers.Dense):
            return from_dense(layer, eigenvectors, **kwargs)
        conv_kwargs = {k: v for k, v in kwargs.items() if k not in _DENSE_ONLY}
        return _CONVERSIONS[type(layer)].from_conv(layer, eigenvectors, **conv_kwargs)
    except Exception as error:  # noqa: BLE001 - any failure of the conversion, named
        if f"'{layer.name}'" in str(error):
            raise
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}, dtype {layer.dtype}) could not be converted with "
            f"eigenvectors={eigenvectors!r}: {error}"
        ) from error


def spectralize(model, layers=None, eigenvectors="trainable", **kwargs):
    """A new model in which the chosen `keras.layers.Dense` layers are `SpectralDense`
    layers, and the chosen `Conv1D` / `Conv2D` / `Conv3D` / `SeparableConv1D` /
    `SeparableConv2D` layers spectral convolutions (`SpectralConv1D`, ...,
    `SpectralSeparableConv2D`; in the modes they have, `"trainable"` and `"frozen"`), with
    the same outputs; every LayerNormalization and RMSNormalization over the last axis
    becomes a `MaskedLayerNormalization` / `MaskedRMSNormalization` (same outputs; it lets
    a normalized stream lose features exactly), and every MultiHeadAttention a
    `SpectralMultiHeadAttention` (one eigenvalue and mask per head, same outputs), and
    every Embedding a `SpectralEmbedding` (same outputs); every other layer (and
    `keras.ops` operation) is copied with its weights.

    Args:
        model: A built Sequential or functional model (nested models, several inputs and
            outputs, inputs of any rank).
        layers: Which layers to convert: None (all that can be), a name, a list of names,
            or a predicate `fn(layer) -> bool` (Dense, convolutions, normalizations,
            attention and embeddings alike). Depthwise convolutions (one
            channel per group), causal ones, and all convolutions in the modes only
            SpectralDense has, pass through unchanged.
        eigenvectors: The mode of the new layers (`from_dense` says which are exact).
        **kwargs: Passed to `from_dense` (e.g. `eigenvector_rank`, `train_eigenvalues_in`).

    Returns:
        A new model of the same kind and structure, compiled like the input where that
        was compiled (fresh optimizer state); `collapse` is its inverse. The input model
        is not modified.

    Example:

    >>> spectral = spectralize(trained_dense_model)  # doctest: +SKIP
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
    layers_of_model = list(model._flatten_layers(include_self=False, recursive=True))
    candidates = [layer for layer in layers_of_model
                  if _convertible(layer, eigenvectors) or _companion(layer) is not None]
    if not candidates:
        raise ValueError(
            f"Model '{model.name}' has no layer to convert: no keras.layers.Dense layer, convolution (in modes "
            f"{CONV_MODES}), LayerNormalization, MultiHeadAttention, Embedding or keras_hub transformer block."
        )
    names = [layer.name for layer in candidates]
    chosen = [layer for layer in candidates if selected(layer)]
    if not chosen:
        raise ValueError(
            f"No convertible layer of model '{model.name}' matches `layers`. Those it has: "
            f"{names}. Received: layers={layers!r}"
        )
    if isinstance(layers, (list, tuple, set, str)) and not callable(layers):
        wanted = {layers} if isinstance(layers, str) else set(layers)
        missing = sorted(wanted - set(names))
        if missing:
            raise ValueError(
                f"Model '{model.name}' has no convertible layer named {missing}; "
                f"those it has: {names}. Received: layers={layers!r}"
            )
    # Convert first, so a layer that cannot be converted leaves nothing half built.
    converted = {id(layer): (_companion(layer) or (lambda l: _convert(l, eigenvectors, kwargs)))(layer)
                 for layer in chosen}
    return replace_layers(model, lambda layer: converted.get(id(layer)))


def _companion(layer):
    """How `spectralize` converts a layer that is not a Dense or a convolution (a
    function of the layer), or None: LayerNormalization / RMSNormalization over the last
    axis, MultiHeadAttention, Embedding (exact types, built, not quantized), keras_hub's
    transformer blocks (`keras_spectral.hub.CONVERSIONS`)."""
    if _maskable_normalization(layer):
        return MASKED_NORMALIZATIONS[type(layer)].from_layer
    if type(layer) is keras.layers.MultiHeadAttention and layer.built:
        return lambda l: SpectralMultiHeadAttention.from_layer(l, _self_attention_only(l))
    if (type(layer) is keras.layers.Embedding and layer.built and not layer.quantization_mode
            and not layer.lora_enabled):
        return SpectralEmbedding.from_layer
    hub = extensions.hub()
    if hub is not None and type(layer) in hub.CONVERSIONS and layer.built:
        return hub.CONVERSIONS[type(layer)].from_layer
    return None


def _self_attention_only(layer):
    """Whether every call of the attention `layer` passes one tensor as query, value and key."""
    nodes = getattr(layer, "_inbound_nodes", [])
    return bool(nodes) and all(self_attention_node(node) for node in nodes)


def _maskable_normalization(layer):
    """A built LayerNormalization / RMSNormalization (not a subclass) over the last axis only."""
    if type(layer) not in MASKED_NORMALIZATIONS or not layer.built:
        return False
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    rank = len(layer.input.shape) if _has_one_input(layer) else None
    return len(axes) == 1 and (axes[0] == -1 or (rank is not None and axes[0] == rank - 1))


def _has_one_input(layer):
    try:
        return len(layer._inbound_nodes) == 1
    except AttributeError:  # pragma: no cover
        return False
