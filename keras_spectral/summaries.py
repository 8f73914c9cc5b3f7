"""TensorBoard summaries of the spectrum that `keras.callbacks.TensorBoard` does not write.

`keras.callbacks.TensorBoard(log_dir, histogram_freq=1)` already shows, on every backend,
each SpectralDense layer's `eigenvalues_in`, `eigenvalues_out`, their masks and its
eigenvector factors as histograms (tags `<model>/<layer>/<weight>/histogram`), and, with
`EigenvaluePruning`, the fraction of removed nodes per hidden layer as the scalar
`epoch_node_sparsity/<layer>`. What it cannot show is the spectrum *without* the removed
nodes (their eigenvalues pile up at zero) and the input-relevance picture; `SpectrumSummary`
writes those, into the run `<log_dir>/spectrum`:

- `spectrum/<layer>/eigenvalues_in_active`, `.../eigenvalues_out_active`: histograms of the
  eigenvalues of the nodes still present;
- `spectrum/<layer>/active_nodes_in`, `.../active_nodes_out`: scalars, nodes present;
- `relevance/input` (with `image_shape`): the input-relevance map (`input_relevance`,
  channels summed) as a grey image scaled to [0, 1].

It uses `tf.summary`, so it needs TensorFlow and TensorBoard installed (any Keras backend).

Example:

>>> callbacks = [keras.callbacks.TensorBoard("logs", histogram_freq=1),
...              SpectrumSummary("logs", image_shape=(28, 28))]  # doctest: +SKIP
"""

import math
import os
import tempfile

import keras
import numpy as np

from keras_spectral.plots import present_nodes, spectral_layers
from keras_spectral.relevance import first_layer, input_relevance
from keras_spectral.validation import check_positive_int


def _check_not_a_file(log_dir):
    if os.path.exists(log_dir) and not os.path.isdir(log_dir):
        raise ValueError(
            f"Received an invalid value for `log_dir`, expected a directory, but {log_dir!r} is an "
            f"existing file. Received: log_dir={log_dir!r}"
        )


def _writable_run(log_dir):
    """`<log_dir>/spectrum`, made and probed with a file before training, so a bad
    `log_dir` is refused in words rather than by TensorFlow's summary writer."""
    _check_not_a_file(log_dir)
    run = os.path.join(log_dir, "spectrum")
    try:
        os.makedirs(run, exist_ok=True)
        with tempfile.TemporaryFile(dir=run):
            pass
    except OSError as error:
        raise PermissionError(
            f"`log_dir` {log_dir!r} is not writable, so SpectrumSummary cannot write its run "
            f"{run!r} ({error.strerror or error})."
        ) from None
    return run


class SpectrumSummary(keras.callbacks.Callback):
    """Write the active spectrum (and the input-relevance image) to TensorBoard every
    `freq` epochs.

    Args:
        log_dir: The TensorBoard log directory (the run `spectrum` is made inside it).
        image_shape: Optional `(height, width)` or `(height, width, channels)` of the
            input, to write the input-relevance image.
        freq: Write every `freq` epochs (positive integer).
    """

    def __init__(self, log_dir, image_shape=None, freq=1):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(
                f"Received an invalid value for `log_dir`, expected a directory path. Received: log_dir={log_dir!r}"
            )
        check_positive_int("freq", freq)
        if image_shape is not None and (
            not isinstance(image_shape, (tuple, list)) or len(image_shape) not in (2, 3)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in image_shape)
        ):
            raise ValueError(
                "Received an invalid value for `image_shape`, expected None, (height, width) or "
                f"(height, width, channels) of positive integers. Received: image_shape={image_shape!r}"
            )
        _check_not_a_file(os.fspath(log_dir))
        self.log_dir = os.fspath(log_dir)
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.freq = freq
        self._writer = None

    def on_train_begin(self, logs=None):
        self._layers = spectral_layers(self.model)  # fails early on a model without them
        if self.image_shape is not None:
            try:
                features = first_layer(self.model).input_dim
            except ValueError as error:
                raise ValueError(
                    f"`image_shape` asks for the input-relevance image, which needs the model's input "
                    f"to be read by a SpectralDense layer: {error}"
                ) from None
            if math.prod(self.image_shape) != features:
                raise ValueError(
                    f"Received an invalid value for `image_shape`: {self.image_shape} has "
                    f"{math.prod(self.image_shape)} entries, but the SpectralDense layer reading the "
                    f"model's input has {features} input features. Received: image_shape={self.image_shape}"
                )
        run = _writable_run(self.log_dir)
        import tensorflow as tf

        self._tf = tf
        self._writer = tf.summary.create_file_writer(run)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.freq:
            return
        tf = self._tf
        with self._writer.as_default(step=epoch):
            present = present_nodes(self.model)
            for layer in self._layers:
                for side in ("in", "out"):
                    values = np.asarray(keras.ops.convert_to_numpy(getattr(layer, f"eigenvalues_{side}")))
                    kept = present[(layer.name, side)]
                    tf.summary.histogram(f"spectrum/{layer.name}/eigenvalues_{side}_active", values[kept])
                    tf.summary.scalar(f"spectrum/{layer.name}/active_nodes_{side}", int(kept.sum()))
            if self.image_shape is not None:
                image = input_relevance(self.model).reshape(self.image_shape)
                if image.ndim == 3:
                    image = image.sum(axis=-1)
                image = image / image.max() if image.max() > 0 else image
                tf.summary.image("relevance/input", image[None, :, :, None].astype("float32"))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
