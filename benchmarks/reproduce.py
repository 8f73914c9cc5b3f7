"""Reproduce the dense-vs-spectral comparison of Chicchi et al. (PRE 2021) on a grid.

    python benchmarks/reproduce.py grid   [--datasets mnist fashion_mnist cifar10]
                                          [--widths 50 100 200 300 500] [--methods ...]
                                          [--seeds 3] [--max-epochs 90] [--patience 8]
                                          [--shard I/N | I,J,.../N]
    python benchmarks/reproduce.py report [--out docs]

Networks: input - W - W - 10 (ReLU), for each of `GRID_METHODS` (Dense; one eigenvalue
set; two sets with φ frozen; two sets + SVD; + QR; + trainable φ) or any other method of
`keras_spectral.models.METHODS` named with `--methods`.
Training as the authors': Adamax, batch 200, early stopping on validation accuracy
(patience 8, best weights restored) with 20 % of the training set held out, up to 90
epochs. The learning rate of each (data set, method) is tuned first, on the validation
split only (width 100, seed 0, rates 1e-3 / 3e-3 / 1e-2 / 3e-2 / 1e-1, up to 20
epochs). A rate tuned at width 100 can be too large for wider networks: a cell that ends
more than 2 points of validation accuracy below the same cell one width smaller is also
trained at the next smaller rate, and the run with the better validation accuracy is kept
(both rates are recorded). The test set is used for nothing but the reported accuracy.

Cells run seed-major (every data set, width and method for seed 0 before seed 1), so an
interrupted grid still covers everything. Each finished cell (tuning or grid) is appended
atomically to `results/reproduce.jsonl` and skipped on a rerun; `--shard I/N` lets N
processes share the grid (each owns whole (data set, method) pairs, tuning included; on
2 cores two single-threaded processes finish about 1.4x sooner than one), and
`--shard I,J/N` gives one process several shares, to rebalance a stopped run. `report`
renders the tables and plots from the results file alone.
"""

import argparse
import os
import platform
import sys
import time
from datetime import date

import keras

from keras_spectral import datasets
from keras_spectral.models import DESCRIPTIONS, METHODS, build_mlp, trainable_count
from harness.results import ResultsFile

DEFAULT_RESULTS = os.path.join("results", "reproduce.jsonl")
LEARNING_RATES = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
TUNE_WIDTH, TUNE_EPOCHS, TUNE_PATIENCE = 100, 20, 4
BATCH = 200
WIDTH_MARGIN = 0.02  # validation accuracy a wider cell may lose before its rate is rechecked
# The full grid. Its methods are the paper's six; the Kronecker-basis variants run on request.
GRID_DATASETS = ("mnist", "fashion_mnist", "cifar10")
GRID_WIDTHS = (50, 100, 200, 300, 500)
GRID_METHODS = ("dense", "spectral_one_set", "spectral_two_sets", "spectral_svd", "spectral_qr", "spectral_trainable")
GRID_SEEDS = 3
GRID_SIZE = len(GRID_DATASETS) * len(GRID_WIDTHS) * len(GRID_METHODS) * GRID_SEEDS
# Methods whose definition changed after the first grid: their records carry `revision`,
# so older records stay apart and are not reused. Revision 2 (2026-11-28): initializers
# of trained eigenvectors, Kronecker bases by default, the whole-R QR, rank-10 φ.
# Revision 3 of `spectral_svd` (same day): back to the eigenvalues-only initializers
# (revision 2 gave it the trained-φ ones), Kronecker bases.
REVISIONS = {
    "spectral_svd": 3,
    **{method: 2 for method in ("spectral_qr", "spectral_qr_full", "spectral_trainable",
                                "spectral_lowrank", "spectral_qr_kronecker")},
}
REVISED_METHODS = ("spectral_svd", "spectral_qr", "spectral_qr_full", "spectral_trainable", "spectral_lowrank")


def method_key(method):
    """The key fields naming a method (and its revision, where it changed)."""
    return dict(method=method, **({"revision": REVISIONS[method]} if method in REVISIONS else {}))


