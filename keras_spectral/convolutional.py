"""`SpectralConv1D`, `SpectralConv2D`, `SpectralConv3D`: convolutions trained in
reciprocal space, one eigenvalue per input and per output channel.

The construction of `SpectralDense` carries over channel by channel: for a kernel
`K[..., i, o]` (spatial taps, input channel `i`, output channel `o`),

    K = φ ⊙ (eigenvalues_in[i] − eigenvalues_out[o])      (broadcast over the taps)

so each input channel's eigenvalue scales all the filters' taps that read it, and each
output channel's eigenvalue its whole filter; thresholding them silences whole channels,
as node masks silence SpectralDense nodes. With `eigenvectors="frozen"` only the
`c_in + c_out` eigenvalues (and the bias) train; with `"trainable"`, φ too.
"""

import keras
import numpy as np
from keras import activations, ops

from keras_spectral.layers import set_weight_options, weight_options_config
from keras_spectral.validation import check_bool, check_choice, check_positive_int, is_int

CONV_MODES = ("frozen", "trainable")
PADDINGS = ("valid", "same")


def _tuple(name, value, rank):
    values = (value,) * rank if is_int(value) else tuple(value) if isinstance(value, (tuple, list)) else None
    if values is None or len(values) != rank or not all(is_int(v) and v > 0 for v in values):
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive integer or a tuple of "
            f"{rank} positive integers. Received: {name}={value!r}"
        )
    return values


