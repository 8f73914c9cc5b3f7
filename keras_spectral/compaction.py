"""Physically remove pruned nodes: `compact(model)` returns a narrower, equivalent model."""

import keras
import numpy as np
from keras import ops

from keras_spectral import eigenvectors as eigenvector_modes
from keras_spectral import topology
from keras_spectral.layers import SpectralDense
from keras_spectral.pruning import hidden_layers
from keras_spectral.validation import check_bool


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def _kernel(layer):
    return _numpy(layer.kernel)


def _bias(layer):
    return _numpy(layer.bias) if layer.use_bias else np.zeros(layer.units)


def _constant_output(layer, nodes):
    """What removed-but-present nodes output: `activation(bias)`, a constant."""
    pre = _bias(layer)[nodes].astype("float32")
    if layer.activation is None:
        return pre.astype("float64")
    return _numpy(layer.activation(ops.convert_to_tensor(pre[None, :])))[0]


def _array_initializer(array):
    def initializer(shape, dtype=None):
        return ops.cast(ops.convert_to_tensor(array), dtype)

    return initializer


def _compact_spectral(layer, keep_in, keep_out, bias, eigenvectors):
    config = layer.get_config()
    mode = eigenvectors or layer.eigenvector_mode
    n_in, units = len(keep_in), len(keep_out)
    rank = config["eigenvector_rank"] if mode == layer.eigenvector_mode else None
    if eigenvector_modes.takes_rank(mode):
        rank = min(rank or min(n_in, units), n_in, units)
    config.update(
        units=units,
        eigenvectors=mode,
        eigenvector_rank=rank,
        # Only dense bases factor the kept block of φ exactly (Kronecker ones would not).
        eigenvector_basis="dense",
        # A seed regenerates φ for the full shape only: the compact layer stores its block.
        eigenvector_seed=None,
        use_bias=bias is not None,
    )
    new = SpectralDense.from_config(config)
    original_initializer = new.eigenvectors_initializer
    # The decomposed modes factor whatever φᵀ the initializer gives: start from the kept block.
    new.eigenvectors_initializer = _array_initializer(_numpy(layer.eigenvectors)[np.ix_(keep_in, keep_out)])
    new.build((None, n_in))
    new.eigenvectors_initializer = original_initializer
    mask_in = _numpy(layer.eigenvalues_in_mask)[keep_in]
    new.eigenvalues_in.assign(_numpy(layer.eigenvalues_in)[keep_in] * mask_in)
    new.eigenvalues_in_mask.assign(mask_in)
    new.eigenvalues_out.assign(_numpy(layer.eigenvalues_out)[keep_out])
    new.eigenvalues_out_mask.assign(_numpy(layer.eigenvalues_out_mask)[keep_out])
    if bias is not None:
        new.bias.assign(bias)
    return new


def _compact_dense(layer, keep_in, keep_out, bias):
    config = layer.get_config()
    config.update(units=len(keep_out), use_bias=bias is not None)
    new = keras.layers.Dense.from_config(config)
    new.build((None, len(keep_in)))
    new.kernel.assign(_kernel(layer)[np.ix_(keep_in, keep_out)])
    if bias is not None:
        new.bias.assign(bias)
    return new


