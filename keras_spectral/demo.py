"""Demo: compress a trained Keras model; and Dense vs SpectralDense on MNIST, side by side.

    python -m keras_spectral.demo [--epochs 5] [--width 500] [--data-dir DIR] [--out demo_output]

Part 1, the paper's comparison, trains a 784-W-W-10 ReLU network with ordinary Dense layers, with SpectralDense
eigenvalues only (one set, then two sets), with two sets plus an SVD-decomposed
eigenvector block (parameter count still linear in width) and with two sets plus a QR
decomposed block whose whole R factor trains (the authors' QR, at the package's default
initialization), printing one line per epoch while each trains, then a table of test
accuracy, trainable parameters and training time. It ends by writing two pictures of
the eigenvalues-only (two sets) network into `--out`: the input-relevance map
(`|λ_in|` of the first layer as a 28x28 image) and the eigenvalue spectrum of each layer
(with matplotlib installed). Data come from `data_dir` or `$KERAS_SPECTRAL_DATA`; without
local MNIST and without web access it says so and runs on scikit-learn's bundled 8x8
digits instead. (`scripts/demo.sh` also hides the backends' start-up log noise.)

Part 2, the practitioner's job, takes the trained Dense network and compresses it to a
quarter of its multiply-adds (`--keep`): `spectralize`, prune by the first-order Taylor
criterion while fine-tuning for one epoch (`EigenvaluePruning`), `compact`, `collapse`,
then prints the pruning report and a before/after table (test accuracy, parameters,
multiply-adds, prediction throughput) and exports a SavedModel (TensorFlow and JAX
backends) into `--out`.
"""

import argparse
import math
import os
import time

import keras

from keras_spectral import datasets
from keras_spectral.models import DESCRIPTIONS, build_mlp, trainable_count

DEMO_METHODS = ("dense", "spectral_one_set", "spectral_two_sets", "spectral_svd", "spectral_qr_full")
PICTURED_METHOD = "spectral_two_sets"  # eigenvalues carry training there, so |λ_in| ranks the inputs


def load_data(data_dir):
    """MNIST if it can be had, else the bundled digits; returns (data, description,
    epoch multiplier: the small fallback set gets 10x the epochs for a similar number of
    steps)."""
    try:
        return datasets.load_flat("mnist", data_dir=data_dir), "MNIST (60,000 train / 10,000 test)", 1
    except datasets.DatasetError as error:
        print(f"MNIST is not available ({error})")
        print("-> running on scikit-learn's bundled 8x8 handwritten digits instead.\n")
        return datasets.load_digits_fallback(), "scikit-learn digits (1,500 train / 297 test)", 10


def run(method, data, width, epochs, batch_size, seed):
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = build_mlp(x_train.shape[1], (width, width), 10, method)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=2)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    return accuracy, trainable_count(model), seconds, model


def write_pictures(model, out_dir, n_in):
    """The relevance map and the spectrum of `model` as PNGs in `out_dir`; returns the paths
    (none without matplotlib)."""
    try:
        from keras_spectral import plots
    except ImportError:
        return []
    try:
        side = math.isqrt(n_in)
        paths = [plots.save(plots.relevance_map(model, (side, side)), os.path.join(out_dir, "relevance_map.png")),
                 plots.save(plots.spectrum(model), os.path.join(out_dir, "spectrum.png"))]
    except ImportError as error:
        print(f"(no pictures: {error})")
        return []
    return paths


