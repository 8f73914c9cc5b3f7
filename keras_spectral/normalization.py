"""Normalizations over the feature axis whose statistics skip removed features.

A LayerNormalization (or RMSNormalization) over the features couples every feature it
normalizes: removing one changes the mean and variance of the others. So that a
normalized residual stream (a transformer's, ConvNeXt's) can lose features exactly,
`spectralize` puts `MaskedLayerNormalization` / `MaskedRMSNormalization` in place of the
plain layers: with every feature kept they compute the same outputs; a removed feature
(`feature_mask` 0, set by the pruning tools) is left out of the statistics and outputs 0,
which is what the narrower plain layer that `compact` makes computes on the kept ones.
`collapse` turns them back into the plain Keras layers.
"""

import keras
from keras import ops


def _check_last_axis(layer, input_shape):
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    if [a % len(input_shape) for a in axes] != [len(input_shape) - 1]:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' normalizes over the last axis only. "
            f"Received: axis={layer.axis} for inputs of shape {tuple(input_shape)}"
        )


def _masked_statistics(x, mask, centered):
    """Mean (0 when not `centered`) and variance of `x` over its kept last-axis features."""
    kept = ops.sum(mask)
    mean = ops.sum(x * mask, axis=-1, keepdims=True) / kept if centered else ops.zeros_like(x[..., :1])
    variance = ops.sum(ops.square((x - mean) * mask), axis=-1, keepdims=True) / kept
    return mean, variance


class _FeatureMasked:
    """What the masked normalizations share: a `feature_mask` weight over the last axis
    (built after the plain layer's weights) and the conversions from and to the plain
    class `plain`."""

    plain = None

    def build(self, input_shape):
        super().build(input_shape)
        _check_last_axis(self, input_shape)
        self.feature_mask = self.add_weight(
            name="feature_mask", shape=(input_shape[-1],), initializer="ones", trainable=False
        )

    def _inputs_and_mask(self, inputs):
        dtype = keras.backend.result_type(inputs.dtype, "float32")  # at least float32, as Keras
        return ops.cast(inputs, dtype), ops.cast(self.feature_mask, dtype)

    @classmethod
    def from_layer(cls, layer):
        """The masked layer of a built plain layer (same outputs)."""
        return _from_plain(cls, layer)

    def to_layer(self):
        """The plain layer of this one (every feature kept)."""
        return _to_plain(self, self.plain)


@keras.saving.register_keras_serializable(package="keras_spectral")
class MaskedLayerNormalization(_FeatureMasked, keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` over the last axis, with a `feature_mask`: the
    mean and variance are taken over the kept features (mask 1) only, and removed
    features output 0. With the mask all ones its outputs are the plain layer's.

    Input shape: `(..., features)`; output shape: the same.

    Example:

    >>> norm = MaskedLayerNormalization.from_layer(trained_norm)  # doctest: +SKIP
    >>> plain = norm.to_layer()  # doctest: +SKIP
    """

    plain = keras.layers.LayerNormalization

    def call(self, inputs):
        x, mask = self._inputs_and_mask(inputs)
        # Keras' rms_scaling divides by the (centered) standard deviation and adds no beta.
        mean, variance = _masked_statistics(x, mask, centered=True)
        scaled = (x if self.rms_scaling else x - mean) * ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            scaled = scaled * ops.cast(self.gamma, x.dtype)
        if self.beta is not None:
            scaled = scaled + ops.cast(self.beta, x.dtype)
        return ops.cast(scaled * mask, self.compute_dtype)


@keras.saving.register_keras_serializable(package="keras_spectral")
class MaskedRMSNormalization(_FeatureMasked, keras.layers.RMSNormalization):
    """`keras.layers.RMSNormalization` over the last axis, with a `feature_mask`: the mean
    square is taken over the kept features only, and removed features output 0.

    Input shape: `(..., features)`; output shape: the same.
    """

    plain = keras.layers.RMSNormalization

    def call(self, inputs):
        x, mask = self._inputs_and_mask(inputs)
        _, mean_square = _masked_statistics(x, mask, centered=False)
        out = x * ops.rsqrt(mean_square + self.epsilon) * ops.cast(self.scale, x.dtype)
        return ops.cast(out * mask, self.compute_dtype)


def _from_plain(cls, layer):
    if not layer.built:
        raise ValueError(f"Layer '{layer.name}' is not built; call the model on data (or build it) first.")
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    if len(axes) != 1:
        raise ValueError(f"Layer '{layer.name}' normalizes over several axes {axes}; only the last axis can be masked.")
    new = cls.from_config(layer.get_config())
    new.build((None,) * max(axes[0], 1) + (layer.weights[0].shape[-1],))
    for target, source in zip(new.weights, layer.weights):
        target.assign(ops.convert_to_numpy(source))  # a copy, never a shared buffer
    return new


def _to_plain(layer, plain):
    mask = ops.convert_to_numpy(layer.feature_mask)
    if not mask.all():
        raise ValueError(
            f"Layer '{layer.name}' has {int((mask == 0).sum())} removed feature(s), which a plain "
            f"{plain.__name__} cannot leave out of its statistics: compact the model first "
            "(keras_spectral.compact), then collapse it."
        )
    new = plain.from_config(layer.get_config())
    new.build((None, mask.shape[0]))
    for target, source in zip(new.weights, layer.weights):
        target.assign(ops.convert_to_numpy(source))
    return new


MASKED_NORMALIZATIONS = {
    keras.layers.LayerNormalization: MaskedLayerNormalization,
    keras.layers.RMSNormalization: MaskedRMSNormalization,
}
