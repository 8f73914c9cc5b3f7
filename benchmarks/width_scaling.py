"""How the cost of SpectralDense grows with width, against Dense.

    python benchmarks/width_scaling.py cost     [--widths 256 512 1024 2048 4096 8192] [--modes ...]
    python benchmarks/width_scaling.py accuracy [--widths 1000 2000 4000] [--seeds 3]
    python benchmarks/width_scaling.py report   [--out docs]

`cost`: networks W-W-W-10 (two square W x W layers and a head, ReLU), batch 256, one
process; per width and mode: the train-step time (median of interleaved repeats, after a
warm-up; Dense measured in the same process), the rise of a fresh process's peak resident
memory while it builds the model and trains 3 steps, the weights it holds (all variables,
trainable or not), and the size of its `.keras` file. The report fits the growth exponent
of each quantity (slope of log cost against log width over the widths >= 1024). The modes
that factor φ when built (svd, qr, qr_full: an O(n^3) SVD or QR) run up to width 4,096;
qr and qr_full (O(n^2) trained parameters, like trainable) only on request.

`accuracy`: the cheap configurations at widths 1,000-4,000 on MNIST and Fashion-MNIST
(784-W-W-10 ReLU, Adamax 0.01, batch 200, 15 epochs, 3 seeds): eigenvalues only with a
Kronecker-structured frozen φ (`eigenvector_basis="kronecker"`), and the SVD mode with
Kronecker bases; test accuracy and trainable parameters as % of the same-width Dense.

Cells are appended atomically to `results/width_scaling.jsonl` and skipped on a rerun.
"""

import argparse
import os
import sys
import tempfile
import time

import keras
import numpy as np

from keras_spectral import SpectralDense, datasets
from keras_spectral.results import ResultsFile

from cells import run_cells
from memory_probe import peak_rss_rise
from speed import step_times

DEFAULT_RESULTS = os.path.join("results", "width_scaling.jsonl")
MODES = {
    "dense": None,
    "frozen": dict(eigenvectors="frozen"),
    "frozen_kronecker": dict(eigenvectors="frozen", eigenvector_basis="kronecker"),
    "svd": dict(eigenvectors="svd"),
    "qr": dict(eigenvectors="qr"),
    "qr_full": dict(eigenvectors="qr_full"),
    "trainable": dict(eigenvectors="trainable"),
    "lowrank": dict(eigenvectors="lowrank", eigenvector_rank=10),
}
CHEAP_MODES = ("frozen_kronecker", "svd")
COST_MODES = ("frozen", "frozen_kronecker", "svd", "trainable", "lowrank")
# The decomposed modes factor the initial φ (an SVD or QR of an n x n matrix, O(n^3)) when
# they are built; above this width that alone takes minutes, so they are left out there.
FACTORED_MAX_WIDTH = 4096
BATCH = 256


def build(n_in, hidden, classes, mode, seed=0):
    keras.utils.set_random_seed(seed)
    options = MODES[mode]

    def layer(units, activation):
        if options is None:
            return keras.layers.Dense(units, activation=activation)
        return SpectralDense(units, activation=activation, **options)

    model = keras.Sequential([keras.Input((n_in,))] + [layer(w, "relu") for w in hidden] + [layer(classes, None)])
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def step_seconds(models, width, repeats=3):
    """Median seconds per train step per model, the models interleaved in every repeat."""
    times = step_times(models, (width, 10), BATCH, steps=None, repeats=repeats)
    return {mode: float(np.median(t)) for mode, t in times.items()}


def peak_memory_mb(width, mode):
    """Peak RSS rise of a fresh process that builds the model and trains 3 steps."""
    return peak_rss_rise(
        f"model = ws.build({width}, ({width}, {width}), 10, {mode!r})\n"
        f"x, y = np.zeros((ws.BATCH, {width}), 'float32'), np.zeros(ws.BATCH, 'int32')\n"
        "for _ in range(3):\n    model.train_on_batch(x, y)\n",
        setup="import numpy as np, width_scaling as ws",
    )["rss_rise_mb"]


def held_weights(model):
    return sum(int(np.prod(w.shape)) for w in model.weights)


def keras_bytes(model):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.keras")
        model.save(path)
        return os.path.getsize(path)


def run_cost(width, modes):
    models = {mode: build(width, (width, width), 10, mode) for mode in modes}
    steps = step_seconds(models, width)
    out = {}
    for mode, model in models.items():
        out[mode] = {
            "step_seconds": steps[mode],
            "weights_held": held_weights(model),
            "trainable": sum(int(np.prod(w.shape)) for w in model.trainable_weights),
            "keras_bytes": keras_bytes(model),
            "peak_rss_mb": peak_memory_mb(width, mode),
        }
    return {"modes": out}


def run_accuracy(dataset, width, mode, seed, epochs=15):
    """Adamax 0.01, batch 200, `epochs` epochs on the whole training set; test accuracy."""
    (x, y), (xt, yt) = datasets.load_flat(dataset)
    model = build(784, (width, width), 10, mode, seed)
    model.compile(keras.optimizers.Adamax(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=200, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    dense = 784 * width + width + width * width + width + width * 10 + 10
    return {"test_accuracy": float(model.evaluate(xt, yt, batch_size=2000, verbose=0)[1]),
            "trainable_params": trainable, "percent_of_dense": 100 * trainable / dense,
            "train_seconds": round(seconds, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=("cost", "accuracy", "report"))
    parser.add_argument("--widths", nargs="+", type=int, default=None)
    parser.add_argument("--modes", nargs="+", default=list(COST_MODES), choices=list(MODES))
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--out", default="docs")
    args = parser.parse_args(argv)
    results = ResultsFile(args.results)
    if args.experiment == "report":
        from width_scaling_report import write_report

        write_report(results.records(), args.out, " ".join(["python"] + sys.argv))
        return
    if args.experiment == "cost":
        def modes(width):
            return ["dense"] + [m for m in args.modes if m != "dense" and (
                width <= FACTORED_MAX_WIDTH or m not in ("svd", "qr", "qr_full"))]

        cells = [(dict(experiment="cost", width=w, batch=BATCH, modes=modes(w)), lambda w=w: run_cost(w, modes(w)))
                 for w in args.widths or (256, 512, 1024, 2048, 4096, 8192)]
    else:
        cells = [(dict(experiment="accuracy", dataset=d, width=w, mode=m, seed=s),
                  lambda d=d, w=w, m=m, s=s: run_accuracy(d, w, m, s))
                 for s in range(args.seeds) for w in args.widths or (1000, 2000, 4000)
                 for d in args.datasets for m in CHEAP_MODES]
    run_cells(cells, results, lambda key: str(key))


if __name__ == "__main__":
    main()
