"""Pictures of the spectrum: eigenvalue histograms, input-relevance maps, removal curves.

Needs matplotlib (`pip install "keras-spectral[plots]"`). Every function returns a
`matplotlib.figure.Figure` and, given `path`, also saves it (PNG, PDF or SVG, by the
extension; written atomically).
Nothing here opens a window: figures are made without pyplot's global state, so they work
headless (and in notebooks, where a returned Figure displays itself).

Example:

>>> from keras_spectral import plots
>>> plots.spectrum(model, path="spectrum.png")  # doctest: +SKIP
>>> plots.relevance_map(model, image_shape=(28, 28), path="relevance.png")  # doctest: +SKIP
>>> plots.removal_curves({"spectral": ([0.0, 0.9], [0.98, 0.97])}, path="curves.png")  # doctest: +SKIP
"""

import math
import os

import numpy as np
from keras import ops

from keras_spectral.spectral_layers import is_spectral
from keras_spectral.relevance import input_relevance


SAVE_FORMATS = (".png", ".pdf", ".svg")


def _figure(rows, cols, size):
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "keras_spectral.plots needs matplotlib: pip install \"keras-spectral[plots]\"."
        ) from error
    figure = Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    return figure, axes


def save(figure, path, dpi=110):
    """Save `figure` at `path` in the format its extension names (`.png`, `.pdf`, `.svg`),
    atomically: the image is written to a partial file beside it and renamed into place,
    so a failed save never replaces a good file or leaves a partial one behind."""
    if not hasattr(figure, "savefig"):
        raise TypeError(
            f"Received an invalid value for `figure`, expected a matplotlib Figure. Received: figure={figure!r}"
        )
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"Received an invalid value for `path`, expected a file path. Received: path={path!r}")
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in SAVE_FORMATS:
        raise ValueError(
            f"Received an invalid value for `path`, expected a file name ending in "
            f"{', '.join(SAVE_FORMATS)}. Received: path={path!r}"
        )
    if os.path.isdir(path):
        raise IsADirectoryError(f"Received an invalid value for `path`: {path!r} is a directory; give a file name.")
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    partial = path + ".partial" + extension
    try:
        figure.savefig(partial, dpi=dpi, format=extension[1:])
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    return path


def _finish(figure, path):
    if path is not None:
        save(figure, path)
    return figure


def _numpy(variable):
    return np.asarray(ops.convert_to_numpy(variable), dtype="float64")


def spectral_layers(model):
    """The spectral layers of `model` (`SpectralDense` and the spectral convolutions; any
    built model, nested models included), in the order Keras tracks them."""
    if not hasattr(model, "_flatten_layers"):
        raise TypeError(f"Expected a keras.Model. Received: model={model!r}")
    layers = [l for l in model._flatten_layers(include_self=False, recursive=True) if is_spectral(l)]
    if not layers:
        raise ValueError(f"Model '{model.name}' has no spectral layer (SpectralDense or SpectralConv*) to plot.")
    if not all(layer.built for layer in layers):
        raise ValueError(f"Model '{model.name}' is not built yet; call it on data or build it first.")
    return layers


def present_nodes(model):
    """`{(layer name, "in" | "out"): boolean array}`: which eigenvalues of each
    spectral layer belong to nodes still present. A hidden node removed on any side
    of its node group (a producer's `λ_out` mask or a reader's `λ_in` mask) counts as
    removed on every side."""
    from keras_spectral.graph import node_groups

    present = {}
    for layer in spectral_layers(model):
        for side in ("in", "out"):
            present[(layer.name, side)] = _numpy(getattr(layer, f"eigenvalues_{side}_mask")) != 0
    try:
        groups = [g for g in node_groups(model) if g.prunable]
    except ValueError:  # no readable graph (a subclassed model): masks alone
        groups = []
    for group in groups:
        alive = group.active()
        for side, holders in (("out", group.produced), ("in", group.consumers)):
            for layer, rows in holders:
                if (layer.name, side) in present:
                    held = rows >= 0
                    present[(layer.name, side)][rows[held]] = np.repeat(alive, held.sum(axis=1))
    return present


