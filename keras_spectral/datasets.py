"""Load MNIST, Fashion-MNIST and CIFAR-10 from their canonical files in a local directory.

The directory is the `data_dir` argument, else the `KERAS_SPECTRAL_DATA` environment
variable, else `~/.keras/datasets/keras_spectral`. Inside it the canonical layouts are
expected (the layout `shared/datasets/prepare.py` writes):

    mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    cifar-10-batches-py/{data_batch_1..5,test_batch}

Files are downloaded only when absent (and `download=True`, the default); everything read
is verified (IDX headers and sizes, label ranges, and the SHA-256 of the decompressed
MNIST / Fashion-MNIST contents), so a truncated or corrupt file raises `DatasetError`
naming the file instead of returning wrong data.

Example:

>>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
>>> x_train.shape, x_train.dtype, y_train.max()  # doctest: +SKIP
((60000, 28, 28), dtype('uint8'), 9)
"""

import gzip
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request

import numpy as np

from keras_spectral.validation import check_choice

ENV_VAR = "KERAS_SPECTRAL_DATA"
DEFAULT_DIR = os.path.join("~", ".keras", "datasets", "keras_spectral")

# SHA-256 of the decompressed canonical IDX files (their MD5s match the published ones).
_IDX_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
_IDX_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
}
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]

NAMES = ("mnist", "fashion_mnist", "cifar10")


class DatasetError(RuntimeError):
    """A data file is missing, truncated or corrupt."""


def data_directory(data_dir=None):
    """The directory datasets are read from: argument, then `$KERAS_SPECTRAL_DATA`,
    then `~/.keras/datasets/keras_spectral`."""
    path = data_dir or os.environ.get(ENV_VAR) or DEFAULT_DIR
    return os.path.abspath(os.path.expanduser(path))


def _download(url, target):
    """Fetch `url` into `target` atomically (a partial download never takes its name)."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            shutil.copyfileobj(response, out)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise DatasetError(
            f"{target} is missing and could not be downloaded from {url} ({error}). "
            f"Put the canonical file there, or point `data_dir` / ${ENV_VAR} at a "
            "directory that holds it."
        ) from error


def _ensure(path, url, download):
    if os.path.exists(path):
        return
    if not download:
        raise DatasetError(
            f"{path} is missing and download=False. Put the canonical file there, or point "
            f"`data_dir` / ${ENV_VAR} at a directory that holds it."
        )
    _download(url, path)


def _read_idx(path, expected_sha256, expected_dims):
    """Decompress and check one gzipped IDX file; returns a uint8 array."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise DatasetError(f"{path} is not a readable gzip file ({error}).") from error
    if hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise DatasetError(
            f"{path}: the decompressed contents do not match the canonical checksum "
            f"(sha256 {expected_sha256}); the file is corrupt or not the canonical release."
        )
    ndim = raw[3]
    if raw[:3] != b"\x00\x00\x08" or ndim != expected_dims:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file with {expected_dims} dims.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != np.prod(shape):
        raise DatasetError(f"{path}: header says shape {shape} but holds {data.size} bytes.")
    return data.reshape(shape)


def _check_labels(path, labels, n_images, n_classes=10):
    if labels.shape[0] != n_images:
        raise DatasetError(f"{path}: {labels.shape[0]} labels for {n_images} images.")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DatasetError(f"{path}: labels outside 0..{n_classes - 1}.")


def _load_idx(name, data_dir, download):
    folder = os.path.join(data_directory(data_dir), name)
    sums = _IDX_SHA256[name]
    splits = []
    for prefix, n in (("train", 60000), ("t10k", 10000)):
        arrays = {}
        for kind, dims in (("images-idx3", 3), ("labels-idx1", 1)):
            stem = f"{prefix}-{kind}-ubyte"
            path = os.path.join(folder, stem + ".gz")
            _ensure(path, _IDX_URLS[name] + stem + ".gz", download)
            arrays[kind] = _read_idx(path, sums[stem], dims)
        images, labels = arrays["images-idx3"], arrays["labels-idx1"]
        if images.shape != (n, 28, 28):
            raise DatasetError(f"{folder}/{prefix}-images: shape {images.shape}, expected {(n, 28, 28)}.")
        _check_labels(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), labels, n)
        splits.append((images, labels))
    return tuple(splits)


