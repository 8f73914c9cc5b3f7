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
naming the file instead of returning wrong data. CIFAR-10: the downloaded archive is
checked against its published MD5, a `SHA256SUMS` manifest (coreutils format) is written
beside the extracted batches, and every batch is checked against that manifest on load;
batches placed by hand without a manifest are checked for structure only (with a warning
that their content is unverified). Batches are unpickled by a restricted unpickler that
admits only what the format needs, so a tampered file cannot run code.

Example:

>>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
>>> x_train.shape, x_train.dtype, y_train.max()  # doctest: +SKIP
((60000, 28, 28), dtype('uint8'), 9)
"""

import gzip
import hashlib
import http.client
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings

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
_CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"  # published with the archive
_MANIFEST = "SHA256SUMS"
_CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]

NAMES = ("mnist", "fashion_mnist", "cifar10")


class DatasetError(RuntimeError):
    """A data file is missing, truncated or corrupt."""


def data_directory(data_dir=None):
    """The directory datasets are read from: argument, then `$KERAS_SPECTRAL_DATA`,
    then `~/.keras/datasets/keras_spectral`."""
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(
            "Received an invalid value for `data_dir`, expected a path (str or os.PathLike) "
            f"or None. Received: data_dir={data_dir!r}"
        )
    path = os.fspath(data_dir) if data_dir is not None else None
    path = path or os.environ.get(ENV_VAR) or DEFAULT_DIR
    return os.path.abspath(os.path.expanduser(path))


def _missing_hint(target):
    return (
        f"Put the canonical file there, or point `data_dir` / ${ENV_VAR} at a directory "
        f"that holds it (looked in {os.path.dirname(target)})."
    )


def _download(url, target):
    """Fetch `url` into `target` atomically: a partial download (an error, or fewer bytes
    than the server announced) never takes the name and leaves nothing behind."""
    tmp = None
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), suffix=".partial")
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            expected = response.headers.get("Content-Length")
            shutil.copyfileobj(response, out)
            received = out.tell()
        if expected is not None and received != int(expected):
            raise DatasetError(
                f"{target}: download from {url} incomplete ({received} of {expected} bytes); "
                "nothing was kept. Try again, or put the canonical file there by hand."
            )
        os.replace(tmp, target)
        tmp = None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise DatasetError(
            f"{target} is missing and could not be downloaded from {url} ({error!r}). "
            + _missing_hint(target)
        ) from error
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _ensure(path, url, download):
    if os.path.exists(path):
        return
    if not download:
        raise DatasetError(f"{path} is missing and download=False. " + _missing_hint(path))
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


class _CifarUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR-10 batch holds (dicts, lists, bytes, strings, numbers and
    NumPy arrays): any other global a pickle names is refused before it can run."""

    _ALLOWED = {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is not allowed in a CIFAR-10 batch"
            )
        return super().find_class(module, name)


def _digest(path, algorithm="sha256"):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(folder):
    """`{file name: sha256}` from `folder/SHA256SUMS`, or None when there is none."""
    path = os.path.join(folder, _MANIFEST)
    if not os.path.exists(path):
        return None
    sums = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            digest, _, name = line.rstrip("\n").partition("  ")
            if len(digest) != 64 or not name:
                raise DatasetError(f"{path}, line {number}: not in `sha256sum` format: {line!r}")
            sums[name.lstrip("*")] = digest
    return sums


def _write_manifest(folder, names):
    lines = "".join(f"{_digest(os.path.join(folder, n))}  {n}\n" for n in sorted(names))
    tmp = os.path.join(folder, _MANIFEST + ".partial")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(lines)
    os.replace(tmp, os.path.join(folder, _MANIFEST))


def _read_cifar_batch(path, expected_sha256=None):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise DatasetError(f"{path} is not readable ({error!r}).") from error
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise DatasetError(
            f"{path}: contents do not match its SHA-256 in {_MANIFEST} ({expected_sha256}); "
            "the file is corrupt or was changed."
        )
    try:
        batch = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.uint8)
    except (EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError, IndexError) as error:
        raise DatasetError(f"{path} is not a readable CIFAR-10 batch ({error!r}).") from error
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: data of shape {data.shape}, expected (N, 3072).")
    _check_labels(path, labels, data.shape[0])
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _fetch_cifar10(root):
    """Download and unpack the canonical archive into `root` (atomically)."""
    archive = os.path.join(root, "cifar-10-python.tar.gz")
    _download(_CIFAR10_URL, archive)
    tmp = None
    try:
        digest = _digest(archive, "md5")
        if digest != _CIFAR10_MD5:
            raise DatasetError(
                f"{archive}: MD5 {digest} is not the published {_CIFAR10_MD5}; the download "
                "is corrupt and was not used."
            )
        tmp = tempfile.mkdtemp(dir=root, suffix=".partial")
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        extracted = os.path.join(tmp, _CIFAR10_DIR)
        _write_manifest(extracted, [n for n in os.listdir(extracted) if n != _MANIFEST])
        os.replace(extracted, os.path.join(root, _CIFAR10_DIR))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
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
    sums = _read_manifest(folder)
    if sums is None:
        warnings.warn(
            f"{folder} has no {_MANIFEST}: the CIFAR-10 batches were checked for structure "
            "only, their content is unverified.",
            stacklevel=2,
        )
    batches = []
    for name in _CIFAR10_BATCHES:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise DatasetError(f"{path} is missing from {folder}.")
        if sums is not None and name not in sums:
            raise DatasetError(f"{os.path.join(folder, _MANIFEST)} has no checksum for {name}.")
        batches.append(_read_cifar_batch(path, None if sums is None else sums[name]))
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
