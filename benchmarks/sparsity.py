"""Sparsity experiments: spectral node pruning and weight-level sparsity vs the baselines.

    python benchmarks/sparsity.py nodes   [--datasets mnist fashion_mnist] [--activations tanh relu] [--seeds 5] [--epochs 5]
    python benchmarks/sparsity.py weights [--datasets mnist fashion_mnist] [--seeds 5] [--epochs 3]
    python benchmarks/sparsity.py scope   [--seeds 3]
    python benchmarks/sparsity.py report  [--out docs]

`nodes` (Buffoni et al., Sci. Rep. 2022): 784-500-10 networks; accuracy after removing
50/70/80/90/95 % of the hidden nodes for
  - dense_l1: Dense network, nodes ranked by incoming L1 norm, removed after training;
  - spectral_post: SpectralDense with both eigenvalue sets and φ trained, nodes ranked by
    eigenvalue (every score in `STUDIED_SCORES`), removed after training;
  - spectral_filter: eigenvalues-only training, nodes ranked by eigenvalue and removed,
    then the compact network retrained with trainable eigenvectors (the "alternate"
    mode of Buffoni et al.) for `--retrain-epochs` epochs (cheap: the network is small).
`weights` (Chicchi et al., PRE 2021): 784-500-10 tanh networks whose weights below the
p-th percentile of |w| are zero at every step (p = 50/80/90/95/98 %): Dense with the
`MagnitudeSparsity` constraint, SpectralDense (trainable φ, two eigenvalue sets) with
`kernel_sparsity`, and tfmot's `prune_low_magnitude` (PolynomialDecay to p over the first
two thirds of training, on tf_keras).

`scope`: 784-500-500-10 tanh networks (φ and both eigenvalue sets trained) on MNIST; accuracy
after removing 50-95 % of the hidden nodes per layer (`scope="layer"`) or ranked across
both hidden layers together (`scope="global"`), for every score.

Adam 1e-3, batch 200. Results are appended, one finished cell at a time, to
`results/sparsity.jsonl` (atomic rewrites); a rerun skips finished cells. `report`
renders markdown tables and PNG plots from that file alone.
"""

import argparse
import os
import sys

import keras
import numpy as np

from keras_spectral import compact, datasets, prune_nodes
from harness.baselines import (
    prune_dense_nodes_by_incoming_l1,
    tfmot_magnitude_pruned_mlp,
    weight_sparsity,
)
from keras_spectral.layers import SpectralDense
from keras_spectral.models import build_mlp
from harness.results import ResultsFile
from keras_spectral.weight_sparsity import MagnitudeSparsity

from harness import cells as cells_lib

FRACTIONS = (0.5, 0.7, 0.8, 0.9, 0.95)
SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98)
NODE_METHODS = ("dense_l1", "spectral_post", "spectral_filter")
WEIGHT_METHODS = ("dense_percentile", "spectral_percentile", "tfmot")
DEFAULT_RESULTS = os.path.join("results", "sparsity.jsonl")
HIDDEN = 500
# The node scores this study compared (results/sparsity.jsonl); keras_spectral.importance
# has more since (l2, bn, random), which its MLPs without BatchNormalization cannot all use.
STUDIED_SCORES = ("in", "out", "sum", "product", "l1")
BATCH = 200


def compile_and_fit(model, data, epochs, callbacks=()):
    (x, y), _ = data
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return model


def accuracy(model, data):
    _, (x, y) = data
    return float(model.evaluate(x, y, batch_size=2000, verbose=0)[1])


# --- experiment 1: node removal ----------------------------------------------------------


def run_dense_l1(data, activation, epochs, score, retrain_epochs=None):
    model = compile_and_fit(build_mlp(784, (HIDDEN,), 10, "dense", activation), data, epochs)
    result = {"0.0": accuracy(model, data)}
    for fraction in FRACTIONS:  # removal is cumulative: each step removes more
        prune_dense_nodes_by_incoming_l1(model, fraction)
        result[str(fraction)] = accuracy(model, data)
    return {"accuracy": result}


def _post_training_curves(model, data):
    """Accuracy at each fraction removed, per score, from the same trained weights."""
    trained = model.get_weights()
    curves = {}
    for score in STUDIED_SCORES:
        model.set_weights(trained)
        curves[score] = {"0.0": accuracy(model, data)}
        for fraction in FRACTIONS:
            prune_nodes(model, fraction=fraction, score=score)
            curves[score][str(fraction)] = accuracy(model, data)
    model.set_weights(trained)
    return curves


def run_spectral_post(data, activation, epochs, score, retrain_epochs=None):
    model = build_mlp(784, (HIDDEN,), 10, "spectral_trainable", activation)
    compile_and_fit(model, data, epochs)
    curves = _post_training_curves(model, data)
    return {"accuracy": curves[score], "accuracy_by_score": curves}


def run_spectral_filter(data, activation, epochs, score, retrain_epochs):
    model = build_mlp(784, (HIDDEN,), 10, "spectral_two_sets", activation)
    compile_and_fit(model, data, epochs)
    no_retraining = _post_training_curves(model, data)
    trained = model.get_weights()
    result = {"0.0": no_retraining[score]["0.0"]}
    for fraction in FRACTIONS:
        model.set_weights(trained)
        prune_nodes(model, fraction=fraction, score=score)
        small = compact(model, eigenvectors="trainable")
        compile_and_fit(small, data, retrain_epochs)
        result[str(fraction)] = accuracy(small, data)
    return {"accuracy": result, "accuracy_without_retraining_by_score": no_retraining}


