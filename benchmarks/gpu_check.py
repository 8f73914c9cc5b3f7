"""GPU check: every eigenvector mode against Dense on the accelerator, JAX only (no TensorFlow).

    KERAS_BACKEND=jax python benchmarks/gpu_check.py [--width 2048] [--steps 300] [--out results/gpu_check.json]
    KERAS_BACKEND=jax python benchmarks/gpu_check.py --quick     # seconds, on any machine (CI runs it on CPU)

On JAX's default device (the GPU where there is one), for Dense and each mode of
`MODES` (784-W-W-10 ReLU, batch 256, Adam 1e-3):
  - the train-step time, interleaved with Dense's in the same process, as a ratio;
  - the peak device memory of a fresh process that builds the model and trains a few steps
    (`device.memory_stats()["peak_bytes_in_use"]`; CPU devices do not report it, the
    peak RSS rise is given there instead);
  - training equivalence: 20 steps of the same model on the same batches on the default
    device and on the CPU, and the largest relative difference of the losses.
Prints a table and writes the JSON to `--out` (atomically).
"""

import argparse
import json
import os
import platform
import sys
import time
from datetime import date

import jax
import keras
import numpy as np

from keras_spectral import SpectralDense

from harness.memory_probe import peak_rss_rise
from width_scaling import MODES  # Dense and every mode, as in the width benchmark
from harness.report_utils import atomic_write

BATCH = 256


def build(width, mode):
    keras.utils.set_random_seed(0)
    options = MODES[mode]

    def layer(units, activation=None):
        if options is None:
            return keras.layers.Dense(units, activation=activation)
        return SpectralDense(units, activation=activation, **options)

    model = keras.Sequential([keras.Input((784,)), layer(width, "relu"), layer(width, "relu"), layer(10)])
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def batches(count):
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(BATCH, 784)).astype("float32"), rng.integers(0, 10, BATCH)) for _ in range(count)]


def step_ratios(width, steps, repeats=3):
    models = {mode: build(width, mode) for mode in MODES}
    x, y = batches(1)[0]
    for model in models.values():
        model.train_on_batch(x, y)
        model.train_on_batch(x, y)
    times = {mode: [] for mode in models}
    per_repeat = max(1, steps // repeats)
    for _ in range(repeats):
        for mode, model in models.items():
            start = time.perf_counter()
            for _ in range(per_repeat):
                model.train_on_batch(x, y)  # returns host values: the step has finished
            times[mode].append((time.perf_counter() - start) / per_repeat)
    seconds = {mode: float(np.median(t)) for mode, t in times.items()}
    return {mode: {"step_ms": 1000 * s, "ratio": s / seconds["dense"]} for mode, s in seconds.items()}


def losses_on(device, width, mode, count=20):
    with jax.default_device(device):
        model = build(width, mode)
        return [float(model.train_on_batch(x, y)) for x, y in batches(count)]


def equivalence(width):
    accelerator, cpu = jax.devices()[0], jax.devices("cpu")[0]
    out = {}
    for mode in MODES:
        a, c = np.array(losses_on(accelerator, width, mode)), np.array(losses_on(cpu, width, mode))
        out[mode] = float(np.max(np.abs(a - c) / np.abs(c)))
    return out


def peak_memory(width, mode):
    """Peak device memory (where the device reports it) and peak RSS rise of a fresh
    process that builds the model and trains 3 steps."""
    return peak_rss_rise(
        f"model = gpu_check.build({width}, {mode!r})\n"
        "for x, y in gpu_check.batches(3):\n    model.train_on_batch(x, y)\n"
        "stats = jax.devices()[0].memory_stats() or {}\n"
        "extra['device_peak_mb'] = stats.get('peak_bytes_in_use', 0) / 2**20 or None\n",
        setup="import jax, gpu_check", env={"KERAS_BACKEND": "jax"},
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quick", action="store_true",
                        help="width 64, 6 steps, memory of dense and frozen_kronecker only: a smoke test")
    parser.add_argument("--out", default=os.path.join("results", "gpu_check.json"))
    args = parser.parse_args(argv)
    if keras.backend.backend() != "jax":
        sys.exit(f"Run with KERAS_BACKEND=jax (got {keras.backend.backend()!r}).")
    width, steps = (64, 6) if args.quick else (args.width, args.steps)
    device = jax.devices()[0]
    ratios = step_ratios(width, steps)
    drift = equivalence(width)
    # A fresh process per mode; --quick measures two of them only (each costs an import).
    memory = {mode: peak_memory(width, mode) if not args.quick or mode in ("dense", "frozen_kronecker")
              else {"device_peak_mb": None, "rss_rise_mb": None} for mode in MODES}
    report = {
        "command": " ".join(["python"] + sys.argv),
        "device": f"{device.platform}: {device.device_kind}",
        "machine": f"{platform.node()}, {os.cpu_count()} CPU cores, keras {keras.__version__}, jax {jax.__version__}",
        "date": date.today().isoformat(),
        "width": width, "batch": BATCH, "steps": steps,
        "modes": {mode: {**ratios[mode], "loss_rel_diff_vs_cpu": drift[mode], **memory[mode]} for mode in MODES},
    }
    print(f"device {report['device']}; 784-{width}-{width}-10, batch {BATCH}")
    print("| mode | step (ms) | / Dense | peak device memory (MB) | peak RSS rise (MB) | loss vs CPU (max rel. diff) |")
    print("|---|---|---|---|---|---|")
    for mode, v in report["modes"].items():
        device_mb = "n/a" if v["device_peak_mb"] is None else f"{v['device_peak_mb']:.0f}"
        rss_mb = "–" if v["rss_rise_mb"] is None else f"{v['rss_rise_mb']:.0f}"
        print(f"| {mode} | {v['step_ms']:.2f} | {v['ratio']:.2f} | {device_mb} | {rss_mb} | "
              f"{v['loss_rel_diff_vs_cpu']:.1e} |")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write(args.out, json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
