"""SpectralDense: the operator algebra, parameter counts, gradients, serialization, errors.

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_spectral import SpectralDense

MODES = {
    "frozen": dict(eigenvectors="frozen"),
    "trainable": dict(eigenvectors="trainable"),
    "svd": dict(eigenvectors="svd"),
    "qr": dict(eigenvectors="qr"),
    "lowrank": dict(eigenvectors="lowrank", eigenvector_rank=2),
    "qr_full": dict(eigenvectors="qr_full"),
    "svd-dense": dict(eigenvectors="svd", eigenvector_basis="dense"),
    "qr-dense": dict(eigenvectors="qr", eigenvector_basis="dense"),
    "qr_full-dense": dict(eigenvectors="qr_full", eigenvector_basis="dense"),
    "frozen-kronecker": dict(eigenvectors="frozen", eigenvector_basis="kronecker"),
}
EACH_MODE = pytest.mark.parametrize("options", list(MODES.values()), ids=list(MODES))


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def operator_block(phi, lam_in, lam_out):
    """Off-diagonal block of Φ Λ Φ⁻¹, built explicitly as an (n_in + n_out)² matrix."""
    n_out, n_in = phi.shape
    big_phi = np.eye(n_in + n_out)
    big_phi[n_in:, :n_in] = phi
    big_lambda = np.diag(np.concatenate([lam_in, lam_out]))
    operator = big_phi @ big_lambda @ np.linalg.inv(big_phi)
    # The in-to-in and out-to-out blocks are the eigenvalues themselves.
    np.testing.assert_allclose(operator[:n_in, :n_in], np.diag(lam_in), atol=1e-9)
    np.testing.assert_allclose(operator[:n_in, n_in:], 0.0, atol=1e-9)
    return operator[n_in:, :n_in]  # (n_out, n_in): w_ij = (λ_in_j − λ_out_i) φ_ij


def expected_trainable_count(options, n_in, units, use_bias=True):
    mode, rank = options["eigenvectors"], options.get("eigenvector_rank")
    k = min(n_in, units)
    eigen = {
        "frozen": 0,
        "trainable": n_in * units,
        "svd": k,
        "qr": k * units - k * (k - 1) // 2,
        "qr_full": k * units,
        "lowrank": (rank or 0) * (n_in + units),
    }[mode]
    return n_in + units + eigen + (units if use_bias else 0)


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


@EACH_MODE
@pytest.mark.parametrize("n_in,units", [(5, 3), (4, 9), (6, 6)])
def test_kernel_is_the_off_diagonal_block_of_the_operator(options, n_in, units):
    rng = np.random.default_rng(n_in * 100 + units)
    layer = SpectralDense(
        units,
        **options,
        eigenvalues_in_initializer=keras.initializers.RandomNormal(seed=1),
        eigenvalues_out_initializer=keras.initializers.RandomNormal(seed=2),
    )
    layer.build((None, n_in))
    # Move every trainable weight away from its initial (factored) value.
    for w in layer.trainable_weights:
        w.assign(numpy(w) + rng.normal(size=w.shape).astype("float32") * 0.3)
    phi = numpy(layer.eigenvectors).T.astype("float64")
    lam_in = numpy(layer.eigenvalues_in).astype("float64")
    lam_out = numpy(layer.eigenvalues_out).astype("float64")
    block = operator_block(phi, lam_in, lam_out)
    np.testing.assert_allclose(numpy(layer.kernel), block.T, rtol=1e-5, atol=1e-5)
    # And the layer really applies that kernel (plus bias).
    x = rng.normal(size=(3, n_in)).astype("float32")
    expected = x @ block.T + numpy(layer.bias)
    np.testing.assert_allclose(numpy(layer(x)), expected, rtol=1e-4, atol=1e-4)


def test_svd_and_qr_factors_have_the_documented_structure():
    svd = SpectralDense(4, eigenvectors="svd", eigenvector_basis="dense")
    svd.build((None, 6))
    u = numpy(svd._eigenvectors.basis_in)
    vt = numpy(svd._eigenvectors.basis_out)
    np.testing.assert_allclose(u.T @ u, np.eye(4), atol=1e-5)
    np.testing.assert_allclose(vt @ vt.T, np.eye(4), atol=1e-5)
    qr = SpectralDense(4, eigenvectors="qr", eigenvector_basis="dense")
    qr.build((None, 6))
    q = numpy(qr._eigenvectors.basis)
    r = numpy(qr._eigenvectors.triangular_factor("float32"))
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-5)
    np.testing.assert_array_equal(np.tril(r, -1), 0.0)
    # Each decomposition starts from the random φ the frozen mode would draw.
    init = keras.initializers.RandomNormal(seed=7)
    frozen = SpectralDense(4, eigenvectors_initializer=init)
    frozen.build((None, 6))
    for mode in ("svd", "qr", "qr_full"):
        layer = SpectralDense(4, eigenvectors=mode, eigenvector_basis="dense", eigenvectors_initializer=init)
        layer.build((None, 6))
        np.testing.assert_allclose(
            numpy(layer.eigenvectors), numpy(frozen.eigenvectors), rtol=1e-4, atol=1e-4
        )


@EACH_MODE
@pytest.mark.parametrize("train_in,train_out", [(True, True), (False, True), (True, False)])
def test_trainable_parameter_count(options, train_in, train_out):
    n_in, units = 7, 5
    layer = SpectralDense(
        units,
        **options,
        train_eigenvalues_in=train_in,
        train_eigenvalues_out=train_out,
    )
    layer.build((None, n_in))
    expected = expected_trainable_count(options, n_in, units)
    expected -= (0 if train_in else n_in) + (0 if train_out else units)
    assert count(layer.trainable_weights) == expected


def test_eigenvalues_only_count_is_linear_in_width():
    model = keras.Sequential(
        [keras.Input((784,)), SpectralDense(500, activation="relu"), SpectralDense(10)]
    )
    assert count(model.trainable_weights) == 784 + 500 + 500 + 500 + 10 + 10


@EACH_MODE
@pytest.mark.parametrize("train_in", [True, False])
def test_fit_changes_exactly_the_trainable_parameters(options, train_in):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            SpectralDense(
                4,
                activation="tanh",
                **options,
                train_eigenvalues_in=train_in,
            ),
            SpectralDense(3, **options),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), "mse")
    before = {id(w): numpy(w).copy() for w in model.weights}
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    y = np.random.default_rng(1).normal(size=(32, 3)).astype("float32")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    trainable_ids = {id(w) for w in model.trainable_weights}
    for w in model.weights:
        changed = not np.array_equal(before[id(w)], numpy(w))
        assert changed == (id(w) in trainable_ids), f"{w.path}: changed={changed}"
    first = model.layers[0]
    assert any(w is first.eigenvalues_in for w in first.trainable_weights) == train_in


def test_factored_and_dense_evaluation_orders_agree():
    # For a large static batch the SVD factors are applied directly; for an unknown
    # batch size the kernel is formed. Both must give the same outputs.
    layer = SpectralDense(40, eigenvectors="svd")
    layer.build((None, 30))
    holder = layer._eigenvectors
    assert holder.prefer_factored(2) and not holder.prefer_factored(None)
    assert not holder.prefer_factored(4096)
    x = np.random.default_rng(0).normal(size=(2, 30)).astype("float32")
    dense_order = x @ numpy(layer.kernel) + numpy(layer.bias)
    np.testing.assert_allclose(numpy(layer(x)), dense_order, rtol=1e-4, atol=1e-4)
    frozen = SpectralDense(40)
    frozen.build((None, 30))
    assert not frozen._eigenvectors.prefer_factored(2)


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5)])
def test_inputs_of_higher_rank_apply_to_the_last_axis(shape):
    layer = SpectralDense(6, activation="relu")
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    y = numpy(layer(x))
    assert y.shape == shape[:-1] + (6,)
    flat = numpy(layer(x.reshape(-1, 5))).reshape(shape[:-1] + (6,))
    np.testing.assert_allclose(y, flat, rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape((None, 3, 5)) == (None, 3, 6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = keras.Sequential(
            [
                keras.Input((8,)),
                SpectralDense(16, activation="relu", eigenvectors="svd"),
                SpectralDense(3, dtype="float32"),
            ]
        )
        layer = model.layers[0]
        assert layer.compute_dtype == policy.split("_")[1]
        assert layer.eigenvalues_in.dtype == "float32"
        x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
        y = np.random.default_rng(0).integers(0, 3, size=64)
        hidden = layer(x)
        assert keras.backend.standardize_dtype(hidden.dtype) == layer.compute_dtype
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("mode", ["svd", "qr", "lowrank"])
def test_mixed_precision_kernel_errs_no_more_than_dense(policy, mode):
    """The kernel of a decomposed mode is formed in float32 and cast once, as Dense casts
    its kernel, so its outputs err about as Dense's do (not 2-5x more)."""
    previous = keras.config.dtype_policy()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 96)).astype("float32")
    try:
        keras.config.set_dtype_policy(policy)
        keras.utils.set_random_seed(0)
        options = {"lowrank": {"eigenvector_rank": 24}, "svd": {"eigenvector_basis": "dense"}}.get(mode, {})
        layer = SpectralDense(64, eigenvectors=mode, **options)
        layer.build((None, 96))
        assert not layer._eigenvectors.prefer_factored(len(x))  # the kernel is formed (not x @ factors)
        layer.eigenvalues_in.assign(rng.normal(1.0, 0.3, size=96).astype("float32"))
        layer.eigenvalues_out.assign(rng.normal(0.0, 0.3, size=64).astype("float32"))
        exact = x.astype("float64") @ numpy(layer.kernel).astype("float64")
        dense = keras.layers.Dense(64, use_bias=False)
        dense.build((None, 96))
        dense.kernel.assign(numpy(layer.kernel))
        keras.config.set_dtype_policy(previous)
        spectral_out = numpy(layer(keras.ops.convert_to_tensor(x))).astype("float64")
        dense_out = numpy(dense(x)).astype("float64")
    finally:
        keras.config.set_dtype_policy(previous)
    spectral_error = np.abs(spectral_out - exact).max()
    dense_error = np.abs(dense_out - exact).max()
    assert spectral_error <= 1.5 * dense_error + 1e-6, (spectral_error, dense_error)