class _SpectralConv(keras.layers.Layer):
    """Shared by the spectral convolutions of each rank (`rank` = spatial dimensions)."""

    rank = None

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        eigenvectors="frozen",
        train_eigenvalues_in=True,
        train_eigenvalues_out=True,
        eigenvalues_in_initializer=None,
        eigenvalues_out_initializer=None,
        eigenvectors_initializer=None,
        bias_initializer="zeros",
        eigenvalues_in_regularizer=None,
        eigenvalues_out_regularizer=None,
        eigenvectors_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        eigenvalues_in_constraint=None,
        eigenvalues_out_constraint=None,
        eigenvectors_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        check_positive_int("filters", filters)
        check_positive_int("groups", groups)
        if filters % groups:
            raise ValueError(
                f"Received an invalid value for `groups`, expected a divisor of `filters` ({filters}). "
                f"Received: groups={groups!r}"
            )
        check_choice("eigenvectors", eigenvectors, CONV_MODES)
        check_choice("padding", padding, PADDINGS)
        data_format = keras.config.image_data_format() if data_format is None else data_format
        check_choice("data_format", data_format, ("channels_last", "channels_first"))
        dilation_rate = _tuple("dilation_rate", dilation_rate, self.rank)
        strides = _tuple("strides", strides, self.rank)
        if max(strides) > 1 and max(dilation_rate) > 1:
            raise ValueError(
                "`strides > 1` together with `dilation_rate > 1` is not supported (as in Keras' Conv "
                f"layers). Received: strides={strides}, dilation_rate={dilation_rate}"
            )
        check_bool("use_bias", use_bias)
        check_bool("train_eigenvalues_in", train_eigenvalues_in)
        check_bool("train_eigenvalues_out", train_eigenvalues_out)
        self.filters = filters
        self.groups = groups
        self.kernel_size = _tuple("kernel_size", kernel_size, self.rank)
        self.strides = strides
        self.padding = padding
        self.data_format = data_format
        self.dilation_rate = dilation_rate
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.eigenvector_mode = eigenvectors
        self.train_eigenvalues_in = train_eigenvalues_in
        self.train_eigenvalues_out = train_eigenvalues_out
        set_weight_options(self, eigenvectors, locals())
        self.input_spec = keras.layers.InputSpec(min_ndim=self.rank + 2)

    @property
    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def _input_shape(self, channels):
        """An input shape with only the channels known: all a convolution's build needs."""
        spatial = (None,) * self.rank
        return (None, *spatial, channels) if self.data_format == "channels_last" else (None, channels, *spatial)

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"Input 0 of layer {type(self).__name__} must have rank {self.rank + 2}, i.e. shape "
                f"(batch_size, {'spatial, ' * self.rank}channels) or channels first. Received: "
                f"input_shape={tuple(input_shape)}"
            )
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(
                f"The channel dimension of the inputs to {type(self).__name__} must be defined. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if self.padding == "valid":
            spatial = tuple(input_shape[1:-1] if self._channel_axis == -1 else input_shape[2:])
            for size, k, d in zip(spatial, self.kernel_size, self.dilation_rate):
                if size is not None and (k - 1) * d + 1 > size:
                    raise ValueError(
                        f"Received an invalid value for `kernel_size`, expected a kernel no larger than "
                        f"the input's spatial shape {spatial} with padding='valid' (or padding='same'). "
                        f"Received: kernel_size={self.kernel_size}, dilation_rate={self.dilation_rate}"
                    )
        if self.groups > 1 and channels == self.groups:
            raise ValueError(
                f"Received an invalid value for `groups`, expected fewer groups than input channels: with one "
                f"channel per group (a depthwise convolution) use keras.layers.DepthwiseConv{self.rank}D, which "
                f"the pruning tools pass channel by channel. Received: groups={self.groups} for {channels} channels"
            )
        if channels % self.groups:
            raise ValueError(
                f"Received an invalid value for `groups`, expected a divisor of the input channels ({channels}) "
                f"of layer '{self.name}'. Received: groups={self.groups}"
            )
        self.input_channels = channels
        self.eigenvalues_in = self.add_weight(
            name="eigenvalues_in", shape=(channels,), initializer=self.eigenvalues_in_initializer,
            regularizer=self.eigenvalues_in_regularizer, constraint=self.eigenvalues_in_constraint,
            trainable=self.train_eigenvalues_in, autocast=False,
        )
        self.eigenvalues_out = self.add_weight(
            name="eigenvalues_out", shape=(self.filters,), initializer=self.eigenvalues_out_initializer,
            regularizer=self.eigenvalues_out_regularizer, constraint=self.eigenvalues_out_constraint,
            trainable=self.train_eigenvalues_out, autocast=False,
        )
        self.eigenvalues_in_mask = self.add_weight(
            name="eigenvalues_in_mask", shape=(channels,), initializer="ones", trainable=False
        )
        self.eigenvalues_out_mask = self.add_weight(
            name="eigenvalues_out_mask", shape=(self.filters,), initializer="ones", trainable=False
        )
        trainable = self.eigenvector_mode == "trainable"
        self.eigenvectors = self.add_weight(
            name="eigenvectors", shape=self._eigenvector_shape(channels),
            initializer=self.eigenvectors_initializer,
            regularizer=self.eigenvectors_regularizer if trainable else None,
            constraint=self.eigenvectors_constraint if trainable else None,
            trainable=trainable, autocast=False,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.filters,), initializer=self.bias_initializer,
                regularizer=self.bias_regularizer, constraint=self.bias_constraint,
            )
        self.input_spec = keras.layers.InputSpec(min_ndim=self.rank + 2, axes={self._channel_axis: channels})
        self.built = True

    def _eigenvector_shape(self, channels):
        return (*self.kernel_size, channels // self.groups, self.filters)

    def _rows(self, per_channel):
        """Per-input-channel values `(c_in, filters)` laid out along φ's input rows: one row
        per channel, or with `groups` the rows of each filter's own group of channels."""
        if self.groups == 1:
            return per_channel
        width = self.input_channels // self.groups
        rows = (np.arange(self.filters) // (self.filters // self.groups))[None, :] * width + np.arange(width)[:, None]
        return ops.take_along_axis(per_channel, ops.convert_to_tensor(rows, "int32"), axis=0)

    def _kernel(self, dtype):
        """The masked kernel, formed in the variables' dtype and cast once to `dtype`:
        removed input channels' rows and output channels' filters are zero."""
        wide = self.variable_dtype
        lam_in, lam_out = ops.cast(self.eigenvalues_in, wide), ops.cast(self.eigenvalues_out, wide)
        mask_in, mask_out = ops.cast(self.eigenvalues_in_mask, wide), ops.cast(self.eigenvalues_out_mask, wide)
        gap = self._rows((lam_in[:, None] - lam_out[None, :]) * mask_in[:, None]) * mask_out[None, :]
        return ops.cast(ops.cast(self.eigenvectors, wide) * gap, dtype)

    def _convolve(self, x, dtype):
        return ops.conv(
            x, self._kernel(dtype), strides=self.strides, padding=self.padding,
            data_format=self.data_format, dilation_rate=self.dilation_rate,
        )

    @property
    def kernel(self):
        """The direct-space kernel `(*kernel_size, c_in, filters)` (masked)."""
        if not self.built:
            raise ValueError(f"Layer '{self.name}' is not built yet, so it has no kernel.")
        return self._kernel(self.variable_dtype)

    def call(self, inputs):
        dtype = self.compute_dtype
        x = self._convolve(ops.cast(inputs, dtype), dtype)
        if self.bias is not None:
            shape = (1,) * (self.rank + 1) + (self.filters,) if self._channel_axis == -1 else (
                (1, self.filters) + (1,) * self.rank)
            bias = ops.reshape(ops.cast(self.bias, dtype), shape)
            # TensorFlow's `add` takes a vector-like addend for a bias and puts it on the last
            # axis whenever that matches, also for channels first when the width equals
            # `filters`; x − (−b) is the same sum without that shortcut.
            x = ops.add(x, bias) if self._channel_axis == -1 else ops.subtract(x, ops.negative(bias))
        if self.activation is not None:
            x = self.activation(x)
        return x

    def compute_output_shape(self, input_shape):
        return self._plain_conv().compute_output_shape(input_shape)

    @classmethod
    def _plain_class(cls):
        return getattr(keras.layers, f"Conv{cls.rank}D")

    def _plain_arguments(self):
        return {name: getattr(self, name) for name in self._plain_argument_names()}

    def _plain_conv(self):
        return self._plain_class()(**self._plain_arguments(), name=self.name, dtype=self.dtype_policy)

    def _plain_weights(self):
        """The weights of the equivalent Keras layer, in its order."""
        return [ops.convert_to_numpy(self.kernel)]

    def _take_weights(self, layer):
        """Take the kernel of the Keras layer `layer` as φ (λ_in = 1, λ_out = 0: exact)."""
        self.eigenvectors.assign(ops.convert_to_numpy(layer.kernel))

    def to_conv(self):
        """The equivalent Keras convolution (same outputs), with this kernel and bias."""
        if not self.built:
            raise ValueError(f"Layer '{self.name}' is not built yet, so it has no kernel to collapse.")
        conv = self._plain_conv()
        conv.build(self._input_shape(self.input_channels))
        weights = self._plain_weights()
        if self.use_bias:
            weights.append(ops.convert_to_numpy(self.bias))
        conv.set_weights(weights)
        conv.trainable = self.trainable
        return conv

    @classmethod
    def from_conv(cls, layer, eigenvectors="trainable", **kwargs):
        """A spectral convolution with the same outputs as the built Keras convolution
        `layer` (the class this one collapses to: `Conv{rank}D`, or `SeparableConv{rank}D`
        for the separable ones): `φ = kernel`, `λ_in = 1`, `λ_out = 0`, the same bias,
        activation and dtype policy. Exact for both modes (φ is stored whole).
        `**kwargs`: further arguments (regularizers, ...)."""
        expected = cls._plain_class()
        if type(layer) is not expected:
            raise TypeError(
                f"Received an invalid value for `layer`, expected a built keras.layers.{expected.__name__}. "
                f"Received: layer={layer!r}"
            )
        if not layer.built:
            raise ValueError(f"Layer '{layer.name}' is not built, so it has no kernel to convert yet.")
        if getattr(layer, "groups", 1) > 1 and cls._input_channels_of(layer) == layer.groups:
            raise ValueError(
                f"Layer '{layer.name}' is a depthwise convolution (groups={layer.groups}, one input channel "
                f"per group), which {cls.__name__} does not convert: it passes channels one by one."
            )
        check_choice("eigenvectors", eigenvectors, CONV_MODES)
        arguments = {k: getattr(layer, k) for k in cls._plain_argument_names()}
        spectral = cls(**arguments, eigenvectors=eigenvectors, name=layer.name, dtype=layer.dtype_policy, **kwargs)
        spectral.build(spectral._input_shape(cls._input_channels_of(layer)))
        spectral._take_weights(layer)
        spectral.eigenvalues_in.assign(np.ones(spectral.eigenvalues_in.shape, "float32"))
        spectral.eigenvalues_out.assign(np.zeros(spectral.eigenvalues_out.shape, "float32"))
        if layer.use_bias:
            spectral.bias.assign(ops.convert_to_numpy(layer.bias))
        spectral.trainable = layer.trainable
        return spectral

    @classmethod
    def _plain_argument_names(cls):
        return ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                "activation", "use_bias")

    @classmethod
    def _input_channels_of(cls, layer):
        return layer.kernel.shape[-2] * getattr(layer, "groups", 1)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "eigenvectors": self.eigenvector_mode,
            "train_eigenvalues_in": self.train_eigenvalues_in,
            "train_eigenvalues_out": self.train_eigenvalues_out,
        })
        config.update(weight_options_config(self))
        return config