def spectrum(model, bins=40, path=None):
    """Histograms of each spectral layer's eigenvalues: `λ_in` (left) and `λ_out`
    (right), one row per layer (a spectral convolution's are per channel). Removed nodes (mask 0) are not in the histogram; their
    count is in each panel's title (a hidden node removed on either side counts on both;
    see `present_nodes`).

    Args:
        model: A built model with spectral layers (SpectralDense, SpectralConv*).
        bins: Number of histogram bins (positive integer).
        path: Optional PNG path to save to.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"Received an invalid value for `bins`, expected a positive integer. Received: bins={bins!r}")
    layers = spectral_layers(model)
    present = present_nodes(model)
    figure, axes = _figure(len(layers), 2, (4.2, 2.6))
    for row, layer in zip(axes, layers):
        for ax, side in zip(row, ("in", "out")):
            values = _numpy(getattr(layer, f"eigenvalues_{side}"))
            kept = present[(layer.name, side)]
            bad = int(np.sum(~np.isfinite(values[kept])))
            if bad:
                raise ValueError(
                    f"Layer '{layer.name}' has {bad} non-finite `eigenvalues_{side}` (NaN or inf) "
                    "among its present nodes, so its spectrum cannot be drawn; the training has "
                    "probably diverged."
                )
            ax.hist(values[kept], bins=bins, color="tab:blue" if side == "in" else "tab:orange")
            removed = int(np.sum(~kept))
            note = f", {removed} removed" if removed else ""
            ax.set_title(f"{layer.name}: λ_{side} ({int(kept.sum())} nodes{note})", fontsize=9)
            ax.set_xlabel("eigenvalue")
            ax.set_ylabel("nodes")
    return _finish(figure, path)


def relevance_map(model, image_shape, path=None, cmap="viridis"):
    """The input relevance (`input_relevance(model)`) reshaped to an image.

    Args:
        model: A built model whose first fully connected layer is a SpectralDense.
        image_shape: The input's image shape: `(height, width)` (e.g. `(28, 28)` for
            MNIST) or `(height, width, channels)` (e.g. `(32, 32, 3)` for CIFAR-10,
            channels last), whose product is the number of input features. Channels are
            summed.
        path: Optional PNG path to save to.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    scores = input_relevance(model)
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else None
    if (shape is None or len(shape) not in (2, 3)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
            or math.prod(shape) != scores.size):
        raise ValueError(
            "Received an invalid value for `image_shape`, expected (height, width) or "
            f"(height, width, channels) of positive integers whose product is the model's "
            f"{scores.size} input features. Received: image_shape={image_shape!r}"
        )
    image = scores.reshape(shape)
    if image.ndim == 3:
        image = image.sum(axis=-1)
    figure, axes = _figure(1, 1, (3.8, 3.4))
    ax = axes[0][0]
    shown = ax.imshow(image, cmap=cmap)
    figure.colorbar(shown, ax=ax, label="|λ_in|" + (" (summed over channels)" if len(shape) == 3 else ""))
    ax.set_title("input relevance")
    ax.set_xticks([])
    ax.set_yticks([])
    return _finish(figure, path)


def _accuracies(label, fractions, accuracies):
    """`label`'s curve checked: fractions and accuracies (a number or a sequence of
    numbers, e.g. one per seed, for each fraction) as float arrays, all in [0, 1]."""
    def bad(what, value):
        return ValueError(
            f"Received an invalid {what} for curve {label!r} of `curves`, expected fractions in [0, 1] "
            f"(accuracies as fractions, not percent). Received: {value!r}"
        )

    if any(np.isscalar(v) or (isinstance(v, np.ndarray) and v.ndim == 0) for v in (fractions, accuracies)):
        raise ValueError(
            f"Received an invalid value for curve {label!r} of `curves`, expected (fractions, accuracies): "
            "two sequences of the same length (fractions removed, and an accuracy or a list of them for "
            f"each), even for one point: ([0.5], [0.97]). Received: {(fractions, accuracies)!r}"
        )
    try:
        fractions = [float(f) for f in fractions]
        accuracies = [np.atleast_1d(np.asarray(a, dtype="float64")) for a in accuracies]
    except (TypeError, ValueError):
        raise bad("fraction or accuracy", (fractions, accuracies)) from None
    if len(fractions) != len(accuracies) or not fractions:
        raise ValueError(
            f"Received an invalid value for curve {label!r} of `curves`, expected (fractions, accuracies) "
            f"of the same non-zero length. Received: {len(fractions)} fractions, {len(accuracies)} accuracies"
        )
    for f in fractions:
        if not 0.0 <= f <= 1.0:
            raise bad("fraction removed", f)
    for a in accuracies:
        if a.size == 0 or not np.all((a >= 0.0) & (a <= 1.0)):
            raise bad("accuracy", a.tolist())
    order = np.argsort(fractions, kind="stable")
    return [fractions[i] for i in order], [accuracies[i] for i in order]


def removal_curves(curves, path=None, title="accuracy vs nodes removed"):
    """Accuracy against the fraction of nodes removed, one line per curve.

    Args:
        curves: `{label: (fractions, accuracies)}`: the fractions of nodes removed (in
            [0, 1]) and, for each, a test accuracy in [0, 1] or a sequence of them (one
            per seed; the line is their mean, with the standard deviation as error bars).
        path: Optional file to save to (PNG, PDF or SVG).
        title: The figure's title.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    >>> plots.removal_curves({"spectral": ([0.0, 0.5, 0.9], [0.98, 0.979, 0.975]),
    ...                       "magnitude": ([0.0, 0.5, 0.9], [0.98, 0.975, 0.96])})  # doctest: +SKIP
    """
    if not isinstance(curves, dict) or not curves:
        raise TypeError(
            "Received an invalid value for `curves`, expected a non-empty dict {label: (fractions, "
            f"accuracies)}}. Received: curves={type(curves).__name__}"
        )
    checked = {}
    for label, curve in curves.items():
        if not isinstance(curve, (tuple, list)) or len(curve) != 2:
            raise TypeError(
                f"Received an invalid value for curve {label!r} of `curves`, expected a pair "
                f"(fractions, accuracies). Received: {curve!r}"
            )
        checked[str(label)] = _accuracies(label, *curve)
    figure, axes = _figure(1, 1, (5.0, 3.6))
    ax = axes[0][0]
    for label, (fractions, accuracies) in checked.items():
        means = [100 * float(np.mean(a)) for a in accuracies]
        spread = [100 * float(np.std(a)) for a in accuracies]
        ax.errorbar([100 * f for f in fractions], means, yerr=spread, marker="o", capsize=3, label=label)
    ax.set_xlabel("nodes removed (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _finish(figure, path)


__all__ = ["spectrum", "relevance_map", "removal_curves", "save", "spectral_layers", "present_nodes"]
