"""The benchmarks' shared harness (`benchmarks/harness/`): resumable results files, the
conventional baselines, and reading node-removal records into removal curves. Not part of
the library; tested here because every benchmark result goes through it.

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import json
import os
import sys

import keras
import numpy as np
import pytest
from keras import ops

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))

from harness.baselines import prune_dense_nodes_by_incoming_l1, weight_sparsity  # noqa: E402
from harness.results import ResultsFile, removal_curves  # noqa: E402


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


# --- baselines ----------------------------------------------------------------------------


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


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tfmot runs on tf_keras")
def test_tfmot_baseline_reaches_its_sparsity():
    import tensorflow_model_optimization as tfmot

    from harness.baselines import tfmot_magnitude_pruned_mlp

    model, callbacks = tfmot_magnitude_pruned_mlp(8, (16,), 3, 0.8, end_step=10, frequency=2)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(96, 8)).astype("float32")
    model.fit(x, np.arange(96) % 3, batch_size=8, epochs=1, callbacks=callbacks, verbose=0)  # 12 steps
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    kernels = [layer.get_weights()[0] for layer in stripped.layers]
    assert weight_sparsity(kernels) == pytest.approx(0.8, abs=0.02)


# --- results files -----------------------------------------------------------------------


def test_a_tuple_in_a_key_is_found_after_it_is_appended(tmp_path):
    results = ResultsFile(str(tmp_path / "r.jsonl"))
    key = {"widths": (500, 500), "seed": 0}
    results.append(key, {"accuracy": 0.9})
    assert results.has(key) and results.missing([key]) == []
    results.append({"other": 1}, {})
    assert len(results.records()) == 2


def test_numpy_numbers_in_keys_and_values_are_stored_as_numbers(tmp_path):
    results = ResultsFile(str(tmp_path / "r.jsonl"))
    key = {"seed": np.int64(2), "lr": np.float32(0.5)}
    results.append(key, {"accuracy": np.float32(0.25), "curve": np.arange(3)})
    assert results.has({"seed": 2, "lr": 0.5})
    record = results.get(key)
    assert record["accuracy"] == 0.25 and record["curve"] == [0, 1, 2]


def test_an_unserializable_key_is_named(tmp_path):
    results = ResultsFile(str(tmp_path / "r.jsonl"))
    with pytest.raises(TypeError, match=r"invalid key.*object"):
        results.append({"model": object()}, {})
    with pytest.raises(TypeError, match="expected a dict"):
        results.has(["seed", 0])
    assert not os.path.exists(tmp_path / "r.jsonl")


def test_a_torn_final_record_is_skipped_reported_and_replaced(tmp_path):
    path = tmp_path / "r.jsonl"
    results = ResultsFile(str(path))
    results.append({"seed": 0}, {"accuracy": 0.5})
    with open(path, "a") as f:
        f.write('{"key": {"seed": 1}, "accu')
    with pytest.warns(UserWarning, match=r"r.jsonl, line 2: torn final record skipped"):
        assert not results.has({"seed": 1}) and results.has({"seed": 0})
    with pytest.warns(UserWarning):
        results.append({"seed": 1}, {"accuracy": 0.75})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["key"]["seed"] for line in lines] == [0, 1]


def test_a_bad_line_inside_a_results_file_is_named(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": {"seed": 0}}\nnot json\n{"key": {"seed": 1}}\n')
    with pytest.raises(ValueError, match=r"r.jsonl, line 2: not a JSON record"):
        ResultsFile(str(path)).has({"seed": 0})


def test_an_interrupted_append_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    results = ResultsFile(str(path))
    results.append({"seed": 0}, {"accuracy": 0.5})
    before = path.read_bytes()

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        results.append({"seed": 1}, {})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [n for n in os.listdir(tmp_path) if n.endswith(".partial")] == []


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


BAD_RESULTS = [
    ("binary", b"\x89PNG\r\n\x1a\n\x00\xff\xfe", r"not a results file: it is not UTF-8 text"),
    ("no-key", b'{"key": {"a": 1}, "v": 1}\n{"accuracy": 0.9}\n', r"line 2: not a results record.*without a `key`"),
    ("list", b'[1, 2]\n{"key": {"a": 1}}\n', r"line 1: not a results record.*got a JSON array: "),
    ("key-not-dict", b'{"key": 3}\n', r"line 1: not a results record"),
]


@pytest.mark.parametrize("content, match", [c[1:] for c in BAD_RESULTS], ids=[c[0] for c in BAD_RESULTS])
@pytest.mark.parametrize("method", ["records", "has", "missing", "get", "append", "removal_curves"])
def test_every_results_method_names_a_file_of_the_wrong_shape(tmp_path, content, match, method):
    path = tmp_path / "results.jsonl"
    path.write_bytes(content)
    results = ResultsFile(str(path))
    calls = {
        "records": lambda: results.records(),
        "has": lambda: results.has({"a": 1}),
        "missing": lambda: results.missing([{"a": 1}]),
        "get": lambda: results.get({"a": 1}),
        "append": lambda: results.append({"a": 2}, {"v": 2}),
    }
    calls["removal_curves"] = lambda: removal_curves(str(path))
    with pytest.raises(ValueError, match=match) as error:
        calls[method]()
    assert str(path) in str(error.value)
    assert path.read_bytes() == content  # nothing rewritten


def test_removal_curves_names_an_empty_results_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.jsonl' holds no records"):
        removal_curves(str(path))


# --- removal curves from results records ------------------------------------------------


def curve_records(**accuracy):
    accuracy = accuracy or {"0.0": 0.9, "0.9": 0.5}
    return [{"key": {"method": m, "hidden": [5, 5], "seed": 0}, "accuracy": dict(accuracy)} for m in ("spectral", "dense")]


@pytest.mark.parametrize(
    "records, kwargs, match",
    [
        (curve_records(**{"0.0": 97.5}), {}, r"invalid accuracy for '0.0'.*fraction in \[0, 1\].*97.5"),
        (curve_records(**{"all": 0.5}), {}, r"invalid fraction removed 'all'.*Received: 'all'"),
        (curve_records(**{"0.5": "high"}), {}, r"invalid accuracy for '0.5'.*'high'"),
        (curve_records(), {"group_by": "nope"}, r"`group_by`.*hidden, method, seed.*group_by='nope'"),
    ],
    ids=["percent", "fraction-key", "accuracy-string", "group_by"],
)
def test_removal_curves_rejects_bad_values(records, kwargs, match):
    with pytest.raises(ValueError, match=match):
        removal_curves(records, **kwargs)


def test_removal_curves_filters_in_stored_form():
    curves = removal_curves(curve_records(), hidden=(5, 5))
    assert set(curves) == {"spectral", "dense"}
    assert curves["spectral"] == ([0.0, 0.9], [[0.9], [0.5]])
