"""Speed and size of SpectralDense against keras.layers.Dense.

    python benchmarks/speed.py [--shapes 784-500-500-10 3072-2000-2000-10] [--batches 200 1024]
                               [--steps 10] [--repeats 5] [--out results/speed.json]

For each shape and batch size, in one process: the train-step time of a Dense MLP and of
the same MLP with SpectralDense in every eigenvector mode, measured side by side
(interleaved repeats of `--steps` steps each, after a warm-up), reported as the ratio
spectral / Dense with its min / median / max over repeats; the inference throughput of
a trained spectral model, of its `collapse()`d Dense equivalent and of Dense; the peak
resident memory of a training process per mode (a child process each); and the size of
the saved `.keras` file per mode. Writes JSON (atomically) and prints a markdown table.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date

import keras
import numpy as np

from keras_spectral import SpectralDense, collapse

MODES = {
    "frozen": dict(eigenvectors="frozen"),
    "frozen_seeded": dict(eigenvectors="frozen", eigenvector_seed=0),
    "svd": dict(eigenvectors="svd"),
    "qr": dict(eigenvectors="qr"),
    "trainable": dict(eigenvectors="trainable"),
}


def build(shape, mode):
    n_in, *hidden, classes = shape
    keras.utils.set_random_seed(0)
    layers = [keras.Input((n_in,))]
    for width in hidden:
        layers.append(keras.layers.Dense(width, activation="relu") if mode == "dense" else SpectralDense(width, activation="relu", **MODES[mode]))
    layers.append(keras.layers.Dense(classes) if mode == "dense" else SpectralDense(classes, **MODES[mode]))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def step_times(shape, batch, steps, repeats, modes):
    """Seconds per train step, per mode, interleaving the modes in every repeat."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, shape[0])).astype("float32")
    y = rng.integers(0, shape[-1], size=batch)
    models = {mode: build(shape, mode) for mode in ["dense"] + modes}
    for model in models.values():  # warm-up: tracing and compilation
        for _ in range(2):
            model.train_on_batch(x, y)
    times = {mode: [] for mode in models}
    for _ in range(repeats):
        for mode, model in models.items():
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            times[mode].append((time.perf_counter() - start) / steps)
    return times


def throughput(shape, batch, mode, n=4096):
    model = build(shape, mode)
    x = np.random.default_rng(1).normal(size=(n, shape[0])).astype("float32")
    variants = {"model": model} if mode == "dense" else {"model": model, "collapsed": collapse(model)}
    result = {}
    for name, m in variants.items():
        m.predict(x[:batch], batch_size=batch, verbose=0)
        start = time.perf_counter()
        m.predict(x, batch_size=batch, verbose=0)
        result[name] = n / (time.perf_counter() - start)
    return result


def saved_size(shape, mode):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.keras")
        build(shape, mode).save(path)
        return os.path.getsize(path)


def peak_memory_mb(shape, batch, mode):
    """Peak RSS of a fresh process that builds the model and trains 3 steps."""
    code = (
        "import sys, resource, numpy as np; sys.path.insert(0, sys.argv[1]); import speed; "
        "shape = tuple(map(int, sys.argv[2].split('-'))); m = speed.build(shape, sys.argv[4]); "
        "b = int(sys.argv[3]); x = np.zeros((b, shape[0]), 'float32'); y = np.zeros(b, 'int32'); "
        "[m.train_on_batch(x, y) for _ in range(3)]; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code, os.path.dirname(os.path.abspath(__file__)), "-".join(map(str, shape)), str(batch), mode],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.split()[-1]
    return int(out) / 1024


def atomic_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".partial", "w") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".partial", path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["784-500-500-10", "3072-2000-2000-10"])
    parser.add_argument("--batches", nargs="+", type=int, default=[200, 1024])
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join("results", "speed.json"))
    args = parser.parse_args(argv)
    report = {
        "command": " ".join(["python"] + sys.argv),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, {platform.processor() or ''}".strip(", "),
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "date": date.today().isoformat(),
        "cells": [],
    }
    print("| shape | batch | mode | step ratio min / median / max | Dense step | inference / s (model, collapsed, Dense) | peak RSS | .keras size |")
    print("|---|---|---|---|---|---|---|---|")
    for shape_text in args.shapes:
        shape = tuple(int(v) for v in shape_text.split("-"))
        sizes = {mode: saved_size(shape, mode) for mode in ["dense"] + args.modes}
        for batch in args.batches:
            times = step_times(shape, batch, args.steps, args.repeats, args.modes)
            dense_speed = throughput(shape, batch, "dense")["model"]
            memory = {mode: peak_memory_mb(shape, batch, mode) for mode in ["dense"] + args.modes}
            for mode in args.modes:
                ratios = np.array(times[mode]) / np.array(times["dense"])
                speed = throughput(shape, batch, mode)
                cell = {
                    "shape": shape_text, "batch": batch, "mode": mode,
                    "step_seconds": times[mode], "dense_step_seconds": times["dense"],
                    "ratio_min": float(ratios.min()), "ratio_median": float(np.median(ratios)), "ratio_max": float(ratios.max()),
                    "inference_per_second": speed, "dense_inference_per_second": dense_speed,
                    "peak_rss_mb": memory[mode], "dense_peak_rss_mb": memory["dense"],
                    "keras_file_bytes": sizes[mode], "dense_keras_file_bytes": sizes["dense"],
                }
                report["cells"].append(cell)
                atomic_json(args.out, report)
                print(
                    f"| {shape_text} | {batch} | {mode} | {cell['ratio_min']:.2f} / {cell['ratio_median']:.2f} / {cell['ratio_max']:.2f} "
                    f"| {np.median(times['dense']) * 1000:.1f} ms | {speed['model']:.0f}, {speed['collapsed']:.0f}, {dense_speed:.0f} "
                    f"| {memory[mode]:.0f} MB (Dense {memory['dense']:.0f}) | {sizes[mode] / 1e6:.2f} MB (Dense {sizes['dense'] / 1e6:.2f}) |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