def _model(options):
    return keras.Sequential(
        [
            keras.Input((6,)),
            SpectralDense(
                5,
                activation="relu",
                **options,
                train_eigenvalues_in=False,
                eigenvalues_in_regularizer="l2",
                eigenvectors_constraint=keras.constraints.MaxNorm(3.0),
            ),
            SpectralDense(2, use_bias=False, name="head"),
        ]
    )


@EACH_MODE
def test_keras_file_round_trip_without_custom_objects(options, tmp_path):
    model = _model(options)
    x = np.random.default_rng(0).normal(size=(10, 6)).astype("float32")
    model.compile("adam", "mse")
    model.fit(x, np.ones((10, 2)), epochs=1, verbose=0)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(numpy(model.predict(x, verbose=0)), numpy(loaded.predict(x, verbose=0)))
    layer = loaded.layers[0]
    assert isinstance(layer, SpectralDense)
    assert layer.get_config() == model.layers[0].get_config()
    assert count(loaded.trainable_weights) == count(model.trainable_weights)


def test_get_config_round_trip_gives_the_same_layer():
    layer = SpectralDense(
        7,
        activation="tanh",
        eigenvectors="lowrank",
        eigenvector_rank=2,
        train_eigenvalues_out=False,
        bias_initializer="ones",
        activity_regularizer="l1",
    )
    clone = SpectralDense.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.eigenvector_rank == 2 and not clone.train_eigenvalues_out


