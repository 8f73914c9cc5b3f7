"""Channel groups of CNNs: which channels can go, pruning them, and exact compaction.

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import os

import keras
import numpy as np
import pytest

from keras_spectral import (
    EigenvaluePruning,
    SpectralConv2D,
    SpectralDense,
    collapse,
    compact,
    node_groups,
    plots,
    prune_nodes,
    spectralize,
)
from keras_spectral.schedules import ConstantSparsity
from test_graph_pruning import assert_same_outputs, groups_by_name, randomize_biases, rng_data

CHANNELS_FIRST_OK = keras.backend.backend() != "tensorflow"  # TF's CPU kernels are channels-last only


def converted(model, seed=0):
    """`model` with random biases and BatchNorm statistics, every Dense and Conv made spectral."""
    randomize_biases(model, seed)
    return spectralize(model, eigenvectors="trainable")


def small_cnn(data_format="channels_last", seed=0):
    """Conv → BN → ReLU → pool, twice ('same' padding, ZeroPadding, average pooling in the
    second stage), then global average pooling and a head."""
    keras.utils.set_random_seed(seed)
    first = data_format == "channels_first"
    shape = (3, 10, 10) if first else (10, 10, 3)
    axis = 1 if first else -1
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(8, 3, padding="same", data_format=data_format, name="conv_0")(inputs)
    x = keras.layers.BatchNormalization(axis=axis, name="bn_0")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D(data_format=data_format)(x)
    x = keras.layers.ZeroPadding2D(1, data_format=data_format)(x)
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, data_format=data_format, name="conv_1")(x)
    x = keras.layers.BatchNormalization(axis=axis, name="bn_1")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.AveragePooling2D(2, data_format=data_format)(x)
    x = keras.layers.SpatialDropout2D(0.2, data_format=data_format)(x)
    x = keras.layers.GlobalAveragePooling2D(data_format=data_format)(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="head")(x)
    return converted(keras.Model(inputs, outputs), seed)


def resnet_block(seed=0):
    """A stem and one residual block: the Add couples the stem's channels with the
    block's second convolution."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    stem = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    stem = keras.layers.BatchNormalization(name="stem_bn")(stem)
    stem = keras.layers.ReLU()(stem)
    x = keras.layers.Conv2D(6, 3, padding="same", name="block_a")(stem)
    x = keras.layers.BatchNormalization(name="block_a_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="block_b")(x)
    x = keras.layers.BatchNormalization(name="block_b_bn")(x)
    x = keras.layers.ReLU()(keras.layers.Add()([stem, x]))
    x = keras.layers.GlobalMaxPooling2D()(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return converted(keras.Model(inputs, outputs), seed)


def flatten_head(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((9, 9, 2))
    x = keras.layers.Conv2D(5, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(7, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return converted(keras.Model(inputs, outputs), seed)


def prune_and_compact(model, x, fraction=0.5, score="sum"):
    """Prune, compact, and check the compact model's outputs and that compact left the
    masked model unchanged."""
    prune_nodes(model, fraction=fraction, score=score)
    masked = [w.copy() for w in model.get_weights()]
    small = compact(model)
    assert_same_outputs(small, model, x)
    for a, b in zip(masked, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert small.count_params() < model.count_params()
    return small


def test_small_cnn_channel_groups_compact_exactly():
    model = small_cnn()
    groups = groups_by_name(model)
    assert sorted(n for n, g in groups.items() if g.prunable) == ["conv_0", "conv_1"]
    assert "model output" in groups["head"].reason
    assert {layer.name for layer, _ in groups["conv_0"].passes} >= {"bn_0"}
    assert [c.name for c, _ in groups["conv_0"].consumers] == ["conv_1"]
    assert [c.name for c, _ in groups["conv_1"].consumers] == ["head"]
    small = prune_and_compact(model, rng_data((6, 10, 10, 3)))
    assert small.get_layer("conv_0").filters == 4 and small.get_layer("conv_1").filters == 3
    assert small.get_layer("conv_1").eigenvalues_in.shape == (4,)
    assert small.get_layer("bn_0").gamma.shape == (4,) and small.get_layer("bn_1").moving_mean.shape == (3,)
    assert small.get_layer("head").input_dim == 3
    # Collapsed back to Keras Conv2D / Dense, the same outputs.
    plain = collapse(small)
    assert type(plain.get_layer("conv_0")) is keras.layers.Conv2D
    assert_same_outputs(plain, model, rng_data((6, 10, 10, 3), seed=1))


def test_removed_channels_are_masked_in_their_readers_too():
    """A removed channel outputs a constant that a padded convolution would not see as
    constant at the borders: its spectral readers mask it as well."""
    model = small_cnn()
    group = groups_by_name(model)["conv_0"]
    group.remove([0, 5])
    conv_1 = model.get_layer("conv_1")
    assert keras.ops.convert_to_numpy(conv_1.eigenvalues_in_mask)[[0, 5]].tolist() == [0.0, 0.0]
    assert keras.ops.convert_to_numpy(model.get_layer("conv_0").eigenvalues_out_mask)[[0, 5]].tolist() == [0.0, 0.0]
    assert group.active().sum() == 6
    small = compact(model)
    assert_same_outputs(small, model, rng_data((3, 10, 10, 3)))


@pytest.mark.skipif(not CHANNELS_FIRST_OK, reason="TensorFlow's CPU convolutions take channels last only")
def test_channels_first_cnn_compacts_exactly():
    model = small_cnn("channels_first")
    groups = groups_by_name(model)
    assert sorted(n for n, g in groups.items() if g.prunable) == ["conv_0", "conv_1"]
    small = prune_and_compact(model, rng_data((4, 3, 10, 10)))
    assert small.get_layer("conv_1").filters == 3 and small.get_layer("bn_1").gamma.shape == (3,)


def test_channels_first_flatten_rows_are_channel_major():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2, 4, 4))
    x = SpectralConv2D(3, 3, data_format="channels_first", name="conv")(inputs)  # (3, 2, 2)
    x = keras.layers.Flatten()(x)  # Flatten's own data_format: channels last, no transpose
    outputs = SpectralDense(2, name="head")(SpectralDense(4, name="fc")(x))
    model = keras.Model(inputs, outputs)
    rows = groups_by_name(model)["conv"].consumers[0][1]
    assert rows.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_residual_add_couples_channels():
    model = resnet_block()
    groups = groups_by_name(model)
    stream = groups["stem"]
    assert [p.name for p in stream.producers] == ["stem", "block_b"] and stream.prunable
    assert sorted(c.name for c, _ in stream.consumers) == ["block_a", "head"]
    assert groups["block_a"].prunable
    small = prune_and_compact(model, rng_data((5, 8, 8, 3)))
    assert small.get_layer("stem").filters == small.get_layer("block_b").filters == 4
    assert small.get_layer("block_a").filters == 3


def test_flatten_head_reads_each_channel_at_its_positions():
    model = flatten_head()
    group = groups_by_name(model)["conv"]
    rows = group.consumers[0][1]
    assert rows.shape == (5, 9) and rows[2, :2].tolist() == [2, 7]  # channels last: strided
    small = prune_and_compact(model, rng_data((4, 9, 9, 2)), fraction=0.6)
    assert small.get_layer("conv").filters == 2
    assert small.get_layer("fc").input_dim == 2 * 9


def test_eigenvalue_pruning_during_fit_then_plots_and_summary(tmp_path):
    model = small_cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = rng_data((32, 10, 10, 3)), np.arange(32) % 4
    callbacks = [EigenvaluePruning(ConstantSparsity(0.5, begin_step=0, frequency=1))]
    if keras.backend.backend() == "tensorflow" or _has_tensorflow():
        from keras_spectral.summaries import SpectrumSummary

        callbacks.append(SpectrumSummary(str(tmp_path / "logs")))
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=callbacks)
    assert history.history["node_sparsity/conv_0"] == [0.5] and history.history["node_sparsity/conv_1"] == [0.5]
    small = compact(model)
    assert_same_outputs(small, model, x)
    present = plots.present_nodes(model)
    assert present[("conv_0", "out")].sum() == 4 and present[("conv_1", "in")].sum() == 4
    figure = plots.spectrum(model, path=str(tmp_path / "spectrum.png"))
    assert len(figure.axes) == 2 * 3  # conv_0, conv_1, head
    assert "4 removed" in figure.axes[2].get_title()  # conv_1's λ_in: conv_0's removed channels
    if len(callbacks) == 2:
        assert os.listdir(tmp_path / "logs" / "spectrum")


def _has_tensorflow():
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


# --- what cannot be pruned ------------------------------------------------------------------


def test_plain_convolution_reader_makes_the_group_not_prunable():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 2))
    x = SpectralConv2D(4, 3, padding="same", name="spectral")(inputs)
    x = keras.layers.Conv2D(3, 3, padding="same", name="plain")(x)
    outputs = SpectralDense(2, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    group = groups_by_name(keras.Model(inputs, outputs))["spectral"]
    assert not group.prunable and "'plain' (Conv2D)" in group.reason and "spectralize" in group.reason


@pytest.mark.parametrize(
    "layer, reason",
    [
        (lambda: keras.layers.Conv2DTranspose(4, 3, padding="same"), "reaches Conv2DTranspose"),
        (lambda: keras.layers.Reshape((8, 8 * 4)), "reaches Reshape"),
        (lambda: keras.layers.LayerNormalization(), "reaches LayerNormalization"),
        (lambda: keras.layers.BatchNormalization(axis=1), "normalizes axis 1"),
        (lambda: keras.layers.MaxPooling2D(data_format="channels_first"), "data_format='channels_first'"),
    ],
)
def test_layers_that_mix_channels_are_named(layer, reason, unchanged):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 2))
    x = layer()(SpectralConv2D(4, 3, padding="same", name="conv")(inputs))
    outputs = SpectralDense(2, name="head")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    group = groups_by_name(model)["conv"]
    assert not group.prunable and reason in group.reason
    with unchanged(model), pytest.raises(ValueError, match="no hidden nodes that can be pruned.*reaches"):
        prune_nodes(model, fraction=0.5)


def test_compact_refuses_a_channel_constant_it_cannot_fold(unchanged):
    """Masks set by hand on the producer only: the removed channel still reaches a padded
    convolution, so compact refuses (naming the layer) instead of changing the outputs."""
    model = small_cnn()
    conv_0, bn_0 = model.get_layer("conv_0"), model.get_layer("bn_0")
    for weight, value in ((conv_0.bias, 0.0), (bn_0.moving_mean, 0.0), (bn_0.beta, 1.0)):
        values = keras.ops.convert_to_numpy(weight).copy()
        values[1] = value  # channel 1, removed, then outputs relu(bn(0)) = 1 everywhere
        weight.assign(values)
    mask = np.ones(8, "float32")
    mask[1] = 0.0
    conv_0.eigenvalues_out_mask.assign(mask)
    with unchanged(model), pytest.raises(ValueError, match="Layer 'conv_1' reads removed features"):
        compact(model)


def test_node_groups_lists_every_convolution():
    names = [g.name for g in node_groups(small_cnn())]
    assert names == ["conv_0", "conv_1", "head"]
