"""Weight-percentile sparsity, the conventional baselines, and the results file."""

import json
import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_spectral import SpectralDense
from keras_spectral.baselines import prune_dense_nodes_by_incoming_l1, weight_sparsity
from keras_spectral.results import ResultsFile
from keras_spectral.weight_sparsity import MagnitudeSparsity, magnitude_mask


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


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


def test_dense_incoming_l1_baseline_zeroes_the_weakest_columns():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(10, activation="tanh"), keras.layers.Dense(3)]
    )
    strength = np.abs(numpy(model.layers[0].kernel)).sum(axis=0)
    report = prune_dense_nodes_by_incoming_l1(model, 0.7)
    assert report == {model.layers[0].name: 0.7}
    zeroed = np.all(numpy(model.layers[0].kernel) == 0, axis=0)
    assert zeroed.sum() == 7
    assert strength[zeroed].max() <= strength[~zeroed].min()
    with pytest.raises(ValueError, match="`fraction`"):
        prune_dense_nodes_by_incoming_l1(model, 1.0)


def test_results_file_appends_atomically_and_resumes(tmp_path):
    path = os.path.join(tmp_path, "sub", "r.jsonl")
    results = ResultsFile(path)
    key = {"dataset": "mnist", "seed": 0}
    assert not results.has(key) and results.records() == []
    results.append(key, {"accuracy": 0.9})
    results.append({"dataset": "mnist", "seed": 1}, {"accuracy": 0.8})
    again = ResultsFile(path)
    assert again.has(key) and not again.has({"dataset": "mnist"})
    assert [r["accuracy"] for r in again.records()] == [0.9, 0.8]
    assert again.get(key)["accuracy"] == 0.9
    assert again.missing([{"dataset": "mnist", "seed": s} for s in range(3)]) == [{"dataset": "mnist", "seed": 2}]
    # No temporary files left (the lock file is a permanent companion).
    assert sorted(os.listdir(os.path.dirname(path))) == ["r.jsonl", "r.jsonl.lock"]
    with open(path) as f:
        assert all(json.loads(line)["key"] for line in f)


def test_results_file_is_untouched_when_a_write_fails(tmp_path):
    path = os.path.join(tmp_path, "r.jsonl")
    results = ResultsFile(path)
    results.append({"seed": 0}, {"accuracy": 0.5})
    before = open(path).read()
    with pytest.raises(TypeError):
        results.append({"seed": 1}, {"accuracy": object()})  # not JSON-serializable
    assert open(path).read() == before
    assert sorted(os.listdir(tmp_path)) == ["r.jsonl", "r.jsonl.lock"]


def _append_many(path, writer, count, barrier):
    results = ResultsFile(path)
    barrier.wait()  # all writers start together, so their writes interleave
    for i in range(count):
        results.append({"writer": writer, "i": i}, {"accuracy": 0.5})


def test_results_file_loses_nothing_with_concurrent_writers(tmp_path):
    import multiprocessing

    path = os.path.join(tmp_path, "r.jsonl")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    writers = [context.Process(target=_append_many, args=(path, w, 40, barrier)) for w in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
        assert w.exitcode == 0
    keys = {(r["key"]["writer"], r["key"]["i"]) for r in ResultsFile(path).records()}
    assert keys == {(w, i) for w in range(3) for i in range(40)}


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tfmot runs on tf_keras")
def test_tfmot_baseline_reaches_its_sparsity():
    import tensorflow_model_optimization as tfmot

    from keras_spectral.baselines import tfmot_magnitude_pruned_mlp

    model, callbacks = tfmot_magnitude_pruned_mlp(8, (16,), 3, 0.8, end_step=10, frequency=2)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(96, 8)).astype("float32")
    model.fit(x, np.arange(96) % 3, batch_size=8, epochs=1, callbacks=callbacks, verbose=0)  # 12 steps
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    kernels = [layer.get_weights()[0] for layer in stripped.layers]
    assert weight_sparsity(kernels) == pytest.approx(0.8, abs=0.02)
