"""Helpers of the slicing rules: weights as NumPy, and the spectral layers' kept state."""

import numpy as np
from keras import ops


def numpy(x):
    """A variable or tensor as a float64 NumPy array."""
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def with_spectral_state(new, layer, keep_in, keep_out, bias):
    """`new` given the kept eigenvalues and masks of the spectral `layer`, and `bias`."""
    mask_in = numpy(layer.eigenvalues_in_mask)[keep_in]
    new.eigenvalues_in.assign(numpy(layer.eigenvalues_in)[keep_in] * mask_in)
    new.eigenvalues_in_mask.assign(mask_in)
    new.eigenvalues_out.assign(numpy(layer.eigenvalues_out)[keep_out])
    new.eigenvalues_out_mask.assign(numpy(layer.eigenvalues_out_mask)[keep_out])
    if bias is not None:
        new.bias.assign(bias)
    return new


def build_with_eigenvectors(new, input_shape, initializer):
    """Build the spectral layer `new` with φ drawn by `initializer` (the kept block, or
    zeros to assign after: no random draw of the full shape), keeping its own initializer
    in its config."""
    original = new.eigenvectors_initializer
    new.eigenvectors_initializer = initializer
    new.build(tuple(input_shape))
    new.eigenvectors_initializer = original
    return new


def assign_sliced(new, layer, names, index, axis=-1):
    """Assign to each weight `name` of `new` the entries `index` (on `axis`) of `layer`'s."""
    for name in names:
        if getattr(layer, name, None) is not None:
            getattr(new, name).assign(np.take(numpy(getattr(layer, name)), index, axis=axis))
