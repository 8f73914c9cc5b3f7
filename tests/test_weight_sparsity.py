"""Weight-percentile sparsity (`kernel_sparsity`, `MagnitudeSparsity`)."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_spectral import SpectralDense
from keras_spectral.weight_sparsity import MagnitudeSparsity, magnitude_mask


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def weight_sparsity(kernels):
    """Fraction of exactly-zero entries."""
    return sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.98])
def test_magnitude_mask_keeps_the_largest_entries(sparsity):
    w = np.random.default_rng(0).normal(size=(40, 25)).astype("float32")
    mask = numpy(magnitude_mask(ops.convert_to_tensor(w), sparsity)) if sparsity else np.ones_like(w)
    kept = int(np.ceil((1 - sparsity) * w.size))
    assert abs(int(mask.sum()) - kept) <= 1
    if sparsity:
        assert np.abs(w[mask == 1]).min() >= np.abs(w[mask == 0]).max()


@pytest.mark.parametrize("mode", ["trainable", "qr", "svd"])
def test_spectral_kernel_sparsity_holds_during_and_after_training(mode):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            SpectralDense(30, activation="tanh", eigenvectors=mode, kernel_sparsity=0.8),
            SpectralDense(3, eigenvectors=mode, kernel_sparsity=0.5),
        ]
    )
    x = np.random.default_rng(0).normal(size=(64, 20)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 64)
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    first, second = model.layers
    assert weight_sparsity([numpy(first.kernel)]) == pytest.approx(0.8, abs=0.01)
    assert weight_sparsity([numpy(second.kernel)]) == pytest.approx(0.5, abs=0.04)
    # The layer computes with exactly that sparse kernel.
    expected = np.tanh(x @ numpy(first.kernel) + numpy(first.bias))
    np.testing.assert_allclose(numpy(first(x)), expected, rtol=1e-4, atol=1e-5)
    dense = first.to_dense()
    np.testing.assert_allclose(numpy(dense(x)), expected, rtol=1e-4, atol=1e-5)


def test_kernel_sparsity_is_validated_and_serialized():
    with pytest.raises(ValueError, match="`kernel_sparsity`, expected a number in \\[0, 1\\)"):
        SpectralDense(4, kernel_sparsity=1.0)
    layer = SpectralDense(4, kernel_sparsity=0.9)
    assert SpectralDense.from_config(layer.get_config()).kernel_sparsity == 0.9


def test_dense_magnitude_constraint_zeroes_below_the_percentile_after_every_step():
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(16, kernel_constraint=MagnitudeSparsity(0.9))
    model = keras.Sequential([keras.Input((10,)), layer])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x = np.random.default_rng(0).normal(size=(32, 10)).astype("float32")
    model.fit(x, np.ones((32, 16)), epochs=1, batch_size=32, verbose=0)  # one step
    assert weight_sparsity([numpy(layer.kernel)]) == pytest.approx(0.9, abs=0.01)
    with pytest.raises(ValueError, match="`sparsity`"):
        MagnitudeSparsity(1.5)
    assert MagnitudeSparsity.from_config(MagnitudeSparsity(0.7).get_config()).sparsity == 0.7


