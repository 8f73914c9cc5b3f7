"""keras-spectral: dense layers trained in reciprocal space (eigenvalues and eigenvectors
of a transfer operator), with eigenvalue-driven sparsity."""

from keras_spectral.layers import SpectralDense

__version__ = "0.1.0"

__all__ = ["SpectralDense", "__version__"]
