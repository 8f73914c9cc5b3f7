"""Faults: tampered, corrupt, truncated or missing files, cut downloads, diverging
training, and interruptions (torn results files: tests/test_benchmark_harness.py). Each
is refused with an error naming the file (or survived), and nothing wrong is returned or
left behind.

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import http.server
import io
import os
import pickle
import shutil
import tarfile
import threading
import warnings

import keras
import numpy as np
import pytest
from keras import ops

from keras_spectral import EigenvaluePruning, PolynomialDecay, SpectralDense, datasets, node_sparsity, prune_nodes


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


# --- CIFAR-10 batches --------------------------------------------------------------------


class _Payload:
    """Unpickling this calls os.system: what a tampered batch file could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _tiny_batch(n=4):
    return {b"data": np.zeros((n, 3072), np.uint8), b"labels": [0] * n}


def _cifar_dir(root, batch=None):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in datasets._CIFAR10_BATCHES:
        with open(folder / name, "wb") as f:
            pickle.dump(batch if batch is not None else _tiny_batch(), f, protocol=2)
    return folder


def test_a_batch_that_runs_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    folder = _cifar_dir(tmp_path / "data")
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Payload(marker), b"labels": [0]}, f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(datasets.DatasetError, match=r"data_batch_1 is not a readable.*posix.system|data_batch_1 is not a readable.*os.system"):
            datasets.load_cifar10(data_dir=str(tmp_path / "data"), download=False)
    assert not marker.exists()


def test_batches_without_a_manifest_are_said_to_be_unverified(tmp_path):
    _cifar_dir(tmp_path)
    with pytest.warns(UserWarning, match="no SHA256SUMS.*content is unverified"):
        with pytest.raises(datasets.DatasetError, match="expected 50000 and 10000"):
            datasets.load_cifar10(data_dir=str(tmp_path), download=False)


