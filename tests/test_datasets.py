"""Dataset loaders: canonical files, verification, clear errors, no silent bad data."""

import gzip
import os
import shutil

import numpy as np
import pytest

from keras_spectral import datasets


@pytest.mark.parametrize("loader", [datasets.load_mnist, datasets.load_fashion_mnist])
def test_idx_data_sets_load_with_their_canonical_shapes(loader, data_dir):
    (x_train, y_train), (x_test, y_test) = loader(data_dir=data_dir, download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.shape == (60000,)
    assert set(np.unique(y_train)) == set(range(10)) and set(np.unique(y_test)) == set(range(10))
    assert 0 < x_train.mean() < 255


def test_mnist_first_labels_are_the_canonical_ones(data_dir):
    (_, y_train), (_, y_test) = datasets.load_mnist(data_dir=data_dir)
    assert y_train[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    assert y_test[:8].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]


def test_cifar10_loads_channels_last(data_dir):
    (x_train, y_train), (x_test, y_test) = datasets.load_cifar10(data_dir=data_dir)
    assert x_train.shape == (50000, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    assert np.bincount(y_train).tolist() == [5000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_load_flat_scales_and_flattens(data_dir):
    (x, y), (xt, yt) = datasets.load_flat("fashion_mnist", data_dir=data_dir)
    assert x.shape == (60000, 784) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and y.dtype == np.int32


def test_environment_variable_is_used(data_dir, monkeypatch):
    monkeypatch.setenv(datasets.ENV_VAR, data_dir)
    assert datasets.data_directory() == os.path.abspath(data_dir)
    assert datasets.data_directory("/elsewhere") == "/elsewhere"


def _copy_mnist(data_dir, tmp_path):
    target = tmp_path / "mnist"
    shutil.copytree(os.path.join(data_dir, "mnist"), target)
    return target


def test_truncated_file_is_an_error_naming_it(data_dir, tmp_path):
    folder = _copy_mnist(data_dir, tmp_path)
    path = folder / "train-labels-idx1-ubyte.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(datasets.DatasetError, match="train-labels-idx1-ubyte.gz"):
        datasets.load_mnist(data_dir=tmp_path, download=False)


def test_corrupt_contents_fail_the_checksum(data_dir, tmp_path):
    folder = _copy_mnist(data_dir, tmp_path)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(path) as f:
        raw = bytearray(f.read())
    raw[100] = (raw[100] + 1) % 10  # a plausible but wrong label
    with gzip.open(path, "wb") as f:
        f.write(bytes(raw))
    with pytest.raises(datasets.DatasetError, match="t10k-labels-idx1-ubyte.gz.*checksum"):
        datasets.load_mnist(data_dir=tmp_path, download=False)


def test_missing_file_without_download_is_an_error(tmp_path):
    with pytest.raises(datasets.DatasetError, match="missing and download=False"):
        datasets.load_fashion_mnist(data_dir=tmp_path, download=False)
    with pytest.raises(datasets.DatasetError, match="cifar-10-batches-py is missing"):
        datasets.load_cifar10(data_dir=tmp_path, download=False)


def test_failed_download_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setitem(datasets._IDX_URLS, "mnist", "http://127.0.0.1:9/")
    with pytest.raises(datasets.DatasetError, match="could not be downloaded"):
        datasets.load_mnist(data_dir=tmp_path)
    assert os.listdir(tmp_path / "mnist") == []


def test_corrupt_cifar_batch_is_an_error_naming_it(data_dir, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(os.path.join(data_dir, "cifar-10-batches-py"), folder)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(datasets.DatasetError, match="data_batch_3"):
        datasets.load_cifar10(data_dir=tmp_path)


def test_unknown_name_is_rejected():
    with pytest.raises(ValueError, match="`name`, expected one of"):
        datasets.load("imagenet")


def test_digits_fallback_is_real_and_small():
    (x, y), (xt, yt) = datasets.load_digits_fallback()
    assert x.shape == (1500, 64) and xt.shape == (297, 64)
    assert set(np.unique(y)) == set(range(10))
