"""Ready-made multilayer perceptrons for the methods compared in the papers.

`build_mlp` makes the same architecture with ordinary `Dense` layers or with
`SpectralDense` layers in one of the spectral training regimes, so examples, the demo and
the benchmarks compare like with like.
"""

import keras
import numpy as np

from keras_spectral.layers import SpectralDense
from keras_spectral.validation import check_choice, check_positive_int

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
    # The authors' QR: the whole R factor trained (about twice the triangular count).
    "spectral_qr_full": dict(eigenvectors="qr_full"),
    "spectral_trainable": dict(eigenvectors="trainable"),
    # A linear parameter count: φ of rank 10 in every layer (kernel rank <= 20).
    "spectral_lowrank": dict(eigenvectors="lowrank", eigenvector_rank=10),
    # Explicit bases (svd and qr default to Kronecker-structured ones).
    "spectral_svd_kronecker": dict(eigenvectors="svd", eigenvector_basis="kronecker"),
    "spectral_qr_kronecker": dict(eigenvectors="qr", eigenvector_basis="kronecker"),
    "spectral_svd_dense_basis": dict(eigenvectors="svd", eigenvector_basis="dense"),
    "spectral_qr_dense_basis": dict(eigenvectors="qr", eigenvector_basis="dense"),
}

DESCRIPTIONS = {
    "dense": "Dense (direct space)",
    "spectral_one_set": "Spectral, eigenvalues only, one set (λ_in = 0 frozen)",
    "spectral_two_sets": "Spectral, eigenvalues only, two sets",
    "spectral_svd": "Spectral, two sets + SVD eigenvectors",
    "spectral_qr": "Spectral, two sets + QR eigenvectors",
    "spectral_qr_full": "Spectral, two sets + QR eigenvectors, whole R (authors')",
    "spectral_trainable": "Spectral, two sets + trainable eigenvectors",
    "spectral_lowrank": "Spectral, two sets + rank-10 eigenvectors",
    "spectral_svd_kronecker": "Spectral, two sets + SVD eigenvectors, Kronecker bases",
    "spectral_svd_dense_basis": "Spectral, two sets + SVD eigenvectors, dense bases",
    "spectral_qr_dense_basis": "Spectral, two sets + QR eigenvectors, dense bases",
    "spectral_qr_kronecker": "Spectral, two sets + QR eigenvectors, Kronecker bases",
}


def build_mlp(input_dim, hidden, classes, method="spectral_two_sets", activation="relu", name=None,
              **layer_options):
    """A `keras.Sequential` MLP `input_dim -> hidden... -> classes` (softmax output).

    Args:
        input_dim: Number of input features.
        hidden: Sequence of hidden-layer widths.
        classes: Number of output classes.
        method: One of `METHODS`: `"dense"` for `keras.layers.Dense`, otherwise a
            `SpectralDense` regime.
        activation: Activation of the hidden layers.
        **layer_options: `SpectralDense` arguments added to (or replacing) the method's;
            an `eigenvector_rank` above a layer's `min(n_in, units)` is capped there.
    """
    check_choice("method", method, tuple(METHODS))
    check_positive_int("input_dim", input_dim)
    check_positive_int("classes", classes)
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise TypeError(
            "Received an invalid value for `hidden`, expected a sequence of positive "
            f"integers (the hidden-layer widths, e.g. (500, 500)). Received: hidden={hidden!r}"
        )
    hidden = tuple(hidden)
    for width in hidden:
        check_positive_int("hidden", width)
    options = METHODS[method]
    if options is None and layer_options:
        raise ValueError(
            f"method='dense' takes no SpectralDense arguments. Received: {sorted(layer_options)}"
        )
    widths = (input_dim, *hidden, classes)

    def layer(index, act):
        units = widths[index + 1]
        if options is None:
            return keras.layers.Dense(units, activation=act)
        merged = {**options, **layer_options}
        if merged.get("eigenvector_rank") is not None:
            merged["eigenvector_rank"] = min(merged["eigenvector_rank"], widths[index], units)
        return SpectralDense(units, activation=act, **merged)

    layers = [keras.Input((input_dim,))]
    layers += [layer(i, activation) for i in range(len(hidden))]
    layers.append(layer(len(hidden), "softmax"))
    return keras.Sequential(layers, name=name or method)


def trainable_count(model):
    """Number of trainable scalars in `model`."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)
