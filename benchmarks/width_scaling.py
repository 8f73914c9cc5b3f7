"""How the cost of SpectralDense grows with width, against Dense.

    python benchmarks/width_scaling.py cost     [--widths 256 512 1024 2048 4096 8192] [--modes ...]
    python benchmarks/width_scaling.py accuracy [--widths 1000 2000 4000] [--seeds 3]
                                                [--epochs 15] [--learning-rate 0.01] [--schedule constant]
    python benchmarks/width_scaling.py tune     [--widths 1000] [--modes svd] [--rates 0.003 0.01 0.03]
                                                [--epochs 30] [--schedule constant]
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
`--epochs`, `--learning-rate` and `--schedule` change the training; settings other than the issue's
(15 epochs, Adamax 0.01) should come from `tune`.

`tune`: settings chosen on validation data only. Each (data set, width, mode, rate) trains
on the first 50,000 training images for `--epochs` epochs and records the accuracy on the
last 10,000 after every epoch; the report names the setting with the best validation
accuracy: a rate and epoch count, or with `--schedule cosine` (the rate decayed to zero over
the epochs) a rate at the full epoch count. The test set plays no part.

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
from harness.results import ResultsFile

from harness.cells import run_cells
from harness.memory_probe import peak_rss_rise
from width_scaling_report import write_report
from width_scaling_settings import CHEAP_MODES
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
COST_MODES = ("frozen", "frozen_kronecker", "svd", "trainable", "lowrank")
# The decomposed modes factor the initial φ (an SVD or QR of an n x n matrix, O(n^3)) when
# they are built; above this width that alone takes minutes, so they are left out there.
FACTORED_MAX_WIDTH = 4096
BATCH = 256
DEFAULT_EPOCHS, DEFAULT_RATE = 15, 0.01  # the quick check: Adamax 0.01, 15 epochs
SCHEDULES = ("constant", "cosine")
TRAIN_BATCH = 200
VALIDATION_START = 50_000  # `tune` validates on the last 10,000 training images
TUNE_EPOCHS = 30  # `tune`'s default epoch count


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


def accuracy_model(width, mode, seed, learning_rate, schedule, epochs, samples):
    """784-W-W-10 in `mode`, compiled with Adamax and an accuracy metric: the rate constant,
    or (schedule "cosine") decayed to zero over `epochs` epochs of `samples` samples."""
    model = build(784, (width, width), 10, mode, seed)
    if schedule == "cosine":
        steps = epochs * -(-samples // TRAIN_BATCH)
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(keras.optimizers.Adamax(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def run_accuracy(dataset, width, mode, seed, epochs=DEFAULT_EPOCHS, learning_rate=DEFAULT_RATE,
                 schedule="constant"):
    """Adamax, batch 200, `epochs` epochs on the whole training set; test accuracy."""
    (x, y), (xt, yt) = datasets.load_flat(dataset)
    model = accuracy_model(width, mode, seed, learning_rate, schedule, epochs, len(x))
    start = time.perf_counter()
    model.fit(x, y, batch_size=TRAIN_BATCH, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    dense = 784 * width + width + width * width + width + width * 10 + 10
    return {"test_accuracy": float(model.evaluate(xt, yt, batch_size=2000, verbose=0)[1]),
            "trainable_params": trainable, "percent_of_dense": 100 * trainable / dense,
            "train_seconds": round(seconds, 1)}


def run_tune(dataset, width, mode, learning_rate, epochs, schedule="constant", seed=0):
    """Train on the first 50,000 training images; validation accuracy after every epoch."""
    (x, y), _ = datasets.load_flat(dataset)
    model = accuracy_model(width, mode, seed, learning_rate, schedule, epochs, VALIDATION_START)
    history = model.fit(x[:VALIDATION_START], y[:VALIDATION_START], batch_size=TRAIN_BATCH, epochs=epochs, verbose=0,
                        validation_data=(x[VALIDATION_START:], y[VALIDATION_START:]))
    return {"val_accuracy": [float(a) for a in history.history["val_accuracy"]]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=("cost", "accuracy", "tune", "report"))
    parser.add_argument("--widths", nargs="+", type=int, default=None)
    parser.add_argument("--modes", nargs="+", default=None, choices=list(MODES),
                        help=f"cost: default {' '.join(COST_MODES)}; accuracy: {' '.join(CHEAP_MODES)}; tune: svd")
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"accuracy: epochs (default {DEFAULT_EPOCHS}); tune: most epochs (default {TUNE_EPOCHS})")
    parser.add_argument("--learning-rate", type=float, default=DEFAULT_RATE, help="accuracy: Adamax's rate")
    parser.add_argument("--schedule", default="constant", choices=SCHEDULES,
                        help="accuracy and tune: the rate held, or cosine-decayed to zero over the epochs")
    parser.add_argument("--rates", nargs="+", type=float, default=[0.003, 0.01, 0.03], help="tune: rates tried")
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--out", default="docs")
    args = parser.parse_args(argv)
    results = ResultsFile(args.results)
    if args.experiment == "report":
        write_report(results.records(), args.out, " ".join(["python"] + sys.argv))
        return
    if args.experiment == "cost":
        def modes(width):
            return ["dense"] + [m for m in args.modes or COST_MODES if m != "dense" and (
                width <= FACTORED_MAX_WIDTH or m not in ("svd", "qr", "qr_full"))]

        cells = [(dict(experiment="cost", width=w, batch=BATCH, modes=modes(w)), lambda w=w: run_cost(w, modes(w)))
                 for w in args.widths or (256, 512, 1024, 2048, 4096, 8192)]
    elif args.experiment == "tune":
        epochs = args.epochs or TUNE_EPOCHS
        cells = [(dict(experiment="tune", dataset=d, width=w, mode=m, learning_rate=r, epochs=epochs,
                       schedule=args.schedule),
                  lambda d=d, w=w, m=m, r=r: run_tune(d, w, m, r, epochs, args.schedule))
                 for w in args.widths or (1000,) for d in args.datasets for m in args.modes or ("svd",) for r in args.rates]
    else:
        epochs = args.epochs or DEFAULT_EPOCHS
        cells = [(dict(experiment="accuracy", dataset=d, width=w, mode=m, seed=s, epochs=epochs,
                       learning_rate=args.learning_rate, schedule=args.schedule),
                  lambda d=d, w=w, m=m, s=s: run_accuracy(d, w, m, s, epochs, args.learning_rate, args.schedule))
                 for s in range(args.seeds) for w in args.widths or (1000, 2000, 4000)
                 for d in args.datasets for m in args.modes or CHEAP_MODES]
    run_cells(cells, results, lambda key: str(key))


if __name__ == "__main__":
    main()
