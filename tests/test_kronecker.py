"""Kronecker-structured bases for the decomposed eigenvector modes (`eigenvector_basis`).

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_spectral import SpectralDense, compact, kronecker


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


@pytest.mark.parametrize("n,expected", [(784, (28, 28)), (500, (20, 25)), (10, (2, 5)), (7, (1, 7)), (1, (1, 1))])
def test_split_size_takes_the_most_balanced_factors(n, expected):
    assert kronecker.split_size(n) == expected


def test_products_match_the_explicit_kronecker_matrix():
    rng = np.random.default_rng(0)
    left, right = rng.normal(size=(3, 3)), rng.normal(size=(4, 4))
    full = np.kron(left, right)
    x = rng.normal(size=(5, 12))
    m = rng.normal(size=(12, 6))
    tensors = [ops.convert_to_tensor(v.astype("float32")) for v in (left, right)]
    np.testing.assert_allclose(numpy(kronecker.apply_right(ops.convert_to_tensor(x.astype("float32")), *tensors)), x @ full, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(numpy(kronecker.apply_left(*tensors, ops.convert_to_tensor(m.astype("float32")))), full @ m, rtol=1e-4, atol=1e-4)


def test_random_factors_are_orthogonal_and_seeded():
    keras.utils.set_random_seed(3)
    first = kronecker.random_orthogonal_factors(12)
    keras.utils.set_random_seed(3)
    again = kronecker.random_orthogonal_factors(12)
    full = kronecker.dense(*first)
    np.testing.assert_allclose(full @ full.T, np.eye(12), atol=1e-5)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def _start(mode, n_in, units):
    """A Kronecker-basis layer, its starting φᵀ, and the φᵀ the frozen mode would draw."""
    init = keras.initializers.RandomNormal(seed=5)
    frozen = SpectralDense(units, eigenvectors_initializer=init)
    frozen.build((None, n_in))
    layer = SpectralDense(units, eigenvectors=mode, eigenvector_basis="kronecker", eigenvectors_initializer=init)
    layer.build((None, n_in))
    return layer, numpy(layer.eigenvectors), numpy(frozen.eigenvectors)


@pytest.mark.parametrize("n_in,units", [(12, 6), (6, 10), (8, 8)])
def test_svd_starts_with_the_initializer_singular_values(n_in, units):
    _, phi, reference = _start("svd", n_in, units)
    np.testing.assert_allclose(
        np.linalg.svd(phi, compute_uv=False), np.linalg.svd(reference, compute_uv=False), rtol=1e-4
    )
    assert not np.allclose(phi, reference, atol=1e-2)  # other singular vectors


@pytest.mark.parametrize("n_in,units", [(12, 6), (6, 10), (8, 8)])
def test_qr_starts_with_the_initializer_column_gram(n_in, units):
    layer, phi, reference = _start("qr", n_in, units)
    np.testing.assert_allclose(phi.T @ phi, reference.T @ reference, rtol=1e-4, atol=1e-4)
    r = numpy(layer._eigenvectors.triangular_factor("float32"))
    np.testing.assert_array_equal(np.tril(r, -1), 0.0)


@pytest.mark.parametrize("mode", ["svd", "qr"])
def test_both_evaluation_orders_agree_and_cost_less_than_dense_bases(mode):
    layer = SpectralDense(50, eigenvectors=mode, eigenvector_basis="kronecker")
    layer.build((None, 36))
    holder = layer._eigenvectors
    assert holder.prefer_factored(4)
    x = np.random.default_rng(0).normal(size=(4, 36)).astype("float32")
    np.testing.assert_allclose(numpy(layer(x)), x @ numpy(layer.kernel) + numpy(layer.bias), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(numpy(holder.project(x, "float32")), x @ numpy(holder.matrix("float32")), rtol=1e-4, atol=1e-4)
    big = SpectralDense(500, eigenvectors=mode, eigenvector_basis="kronecker")
    big.build((None, 784))
    dense_bases = SpectralDense(500, eigenvectors=mode, eigenvector_basis="dense")
    dense_bases.build((None, 784))
    assert big._eigenvectors.build_flops() < dense_bases._eigenvectors.build_flops() / 4
    assert big._eigenvectors.project_flops(200) < dense_bases._eigenvectors.project_flops(200)


def test_saved_file_is_small_and_round_trips(tmp_path):
    model = keras.Sequential([keras.Input((36,)), SpectralDense(50, eigenvectors="svd", eigenvector_basis="kronecker"), SpectralDense(3)])
    dense_bases = SpectralDense(50, eigenvectors="svd", eigenvector_basis="dense")
    dense_bases.build((None, 36))

    def stored(layer):
        return sum(int(np.prod(w.shape)) for w in layer.weights)

    # Bases of 6x6 + 6x6 and 5x5 + 10x10 numbers instead of 36x36 and 36x50.
    assert stored(model.layers[0]) < stored(dense_bases) / 5
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(7, 36)).astype("float32")
    np.testing.assert_array_equal(numpy(loaded(x)), numpy(model(x)))
    assert loaded.layers[0].eigenvector_basis == "kronecker"


def test_compaction_keeps_outputs_and_uses_dense_bases():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((12,)),
        SpectralDense(8, activation="relu", eigenvectors="svd", eigenvector_basis="kronecker"),
        SpectralDense(3, eigenvectors="svd", eigenvector_basis="kronecker"),
    ])
    mask = np.ones(8, "float32")
    mask[[1, 4, 6]] = 0.0
    model.layers[0].eigenvalues_out_mask.assign(mask)
    model.layers[1].eigenvalues_in_mask.assign(mask)
    small = compact(model)
    x = np.random.default_rng(0).normal(size=(5, 12)).astype("float32")
    np.testing.assert_allclose(numpy(small(x)), numpy(model(x)), rtol=1e-4, atol=1e-5)
    assert small.layers[0].units == 5 and small.layers[0].eigenvector_basis == "dense"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(eigenvectors="svd", eigenvector_basis="hadamard"), r"`eigenvector_basis`, expected one of"),
        (dict(eigenvectors="trainable", eigenvector_basis="kronecker"),
         r"applies only to eigenvectors='frozen', 'svd', 'qr' or 'qr_full'.*eigenvectors='trainable'"),
        (dict(eigenvector_seed=3, eigenvector_basis="kronecker"), "takes no `eigenvector_basis`"),
        (dict(eigenvectors="lowrank", eigenvector_rank=2, eigenvector_basis="kronecker"), "eigenvector_basis='kronecker'"),
    ],
)
def test_bad_basis_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpectralDense(4, **kwargs)


def test_frozen_kronecker_phi_is_structured_unit_variance_and_small():
    """Eigenvalues only with a Kronecker-structured frozen φ: unit-variance entries, no
    trained eigenvector parameter, and stored weights far below n_in * units."""
    keras.utils.set_random_seed(0)
    layer = SpectralDense(1024, eigenvector_basis="kronecker")
    layer.build((None, 2048))
    phi = np.asarray(ops.convert_to_numpy(layer.eigenvectors))
    assert phi.shape == (2048, 1024) and abs(phi.var() - 1.0) < 0.01
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == 2048 + 1024 + 1024
    stored = sum(int(np.prod(w.shape)) for w in layer.weights)
    assert stored < 0.01 * 2048 * 1024
    assert SpectralDense(8).eigenvector_basis == "dense"  # the papers' stored φ stays the default


def test_an_unbalanced_width_warns_that_the_basis_gives_no_speed_up():
    import warnings

    with pytest.warns(UserWarning, match=r"97 = 1 × 97 has no divisor near √97.*next is 98 = 7 × 14"):
        SpectralDense(97, eigenvectors="svd").build((None, 64))
    with warnings.catch_warnings(record=True) as caught:  # balanced widths (and small ones) stay quiet
        warnings.simplefilter("always")
        SpectralDense(500, eigenvectors="svd").build((None, 784))
        SpectralDense(7, eigenvectors="qr").build((None, 64))
    assert not [w for w in caught if "no divisor" in str(w.message)]
