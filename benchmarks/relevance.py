"""Input-feature relevance: the spectral ranking against the usual ones, and the L1 workflow.

    python benchmarks/relevance.py rank    [--datasets mnist fashion_mnist planted] [--seeds 2]
    python benchmarks/relevance.py penalty [--seeds 2]
    python benchmarks/relevance.py report  [--out docs]

`rank` (the feature-relevance literature's check, "keep the top k and retrain"): for each
data set and seed, rank the input features five ways,
  - spectral: `rank_inputs` of a SpectralDense network trained on eigenvalues only
    (input-H-10, φ frozen, L1 1e-4 on `eigenvalues_in`);
  - permutation: permutation importance (drop in validation accuracy when a feature's
    column is shuffled) of a Dense network of the same shape;
  - saliency: mean |∂loss/∂x| over the validation split, same Dense network;
  - variance: the feature's variance on the training split;
  - random: a random order;
then keep the top `k` % of the features by each ranking, train a fresh Dense network on
those columns only and record its test accuracy. The time each ranking costs is recorded
(for spectral and the two Dense-based rankings: training the network plus the ranking).
`planted` is a tabular set with known informative features (scikit-learn's
`make_classification`: 100 features, 10 informative, the rest noise, columns shuffled);
for it the fraction of the informative features in each ranking's top 10 is recorded too.

`penalty` (MNIST): SpectralDense 784-500-10 (φ frozen, or φ trained) with L1 of strength
0 / 1e-4 / 1e-3 / 1e-2 on `eigenvalues_in`, trained for 10 epochs; then `remove_inputs` of 50-95 %
of the pixels, test accuracy without retraining and after 2 epochs of training the
`compact(model, drop_inputs=True)` network on the kept columns. The report says how many
inputs can go at <= 1 point below the same mode without penalty and with every input.

Settings (network widths, epochs, penalty) were fixed beforehand, not tuned on test data;
the validation split (last 10 % of the training set) is used for early decisions only.
Adam 1e-3, batch 200, ReLU. Cells are appended atomically to `results/relevance.jsonl` and
skipped on a rerun; `report` writes docs/relevance.md and its figure from that file alone.
"""

import argparse
import os
import sys
import time

import keras
import numpy as np

from keras_spectral import SpectralDense, compact, datasets, kept_inputs, rank_inputs, remove_inputs
from harness.results import ResultsFile

from harness.cells import run_cells
from relevance_report import write_report
from relevance_settings import KEEP, REMOVE

DEFAULT_RESULTS = os.path.join("results", "relevance.jsonl")
HIDDEN, RANK_EPOCHS, EVAL_EPOCHS, BATCH = 256, 5, 5, 200
PENALTIES = (0.0, 1e-4, 1e-3, 1e-2)


def planted(seed):
    """100 features, 10 informative (indices returned), 90 noise; 12,000 / 3,000 split."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=15000, n_features=100, n_informative=10, n_redundant=0,
                               n_repeated=0, n_classes=4, n_clusters_per_class=2, class_sep=1.5,
                               shuffle=False, random_state=seed)
    rng = np.random.default_rng(seed)
    columns = rng.permutation(100)  # informative ones were 0..9
    rows = rng.permutation(len(y))  # make_classification orders the rows by class
    x, y = x[rows][:, columns].astype("float32"), y[rows]
    informative = np.flatnonzero(columns < 10)
    return ((x[:12000], y[:12000].astype("int32")), (x[12000:], y[12000:].astype("int32"))), informative


def load(name, seed):
    if name == "planted":
        return planted(seed)
    return datasets.load_flat(name), None


def split(data):
    (x, y), test = data
    cut = int(0.9 * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:]), test


def dense_net(n_in, classes):
    return keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(HIDDEN, activation="relu"),
                             keras.layers.Dense(classes, activation="softmax")])


def fit(model, x, y, epochs):
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    return model


def accuracy(model, x, y):
    return float(model.evaluate(x, y, batch_size=2000, verbose=0)[1])


def saliency(model, x, y):
    """Mean |∂loss/∂x| per feature (JAX or TensorFlow backend)."""
    loss = keras.losses.SparseCategoricalCrossentropy()
    if keras.backend.backend() == "jax":
        import jax

        grad = jax.grad(lambda inputs: loss(y, model(inputs)))
        return np.abs(np.asarray(grad(x))).mean(axis=0)
    import tensorflow as tf

    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        value = loss(y, model(inputs))
    return np.abs(tape.gradient(value, inputs).numpy()).mean(axis=0)


def permutation_importance(model, x, y, seed):
    """Drop in accuracy when one feature's column is shuffled, per feature."""
    rng = np.random.default_rng(seed)

    def score(inputs):
        return float(np.mean(np.argmax(model.predict_on_batch(inputs), axis=1) == y))

    base = score(x)
    drops = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        shuffled = x.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        drops[j] = base - score(shuffled)
    return drops


