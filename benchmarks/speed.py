"""Speed and size of SpectralDense against keras.layers.Dense.

    python benchmarks/speed.py [run] [--shapes 784-500-500-10 3072-2000-2000-10] [--batches 200 1024]
                                     [--modes ...] [--steps N] [--repeats 5] [--out results/speed.json]
    python benchmarks/speed.py report [--inputs results/speed.json ...] [--report docs/speed_results.md]

For each shape and batch size, in one process: the train-step time of a Dense MLP and of
the same MLP with SpectralDense in every eigenvector mode, measured side by side
(interleaved repeats of `--steps` steps each, after a warm-up), reported as the ratio
spectral / Dense with its min / median / max over repeats; the `predict` throughput of
each model, of its `collapse()`d Dense equivalent and of Dense (median of interleaved
repeats); how far a training process's peak resident memory rises above the import's
(a child process per mode); and the size of the saved `.keras` file per mode. Writes
JSON (atomically) and prints a markdown table; `report` renders that JSON alone into
`docs/speed_results.md`.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date

import keras
import numpy as np

from keras_spectral import SpectralDense, collapse

from harness.report_utils import atomic_write

MODES = {
    "frozen": dict(eigenvectors="frozen"),
    "frozen_seeded": dict(eigenvectors="frozen", eigenvector_seed=0),
    "svd": dict(eigenvectors="svd"),
    "qr": dict(eigenvectors="qr"),
    "trainable": dict(eigenvectors="trainable"),
    "svd_kronecker": dict(eigenvectors="svd", eigenvector_basis="kronecker"),
    "qr_kronecker": dict(eigenvectors="qr", eigenvector_basis="kronecker"),
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


def step_times(models, shape, batch, steps, repeats):
    """Seconds per train step, per model, interleaving the models in every repeat."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, shape[0])).astype("float32")
    y = rng.integers(0, shape[-1], size=batch)
    for model in models.values():  # warm-up: tracing and compilation
        for _ in range(2):
            model.train_on_batch(x, y)
    if steps is None:  # enough steps for about 0.5 s of Dense per repeat
        start = time.perf_counter()
        for _ in range(3):
            models["dense"].train_on_batch(x, y)
        steps = max(3, round(0.5 / ((time.perf_counter() - start) / 3)))
    times = {mode: [] for mode in models}
    for _ in range(repeats):
        for mode, model in models.items():
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            times[mode].append((time.perf_counter() - start) / steps)
    return times


