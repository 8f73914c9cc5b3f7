"""The layers that carry eigenvalues and node masks: `SpectralDense`, the spectral
convolutions, `SpectralMultiHeadAttention` and `SpectralEmbedding` (one eigenvalue and one mask entry per input
and per output feature or channel, under the same weight names)."""

from keras_spectral.attention import SpectralMultiHeadAttention
from keras_spectral.convolutional import _SpectralConv
from keras_spectral.embedding import SpectralEmbedding
from keras_spectral.layers import SpectralDense

SPECTRAL_LAYERS = (SpectralDense, _SpectralConv, SpectralMultiHeadAttention, SpectralEmbedding)


def is_spectral(layer):
    """Whether `layer` has `eigenvalues_in` / `eigenvalues_out` and their masks."""
    return isinstance(layer, SPECTRAL_LAYERS)