def rankings(data, seed, classes):
    """{name: (feature order, seconds)}."""
    (x, y), (xv, yv), _ = split(data)
    n_in = x.shape[1]
    out = {}
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    spectral = keras.Sequential([
        keras.Input((n_in,)),
        SpectralDense(HIDDEN, activation="relu", eigenvalues_in_regularizer=keras.regularizers.L1(1e-4)),
        SpectralDense(classes, activation="softmax"),
    ])
    fit(spectral, x, y, RANK_EPOCHS)
    out["spectral"] = (rank_inputs(spectral), time.perf_counter() - start)
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    reference = fit(dense_net(n_in, classes), x, y, RANK_EPOCHS)
    trained = time.perf_counter() - start
    start = time.perf_counter()
    out["permutation"] = (np.argsort(-permutation_importance(reference, xv, yv, seed), kind="stable"),
                          trained + time.perf_counter() - start)
    start = time.perf_counter()
    out["saliency"] = (np.argsort(-saliency(reference, xv, yv), kind="stable"), trained + time.perf_counter() - start)
    start = time.perf_counter()
    out["variance"] = (np.argsort(-x.var(axis=0), kind="stable"), time.perf_counter() - start)
    out["random"] = (np.random.default_rng(seed).permutation(n_in), 0.0)
    return out


def run_rank(name, seed):
    data, informative = load(name, seed)
    classes = int(data[0][1].max()) + 1
    (x, y), _, (xt, yt) = split(data)
    result = {"accuracy": {}, "seconds": {}, "top": {}}
    for method, (order, seconds) in rankings(data, seed, classes).items():
        result["seconds"][method] = round(seconds, 2)
        result["top"][method] = [int(i) for i in order[:20]]
        if informative is not None:
            result.setdefault("informative_in_top10", {})[method] = float(np.isin(order[:10], informative).mean())
        curve = {}
        for fraction in KEEP:
            columns = np.sort(order[: max(1, int(round(fraction * x.shape[1])))])
            keras.utils.set_random_seed(seed)
            model = fit(dense_net(len(columns), classes), x[:, columns], y, EVAL_EPOCHS)
            curve[str(fraction)] = accuracy(model, xt[:, columns], yt)
        result["accuracy"][method] = curve
    keras.utils.set_random_seed(seed)
    result["all_features"] = accuracy(fit(dense_net(x.shape[1], classes), x, y, EVAL_EPOCHS), xt, yt)
    if informative is not None:
        result["informative"] = [int(i) for i in informative]
    return result


def run_penalty(mode, penalty, seed):
    (x, y), _, (xt, yt) = split(datasets.load_flat("mnist"))
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((784,)),
        SpectralDense(500, activation="relu", eigenvectors=mode,
                      eigenvalues_in_regularizer=keras.regularizers.L1(penalty) if penalty else None),
        SpectralDense(10, activation="softmax", eigenvectors=mode),
    ])
    fit(model, x, y, 10)
    trained = model.get_weights()
    result = {"full": accuracy(model, xt, yt), "removed": {}, "retrained": {}}
    for fraction in REMOVE:
        model.set_weights(trained)
        remove_inputs(model, fraction=fraction)
        result["removed"][str(fraction)] = accuracy(model, xt, yt)
        kept = kept_inputs(model)
        small = compact(model, drop_inputs=True)
        fit(small, x[:, kept], y, 2)
        result["retrained"][str(fraction)] = accuracy(small, xt[:, kept], yt)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=("rank", "penalty", "report"))
    parser.add_argument("--datasets", nargs="+", default=["planted", "mnist", "fashion_mnist"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--out", default="docs")
    args = parser.parse_args(argv)
    results = ResultsFile(args.results)
    if args.experiment == "report":
        write_report(results.records(), args.out, " ".join(["python"] + sys.argv))
        return
    if args.experiment == "rank":
        cells = [(dict(experiment="rank", dataset=name, seed=seed, hidden=HIDDEN, rank_epochs=RANK_EPOCHS,
                       eval_epochs=EVAL_EPOCHS), lambda n=name, s=seed: run_rank(n, s))
                 for seed in range(args.seeds) for name in args.datasets]
    else:
        cells = [(dict(experiment="penalty", dataset="mnist", eigenvectors=mode, penalty=penalty, seed=seed),
                  lambda m=mode, p=penalty, s=seed: run_penalty(m, p, s))
                 for seed in range(args.seeds) for mode in ("frozen", "trainable") for penalty in PENALTIES]
    run_cells(cells, results, lambda key: str(key), time_field="total_seconds")


if __name__ == "__main__":
    main()
