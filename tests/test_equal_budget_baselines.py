"""The equal-budget baseline layers of benchmarks/harness/baselines.py and the grid's
multiply-add count (benchmarks/reproduce.py), on any backend."""

import os
import sys

import keras
import numpy as np
import pytest
from keras import ops

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import reproduce  # noqa: E402
from harness.baselines import LowRankDense, ScaledFrozenDense  # noqa: E402

from keras_spectral.models import trainable_count  # noqa: E402


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def test_low_rank_dense_is_a_trained_rank_r_kernel():
    keras.utils.set_random_seed(0)
    layer = LowRankDense(7, rank=3, activation="relu")
    x = np.random.default_rng(0).normal(size=(5, 11)).astype("float32")
    y = _numpy(layer(x))
    a, b, bias = (_numpy(w) for w in (layer.factor_in, layer.factor_out, layer.bias))
    np.testing.assert_allclose(y, np.maximum(x @ (a @ b) + bias, 0), atol=1e-5)
    assert a.shape == (11, 3) and b.shape == (3, 7)
    assert np.linalg.matrix_rank(a @ b) == 3
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == 3 * (11 + 7) + 7
    assert layer.multiply_adds() == 3 * (11 + 7)


def test_low_rank_dense_starts_at_the_scale_of_a_glorot_kernel():
    keras.utils.set_random_seed(1)
    layer = LowRankDense(300, rank=10)
    layer.build((None, 784))
    kernel = _numpy(layer.factor_in) @ _numpy(layer.factor_out)
    # rescaled to the full draw's Frobenius norm: Glorot variance 2 / (784 + 300)
    assert np.var(kernel) == pytest.approx(2 / (784 + 300), rel=0.05)


def test_rank_above_the_layer_sizes_is_capped():
    layer = LowRankDense(4, rank=10)
    layer.build((None, 6))
    assert layer.factor_in.shape == (6, 4)


def test_scaled_frozen_dense_scales_rows_and_columns_of_a_fixed_kernel():
    keras.utils.set_random_seed(0)
    layer = ScaledFrozenDense(5, activation="tanh")
    x = np.random.default_rng(1).normal(size=(4, 9)).astype("float32")
    y = _numpy(layer(x))
    phi, a, b, bias = (_numpy(w) for w in (layer.eigenvectors, layer.scale_in, layer.scale_out, layer.bias))
    np.testing.assert_allclose(y, np.tanh(x @ (a[:, None] * phi * b[None, :]) + bias), atol=1e-5)
    assert [w.name for w in layer.trainable_weights] == ["scale_in", "scale_out", "bias"]
    assert not layer.eigenvectors.trainable
    assert np.all(np.abs(a) <= 0.25) and np.all(np.abs(b) <= 0.25)
    assert layer.multiply_adds() == 9 * 5


def test_scaled_frozen_trains_only_the_scales():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), ScaledFrozenDense(3, activation="softmax")])
    phi = _numpy(model.layers[0].eigenvectors).copy()
    a = _numpy(model.layers[0].scale_in).copy()
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    model.fit(x, (x[:, 0] > 0).astype("int32"), epochs=2, verbose=0)
    np.testing.assert_array_equal(_numpy(model.layers[0].eigenvectors), phi)
    assert not np.allclose(_numpy(model.layers[0].scale_in), a)


@pytest.mark.parametrize(
    "method, width, params, multiply_adds",
    [
        ("dense_one_hidden", 10, 785 * 10 + 11 * 10, 784 * 10 + 10 * 10),
        ("dense_narrow", 5, 785 * 5 + 6 * 5 + 6 * 10, 784 * 5 + 25 + 50),
        # rank 10 per layer; the head's rank is capped at 10 by its 10 units
        ("lowrank_plain", 100, 10 * (784 + 100) + 100 + 10 * 200 + 100 + 10 * 110 + 10, 10 * (884 + 200 + 110)),
        ("scaled_frozen", 100, (784 + 200) + (100 + 200) + (100 + 20), 784 * 100 + 100 * 100 + 100 * 10),
        # SpectralDense counted in its cheaper order: lowrank factored (twice) where that is
        # cheaper (the hidden layers), else collapsed (the head: 100 * 10 < 2 * 10 * 110)
        ("spectral_lowrank", 100, None, 2 * 10 * (884 + 200) + 100 * 10),
        ("spectral_two_sets", 100, None, 784 * 100 + 100 * 100 + 100 * 10),
        ("dense", 50, 785 * 50 + 51 * 50 + 51 * 10, 784 * 50 + 2500 + 500),
    ],
)
def test_grid_networks_count_their_parameters_and_multiply_adds(method, width, params, multiply_adds):
    model = reproduce.build_network(784, method, width)
    if params is not None:
        assert trainable_count(model) == params
    assert reproduce.multiply_adds(model) == multiply_adds


def test_rank5_attempt_is_the_lowrank_mode_at_rank_5():
    model = reproduce.build_network(784, "spectral_lowrank_rank5", 300)
    assert [layer.eigenvector_rank for layer in model.layers] == [5, 5, 5]
    assert [layer.get_config()["eigenvectors"] for layer in model.layers] == ["lowrank"] * 3
