"""Input-feature relevance from the spectrum: one score per input feature, a ranking,
and removal of the least relevant features.

The first `SpectralDense` layer's input eigenvalues `λ_in` scale whole rows of its kernel
(`kernel[j, :] = φᵀ[j, :] ⊙ (λ_in_j − λ_out)`), so training them ranks the input features
as a by-product (Chicchi, Buffoni, Febbe, Giambagli, Marino, Fanelli, "Automatic Input
Feature Relevance via Spectral Neural Networks", arXiv:2406.01183). An L1 penalty on them
(`eigenvalues_in_regularizer=keras.regularizers.L1(...)`) drives unused features to zero.

The score of feature j is `|λ_in_j|` (0 once removed), the authors' criterion. A
planted-feature test recovers the informative features with φ frozen (the eigenvalues then
carry the training). To *select* inputs, train φ too with an L1 penalty on `λ_in`: on
MNIST (docs/relevance.md, one seed) `eigenvectors="trainable"` with `L1(1e-4)` let 80 % of
the pixels go at less than 1 point of accuracy after two epochs of retraining the compact
model (50 % with no retraining at all), against 50 % with φ frozen. (The kernel's row norms
were tried as a refinement and ranked the planted features worse, since they also carry
the `λ_out` part shared by all rows.)

Example:

>>> scores = input_relevance(model)  # doctest: +SKIP
>>> top = rank_inputs(model)[:100]  # doctest: +SKIP
>>> remove_inputs(model, fraction=0.8)  # doctest: +SKIP
>>> small = compact(model, drop_inputs=True)  # doctest: +SKIP
>>> small.predict(x[:, kept_inputs(model)])  # doctest: +SKIP
"""

import keras
import numpy as np
from keras import ops

from keras_spectral.graph import ModelGraph
from keras_spectral.graph.rules import PER_FEATURE, rule_for
from keras_spectral.layers import SpectralDense
from keras_spectral.validation import check_exactly_one, check_fraction, check_positive_int


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def first_layer(model):
    """The `SpectralDense` layer that reads the model's input features: the model has one
    input, which reaches one SpectralDense through Flatten and per-feature layers only."""
    graph = ModelGraph(model)
    if len(graph.inputs) != 1:
        raise ValueError(
            f"Input relevance needs a model with one input; model '{model.name}' has {len(graph.inputs)}."
        )
    key = graph.inputs[0]
    while True:
        readers = graph.consumers(key)
        if len(readers) != 1:
            names = [f"'{c.layer.name}'" for c in readers]
            raise ValueError(
                f"Input relevance needs the input of model '{model.name}' to reach one "
                f"SpectralDense layer; it is read by {', '.join(names) or 'nothing'}."
            )
        call = readers[0]
        if isinstance(call.layer, SpectralDense):
            return call.layer
        passes = isinstance(call.layer, keras.layers.Flatten) or rule_for(call.layer).flow(call, graph, False)[0] == PER_FEATURE
        if not passes:
            raise ValueError(
                f"The input of model '{model.name}' reaches '{call.layer.name}' "
                f"({type(call.layer).__name__}) before any SpectralDense layer; input relevance "
                "needs a SpectralDense there (only Flatten and per-feature layers may come before it)."
            )
        key = call.outputs[0]


def input_relevance(model):
    """One non-negative relevance score per input feature, `|λ_in|` of the first layer
    (removed features score 0).

    Args:
        model: A built Sequential or functional model whose input is read by a
            `SpectralDense` layer (see `first_layer`).

    Returns:
        A float64 array of shape `(n_in,)`.
    """
    return _scores(first_layer(model))


def _scores(layer):
    mask = _numpy(layer.eigenvalues_in_mask)
    values = np.abs(_numpy(layer.eigenvalues_in))
    if not np.all(np.isfinite(values[mask != 0])):
        raise ValueError(
            f"Layer '{layer.name}' has non-finite input eigenvalues (NaN or inf), so input "
            "features cannot be ranked; the training has probably diverged."
        )
    return np.where(mask != 0, values, 0.0)  # not `values * mask`: a removed NaN must score 0


def rank_inputs(model):
    """Input feature indices from most to least relevant: the present features first, by
    score (ties keep index order), then the removed ones (which score 0, as may present
    features whose `λ_in` is exactly 0)."""
    return _ranking(first_layer(model))


def _ranking(layer):
    scores = _scores(layer)
    removed = _numpy(layer.eigenvalues_in_mask) == 0
    return np.lexsort((np.arange(scores.size), -scores, removed))


def kept_inputs(model):
    """Indices of the input features still present (mask 1) in the first layer: the
    columns to give a model compacted with `compact(model, drop_inputs=True)`."""
    return np.flatnonzero(_numpy(first_layer(model).eigenvalues_in_mask) != 0)


def remove_inputs(model, fraction=None, keep=None):
    """Remove the least relevant input features, in place, by masking them in the first
    layer (their kernel rows become zero); returns the indices kept.

    Args:
        model: As for `input_relevance`.
        fraction: Fraction of all input features to have removed, in [0, 1); already
            removed features count towards it.
        keep: Alternatively, the number of features to keep (a positive integer).
    """
    check_exactly_one(fraction=fraction, keep=keep)
    layer = first_layer(model)
    n_in = layer.input_dim
    if fraction is not None:
        check_fraction("fraction", fraction)
        keep = n_in - int(np.floor(fraction * n_in + 1e-9))
    else:
        check_positive_int("keep", keep)
        if keep > n_in:
            raise ValueError(
                f"Received an invalid value for `keep`, expected at most the {n_in} input "
                f"features of layer '{layer.name}'. Received: keep={keep}"
            )
    order = _ranking(layer)
    mask = np.zeros(n_in, dtype="float32")
    mask[order[:keep]] = 1.0
    mask *= _numpy(layer.eigenvalues_in_mask).astype("float32")
    layer.eigenvalues_in_mask.assign(ops.cast(mask, layer.eigenvalues_in_mask.dtype))
    layer.eigenvalues_in.assign(ops.cast(_numpy(layer.eigenvalues_in) * mask, layer.eigenvalues_in.dtype))
    return np.flatnonzero(mask)