def throughput(model, x, repeats=3):
    """Samples per second of `model.predict` on `x` (batch 1000, best of `repeats`)."""
    model.predict(x[:1000], batch_size=1000, verbose=0)  # builds the predict function
    best = min(_timed(lambda: model.predict(x, batch_size=1000, verbose=0)) for _ in range(repeats))
    return len(x) / best


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def compress(model, data, keep, batch_size, out_dir, epochs=1):
    """The practitioner's job on a trained, compiled Keras `model`: prune to `keep` of its
    multiply-adds while fine-tuning `epochs` (reached at 60 % of them), compact, collapse,
    report and export. Returns the served model."""
    import keras_spectral as ks

    (x_train, y_train), (x_test, y_test) = data
    spectral = ks.spectralize(model)  # exact copy, compiled like `model`
    sample = (x_train[:2000], y_train[:2000])  # batches whose loss gradients rank the nodes
    pruning = ks.EigenvaluePruning(
        ks.PolynomialDecay(0.0, 1.0 - keep, begin_epoch=0, end_epoch=0.6 * epochs),
        budget="multiply_adds", scope="global", score="taylor", data=sample,
    )
    start = time.perf_counter()
    spectral.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, callbacks=[pruning], verbose=2)
    seconds = time.perf_counter() - start
    ks.pruning_report(spectral).summary()
    served = ks.collapse(ks.compact(spectral))  # plain Dense layers, compiled like `model`
    rows = []
    for name, m in (("trained Dense model", model), ("pruned, compacted, collapsed", served)):
        cost = ks.model_cost(m)
        accuracy = m.evaluate(x_test, y_test, batch_size=1000, verbose=0)[1]
        rows.append((name, accuracy, cost.parameters, cost.multiply_adds, throughput(m, x_test)))
    header = f"| {'model':30s} | test acc | parameters | multiply-adds | predictions/s |"
    print("\n" + header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for name, accuracy, params, macs, speed in rows:
        print(f"| {name:30s} | {accuracy * 100:7.2f}% | {params:10,d} | {macs:13,d} | {speed:13,.0f} |")
    print(f"(pruning while fine-tuning: {seconds:.1f} s; multiply-adds per sample; throughput: "
          f"model.predict, batch 1000, best of 3)")
    if keras.backend.backend() in ("tensorflow", "jax"):
        path = os.path.join(out_dir, "savedmodel")
        served.export(path, format="tf_saved_model", verbose=0)
        print(f"SavedModel of the compressed model: {path}")
    return served


def main(argv=None):
    parser = argparse.ArgumentParser(description="Dense vs SpectralDense on MNIST.")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--width", type=int, default=500, help="hidden-layer width")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help=f"data directory (default ${datasets.ENV_VAR})")
    parser.add_argument("--out", default="demo_output", help="folder for the pictures and the SavedModel")
    parser.add_argument("--keep", type=float, default=0.25, help="fraction of multiply-adds kept (default 0.25)")
    args = parser.parse_args(argv)

    data, description, multiplier = load_data(args.data_dir)
    epochs = args.epochs * multiplier
    n_in = data[0][0].shape[1]
    print(
        f"Data: {description}; network {n_in}-{args.width}-{args.width}-10 (ReLU), "
        f"Adam 1e-3, batch {args.batch_size}, {epochs} epochs, backend "
        f"{keras.backend.backend()}\n"
    )
    header = f"| {'method':58s} | test acc | trainable params | % of Dense | train time |"
    rows = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    dense_params = pictured = trained = None
    for i, method in enumerate(DEMO_METHODS, 1):
        print(f"[{i}/{len(DEMO_METHODS)}] {DESCRIPTIONS[method]}", flush=True)
        accuracy, params, seconds, model = run(method, data, args.width, epochs, args.batch_size, args.seed)
        if method == PICTURED_METHOD:
            pictured = model
        if method == "dense":
            trained = model
        dense_params = dense_params or params
        rows.append(
            f"| {DESCRIPTIONS[method]:58s} | {accuracy * 100:7.2f}% | {params:16,d} | "
            f"{100 * params / dense_params:9.2f}% | {seconds:8.1f} s |"
        )
        print(f"    test accuracy {accuracy * 100:.2f}%\n", flush=True)
    print("\n".join(rows), flush=True)
    paths = write_pictures(pictured, args.out, n_in) if pictured is not None else []
    if paths:
        print(f"\nPictures of the eigenvalues-only (two sets) network: {', '.join(paths)}")
    print(f"\nCompressing the trained Dense network to {args.keep:.0%} of its multiply-adds "
          f"(Taylor criterion, global ranking, {multiplier} epoch(s) of fine-tuning):", flush=True)
    compress(trained, data, args.keep, args.batch_size, args.out, epochs=multiplier)


if __name__ == "__main__":
    main()