@EACH_MODE
def test_to_dense_gives_the_same_outputs(options):
    layer = SpectralDense(5, activation="sigmoid", **options)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    y = numpy(layer(x))
    dense = layer.to_dense()
    assert isinstance(dense, keras.layers.Dense)
    np.testing.assert_allclose(numpy(dense(x)), y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(numpy(dense.kernel), numpy(layer.kernel))


def test_frozen_eigenvalues_in_give_the_single_set_method():
    model = keras.Sequential(
        [keras.Input((4,)), SpectralDense(3, train_eigenvalues_in=False, use_bias=False)]
    )
    layer = model.layers[0]
    lam_in = numpy(layer.eigenvalues_in).copy()
    model.compile(keras.optimizers.SGD(0.5), "mse")
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    model.fit(x, np.ones((16, 3)), epochs=3, verbose=0)
    np.testing.assert_array_equal(numpy(layer.eigenvalues_in), lam_in)
    assert count(layer.trainable_weights) == 3


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(units=0), ValueError, r"`units`, expected a positive integer. Received: units=0"),
        (dict(units=-3), ValueError, "units=-3"),
        (dict(units=2.5), ValueError, "units=2.5"),
        (dict(units=True), ValueError, "units=True"),
        (dict(units=4, eigenvectors="eig"), ValueError, r"`eigenvectors`, expected one of"),
        (dict(units=4, eigenvectors="lowrank"), ValueError, "`eigenvector_rank` is required"),
        (dict(units=4, eigenvectors="lowrank", eigenvector_rank=0), ValueError, "eigenvector_rank=0"),
        (dict(units=4, eigenvectors="svd", eigenvector_rank=2), ValueError, "applies only to"),
        (dict(units=4, train_eigenvalues_in="no"), TypeError, "train_eigenvalues_in"),
        (dict(units=4, use_bias=None), TypeError, "use_bias"),
        (dict(units=4, activation="nope"), ValueError, "nope"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        SpectralDense(**kwargs)


def test_bad_input_shapes_raise():
    with pytest.raises(ValueError, match="eigenvector_rank.*at most min"):
        SpectralDense(4, eigenvectors="lowrank", eigenvector_rank=5).build((None, 8))
    with pytest.raises(ValueError, match="last dimension"):
        SpectralDense(4).build((None, None))
    with pytest.raises(ValueError, match="rank >= 2"):
        SpectralDense(4).build((8,))
    layer = SpectralDense(4)
    layer.build((None, 3))
    with pytest.raises(ValueError):
        layer(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="not available before the layer is built"):
        SpectralDense(4).kernel