def load_mnist(data_dir=None, download=True):
    """MNIST as `((x_train, y_train), (x_test, y_test))`: uint8 images `(N, 28, 28)`,
    uint8 labels `(N,)`, N = 60000 / 10000."""
    return _load_idx("mnist", data_dir, download)


def load_fashion_mnist(data_dir=None, download=True):
    """Fashion-MNIST, in the same form as `load_mnist`."""
    return _load_idx("fashion-mnist", data_dir, download)


def _read_cifar_batch(path):
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.uint8)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"{path} is not a readable CIFAR-10 batch ({error!r}).") from error
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: data of shape {data.shape}, expected (N, 3072).")
    _check_labels(path, labels, data.shape[0])
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _fetch_cifar10(root):
    """Download and unpack the canonical archive into `root` (atomically)."""
    archive = os.path.join(root, "cifar-10-python.tar.gz")
    _download(_CIFAR10_URL, archive)
    tmp = tempfile.mkdtemp(dir=root, suffix=".partial")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    os.replace(os.path.join(tmp, _CIFAR10_DIR), os.path.join(root, _CIFAR10_DIR))
    shutil.rmtree(tmp)
    os.unlink(archive)


def load_cifar10(data_dir=None, download=True):
    """CIFAR-10 as `((x_train, y_train), (x_test, y_test))`: uint8 images
    `(N, 32, 32, 3)` (channels last), uint8 labels `(N,)`, N = 50000 / 10000."""
    root = data_directory(data_dir)
    folder = os.path.join(root, _CIFAR10_DIR)
    if not os.path.isdir(folder):
        if not download:
            raise DatasetError(f"{folder} is missing and download=False.")
        os.makedirs(root, exist_ok=True)
        _fetch_cifar10(root)
    batches = []
    for name in _CIFAR10_BATCHES:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise DatasetError(f"{path} is missing from {folder}.")
        batches.append(_read_cifar_batch(path))
    x_train = np.concatenate([b[0] for b in batches[:5]])
    y_train = np.concatenate([b[1] for b in batches[:5]])
    x_test, y_test = batches[5]
    if x_train.shape[0] != 50000 or x_test.shape[0] != 10000:
        raise DatasetError(
            f"{folder}: {x_train.shape[0]} training and {x_test.shape[0]} test images, "
            "expected 50000 and 10000."
        )
    return (x_train, y_train), (x_test, y_test)


_LOADERS = {"mnist": load_mnist, "fashion_mnist": load_fashion_mnist, "cifar10": load_cifar10}


def load(name, data_dir=None, download=True):
    """Load a data set by name (one of `NAMES`)."""
    check_choice("name", name, NAMES)
    return _LOADERS[name](data_dir=data_dir, download=download)


def load_flat(name, data_dir=None, download=True):
    """A data set flattened to float32 vectors in [0, 1], for dense networks:
    `((x_train, y_train), (x_test, y_test))` with `x` of shape `(N, features)` and int32
    labels."""
    (x_train, y_train), (x_test, y_test) = load(name, data_dir, download)

    def flat(x):
        return x.reshape(x.shape[0], -1).astype("float32") / 255.0

    return (flat(x_train), y_train.astype("int32")), (flat(x_test), y_test.astype("int32"))


def load_digits_fallback():
    """scikit-learn's bundled 8x8 handwritten digits (1,797 real images, no download),
    split 1,500 / 297 and scaled like `load_flat`. Used when MNIST is unavailable."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    return (x[:1500], y[:1500]), (x[1500:], y[1500:])