def inference_rates(models, shape, batch, repeats, rows=4096):
    """Median samples per second of `predict`, per model and per collapsed spectral model,
    interleaved over repeats like the step times."""
    variants = dict(models)
    variants.update({f"{mode}/collapsed": collapse(m) for mode, m in models.items() if mode != "dense"})
    x = np.random.default_rng(1).normal(size=(batch * max(2, rows // batch), shape[0])).astype("float32")
    for m in variants.values():
        m.predict(x[: 2 * batch], batch_size=batch, verbose=0)
    rates = {name: [] for name in variants}
    for _ in range(repeats):
        for name, m in variants.items():
            start = time.perf_counter()
            m.predict(x, batch_size=batch, verbose=0)
            rates[name].append(len(x) / (time.perf_counter() - start))
    return {name: float(np.median(r)) for name, r in rates.items()}


def saved_size(shape, mode):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.keras")
        build(shape, mode).save(path)
        return os.path.getsize(path)


PEAK_MEMORY_CODE = """
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
import speed

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS: imports are not counted
before = status("VmRSS")
shape = tuple(map(int, sys.argv[2].split("-")))
model = speed.build(shape, sys.argv[4])
batch = int(sys.argv[3])
x, y = np.zeros((batch, shape[0]), "float32"), np.zeros(batch, "int32")
for _ in range(3):
    model.train_on_batch(x, y)
print(status("VmHWM") - before)
"""


def peak_memory_mb(shape, batch, mode):
    """How far a fresh process's peak RSS rises above its RSS after the imports while it
    builds the model and trains 3 steps (Linux: /proc/self/clear_refs, VmHWM)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_CODE, os.path.dirname(os.path.abspath(__file__)),
         "-".join(map(str, shape)), str(batch), mode],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.split()[-1]
    return int(out) / 1024


def atomic_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1))


GOALS = {"frozen": 1.10, "frozen_seeded": 1.10, "svd": 1.30, "qr": 1.30, "svd_kronecker": 1.30, "qr_kronecker": 1.30}
HEADER = [
    "| shape | batch | mode | step ratio min / median / max (goal) | Dense step | predict / s: model, collapsed, Dense | peak RSS rise (Dense) | .keras size (Dense) |",
    "|---|---|---|---|---|---|---|---|",
]


def row(cell):
    goal = GOALS.get(cell["mode"])
    verdict = f" (≤ {goal}: {'met' if cell['ratio_median'] <= goal else 'missed'})" if goal else ""
    speed = cell["inference_per_second"]
    return (
        f"| {cell['shape']} | {cell['batch']} | {cell['mode']} "
        f"| {cell['ratio_min']:.2f} / {cell['ratio_median']:.2f} / {cell['ratio_max']:.2f}{verdict} "
        f"| {np.median(cell['dense_step_seconds']) * 1000:.1f} ms "
        f"| {speed['model']:,.0f}, {speed['collapsed']:,.0f}, {cell['dense_inference_per_second']:,.0f} "
        f"| {cell['peak_rss_increase_mb']:.0f} MB ({cell['dense_peak_rss_increase_mb']:.0f}) "
        f"| {cell['keras_file_bytes'] / 1e6:.2f} MB ({cell['dense_keras_file_bytes'] / 1e6:.2f}) |"
    )


def write_report(reports, path):
    """Markdown tables of `results/speed*.json` runs, each with its command, machine and date."""
    lines = [
        "# Speed and size against Dense: results",
        "",
        "Generated by `python benchmarks/speed.py report` from the results files below. Step "
        "ratio: SpectralDense train step / Dense train step on the same shape, measured side by "
        "side (median and spread over interleaved repeats); goals from the issue.",
        "",
    ]
    for name, report in reports:
        lines += [
            f"## `{name}`",
            "",
            f"Run: `{report['command']}` on {report['machine']}, Keras {report['keras']} "
            f"({report['backend']} backend), {report['date']}.",
            "",
            *HEADER,
            *(row(cell) for cell in report["cells"]),
            "",
        ]
    atomic_write(path, "\n".join(lines))
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("run", "report"), default="run")
    parser.add_argument("--shapes", nargs="+", default=["784-500-500-10", "3072-2000-2000-10"])
    parser.add_argument("--batches", nargs="+", type=int, default=[200, 1024])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--steps", type=int, default=None, help="steps per repeat (default: about 0.5 s of Dense)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join("results", "speed.json"))
    parser.add_argument("--report", default=os.path.join("docs", "speed_results.md"))
    parser.add_argument("--inputs", nargs="+", default=[os.path.join("results", "speed.json")],
                        help="results files that `report` renders")
    args = parser.parse_args(argv)
    if args.command == "report":
        reports = []
        for name in args.inputs:
            with open(name, encoding="utf-8") as f:
                reports.append((name, json.load(f)))
        write_report(reports, args.report)
        return
    report = {
        "command": " ".join(["python"] + sys.argv),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, {platform.processor() or ''}".strip(", "),
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "date": date.today().isoformat(),
        "cells": [],
    }
    print("\n".join(HEADER))
    for shape_text in args.shapes:
        shape = tuple(int(v) for v in shape_text.split("-"))
        sizes = {mode: saved_size(shape, mode) for mode in ["dense"] + args.modes}
        for batch in args.batches:
            models = {mode: build(shape, mode) for mode in ["dense"] + args.modes}
            times = step_times(models, shape, batch, args.steps, args.repeats)
            rates = inference_rates(models, shape, batch, args.repeats)
            del models
            memory = {mode: peak_memory_mb(shape, batch, mode) for mode in ["dense"] + args.modes}
            for mode in args.modes:
                ratios = np.array(times[mode]) / np.array(times["dense"])
                cell = {
                    "shape": shape_text, "batch": batch, "mode": mode,
                    "step_seconds": times[mode], "dense_step_seconds": times["dense"],
                    "ratio_min": float(ratios.min()), "ratio_median": float(np.median(ratios)), "ratio_max": float(ratios.max()),
                    "inference_per_second": {"model": rates[mode], "collapsed": rates[f"{mode}/collapsed"]},
                    "dense_inference_per_second": rates["dense"],
                    "peak_rss_increase_mb": memory[mode], "dense_peak_rss_increase_mb": memory["dense"],
                    "keras_file_bytes": sizes[mode], "dense_keras_file_bytes": sizes["dense"],
                }
                report["cells"].append(cell)
                atomic_json(args.out, report)
                print(row(cell), flush=True)


if __name__ == "__main__":
    main()
