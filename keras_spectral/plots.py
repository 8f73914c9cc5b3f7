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
>>> plots.removal_curves("results/pruning_protocol.jsonl", dataset="mnist")  # doctest: +SKIP
"""

import math
import os

import numpy as np
from keras import ops

from keras_spectral.layers import SpectralDense
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
    """The `SpectralDense` layers of `model` (any built model, nested models included),
    in the order Keras tracks them."""
    if not hasattr(model, "_flatten_layers"):
        raise TypeError(f"Expected a keras.Model. Received: model={model!r}")
    layers = [l for l in model._flatten_layers(include_self=False, recursive=True) if isinstance(l, SpectralDense)]
    if not layers:
        raise ValueError(f"Model '{model.name}' has no SpectralDense layer to plot.")
    if not all(layer.built for layer in layers):
        raise ValueError(f"Model '{model.name}' is not built yet; call it on data or build it first.")
    return layers


def present_nodes(model):
    """`{(layer name, "in" | "out"): boolean array}`: which eigenvalues of each
    SpectralDense layer belong to nodes still present. A hidden node removed on any side
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
        for producer in group.producers:
            if (producer.name, "out") in present:
                present[(producer.name, "out")] = alive
        for consumer, offset in group.consumers:
            if (consumer.name, "in") in present:
                present[(consumer.name, "in")][offset : offset + group.size] = alive
    return present


def spectrum(model, bins=40, path=None):
    """Histograms of each SpectralDense layer's eigenvalues: `λ_in` (left) and `λ_out`
    (right), one row per layer. Removed nodes (mask 0) are not in the histogram; their
    count is in each panel's title (a hidden node removed on either side counts on both;
    see `present_nodes`).

    Args:
        model: A built model with SpectralDense layers.
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


def _records(results):
    from keras_spectral.results import ResultsFile

    if isinstance(results, (str, os.PathLike)):
        path = os.fspath(results)
        if not os.path.exists(path):
            raise FileNotFoundError(f"Results file not found: {path!r}")
        records = ResultsFile(path).records()
        if not records:
            raise ValueError(f"Results file {path!r} holds no records.")
        return records
    if isinstance(results, list) and all(isinstance(r, dict) and isinstance(r.get("key"), dict) for r in results):
        return results
    raise TypeError(
        "Received an invalid value for `results`, expected a results-file path or a list of "
        f"records (dicts with a `key` dict). Received: results={type(results).__name__}"
    )


def _fraction(value, what, record):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise ValueError(
            f"Record {record['key']} has an invalid {what} in its `accuracy` dict, expected a fraction "
            f"in [0, 1] (accuracies are stored as fractions, not percent). Received: {value!r}"
        )
    return number


def removal_curves(results, path=None, group_by="method", **where):
    """Accuracy vs fraction of nodes removed, from a results file (`ResultsFile` JSON
    lines, as the benchmarks write) whose records have an `accuracy` dict mapping the
    fraction removed (as a string, e.g. `"0.9"`) to a test accuracy in [0, 1].

    Records are filtered by `where` (key fields, e.g. `dataset="mnist",
    activation="tanh"`; compared as stored, so a tuple matches a stored list) and grouped
    by the key field `group_by`, which every matching record must have; each group's curve
    is the mean over its records with the standard deviation as error bars.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    from keras_spectral.results import _stored

    wanted = _stored(where)
    records = [r for r in _records(results)
               if isinstance(r.get("accuracy"), dict)
               and all(field in r["key"] and r["key"][field] == value for field, value in wanted.items())]
    if not records:
        raise ValueError(f"No records with an accuracy curve match {where or 'the results'}.")
    fields = set.intersection(*(set(r["key"]) for r in records))
    if group_by not in fields:
        raise ValueError(
            f"Received an invalid value for `group_by`, expected a key field of every matching record: "
            f"{', '.join(sorted(fields)) or '(none)'}. Received: group_by={group_by!r}"
        )
    groups = {}
    for record in records:
        label = record["key"][group_by]
        for fraction, value in record["accuracy"].items():
            curve = groups.setdefault(str(label), {})
            curve.setdefault(_fraction(fraction, f"fraction removed {fraction!r}", record), []).append(
                _fraction(value, f"accuracy for {fraction!r}", record))
    figure, axes = _figure(1, 1, (5.0, 3.6))
    ax = axes[0][0]
    for label, curve in groups.items():
        fractions = sorted(curve)
        means = [100 * np.mean(curve[f]) for f in fractions]
        spread = [100 * np.std(curve[f]) for f in fractions]
        ax.errorbar([100 * f for f in fractions], means, yerr=spread, marker="o", capsize=3, label=label)
    ax.set_xlabel("nodes removed (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(", ".join(f"{k}={v}" for k, v in where.items()) or "accuracy vs nodes removed", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _finish(figure, path)


__all__ = ["spectrum", "relevance_map", "removal_curves", "save", "spectral_layers", "present_nodes"]