def run_scope(data, epochs):
    model = build_mlp(784, (HIDDEN, HIDDEN), 10, "spectral_trainable", "tanh")
    compile_and_fit(model, data, epochs)
    trained = model.get_weights()
    curves = {}
    for scope in ("layer", "global"):
        for score in STUDIED_SCORES:
            model.set_weights(trained)
            curve = curves.setdefault(scope, {}).setdefault(score, {"0.0": accuracy(model, data)})
            for fraction in FRACTIONS:
                prune_nodes(model, fraction=fraction, score=score, scope=scope, normalizer=None)  # raw scores, as recorded
                curve[str(fraction)] = accuracy(model, data)
    return {"accuracy_by_scope": curves}


NODE_RUNNERS = {
    "dense_l1": run_dense_l1,
    "spectral_post": run_spectral_post,
    "spectral_filter": run_spectral_filter,
}


# --- experiment 2: weight percentile -----------------------------------------------------


def run_weights(method, data, sparsity, epochs, hidden=(HIDDEN,), eigenvectors="trainable"):
    """Train one weight-sparsity cell: `hidden` tanh layers, `method` one of
    `WEIGHT_METHODS` (the spectral one with `eigenvectors`)."""
    if method == "tfmot":
        (x, _), _ = data
        steps = epochs * int(np.ceil(len(x) / BATCH))
        end_step = max(1, (2 * steps) // 3)
        model, callbacks = tfmot_magnitude_pruned_mlp(
            784, tuple(hidden), 10, sparsity, end_step=end_step, activation="tanh",
            frequency=max(1, min(100, end_step // 10)),
        )
        (x, y), (xt, yt) = data
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=callbacks)
        acc = float(model.evaluate(xt, yt, batch_size=2000, verbose=0)[1])
        import tensorflow_model_optimization as tfmot

        stripped = tfmot.sparsity.keras.strip_pruning(model)
        kernels = [layer.get_weights()[0] for layer in stripped.layers]
        return {"accuracy": acc, "measured_sparsity": weight_sparsity(kernels)}
    if method == "dense_percentile":
        layers = [keras.layers.Dense(width, activation="tanh", kernel_constraint=MagnitudeSparsity(sparsity))
                  for width in hidden]
        layers.append(keras.layers.Dense(10, activation="softmax", kernel_constraint=MagnitudeSparsity(sparsity)))
    else:
        options = dict(eigenvectors=eigenvectors, kernel_sparsity=sparsity)
        layers = [SpectralDense(width, activation="tanh", **options) for width in hidden]
        layers.append(SpectralDense(10, activation="softmax", **options))
    model = compile_and_fit(keras.Sequential([keras.Input((784,))] + layers), data, epochs)
    kernels = [np.asarray(keras.ops.convert_to_numpy(layer.kernel)) for layer in model.layers]
    return {"accuracy": accuracy(model, data), "measured_sparsity": weight_sparsity(kernels)}


# --- driver ------------------------------------------------------------------------------


def run_cells(cells, results, describe):
    cells_lib.run_cells(cells, results, describe, summary)


def summary(values):
    if "accuracy_by_scope" in values:
        return " ".join(f"{scope}@90%: {curves['sum']['0.9']:.3f}" for scope, curves in values["accuracy_by_scope"].items())
    acc = values["accuracy"]
    if isinstance(acc, dict):
        return " ".join(f"{k}:{v:.3f}" for k, v in acc.items())
    return f"acc {acc:.4f}, sparsity {values['measured_sparsity']:.3f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=("nodes", "weights", "scope", "report"))
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    parser.add_argument("--activations", nargs="+", default=["tanh", "relu"])
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="default: 5 (nodes), 3 (weights)")
    parser.add_argument("--retrain-epochs", type=int, default=15, help="nodes: retraining after the filter")
    parser.add_argument("--score", default="sum", choices=STUDIED_SCORES, help="node score for the main curves")
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--out", default="docs", help="report: where the tables and plots go")
    args = parser.parse_args(argv)
    results = ResultsFile(args.results)
    if args.experiment == "report":
        from sparsity_report import write_report

        write_report(results.records(), args.out, " ".join(["python"] + sys.argv), score=args.score)
        return
    data = {name: datasets.load_flat(name) for name in args.datasets}
    cells = []
    if args.experiment == "nodes":
        epochs = args.epochs or 5
        # Seeds outermost, so a run stopped early has every data set and activation.
        for seed in range(args.seeds):
            for name in args.datasets:
                for activation in args.activations:
                    for method in args.methods or NODE_METHODS:
                        key = dict(experiment="nodes", dataset=name, activation=activation, seed=seed,
                                   method=method, epochs=epochs, score=args.score)
                        if method == "spectral_filter":
                            key["retrain_epochs"] = args.retrain_epochs
                        fn = (lambda m=method, d=data[name], a=activation:
                              NODE_RUNNERS[m](d, a, epochs, args.score, args.retrain_epochs))
                        cells.append((key, fn))
    elif args.experiment == "scope":
        epochs = args.epochs or 5
        for seed in range(args.seeds):
            key = dict(experiment="scope", dataset="mnist", activation="tanh", seed=seed, epochs=epochs)
            cells.append((key, lambda d=data["mnist"]: run_scope(d, epochs)))
    else:
        epochs = args.epochs or 3
        for seed in range(args.seeds):
            for name in args.datasets:
                for sparsity in SPARSITIES:
                    for method in args.methods or WEIGHT_METHODS:
                        key = dict(experiment="weights", dataset=name, activation="tanh", seed=seed,
                                   method=method, epochs=epochs, sparsity=sparsity)
                        fn = (lambda m=method, d=data[name], s=sparsity: run_weights(m, d, s, epochs))
                        cells.append((key, fn))
    run_cells(cells, results, lambda k: " ".join(f"{v}" for v in k.values()))


if __name__ == "__main__":
    main()