def test_a_flipped_byte_in_a_verified_batch_is_refused(tmp_path, data_dir):
    source = os.path.join(data_dir, "cifar-10-batches-py")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in os.listdir(source):
        os.symlink(os.path.join(source, name), folder / name)
    os.unlink(folder / "test_batch")
    raw = bytearray(open(os.path.join(source, "test_batch"), "rb").read())
    raw[len(raw) // 2] ^= 0x01
    (folder / "test_batch").write_bytes(bytes(raw))
    with pytest.raises(datasets.DatasetError, match=r"test_batch: contents do not match its SHA-256 in SHA256SUMS"):
        datasets.load_cifar10(data_dir=str(tmp_path), download=False)


def test_the_prepared_copy_verifies_against_its_manifest(data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "unverified" warning: the manifest is there
        (x, y), (xt, yt) = datasets.load_cifar10(data_dir=data_dir, download=False)
    assert x.shape == (50000, 32, 32, 3) and yt.shape == (10000,)


# --- downloads ---------------------------------------------------------------------------


class _Server:
    """A local HTTP server (127.0.0.1 only) answering every GET from `respond(handler)`."""

    def __init__(self, respond):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                respond(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _serve(body, announced=None):
    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(announced or len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
        handler.close_connection = True

    return _Server(respond)


def test_a_download_cut_short_is_refused_and_leaves_nothing(tmp_path):
    target = tmp_path / "d" / "file.gz"
    with _serve(b"x" * 500, announced=1000) as server:
        with pytest.raises(datasets.DatasetError, match=r"incomplete \(500 of 1000 bytes\)"):
            datasets._download(server.url, str(target))
    assert os.listdir(tmp_path / "d") == []


def test_a_complete_download_takes_its_name(tmp_path):
    target = tmp_path / "file.gz"
    with _serve(b"y" * 321) as server:
        datasets._download(server.url, str(target))
    assert target.read_bytes() == b"y" * 321 and os.listdir(tmp_path) == ["file.gz"]


def _archive(batch_dir):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(batch_dir, arcname="cifar-10-batches-py")
    return buffer.getvalue()


def test_a_verified_cifar_archive_is_extracted_with_a_manifest(tmp_path, monkeypatch):
    body = _archive(_cifar_dir(tmp_path / "src"))
    import hashlib

    monkeypatch.setattr(datasets, "_CIFAR10_MD5", hashlib.md5(body).hexdigest())
    root = tmp_path / "root"
    root.mkdir()
    with _serve(body) as server:
        monkeypatch.setattr(datasets, "_CIFAR10_URL", server.url)
        datasets._fetch_cifar10(str(root))
    folder = root / "cifar-10-batches-py"
    assert sorted(os.listdir(root)) == ["cifar-10-batches-py"]
    sums = datasets._read_manifest(str(folder))
    assert sorted(sums) == sorted(datasets._CIFAR10_BATCHES)
    assert sums["test_batch"] == hashlib.sha256((folder / "test_batch").read_bytes()).hexdigest()


def test_a_cifar_archive_with_the_wrong_md5_is_not_used(tmp_path, monkeypatch):
    body = _archive(_cifar_dir(tmp_path / "src"))
    root = tmp_path / "root"
    root.mkdir()
    with _serve(body) as server:
        monkeypatch.setattr(datasets, "_CIFAR10_URL", server.url)
        with pytest.raises(datasets.DatasetError, match="is not the published c58f30108f718f92721af3b95e74349a"):
            datasets._fetch_cifar10(str(root))
    assert os.listdir(root) == []


def test_a_missing_file_in_an_unwritable_directory_names_file_and_directory(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(datasets.tempfile, "mkstemp", refuse)
    with pytest.raises(datasets.DatasetError, match=r"train-images-idx3-ubyte.gz is missing.*Permission denied.*looked in"):
        datasets.load_mnist(data_dir=str(tmp_path))


@pytest.mark.parametrize("bad", [123, 1.5, ["/tmp"], b"/tmp"])
@pytest.mark.parametrize("loader", [datasets.load_mnist, datasets.load_fashion_mnist, datasets.load_cifar10])
def test_a_bad_data_dir_is_named(loader, bad):
    with pytest.raises(TypeError, match=r"`data_dir`, expected a path.*Received: data_dir="):
        loader(data_dir=bad)


def test_a_truncated_idx_file_is_named(tmp_path, data_dir):
    folder = tmp_path / "mnist"
    shutil.copytree(os.path.join(data_dir, "mnist"), folder)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(datasets.DatasetError, match="t10k-labels-idx1-ubyte.gz"):
        datasets.load_mnist(data_dir=str(tmp_path), download=False)


def test_load_by_an_unknown_name_is_refused():
    with pytest.raises(ValueError, match="name='imagenet'"):
        datasets.load("imagenet")


# --- model files -------------------------------------------------------------------------


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), SpectralDense(8, activation="tanh"), SpectralDense(3)])


def test_a_truncated_model_file_does_not_load(tmp_path):
    path = tmp_path / "m.keras"
    _model().save(str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(Exception):
        keras.saving.load_model(str(path))


# --- numerical faults --------------------------------------------------------------------


def _chain(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), SpectralDense(10, activation="tanh"),
                             SpectralDense(8, activation="tanh"), SpectralDense(3)])


def test_prune_nodes_refuses_nan_eigenvalues_and_changes_nothing():
    model = _chain()
    lam = numpy(model.layers[1].eigenvalues_in).copy()
    lam[4] = np.nan
    model.layers[1].eigenvalues_in.assign(lam)
    masks = [numpy(layer.eigenvalues_out_mask).copy() for layer in model.layers]
    with pytest.raises(ValueError, match=rf"Node group '{model.layers[0].name}' has 1 node\(s\) with non-finite eigenvalues"):
        prune_nodes(model, fraction=0.5, score="sum")
    for layer, before in zip(model.layers, masks):
        np.testing.assert_array_equal(numpy(layer.eigenvalues_out_mask), before)


def test_nan_of_a_removed_node_does_not_count():
    model = _chain()
    prune_nodes(model, fraction=0.5, score="sum")
    producer = model.layers[0]
    removed = np.flatnonzero(numpy(producer.eigenvalues_out_mask) == 0)[0]
    lam = numpy(model.layers[1].eigenvalues_in).copy()
    lam[removed] = np.inf
    model.layers[1].eigenvalues_in.assign(lam)
    prune_nodes(model, fraction=0.7, score="sum")  # no error: the node is gone already


def _diverging_fit(extra_callbacks):
    model = _chain()
    model.compile(keras.optimizers.SGD(1e6), "mse")  # diverges within a few steps
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype("float32") * 100, rng.normal(size=(64, 3)).astype("float32") * 100
    pruning = EigenvaluePruning(PolynomialDecay(0.0, 0.8, begin_step=0, end_step=60, frequency=1), score="sum")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=8, epochs=8, callbacks=[pruning, *extra_callbacks], verbose=0)
    return model, pruning, history, caught


