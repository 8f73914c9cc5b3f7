"""The sparsity experiments rerun with the authors' training protocol and the current defaults.

    python benchmarks/pruning_protocol.py nodes   [--datasets mnist fashion_mnist] [--activations tanh relu]
                                                  [--seeds 5] [--methods ...] [--shard I/N]
    python benchmarks/pruning_protocol.py weights [--datasets mnist fashion_mnist] [--seeds 3] [--epochs 10]
    python benchmarks/pruning_protocol.py report  [--out docs]

`nodes` (Buffoni et al., Sci. Rep. 12, 11201, 2022): 784-500-10, Adam 1e-3, batch 200, up to
100 epochs with early stopping (validation loss on 20 % of the training set held out,
patience 5, best weights restored); test accuracy after removing 50-95 % of the hidden
nodes, for
  - dense_l1: Dense, nodes ranked by incoming L1 norm and removed after training;
  - spectral_post: SpectralDense, φ and both eigenvalue sets trained (current defaults),
    nodes removed by eigenvalue after training (the curves of every score are recorded);
  - spectral_filter: eigenvalues-only training (φ frozen), nodes removed by eigenvalue, then
    the compact network retrained with trainable φ (same early stopping);
  - spectral_during_fit: the package's recipe (docs/sparsity.md): φ and both sets trained
    with `EigenvaluePruning(PolynomialDecay(0, f))` over the first 10 epochs, then training
    goes on with the masks fixed (early stopping from epoch 10). One training per fraction
    f in `--recipe-fractions` (default 0.9 only);
  - dense_small: the reference every removal method is measured against, a Dense network
    trained from scratch at the width that is left (784-50-10 at 90 % removed), same
    early stopping; one training per fraction in `--recipe-fractions`.
`weights` (Chicchi et al., PRE 2021): 784-500-500-10 tanh, the weights below the p-th
percentile of |w| zero at every step (p = 50-98 %), `--epochs` epochs of Adam 1e-3: Dense
with `MagnitudeSparsity`, SpectralDense with QR eigenvectors (`eigenvectors="qr"`, the
authors' choice) and `kernel_sparsity=p`, and tfmot's `prune_low_magnitude`
(PolynomialDecay to p over the first two thirds of training, on tf_keras).

Cells are appended atomically to `results/pruning_protocol.jsonl` and skipped on a rerun;
seeds run outermost, so a stopped run covers every data set and activation. `report`
writes docs/pruning_protocol.md and its figure from that file alone.
"""

import argparse
import math
import sys

import keras

from keras_spectral import EigenvaluePruning, PolynomialDecay, compact, datasets, prune_nodes
from harness.baselines import prune_dense_nodes_by_incoming_l1
from keras_spectral.models import build_mlp
from harness.results import ResultsFile
from reproduce import parse_shard
from sparsity import FRACTIONS, _post_training_curves, accuracy, run_cells, run_weights

DEFAULT_RESULTS = "results/pruning_protocol.jsonl"
HIDDEN, BATCH, LR = 500, 200, 1e-3
MAX_EPOCHS, PATIENCE, VALIDATION = 100, 5, 0.2
PRUNE_EPOCHS = 10  # the recipe reaches its sparsity over these epochs
NODE_METHODS = ("dense_l1", "spectral_post", "spectral_filter", "spectral_during_fit", "dense_small")
PER_FRACTION_METHODS = ("spectral_during_fit", "dense_small")  # one training per recipe fraction
WEIGHT_METHODS = ("dense_percentile", "spectral_qr_percentile", "tfmot")
SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98)


def fit_early_stopped(model, data, callbacks=(), start_from_epoch=0):
    """Adam 1e-3, batch 200, up to 100 epochs, early stopping on the held-out 20 %'s loss
    (patience 5, best weights restored). Returns the epochs run."""
    (x, y), _ = data
    model.compile(keras.optimizers.Adam(LR), "sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(
        "val_loss", patience=PATIENCE, restore_best_weights=True, start_from_epoch=start_from_epoch
    )
    history = model.fit(x, y, batch_size=BATCH, epochs=MAX_EPOCHS, validation_split=VALIDATION,
                        callbacks=[*callbacks, stop], verbose=0).history
    return len(history["loss"])


def run_dense_l1(data, activation, **_):
    model = build_mlp(784, (HIDDEN,), 10, "dense", activation)
    epochs = fit_early_stopped(model, data)
    curve = {"0.0": accuracy(model, data)}
    for fraction in FRACTIONS:  # cumulative: each step removes more
        prune_dense_nodes_by_incoming_l1(model, fraction)
        curve[str(fraction)] = accuracy(model, data)
    return {"accuracy": curve, "epochs_run": epochs}


def run_spectral_post(data, activation, score, **_):
    model = build_mlp(784, (HIDDEN,), 10, "spectral_trainable", activation)
    epochs = fit_early_stopped(model, data)
    curves = _post_training_curves(model, data)
    return {"accuracy": curves[score], "accuracy_by_score": curves, "epochs_run": epochs}


