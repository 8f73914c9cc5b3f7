"""Pruned serving speed: predict throughput before and after node pruning, compaction,
collapse and SavedModel export (TensorFlow backend).

    KERAS_BACKEND=tensorflow python benchmarks/serving.py [--epochs 3] [--out results/serving.json]
    python benchmarks/serving.py --figure-only   # redraw docs/figures/serving.png from --out

A 784-500-500-10 ReLU network (φ and both eigenvalue sets trained, Adam 1e-3, batch 200)
is trained on MNIST, then for 50 / 80 / 90 % of the hidden nodes removed
(`prune_nodes`, then one epoch of training with the masks fixed) it is served four ways:
the masked model, `compact(model)`, and `collapse(compact(model))` exported as a SavedModel
and reloaded with `tf.saved_model.load` (called through `serve`). Baselines: the same
architecture with Dense layers, as a Keras model and as a SavedModel, and the unpruned
spectral model. Throughput is samples per second at batch 1, 32 and 1024 (Keras models
through `predict_on_batch`, SavedModels through `serve`), the median of 5 repeats of at
least 0.2 s each, every variant measured in one process. Test accuracy is recorded beside.
Writes JSON atomically, prints a markdown table and draws the speed-ups against the
fraction removed (`--figure`, default docs/figures/serving.png).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date

import keras
import numpy as np

from keras_spectral import collapse, compact, datasets, prune_nodes
from keras_spectral.models import build_mlp

from harness.report_utils import atomic_write, finish_figure

FRACTIONS = (0.5, 0.8, 0.9)
BATCHES = (1, 32, 1024)
GOAL = 5.0  # × the unpruned Dense (Keras) throughput at 90 % removed, issue #13
SERVED_WAYS = ("masks only (Keras)", "compact (Keras)", "compact + collapse (SavedModel)")


def train(method, data, epochs):
    (x, y), _ = data
    keras.utils.set_random_seed(0)
    model = build_mlp(784, (500, 500), 10, method)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=200, epochs=epochs, verbose=0)
    return model


def accuracy(call, data):
    _, (xt, yt) = data
    predictions = np.concatenate([np.asarray(call(xt[i:i + 2000])) for i in range(0, len(xt), 2000)])
    return float(np.mean(predictions.argmax(axis=1) == yt))


def throughput(call, x, repeats=5, min_seconds=0.2):
    for _ in range(3):
        call(x)
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            call(x)
            calls += 1
        rates.append(calls * len(x) / (time.perf_counter() - start))
    return float(np.median(rates))


def saved_model_call(model, folder, name):
    import tensorflow as tf

    path = os.path.join(folder, name)
    model.export(path, format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(path)
    return lambda x: served.serve(tf.constant(x))


def plot(report, path):
    """Speed-up over Dense (Keras) against the fraction removed, one panel per batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = report["variants"]
    base = variants["Dense (Keras)"]["samples_per_second"]
    fig, axes = plt.subplots(1, len(BATCHES), figsize=(13, 3.8), squeeze=False)
    for ax, batch in zip(axes[0], map(str, BATCHES)):
        for way in SERVED_WAYS:
            curve = [variants["spectral, unpruned (Keras)"]] + [
                v for name, v in variants.items() if name.endswith(": " + way)]
            ax.plot([v["removed"] for v in curve], [v["samples_per_second"][batch] / base[batch] for v in curve],
                    marker="o", label=way)
        ax.axhline(1.0, color="black", lw=0.8, label="Dense (Keras)")
        ax.axhline(variants["Dense (SavedModel)"]["samples_per_second"][batch] / base[batch], color="gray",
                   ls="--", lw=0.8, label="Dense (SavedModel)")
        ax.axhline(GOAL, color="red", ls=":", lw=0.8, label=f"goal at 90 % removed ({GOAL:g}×)")
        ax.set_xlabel("fraction of hidden nodes removed")
        ax.set_ylabel("samples/s ÷ Dense (Keras)")
        ax.set_title(f"batch {batch}")
        ax.grid(alpha=0.3)
    fig.suptitle(f"784-500-500-10 on MNIST — `{report['command']}`, {report['machine']}, {report['date']}",
                 fontsize=9)
    finish_figure(fig, axes, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=os.path.join("results", "serving.json"))
    parser.add_argument("--figure", default=os.path.join("docs", "figures", "serving.png"))
    parser.add_argument("--figure-only", action="store_true", help="redraw the figure from --out; no runs")
    args = parser.parse_args(argv)
    if args.figure_only:
        with open(args.out, encoding="utf-8") as f:
            plot(json.load(f), args.figure)
        return
    if keras.backend.backend() != "tensorflow":
        sys.exit("Run with KERAS_BACKEND=tensorflow (the SavedModel path needs it).")
    data = datasets.load_flat("mnist")
    (x, y), (xt, _) = data
    inputs = {b: xt[:b] for b in BATCHES}
    folder = tempfile.mkdtemp()
    variants = {}

    def add(name, call, removed, params):
        variants[name] = {"removed": removed, "parameters": params, "test_accuracy": accuracy(call, data),
                          "samples_per_second": {str(b): throughput(call, inputs[b]) for b in BATCHES}}
        print(f"{name}: {variants[name]['samples_per_second']}", flush=True)

    dense = train("dense", data, args.epochs)
    add("Dense (Keras)", dense.predict_on_batch, 0.0, dense.count_params())
    add("Dense (SavedModel)", saved_model_call(dense, folder, "dense"), 0.0, dense.count_params())
    spectral = train("spectral_trainable", data, args.epochs)
    add("spectral, unpruned (Keras)", spectral.predict_on_batch, 0.0, spectral.count_params())
    trained = spectral.get_weights()
    for fraction in FRACTIONS:
        spectral.set_weights(trained)
        prune_nodes(spectral, fraction=fraction, score="sum")
        spectral.fit(x, y, batch_size=200, epochs=1, verbose=0)  # masks stay fixed
        small = compact(spectral)
        served = collapse(small)
        tag = f"{fraction * 100:g} % removed"
        add(f"{tag}: masks only (Keras)", spectral.predict_on_batch, fraction, spectral.count_params())
        add(f"{tag}: compact (Keras)", small.predict_on_batch, fraction, small.count_params())
        add(f"{tag}: compact + collapse (SavedModel)", saved_model_call(served, folder, f"pruned{fraction}"),
            fraction, served.count_params())
    report = {
        "command": " ".join(["python"] + sys.argv),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, keras {keras.__version__} (tensorflow)",
        "date": date.today().isoformat(),
        "epochs": args.epochs,
        "variants": variants,
    }
    base = variants["Dense (Keras)"]["samples_per_second"]
    lines = ["| variant | parameters | test acc | " + " | ".join(f"batch {b}: samples/s (× Dense Keras)" for b in BATCHES) + " |",
             "|---" * (3 + len(BATCHES)) + "|"]
    for name, v in variants.items():
        rates = v["samples_per_second"]
        lines.append(f"| {name} | {v['parameters']:,} | {v['test_accuracy'] * 100:.2f} % | "
                     + " | ".join(f"{rates[str(b)]:,.0f} ({rates[str(b)] / base[str(b)]:.1f}×)" for b in BATCHES) + " |")
    report["table"] = lines
    print("\n".join(lines))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write(args.out, json.dumps(report, indent=1))
    plot(report, args.figure)


if __name__ == "__main__":
    main()
