"""Slicing functions: a new layer keeping only some input and/or output features.

One function per layer type with per-feature weights, registered by class in `SLICERS`:

    slicer(layer, keep_in, keep_out, input_shape, bias) -> new built layer

`keep_in` / `keep_out` are index arrays of the features (or channels) kept (per-feature
layers get the same array for both), `input_shape` the new layer's input shape, and
`bias` (fully connected layers only) the new bias, or None for none. Layers without per-feature
weights are copied as they are. The new layers get their weights by assignment, never
by rebuilding initializers from config (so layers made with callable initializers can be
sliced).
"""

import keras
import numpy as np
from keras import ops

from keras_spectral import eigenvectors as eigenvector_modes
from keras_spectral.eigenvectors import _constant
from keras_spectral.cloning import clone_layer
from keras_spectral.convolutional import _SpectralConv
from keras_spectral.layers import SpectralDense


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def _with_spectral_state(new, layer, keep_in, keep_out, bias):
    """`new` given the kept eigenvalues and masks of the spectral `layer`, and `bias`."""
    mask_in = numpy(layer.eigenvalues_in_mask)[keep_in]
    new.eigenvalues_in.assign(numpy(layer.eigenvalues_in)[keep_in] * mask_in)
    new.eigenvalues_in_mask.assign(mask_in)
    new.eigenvalues_out.assign(numpy(layer.eigenvalues_out)[keep_out])
    new.eigenvalues_out_mask.assign(numpy(layer.eigenvalues_out_mask)[keep_out])
    if bias is not None:
        new.bias.assign(bias)
    return new


def slice_spectral(layer, keep_in, keep_out, input_shape, bias, eigenvectors=None):
    """SpectralDense: the kept block of φ (refactored exactly for decomposed modes, with
    dense bases), the kept eigenvalues and masks."""
    mode = eigenvectors or layer.eigenvector_mode
    n_in, units = len(keep_in), len(keep_out)
    rank = layer.eigenvector_rank if mode == layer.eigenvector_mode else None
    if eigenvector_modes.takes_rank(mode):
        rank = min(rank or min(n_in, units), n_in, units)
    new = clone_layer(
        layer,
        units=units,
        eigenvectors=mode,
        eigenvector_rank=rank,
        # Only dense bases factor the kept block of φ exactly (Kronecker ones would not).
        eigenvector_basis="dense",
        # A seed regenerates φ for the full shape only: the sliced layer stores its block.
        eigenvector_seed=None,
        use_bias=bias is not None,
    )
    original_initializer = new.eigenvectors_initializer
    # The decomposed modes factor whatever φᵀ the initializer gives: start from the kept block.
    new.eigenvectors_initializer = _constant(numpy(layer.eigenvectors)[np.ix_(keep_in, keep_out)])
    new.build(tuple(input_shape[:-1]) + (n_in,))
    new.eigenvectors_initializer = original_initializer
    return _with_spectral_state(new, layer, keep_in, keep_out, bias)


def slice_dense(layer, keep_in, keep_out, input_shape, bias):
    new = clone_layer(layer, units=len(keep_out), use_bias=bias is not None)
    new.build(tuple(input_shape[:-1]) + (len(keep_in),))
    new.kernel.assign(numpy(layer.kernel)[np.ix_(keep_in, keep_out)])
    if bias is not None:
        new.bias.assign(bias)
    return new


def slice_spectral_convolution(layer, keep_in, keep_out, input_shape, bias):
    """SpectralConv1D/2D/3D: the kept input rows and filters of φ, eigenvalues and masks."""
    new = clone_layer(layer, filters=len(keep_out), use_bias=bias is not None)
    original_initializer = new.eigenvectors_initializer
    new.eigenvectors_initializer = "zeros"  # assigned below; no random draw of the full shape
    new.build(tuple(input_shape))
    new.eigenvectors_initializer = original_initializer
    new.eigenvectors.assign(numpy(layer.eigenvectors)[..., keep_in, :][..., keep_out])
    return _with_spectral_state(new, layer, keep_in, keep_out, bias)


def slice_convolution(layer, keep_in, keep_out, input_shape, bias):
    """Conv1D/2D/3D: the kept input rows and filters of the kernel."""
    new = clone_layer(layer, filters=len(keep_out), use_bias=bias is not None)
    new.build(tuple(input_shape))
    new.kernel.assign(numpy(layer.kernel)[..., keep_in, :][..., keep_out])
    if bias is not None:
        new.bias.assign(bias)
    return new


def slice_batch_normalization(layer, keep_in, keep_out, input_shape, bias):
    new = clone_layer(layer)
    new.build(tuple(input_shape))
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        if getattr(layer, name, None) is not None:
            getattr(new, name).assign(numpy(getattr(layer, name))[..., keep_in])
    return new


def slice_prelu(layer, keep_in, keep_out, input_shape, bias):
    new = clone_layer(layer)
    new.build(tuple(input_shape))
    new.alpha.assign(numpy(layer.alpha)[..., keep_in])
    return new


SLICERS = {
    SpectralDense: slice_spectral,
    keras.layers.Dense: slice_dense,
    _SpectralConv: slice_spectral_convolution,
    keras.layers.Conv1D: slice_convolution,
    keras.layers.Conv2D: slice_convolution,
    keras.layers.Conv3D: slice_convolution,
    keras.layers.BatchNormalization: slice_batch_normalization,
    keras.layers.PReLU: slice_prelu,
}


def slicer_for(layer):
    """The slicing function of `layer`'s class (its nearest registered base), or None."""
    for cls in type(layer).__mro__:
        if cls in SLICERS:
            return SLICERS[cls]
    return None