def run_spectral_filter(data, activation, score, **_):
    model = build_mlp(784, (HIDDEN,), 10, "spectral_two_sets", activation)
    epochs = fit_early_stopped(model, data)
    without_retraining = _post_training_curves(model, data)
    trained = model.get_weights()
    curve, retrain_epochs = {"0.0": without_retraining[score]["0.0"]}, {}
    for fraction in FRACTIONS:
        model.set_weights(trained)
        prune_nodes(model, fraction=fraction, score=score)
        small = compact(model, eigenvectors="trainable")
        retrain_epochs[str(fraction)] = fit_early_stopped(small, data)
        curve[str(fraction)] = accuracy(small, data)
    return {"accuracy": curve, "accuracy_without_retraining_by_score": without_retraining,
            "epochs_run": epochs, "retrain_epochs_run": retrain_epochs}


def run_during_fit(data, activation, score, fractions, **_):
    (x, _), _ = data
    steps_per_epoch = math.ceil(len(x) * (1 - VALIDATION) / BATCH)
    curve, epochs = {}, {}
    for fraction in fractions:
        keras.backend.clear_session()
        model = build_mlp(784, (HIDDEN,), 10, "spectral_trainable", activation)
        schedule = PolynomialDecay(0.0, fraction, begin_step=0, end_step=PRUNE_EPOCHS * steps_per_epoch,
                                   frequency=steps_per_epoch // 4)
        pruning = EigenvaluePruning(schedule, score=score)
        epochs[str(fraction)] = fit_early_stopped(model, data, [pruning], start_from_epoch=PRUNE_EPOCHS)
        curve[str(fraction)] = accuracy(model, data)
        small = compact(model)
        small.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        curve_compact = accuracy(small, data)
        if abs(curve_compact - curve[str(fraction)]) > 1e-3:
            raise AssertionError(f"compact changed the accuracy: {curve_compact} vs {curve[str(fraction)]}")
    return {"accuracy": curve, "epochs_run": epochs}


def run_dense_small(data, activation, fractions, **_):
    curve, epochs = {}, {}
    for fraction in fractions:
        keras.backend.clear_session()
        model = build_mlp(784, (round(HIDDEN * (1 - fraction)),), 10, "dense", activation)
        epochs[str(fraction)] = fit_early_stopped(model, data)
        curve[str(fraction)] = accuracy(model, data)
    return {"accuracy": curve, "epochs_run": epochs}


NODE_RUNNERS = {
    "dense_l1": run_dense_l1,
    "spectral_post": run_spectral_post,
    "spectral_filter": run_spectral_filter,
    "spectral_during_fit": run_during_fit,
    "dense_small": run_dense_small,
}


def node_cells(args, data):
    cells = []
    for seed in range(args.seeds):
        for name in args.datasets:
            for activation in args.activations:
                for position, method in enumerate(args.methods or NODE_METHODS):
                    if position % args.shard[1] not in args.shard[0]:
                        continue
                    key = dict(experiment="nodes", protocol="authors", dataset=name, activation=activation,
                               seed=seed, method=method, score=args.score, max_epochs=MAX_EPOCHS,
                               patience=PATIENCE)
                    if method in PER_FRACTION_METHODS:
                        key["fractions"] = list(args.recipe_fractions)
                    fn = (lambda m=method, d=data[name], a=activation: NODE_RUNNERS[m](
                        d, a, score=args.score, fractions=args.recipe_fractions))
                    cells.append((key, fn))
    return cells


def weight_cells(args, data):
    cells = []
    for seed in range(args.seeds):
        for name in args.datasets:
            for sparsity in SPARSITIES:
                for method in args.methods or WEIGHT_METHODS:
                    key = dict(experiment="weights", protocol="authors", dataset=name, activation="tanh",
                               hidden=[HIDDEN, HIDDEN], seed=seed, method=method, epochs=args.epochs,
                               sparsity=sparsity)
                    fn = (lambda m=method, d=data[name], s=sparsity: run_weights(
                        m.replace("spectral_qr_percentile", "spectral_percentile"), d, s, args.epochs,
                        hidden=(HIDDEN, HIDDEN), eigenvectors="qr"))
                    cells.append((key, fn))
    return cells


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=("nodes", "weights", "report"))
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    parser.add_argument("--activations", nargs="+", default=["tanh", "relu"])
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, default=None, help="default: 5 (nodes), 3 (weights)")
    parser.add_argument("--epochs", type=int, default=10, help="weights: epochs per training")
    parser.add_argument("--score", default="sum")
    parser.add_argument("--recipe-fractions", nargs="+", type=float, default=[0.9])
    parser.add_argument("--shard", type=parse_shard, default=((0,), 1), metavar="I/N",
                        help="nodes: run only the methods whose position modulo N is one of I,...")
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--out", default="docs")
    args = parser.parse_args(argv)
    results = ResultsFile(args.results)
    if args.experiment == "report":
        from pruning_protocol_report import write_report

        write_report(results.records(), args.out, " ".join(["python"] + sys.argv), args.score)
        return
    data = {name: datasets.load_flat(name) for name in args.datasets}
    if args.experiment == "nodes":
        args.seeds = args.seeds or 5
        cells = node_cells(args, data)
    else:
        args.seeds = args.seeds or 3
        cells = weight_cells(args, data)
    run_cells(cells, results, lambda k: f"{k['dataset']} {k['activation']} seed {k['seed']} {k['method']}"
              + (f" p={k['sparsity']}" if "sparsity" in k else ""))


if __name__ == "__main__":
    main()