def fit_and_score(model, data, lr, max_epochs, patience, callbacks=()):
    """Train `model` by the grid's protocol (Adamax, batch 200, early stopping on validation
    accuracy with the best weights restored, 20 % held out) and score the restored model.
    Returns the scores and the Keras history."""
    (x, y), (xt, yt) = data
    model.compile(keras.optimizers.Adamax(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping("val_accuracy", patience=patience, restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=BATCH, epochs=max_epochs, validation_split=0.2,
                        callbacks=[stop, *callbacks], verbose=0).history
    seconds = time.perf_counter() - start
    return {
        "val_accuracy": float(max(history["val_accuracy"])),
        "test_accuracy": float(model.evaluate(xt, yt, batch_size=2000, verbose=0)[1]),
        "epochs_run": len(history["loss"]),
        "train_seconds": round(seconds, 1),
    }, history


def train(data, method, width, lr, seed, max_epochs, patience):
    keras.utils.set_random_seed(seed)
    model = build_mlp(data[0][0].shape[1], (width, width), 10, method)
    values, _ = fit_and_score(model, data, lr, max_epochs, patience)
    return dict(values, trainable_params=trainable_count(model))


def stamp(values):
    values["machine"] = f"{os.cpu_count()} CPU cores, {platform.machine()}, keras {keras.__version__} ({keras.backend.backend()})"
    values["date"] = date.today().isoformat()
    return values


def tuned_rate(results, dataset, method, data):
    """The learning rate with the best validation accuracy, tuning what is missing."""
    best = None
    for lr in LEARNING_RATES:
        key = dict(experiment="tune", dataset=dataset, **method_key(method), lr=lr, width=TUNE_WIDTH, seed=0)
        record = results.get(key)
        if record is None:
            record = stamp(train(data, method, TUNE_WIDTH, lr, 0, TUNE_EPOCHS, TUNE_PATIENCE))
            results.append(key, record)
            print(f"  tune {dataset} {method} lr={lr}: val {record['val_accuracy']:.4f}", flush=True)
        if best is None or record["val_accuracy"] > best[1]:
            best = (lr, record["val_accuracy"])
    return best[0]


def in_shard(args, dataset, method):
    """Whether this process owns the (data set, method) pair; pairs alternate across shards."""
    indices, count = args.shard
    position = args.datasets.index(dataset) + args.methods.index(method)
    return position % count in indices


def run_grid(args, results):
    cells = [
        dict(experiment="grid", dataset=name, width=width, **method_key(method), seed=seed,
             max_epochs=args.max_epochs, patience=args.patience)
        for seed in range(args.seeds) for name in args.datasets
        for width in args.widths for method in args.methods
        if in_shard(args, name, method)
    ]
    todo = results.missing(cells)
    print(f"{len(cells) - len(todo)} of {len(cells)} cells already done; {len(todo)} to run.", flush=True)
    data = {name: datasets.load_flat(name) for name in dict.fromkeys(key["dataset"] for key in todo)}
    for i, key in enumerate(todo, 1):
        name, width, method, seed = (key[k] for k in ("dataset", "width", "method", "seed"))
        keras.backend.clear_session()
        lr = tuned_rate(results, name, method, data[name])
        values = train_cell(results, key, args, data[name], lr)
        results.append(key, values)
        print(f"[{i}/{len(todo)}] {name} W={width} {method} seed {seed}: test {values['test_accuracy']:.4f}, "
              f"{values['trainable_params']:,} params, {values['epochs_run']} epochs, {values['train_seconds']} s", flush=True)


def train_cell(results, key, args, data, lr):
    """Train one grid cell at the tuned rate; if it ends more than `WIDTH_MARGIN` below
    the same cell one width smaller in validation accuracy (a rate tuned at width 100 that
    is too large for a wider network), also train at the next smaller rate of the sweep
    and keep the run with the better validation accuracy. The test set plays no part."""
    def run(rate):
        values = stamp(train(data, key["method"], key["width"], rate, key["seed"], args.max_epochs, args.patience))
        values["lr"] = rate
        return values

    values = run(lr)
    smaller = smaller_width_record(results, key, args.widths)
    lower = [rate for rate in LEARNING_RATES if rate < lr]
    if smaller is None or not lower or values["val_accuracy"] >= smaller["val_accuracy"] - WIDTH_MARGIN:
        return values
    print(f"  W={key['width']} {key['method']}: val {values['val_accuracy']:.4f} at lr={lr} is below "
          f"W={smaller['key']['width']}'s {smaller['val_accuracy']:.4f}; trying lr={lower[-1]}", flush=True)
    retry = run(lower[-1])
    kept, dropped = (retry, values) if retry["val_accuracy"] > values["val_accuracy"] else (values, retry)
    kept["other_lr_tried"] = {k: dropped[k] for k in ("lr", "val_accuracy", "train_seconds")}
    return kept


def smaller_width_record(results, key, widths):
    """The finished record of the same cell one width down, or None."""
    position = widths.index(key["width"])
    if position == 0:
        return None
    return results.get(dict(key, width=widths[position - 1]))


def parse_shard(text):
    """`I/N` or `I,J,.../N`: the shares (0-based) of N this process runs."""
    try:
        shares, count = text.split("/")
        indices, count = tuple(int(v) for v in shares.split(",")), int(count)
    except ValueError:
        indices, count = (-1,), 0
    if not all(0 <= index < count for index in indices):
        raise argparse.ArgumentTypeError(
            "Received an invalid value for `--shard`, expected I/N or I,J,.../N with 0 <= I < N. "
            f"Received: {text}"
        )
    return indices, count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("grid", "report"))
    parser.add_argument("--datasets", nargs="+", default=list(GRID_DATASETS))
    parser.add_argument("--widths", nargs="+", type=int, default=list(GRID_WIDTHS))
    parser.add_argument("--methods", nargs="+", default=list(GRID_METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", type=int, default=GRID_SEEDS)
    parser.add_argument("--max-epochs", type=int, default=90)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--shard", type=parse_shard, default=((0,), 1), metavar="I/N",
                        help="run only the I-th of N shares of the grid (0-based; I,J,.../N for several)")
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--out", default="docs")
    args = parser.parse_args(argv)
    results = ResultsFile(args.results)
    if args.command == "report":
        from reproduce_report import write_report

        write_report(results.records(), args.out, " ".join(["python"] + sys.argv), DESCRIPTIONS, GRID_METHODS, GRID_SIZE,
                     REVISIONS)
    else:
        run_grid(args, results)


if __name__ == "__main__":
    main()
