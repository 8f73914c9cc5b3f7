"""Spectral convolutions: the kernel construction, exact conversion from and collapse to
Keras convolutions, channel masks, saving, mixed precision and bad arguments.

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_spectral import SpectralConv1D, SpectralConv2D, SpectralConv3D, collapse, spectralize

SHAPES = {1: (12, 3), 2: (9, 9, 3), 3: (5, 6, 6, 2)}
CLASSES = {1: SpectralConv1D, 2: SpectralConv2D, 3: SpectralConv3D}
CHANNELS_FIRST_OK = keras.backend.backend() != "tensorflow"  # TF's CPU kernels are channels-last only


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def batch(shape, n=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("mode", ["frozen", "trainable"])
def test_kernel_is_phi_times_the_channel_gap_and_counts_parameters(rank, mode):
    keras.utils.set_random_seed(0)
    layer = CLASSES[rank](4, 3, eigenvectors=mode)
    layer.build((None, *SHAPES[rank]))
    c_in = SHAPES[rank][-1]
    phi, lam_in, lam_out = numpy(layer.eigenvectors), numpy(layer.eigenvalues_in), numpy(layer.eigenvalues_out)
    np.testing.assert_allclose(numpy(layer.kernel), phi * (lam_in[:, None] - lam_out[None, :]), rtol=1e-6)
    trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    expected = c_in + 4 + 4 + (phi.size if mode == "trainable" else 0)
    assert trainable == expected


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("options", [{}, {"strides": 2, "padding": "same"}, {"dilation_rate": 2}])
def test_from_conv_and_to_conv_are_exact(rank, options):
    keras.utils.set_random_seed(1)
    conv = getattr(keras.layers, f"Conv{rank}D")(5, 3, activation="relu", **options)
    x = batch(SHAPES[rank])
    expected = numpy(conv(x))
    conv.bias.assign(np.random.default_rng(2).normal(size=5).astype("float32"))
    expected = numpy(conv(x))
    spectral = CLASSES[rank].from_conv(conv)
    np.testing.assert_allclose(numpy(spectral(x)), expected, rtol=1e-5, atol=1e-5)
    back = spectral.to_conv()
    assert type(back) is type(conv)
    np.testing.assert_allclose(numpy(back(x)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not CHANNELS_FIRST_OK, reason="TensorFlow's CPU convolutions take channels last only")
def test_channels_first_matches_keras():
    keras.utils.set_random_seed(0)
    conv = keras.layers.Conv2D(4, 3, data_format="channels_first")
    x = np.moveaxis(batch(SHAPES[2]), -1, 1)
    expected = numpy(conv(x))
    spectral = SpectralConv2D.from_conv(conv)
    assert spectral.data_format == "channels_first" and spectral.eigenvalues_in.shape == (3,)
    np.testing.assert_allclose(numpy(spectral(x)), expected, rtol=1e-5, atol=1e-5)


def test_channels_first_bias_lands_on_the_channels_when_filters_equal_the_width():
    """TensorFlow's `add` puts a vector-like addend on the last axis when its length
    matches: here 7 filters and an output width of 7 (docs/deployment.md)."""
    keras.utils.set_random_seed(0)
    first = SpectralConv2D(7, 3, data_format="channels_first", eigenvectors="trainable")
    x = np.moveaxis(batch((9, 9, 3)), -1, 1)
    first(x)
    first.bias.assign(np.arange(1.0, 8.0, dtype="float32"))
    last = SpectralConv2D(7, 3, eigenvectors="trainable")
    last.build((None, 9, 9, 3))
    last.set_weights(first.get_weights())
    expected = np.moveaxis(numpy(last(np.moveaxis(x, 1, -1))), -1, 1)
    np.testing.assert_allclose(numpy(first(x)), expected, rtol=1e-5, atol=1e-5)


def small_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPES[2])
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs)


def test_spectralize_converts_convolutions_exactly_and_collapse_inverts_it(tmp_path):
    model = small_cnn()
    x = batch(SHAPES[2], n=8)
    expected = numpy(model(x))
    spectral = spectralize(model)
    assert isinstance(spectral.get_layer("conv_a"), SpectralConv2D)
    np.testing.assert_allclose(numpy(spectral(x)), expected, rtol=1e-5, atol=1e-5)
    frozen = spectralize(model, eigenvectors="frozen", layers=["conv_b"])
    assert type(frozen.get_layer("conv_a")) is keras.layers.Conv2D
    assert len(frozen.get_layer("conv_b").trainable_weights) == 3  # λ_in, λ_out, bias
    np.testing.assert_allclose(numpy(frozen(x)), expected, rtol=1e-5, atol=1e-5)
    assert type(spectralize(model, eigenvectors="svd").get_layer("conv_a")) is keras.layers.Conv2D
    plain = collapse(spectral)
    assert type(plain.get_layer("conv_a")) is keras.layers.Conv2D
    np.testing.assert_allclose(numpy(plain(x)), expected, rtol=1e-5, atol=1e-5)
    path = str(tmp_path / "cnn.keras")
    spectral.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded.get_layer("conv_b"), SpectralConv2D)
    np.testing.assert_allclose(numpy(reloaded(x)), expected, rtol=1e-5, atol=1e-5)


def test_channel_masks_silence_whole_channels():
    keras.utils.set_random_seed(0)
    layer = SpectralConv2D(4, 3, bias_initializer="ones")
    x = batch(SHAPES[2])
    layer.build(x.shape)
    layer.eigenvalues_out_mask.assign(np.array([1, 0, 1, 1], "float32"))
    out = numpy(layer(x))
    np.testing.assert_allclose(out[..., 1], 1.0)  # a removed output channel gives its bias
    layer.eigenvalues_in_mask.assign(np.array([1, 0, 1], "float32"))
    x_changed = x.copy()
    x_changed[..., 1] = 100.0  # a removed input channel is not read
    np.testing.assert_allclose(numpy(layer(x_changed)), numpy(layer(x)), rtol=1e-6)


def test_training_moves_only_the_eigenvalues_when_phi_is_frozen():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(SHAPES[1]), SpectralConv1D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    layer = model.layers[0]
    phi = numpy(layer.eigenvectors).copy()
    lam = numpy(layer.eigenvalues_out).copy()
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    x = batch(SHAPES[1], n=32)
    history = model.fit(x, np.ones((32, 2)), epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_array_equal(numpy(layer.eigenvectors), phi)
    assert not np.allclose(numpy(layer.eigenvalues_out), lam)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = SpectralConv2D(4, 3, eigenvectors="trainable")
        out = layer(batch(SHAPES[2]))
        assert keras.backend.standardize_dtype(out.dtype) == layer.compute_dtype
        assert layer.eigenvectors.dtype == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


def test_config_round_trip():
    layer = SpectralConv2D(4, (3, 2), strides=(1, 2), padding="same", activation="tanh", eigenvectors="trainable",
                           eigenvalues_in_regularizer="l2", bias_constraint="non_neg", name="c")
    clone = SpectralConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.kernel_size == (3, 2) and clone.strides == (1, 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": 0, "kernel_size": 3}, r"`filters`.*filters=0"),
        ({"filters": 4, "kernel_size": 0}, r"`kernel_size`.*kernel_size=0"),
        ({"filters": 4, "kernel_size": (3, 3, 3)}, r"`kernel_size`.*tuple of 2"),
        ({"filters": 4, "kernel_size": 3, "groups": 3}, r"`groups`, expected a divisor of `filters` \(4\).*groups=3"),
        ({"filters": 4, "kernel_size": 3, "eigenvectors": "svd"}, r"`eigenvectors`"),
        ({"filters": 4, "kernel_size": 3, "padding": "causal"}, r"`padding`"),
        ({"filters": 4, "kernel_size": 3, "strides": 2, "dilation_rate": 2}, r"strides > 1"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpectralConv2D(**kwargs)


def test_from_conv_refuses_what_it_cannot_convert():
    with pytest.raises(TypeError, match=r"expected a built keras.layers.Conv2D"):
        SpectralConv2D.from_conv(keras.layers.Conv1D(2, 3))
    with pytest.raises(ValueError, match="not built"):
        SpectralConv2D.from_conv(keras.layers.Conv2D(2, 3))
    depthwise = keras.layers.Conv2D(4, 3, groups=4)
    depthwise.build((None, 8, 8, 4))
    with pytest.raises(ValueError, match=r"depthwise convolution \(groups=4, one input channel"):
        SpectralConv2D.from_conv(depthwise)
    with pytest.raises(ValueError, match=r"`groups`, expected fewer groups than input channels"):
        SpectralConv2D(4, 3, groups=4).build((None, 8, 8, 4))
    with pytest.raises(ValueError, match="must have rank 4"):
        SpectralConv2D(2, 3).build((None, 8, 3))


def test_kernel_larger_than_a_valid_input_is_named():
    with pytest.raises(ValueError, match=r"`kernel_size`.*spatial shape \(3, 3\).*kernel_size=\(5, 5\)"):
        SpectralConv2D(4, 5)(keras.Input((3, 3, 2)))
    with pytest.raises(ValueError, match=r"dilation_rate=\(2,\)"):
        SpectralConv1D(4, 3, dilation_rate=2)(keras.Input((4, 2)))
    assert SpectralConv2D(4, 5, padding="same")(keras.Input((3, 3, 2))).shape == (None, 3, 3, 4)
    assert SpectralConv2D(4, 3)(keras.Input((3, 3, 2))).shape == (None, 1, 1, 4)
