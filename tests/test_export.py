"""Serving: collapse to Dense, SavedModel export, loading without keras_spectral."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_spectral import SpectralDense, collapse, compact, prune_nodes

# Loads a SavedModel in a fresh interpreter that never imports keras_spectral.
SERVE = r"""
import json, sys
import numpy as np
import tensorflow as tf
path, inputs, outputs = sys.argv[1:4]
served = tf.saved_model.load(path)
x = np.load(inputs)
results = {"full": served.serve(x).numpy().tolist(),
           "one": served.serve(x[:1]).numpy().tolist()}
results["spectral_imported"] = any(m.startswith("keras_spectral") for m in sys.modules)
json.dump(results, open(outputs, "w"))
"""


def run_serving(path, x, tmp_path):
    inputs, outputs = str(tmp_path / "x.npy"), str(tmp_path / "y.json")
    np.save(inputs, x)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", SERVE, path, inputs, outputs], check=True, env=env, cwd=str(tmp_path))
    with open(outputs) as f:
        return json.load(f)


def spectral_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            SpectralDense(16, activation="relu", eigenvectors="svd"),
            SpectralDense(12, activation="tanh"),
            SpectralDense(3, activation="softmax", eigenvectors="qr"),
        ]
    )
    x = np.random.default_rng(0).normal(size=(40, 6)).astype("float32")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, np.arange(40) % 3, epochs=2, verbose=0)
    return model, x


def test_collapse_replaces_every_spectral_layer_and_keeps_outputs():
    model, x = spectral_model()
    collapsed = collapse(model)
    assert not any(isinstance(layer, SpectralDense) for layer in collapsed.layers)
    np.testing.assert_allclose(collapsed.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_collapse_handles_functional_models_with_other_layers():
    inputs = keras.Input((5,))
    a = SpectralDense(4, activation="relu")(inputs)
    b = keras.layers.Dense(4)(inputs)
    merged = keras.layers.BatchNormalization()(keras.layers.Add()([a, b]))
    model = keras.Model(inputs, SpectralDense(2)(merged))
    x = np.random.default_rng(1).normal(size=(8, 5)).astype("float32")
    model.compile("adam", "mse")
    model.fit(x, np.ones((8, 2)), epochs=2, verbose=0)  # moving statistics change
    collapsed = collapse(model)
    np.testing.assert_allclose(collapsed.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_collapse_rejects_unbuilt_and_subclassed_models():
    with pytest.raises(ValueError, match="not built"):
        collapse(keras.Sequential([SpectralDense(3)]))

    class Custom(keras.Model):
        def __init__(self):
            super().__init__()
            self.inner = SpectralDense(2)

        def call(self, x):
            return self.inner(x)

    custom = Custom()
    custom(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed model"):
        collapse(custom)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="SavedModel export test runs on TF")
@pytest.mark.parametrize("route", ["spectral", "collapsed", "compacted_collapsed"])
def test_saved_model_serves_without_the_package(route, tmp_path):
    model, x = spectral_model()
    if route == "compacted_collapsed":
        prune_nodes(model, fraction=0.5)
        served_model = collapse(compact(model))
    elif route == "collapsed":
        served_model = collapse(model)
    else:
        served_model = model
    path = str(tmp_path / "saved")
    served_model.export(path, format="tf_saved_model", verbose=False)
    result = run_serving(path, x, tmp_path)
    assert result["spectral_imported"] is False
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(np.array(result["full"]), expected, atol=1e-5)
    np.testing.assert_allclose(np.array(result["one"]), expected[:1], atol=1e-5)  # dynamic batch
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run(
        [cli, "show", "--dir", path, "--all"], capture_output=True, text=True, check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout
    assert "signature_def['serving_default']" in shown
    assert "shape: (-1, 6)" in shown and "shape: (-1, 3)" in shown


JAX_EXPORT = r"""
import sys
import numpy as np
import keras
from keras_spectral import SpectralDense
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((6,)), SpectralDense(8, activation="tanh", eigenvectors="svd"),
                          SpectralDense(3)])
x = np.random.default_rng(0).normal(size=(20, 6)).astype("float32")
model.compile("adam", "mse")
model.fit(x, np.ones((20, 3)), epochs=2, verbose=0)
model.export(sys.argv[1], format="tf_saved_model", verbose=False)
np.save(sys.argv[2], model.predict(x, verbose=0))
np.save(sys.argv[3], x)
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="runs its JAX part in a subprocess")
def test_model_trained_on_jax_exports_to_saved_model(tmp_path):
    pytest.importorskip("jax")
    path, expected, inputs = str(tmp_path / "saved"), str(tmp_path / "y.npy"), str(tmp_path / "x.npy")
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", JAX_EXPORT, path, expected, inputs], check=True, env=env)
    result = run_serving(path, np.load(inputs), tmp_path)
    np.testing.assert_allclose(np.array(result["full"]), np.load(expected), atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="SavedModel export test runs on TF")
def test_trained_dense_transformer_converted_pruned_compacted_collapsed_and_served(tmp_path):
    """The workflow of issue #19: a conventionally trained Dense FFN block is converted,
    pruned during `fit`, compacted, collapsed, saved, exported and served without the
    package."""
    from keras_spectral import EigenvaluePruning, PolynomialDecay, spectralize

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 6))
    x = keras.layers.LayerNormalization()(inputs)
    h = keras.layers.Dense(12, activation="relu", name="ffn_in")(x)
    h = keras.layers.Dense(6, name="ffn_out")(h)
    x = keras.layers.Add()([x, h])
    outputs = keras.layers.Dense(3, name="head")(keras.layers.Flatten()(x))
    dense = keras.Model(inputs, outputs)
    data = np.random.default_rng(0).normal(size=(128, 4, 6)).astype("float32")
    labels = (data.sum(axis=(1, 2)) > 0).astype("int32")
    dense.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dense.fit(data, labels, epochs=2, batch_size=32, verbose=0)

    spectral = spectralize(dense)
    np.testing.assert_allclose(spectral.predict(data, verbose=0), dense.predict(data, verbose=0), atol=1e-5)
    spectral.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    spectral.fit(data, labels, epochs=2, batch_size=32, verbose=0,
                 callbacks=[EigenvaluePruning(PolynomialDecay(0.0, 0.5, begin_step=0, end_step=4, frequency=2))])
    served_model = collapse(compact(spectral))
    assert served_model.get_layer("ffn_in").units == 6
    expected = spectral.predict(data, verbose=0)
    np.testing.assert_allclose(served_model.predict(data, verbose=0), expected, rtol=1e-5, atol=1e-5)
    saved = str(tmp_path / "small.keras")
    compact(spectral).save(saved)
    np.testing.assert_allclose(keras.saving.load_model(saved).predict(data, verbose=0), expected, atol=1e-5)
    path = str(tmp_path / "served")
    served_model.export(path, format="tf_saved_model", verbose=False)
    result = run_serving(path, data, tmp_path)
    assert result["spectral_imported"] is False
    np.testing.assert_allclose(np.array(result["full"]), expected, atol=1e-5)
