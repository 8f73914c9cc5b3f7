"""`SpectralSeparableConv1D` / `SpectralSeparableConv2D`: a depthwise convolution followed
by a spectral pointwise convolution, one eigenvalue per input and per output channel.

The depthwise step filters each input channel on its own (`depth_multiplier` m outputs
per channel); the pointwise step is a spectral 1×1 convolution whose kernel is
`φ ⊙ (λ_in[i] − λ_out[o])`, where input channel `i`'s eigenvalue reaches its m rows. So
thresholding `λ_in[i]` silences input channel `i` through both steps, and `λ_out[o]`
output channel `o`, as in `SpectralConv2D`. `spectralize` converts Keras'
`SeparableConv1D/2D` exactly (φ = the pointwise kernel, the depthwise kernel copied) and
`collapse` turns them back.
"""

import keras
from keras import constraints, initializers, ops, regularizers

from keras_spectral.convolutional import _SpectralConv
from keras_spectral.validation import check_positive_int


class _SpectralSeparableConv(_SpectralConv):
    """Shared by the spectral separable convolutions of each rank."""

    def __init__(
        self,
        filters,
        kernel_size,
        depth_multiplier=1,
        depthwise_initializer="glorot_uniform",
        depthwise_regularizer=None,
        depthwise_constraint=None,
        **kwargs,
    ):
        check_positive_int("depth_multiplier", depth_multiplier)
        if kwargs.get("groups", 1) != 1:
            raise ValueError(
                "Received an invalid value for `groups`, expected 1: a separable convolution's depthwise step "
                f"is its grouping. Received: groups={kwargs['groups']!r}"
            )
        super().__init__(filters, kernel_size, **kwargs)
        self.depth_multiplier = depth_multiplier
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)

    def _eigenvector_shape(self, channels):
        return (1,) * self.rank + (channels * self.depth_multiplier, self.filters)

    def _rows(self, per_channel):
        return ops.repeat(per_channel, self.depth_multiplier, axis=0)

    def build(self, input_shape):
        super().build(input_shape)
        trainable = self.eigenvector_mode == "trainable"
        self.depthwise_kernel = self.add_weight(
            name="depthwise_kernel", shape=(*self.kernel_size, self.input_channels, self.depth_multiplier),
            initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer if trainable else None,
            constraint=self.depthwise_constraint if trainable else None,
            trainable=trainable, autocast=False,
        )

    def _convolve(self, x, dtype):
        return ops.separable_conv(
            x, ops.cast(self.depthwise_kernel, dtype), self._kernel(dtype), strides=self.strides,
            padding=self.padding, data_format=self.data_format, dilation_rate=self.dilation_rate,
        )

    @property
    def kernel(self):
        """The direct-space pointwise kernel `(1, …, c_in · depth_multiplier, filters)` (masked)."""
        return super().kernel

    @classmethod
    def _plain_class(cls):
        return getattr(keras.layers, f"SeparableConv{cls.rank}D")

    def _plain_arguments(self):
        return dict(super()._plain_arguments(), depth_multiplier=self.depth_multiplier)

    @classmethod
    def _plain_argument_names(cls):
        return tuple(n for n in super()._plain_argument_names() if n != "groups") + ("depth_multiplier",)

    def _plain_weights(self):
        return [ops.convert_to_numpy(self.depthwise_kernel), ops.convert_to_numpy(self.kernel)]

    def _take_weights(self, layer):
        self.depthwise_kernel.assign(ops.convert_to_numpy(layer.depthwise_kernel))
        self.eigenvectors.assign(ops.convert_to_numpy(layer.pointwise_kernel))

    @classmethod
    def _input_channels_of(cls, layer):
        return layer.depthwise_kernel.shape[-2]

    def get_config(self):
        config = super().get_config()
        config.pop("groups")  # its depthwise step is the grouping
        config.update({
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
            "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
        })
        return config


_DOC = """{rank}D depthwise separable convolution whose pointwise kernel is
    `φ ⊙ (λ_in[i] − λ_out[o])`: one eigenvalue per input channel (reaching its
    `depth_multiplier` rows) and per output channel.

    Args:
        filters, kernel_size, strides, padding, data_format, dilation_rate,
        depth_multiplier, activation, use_bias: As for `keras.layers.SeparableConv{rank}D`.
        eigenvectors: `"frozen"` (default: φ and the depthwise kernel fixed, only the
            eigenvalues train) or `"trainable"` (both train too).
        depthwise_initializer, depthwise_regularizer, depthwise_constraint: Of the
            depthwise kernel.
        Other arguments: as for `SpectralConv{rank}D`.

    Input shape: `(batch, *spatial, c_in)` (channels last) or `(batch, c_in, *spatial)`.
    Output shape: as `keras.layers.SeparableConv{rank}D` gives.

    Example:

    >>> layer = SpectralSeparableConv{rank}D(64, 3, padding="same", activation="relu")  # doctest: +SKIP
    >>> spectral = keras_spectral.spectralize(xception)  # SeparableConv2D layers converted  # doctest: +SKIP
"""


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralSeparableConv1D(_SpectralSeparableConv):
    __doc__ = _DOC.format(rank=1)
    rank = 1


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralSeparableConv2D(_SpectralSeparableConv):
    __doc__ = _DOC.format(rank=2)
    rank = 2


SPECTRAL_SEPARABLE_CONVS = {keras.layers.SeparableConv1D: SpectralSeparableConv1D,
                            keras.layers.SeparableConv2D: SpectralSeparableConv2D}