def compact(model, eigenvectors=None, drop_inputs=False):
    """A smaller model without the removed hidden nodes, with the same outputs.

    Nodes removed by `keras_spectral.pruning` (or by setting masks) disappear: layers get
    narrower, with fewer parameters and less compute. A node silenced in its producing
    layer outputs the constant `activation(bias)`; that constant's contribution is folded
    into the next layer's bias, so the outputs equal the masked model's (up to float
    rounding). The input and output sizes are unchanged.

    Args:
        model: A built Sequential or functional chain of SpectralDense, Dense and Dropout
            layers.
        eigenvectors: Eigenvector mode for the compacted SpectralDense layers (for example
            `"trainable"` to retrain the small network in full); `None` keeps each
            layer's mode. Decomposed modes are refactored exactly from the kept block of φ.
        drop_inputs: If True, input features removed from the first layer (its
            `eigenvalues_in_mask`, e.g. by `keras_spectral.relevance.remove_inputs`) are
            dropped too: the compact model takes only the kept features, in the order
            of `keras_spectral.relevance.kept_inputs(model)` (slice your data with it).
            Its outputs on `x[:, kept]` equal the masked model's on `x`.

    Returns:
        A new `keras.Sequential` model; the input model is not modified.

    Example:

    >>> prune_nodes(model, fraction=0.9)  # doctest: +SKIP
    >>> small = compact(model)  # doctest: +SKIP
    """
    if eigenvectors is not None and eigenvectors not in eigenvector_modes.MODES:
        raise ValueError(
            "Received an invalid value for `eigenvectors`, expected None or one of "
            f"{eigenvector_modes.MODES}. Received: eigenvectors={eigenvectors!r}"
        )
    check_bool("drop_inputs", drop_inputs)
    layers = topology.layer_chain(model)
    dense = [layer for layer in layers if isinstance(layer, topology.FULLY_CONNECTED)]
    for layer in dense:
        if getattr(layer, "kernel_sparsity", None):
            raise ValueError(
                f"Layer '{layer.name}' has kernel_sparsity={layer.kernel_sparsity}: its "
                "percentile mask depends on the whole kernel, so removing nodes would change "
                "it. compact() handles node pruning without kernel_sparsity."
            )
    input_shape = tuple(model.inputs[0].shape)
    if len(input_shape) != 2:
        raise ValueError(
            f"compact() handles models with inputs of shape (batch, features). Received: "
            f"input shape {input_shape}"
        )
    n_in = int(input_shape[-1])
    # Nodes kept at the input and output of every fully connected layer, and bias
    # corrections from nodes that output a constant.
    keep = [np.arange(n_in)]
    if drop_inputs:
        first = dense[0]
        if not isinstance(first, SpectralDense):
            raise ValueError(
                f"drop_inputs=True needs a SpectralDense first layer (its input mask says which "
                f"features are kept); '{first.name}' is a {type(first).__name__}."
            )
        keep = [np.flatnonzero(_numpy(first.eigenvalues_in_mask) != 0)]
        if not len(keep[0]):
            raise ValueError(f"Layer '{first.name}' has no input features left; nothing to compact.")
    folded = [np.zeros(layer.units) for layer in dense]
    for i, hidden in enumerate(hidden_layers(model)):
        alive = hidden.active()
        if not alive.any():
            raise ValueError(
                f"Hidden layer '{hidden.name}' has no nodes left (all {hidden.size} are "
                "removed), so compact() cannot build it; keep at least one node per hidden "
                "layer (e.g. prune with a smaller `fraction`)."
            )
        keep.append(np.flatnonzero(alive))
        consumer_ignores = (
            _numpy(hidden.consumer.eigenvalues_in_mask) == 0
            if isinstance(hidden.consumer, SpectralDense)
            else np.zeros(hidden.size, dtype=bool)
        )
        constant_nodes = np.flatnonzero(~alive & ~consumer_ignores)
        if len(constant_nodes):
            values = _constant_output(hidden.producer, constant_nodes)
            folded[i + 1] += values @ _kernel(hidden.consumer)[constant_nodes]
    keep.append(np.arange(dense[-1].units))

    new_layers, index = [], 0
    for layer in layers:
        if not isinstance(layer, topology.FULLY_CONNECTED):
            new_layers.append(layer.__class__.from_config(layer.get_config()))
            continue
        keep_in, keep_out = keep[index], keep[index + 1]
        bias = _bias(layer) + folded[index]
        bias = bias[keep_out] if (layer.use_bias or np.any(folded[index])) else None
        if isinstance(layer, SpectralDense):
            new_layers.append(_compact_spectral(layer, keep_in, keep_out, bias, eigenvectors))
        else:
            new_layers.append(_compact_dense(layer, keep_in, keep_out, bias))
        index += 1
    return keras.Sequential([keras.Input((len(keep[0]),))] + new_layers, name=f"{model.name}_compact")
