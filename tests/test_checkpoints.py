"""Compact checkpoints: φ regenerated from `eigenvector_seed` instead of saved."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_spectral import SpectralDense
from keras_spectral.eigenvectors import seeded_matrix


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def seeded_model(seeds=(11, 12, 13), width=64):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((20,)),
            SpectralDense(width, activation="relu", eigenvector_seed=seeds[0]),
            SpectralDense(width, activation="relu", eigenvector_seed=seeds[1]),
            SpectralDense(3, eigenvector_seed=seeds[2]),
        ]
    )


def test_seeded_eigenvectors_are_fixed_numbers():
    # Golden values: any change of generator or arithmetic breaks saved checkpoints.
    np.testing.assert_array_equal(
        seeded_matrix(2021, 2, 2).astype("float32"),
        np.array([[0.8900934, 1.5289916], [0.32030135, -0.6275507]], dtype="float32"),
    )
    phi = seeded_matrix(7, 300, 200)
    assert abs(phi.mean()) < 0.02 and abs(phi.var() - 1.0) < 0.02


def test_seeded_layer_uses_the_seeded_matrix_and_saves_no_eigenvectors():
    layer = SpectralDense(5, eigenvector_seed=3)
    layer.build((None, 4))
    np.testing.assert_array_equal(numpy(layer.eigenvectors), seeded_matrix(3, 4, 5).astype("float32"))
    saved = sum(int(np.prod(w.shape)) for w in layer.weights)
    assert saved == 4 + 5 + 4 + 5 + 5 + 4  # eigenvalues, masks, bias, fingerprint


def test_round_trip_is_exact_and_the_file_is_small(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 20)).astype("float32")
    model = seeded_model(width=256)
    model.compile("adam", "mse")
    model.fit(x, np.ones((16, 3)), epochs=2, verbose=0)
    seeded_path = os.path.join(tmp_path, "seeded.keras")
    model.save(seeded_path)
    loaded = keras.saving.load_model(seeded_path)
    np.testing.assert_array_equal(numpy(loaded.predict(x, verbose=0)), numpy(model.predict(x, verbose=0)))
    stored = keras.Sequential(
        [keras.Input((20,)), SpectralDense(256), SpectralDense(256), SpectralDense(3)]
    )
    stored_path = os.path.join(tmp_path, "stored.keras")
    stored.save(stored_path)
    assert os.path.getsize(seeded_path) * 5 < os.path.getsize(stored_path)


def test_mismatched_or_missing_seed_is_a_clear_error(tmp_path):
    path = os.path.join(tmp_path, "w.weights.h5")
    seeded_model().save_weights(path)
    with pytest.raises(ValueError, match="made with different eigenvectors"):
        seeded_model(seeds=(11, 99, 13)).load_weights(path)
    unseeded = keras.Sequential(
        [keras.Input((20,)), SpectralDense(64, activation="relu"), SpectralDense(64), SpectralDense(3)]
    )
    with pytest.raises(ValueError, match="cannot load the saved variables"):
        unseeded.load_weights(path)


def test_bad_seeds_are_rejected():
    with pytest.raises(ValueError, match="`eigenvector_seed`, expected a non-negative integer"):
        SpectralDense(3, eigenvector_seed=-1)
    with pytest.raises(ValueError, match="applies only to eigenvectors='frozen'"):
        SpectralDense(3, eigenvectors="svd", eigenvector_seed=1)


LOAD_ELSEWHERE = r"""
import sys
import numpy as np
import keras
import keras_spectral
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[3], keras.ops.convert_to_numpy(model.predict(np.load(sys.argv[2]), verbose=0)))
"""


def test_round_trip_across_backends(tmp_path):
    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    pytest.importorskip(other)
    x = np.random.default_rng(1).normal(size=(8, 20)).astype("float32")
    model = seeded_model()
    path, inputs, outputs = (str(tmp_path / n) for n in ("m.keras", "x.npy", "y.npy"))
    model.save(path)
    np.save(inputs, x)
    env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", LOAD_ELSEWHERE, path, inputs, outputs], check=True, env=env)
    np.testing.assert_allclose(np.load(outputs), numpy(model.predict(x, verbose=0)), rtol=1e-6, atol=1e-6)
