"""Size of saved `.keras` files: Dense vs SpectralDense with stored and with seeded φ, and
the round-trip error of each (save, load, predict).

    python benchmarks/checkpoint_sizes.py [--shape 784-500-500-10] [--out results/checkpoint_sizes.json]
"""

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import date

import keras
import numpy as np

from keras_spectral import SpectralDense

VARIANTS = {
    "Dense": None,
    "SpectralDense frozen φ (stored)": dict(eigenvectors="frozen"),
    "SpectralDense frozen φ (eigenvector_seed)": "seeded",
    "SpectralDense svd": dict(eigenvectors="svd"),
}


def build(shape, variant):
    n_in, *hidden, classes = shape
    keras.utils.set_random_seed(0)
    layers = [keras.Input((n_in,))]
    for i, units in enumerate(list(hidden) + [classes]):
        activation = "relu" if i < len(hidden) else None
        if variant is None:
            layers.append(keras.layers.Dense(units, activation=activation))
        elif variant == "seeded":
            layers.append(SpectralDense(units, activation=activation, eigenvector_seed=1000 + i))
        else:
            layers.append(SpectralDense(units, activation=activation, **variant))
    return keras.Sequential(layers)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="784-500-500-10")
    parser.add_argument("--out", default=os.path.join("results", "checkpoint_sizes.json"))
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split("-"))
    x = np.random.default_rng(0).normal(size=(256, shape[0])).astype("float32")
    rows = []
    for name, variant in VARIANTS.items():
        model = build(shape, variant)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "m.keras")
            model.save(path)
            loaded = keras.saving.load_model(path)
            error = float(np.abs(loaded.predict(x, verbose=0) - model.predict(x, verbose=0)).max())
            rows.append({"variant": name, "bytes": os.path.getsize(path), "round_trip_max_abs_error": error,
                         "parameters": int(model.count_params())})
    report = {
        "command": " ".join(["python"] + sys.argv), "shape": args.shape, "date": date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}", "keras": keras.__version__,
        "backend": keras.backend.backend(), "rows": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".partial", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(args.out + ".partial", args.out)
    dense = rows[0]["bytes"]
    print(f"| {args.shape} | .keras size | vs Dense | round-trip max abs error |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['variant']} | {row['bytes'] / 1e3:,.0f} kB | {row['bytes'] / dense:.3f} | {row['round_trip_max_abs_error']:.1e} |")


if __name__ == "__main__":
    main()