def test_pruning_stops_on_non_finite_eigenvalues_during_fit():
    model, pruning, history, caught = _diverging_fit([])
    assert pruning.stopped_reason is not None and "non-finite eigenvalues" in pruning.stopped_reason
    assert any("EigenvaluePruning stopped at step" in str(w.message) for w in caught)
    assert all(0.0 <= v < 0.8 for v in node_sparsity(model).values())


def test_pruning_plays_well_with_terminate_on_nan():
    model, pruning, history, _ = _diverging_fit([keras.callbacks.TerminateOnNaN()])
    assert len(history.history["loss"]) < 8  # the run was ended
    assert all(0.0 <= v < 0.8 for v in node_sparsity(model).values())


# --- steps per execution -----------------------------------------------------------------


needs_multi_step = pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="PyTorch's trainer allows steps_per_execution=1 only"
)


@pytest.mark.parametrize("steps_per_execution", [1, pytest.param(4, marks=needs_multi_step)])
def test_schedule_follows_optimizer_steps_with_steps_per_execution(steps_per_execution):
    model = _chain()
    model.compile(keras.optimizers.Adam(1e-3), "mse", steps_per_execution=steps_per_execution)
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    y = np.zeros((64, 3), "float32")
    pruning = EigenvaluePruning(PolynomialDecay(0.0, 0.5, begin_step=0, end_step=8, frequency=1))
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[pruning], verbose=0, shuffle=False)  # 16 steps
    assert int(numpy(model.optimizer.iterations)) == 16
    assert list(node_sparsity(model).values()) == [0.5, 0.5]


@needs_multi_step
def test_threshold_timing_counts_optimizer_steps_with_steps_per_execution():
    model = _chain()
    model.compile(keras.optimizers.Adam(1e-3), "mse", steps_per_execution=4)
    calls = []

    class Counting(EigenvaluePruning):
        def on_train_batch_begin(self, batch, logs=None):
            before = self._checked if self._step is not None else None
            super().on_train_batch_begin(batch, logs)
            calls.append((before, self._step))

    x = np.zeros((48, 6), "float32")
    model.fit(x, np.zeros((48, 3)), batch_size=4, epochs=1, verbose=0,
              callbacks=[Counting(threshold=0.0, begin_step=5, frequency=3)])
    assert [step for _, step in calls] == [0, 4, 8]  # one call per execution, optimizer steps


# --- newer modules: NaN eigenvalues, failed saves (#21) -----------------------------------


def test_a_removed_input_with_a_nan_eigenvalue_scores_zero():
    from keras_spectral import input_relevance, rank_inputs, remove_inputs

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), SpectralDense(3, name="first"), SpectralDense(2)])
    model.build((None, 5))
    layer = model.get_layer("first")
    remove_inputs(model, keep=3)
    removed = np.flatnonzero(numpy(layer.eigenvalues_in_mask) == 0)
    values = numpy(layer.eigenvalues_in).copy()
    values[removed[0]] = np.nan  # a diverged value left behind in a removed slot
    layer.eigenvalues_in.assign(values)
    scores = input_relevance(model)
    assert scores[removed[0]] == 0.0 and np.all(np.isfinite(scores))
    assert set(rank_inputs(model)[-2:]) == set(removed)


def test_plots_save_onto_a_directory_leaves_no_partial_file(tmp_path):
    pytest.importorskip("matplotlib")
    from keras_spectral import plots

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), SpectralDense(3)])
    model.build((None, 4))
    target = tmp_path / "figure.png"
    target.mkdir()
    with pytest.raises(IsADirectoryError, match="figure.png"):
        plots.save(plots.spectrum(model), str(target))
    assert sorted(os.listdir(tmp_path)) == ["figure.png"] and not os.listdir(target)


def test_plots_save_removes_its_partial_file_when_the_rename_fails(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from keras_spectral import plots

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), SpectralDense(3)])
    model.build((None, 4))

    def failing_replace(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="cross-device"):
        plots.save(plots.spectrum(model), str(tmp_path / "figure.png"))
    assert os.listdir(tmp_path) == []