_EXAMPLE = """

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((32, 32, 3)),
    ...     SpectralConv2D(32, 3, activation="relu"),  # eigenvalues only: 3 + 32 numbers (+ bias)
    ...     keras.layers.GlobalAveragePooling2D(),
    ...     keras.layers.Dense(10),
    ... ])  # doctest: +SKIP
"""

_ARGS = """

    Args:
        filters: Number of output channels (each with an eigenvalue `λ_out`).
        kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias:
            As for `keras.layers.Conv{rank}D`.
        groups: As for `keras.layers.Conv{rank}D`: each filter reads its group of input
            channels; `λ_in` still holds one eigenvalue per input channel.
        eigenvectors: `"frozen"` (default: φ fixed, only the eigenvalues train) or
            `"trainable"` (φ trains too).
        train_eigenvalues_in, train_eigenvalues_out: Whether each eigenvalue set trains.
        eigenvalues_in_initializer, eigenvalues_out_initializer, eigenvectors_initializer,
        bias_initializer, *_regularizer, *_constraint: Per weight group, as for
            `SpectralDense` (the same per-mode defaults).

    Input shape: `(batch, *spatial, c_in)` (channels last) or `(batch, c_in, *spatial)`.
    Output shape: as `keras.layers.Conv{rank}D` gives.
"""


def _doc(rank):
    return (
        f"{rank}D convolution whose kernel is `φ ⊙ (λ_in[i] − λ_out[o])`: one eigenvalue per "
        "input channel and per output channel, broadcast over the spatial taps."
        + _ARGS.format(rank=rank) + _EXAMPLE.replace("2D", f"{rank}D").replace("(32, 32, 3)", {1: "(32, 3)", 2: "(32, 32, 3)", 3: "(8, 32, 32, 3)"}[rank])
    )


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralConv1D(_SpectralConv):
    __doc__ = _doc(1)
    rank = 1


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralConv2D(_SpectralConv):
    __doc__ = _doc(2)
    rank = 2


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralConv3D(_SpectralConv):
    __doc__ = _doc(3)
    rank = 3


# The Keras convolution each spectral convolution converts from and collapses to.
SPECTRAL_CONVS = {keras.layers.Conv1D: SpectralConv1D, keras.layers.Conv2D: SpectralConv2D,
                  keras.layers.Conv3D: SpectralConv3D}
