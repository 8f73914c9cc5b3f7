"""Ready-made multilayer perceptrons for the methods compared in the papers.

`build_mlp` makes the same architecture with ordinary `Dense` layers or with
`SpectralDense` layers in one of the spectral training regimes, so examples, the demo and
the benchmarks compare like with like.
"""

import keras
import numpy as np

from keras_spectral.layers import SpectralDense
from keras_spectral.validation import check_choice

# name -> SpectralDense arguments (None: keras.layers.Dense)
METHODS = {
    "dense": None,
    # Giambagli et al. (2021): λ_in fixed at zero, so kernel = −φᵀ ⊙ λ_out.
    "spectral_one_set": dict(
        eigenvectors="frozen", train_eigenvalues_in=False, eigenvalues_in_initializer="zeros"
    ),
    "spectral_two_sets": dict(eigenvectors="frozen"),
    "spectral_svd": dict(eigenvectors="svd"),
    "spectral_qr": dict(eigenvectors="qr"),
    "spectral_trainable": dict(eigenvectors="trainable"),
    # Same trained factors with cheap fixed bases (Kronecker-structured orthogonal).
    "spectral_svd_kronecker": dict(eigenvectors="svd", eigenvector_basis="kronecker"),
    "spectral_qr_kronecker": dict(eigenvectors="qr", eigenvector_basis="kronecker"),
}

DESCRIPTIONS = {
    "dense": "Dense (direct space)",
    "spectral_one_set": "Spectral, eigenvalues only, one set (λ_in = 0 frozen)",
    "spectral_two_sets": "Spectral, eigenvalues only, two sets",
    "spectral_svd": "Spectral, two sets + SVD eigenvectors",
    "spectral_qr": "Spectral, two sets + QR eigenvectors",
    "spectral_trainable": "Spectral, two sets + trainable eigenvectors",
    "spectral_svd_kronecker": "Spectral, two sets + SVD eigenvectors, Kronecker bases",
    "spectral_qr_kronecker": "Spectral, two sets + QR eigenvectors, Kronecker bases",
}


def build_mlp(input_dim, hidden, classes, method="spectral_two_sets", activation="relu", name=None):
    """A `keras.Sequential` MLP `input_dim -> hidden... -> classes` (softmax output).

    Args:
        input_dim: Number of input features.
        hidden: Sequence of hidden-layer widths.
        classes: Number of output classes.
        method: One of `METHODS`: `"dense"` for `keras.layers.Dense`, otherwise a
            `SpectralDense` regime.
        activation: Activation of the hidden layers.
    """
    check_choice("method", method, tuple(METHODS))
    options = METHODS[method]

    def layer(units, act):
        if options is None:
            return keras.layers.Dense(units, activation=act)
        return SpectralDense(units, activation=act, **options)

    layers = [keras.Input((input_dim,))]
    layers += [layer(width, activation) for width in hidden]
    layers.append(layer(classes, "softmax"))
    return keras.Sequential(layers, name=name or method)


def trainable_count(model):
    """Number of trainable scalars in `model`."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)
