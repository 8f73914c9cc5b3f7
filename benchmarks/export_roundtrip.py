"""Round-trip error of the serving routes: SavedModel exported from a trained spectral
model (kept spectral, collapsed to Dense, pruned + compacted + collapsed, and trained on
JAX), loaded with `tf.saved_model.load` in a process that never imports keras_spectral.

    python benchmarks/export_roundtrip.py [--out results/export_roundtrip.json]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date

import keras
import numpy as np

from keras_spectral import SpectralDense, collapse, compact, datasets, prune_nodes

SERVE = r"""
import sys, numpy as np, tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
np.save(sys.argv[3], served.serve(np.load(sys.argv[2])).numpy())
assert not any(m.startswith("keras_spectral") for m in sys.modules)
"""
TRAIN_ON_JAX = r"""
import sys, numpy as np, keras
from keras_spectral import datasets
from keras_spectral.models import build_mlp
(x, y), (xt, _) = datasets.load_flat("mnist")
keras.utils.set_random_seed(0)
model = build_mlp(784, (500, 500), 10, "spectral_svd")
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x, y, batch_size=200, epochs=1, verbose=0)
model.export(sys.argv[1], format="tf_saved_model", verbose=False)
np.save(sys.argv[2], model.predict(xt[:2000], verbose=0))
"""


def served(path, x, folder):
    inputs, outputs = os.path.join(folder, "x.npy"), os.path.join(folder, "y.npy")
    np.save(inputs, x)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", SERVE, path, inputs, outputs], check=True, env=env, cwd=folder)
    return np.load(outputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("results", "export_roundtrip.json"))
    args = parser.parse_args(argv)
    (x, y), (xt, _) = datasets.load_flat("mnist")
    xt = xt[:2000]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((784,)), SpectralDense(500, activation="relu", eigenvectors="svd"),
         SpectralDense(500, activation="relu"), SpectralDense(10, activation="softmax", eigenvectors="qr")]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=200, epochs=1, verbose=0)
    reference = model.predict(xt, verbose=0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for route, exported in (("spectral kept", model), ("collapsed to Dense", collapse(model))):
            path = os.path.join(folder, route.replace(" ", "_"))
            exported.export(path, format="tf_saved_model", verbose=False)
            rows.append({"route": route, "max_abs_error": float(np.abs(served(path, xt, folder) - reference).max())})
        prune_nodes(model, fraction=0.5, score="sum")
        pruned_reference = model.predict(xt, verbose=0)
        small = collapse(compact(model))
        path = os.path.join(folder, "compacted")
        small.export(path, format="tf_saved_model", verbose=False)
        rows.append({"route": "pruned 50 %, compacted, collapsed (vs the masked model)",
                     "max_abs_error": float(np.abs(served(path, xt, folder) - pruned_reference).max()),
                     "parameters": int(small.count_params()), "parameters_before": int(model.count_params())})
        path, expected = os.path.join(folder, "jax"), os.path.join(folder, "jax.npy")
        env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
        subprocess.run([sys.executable, "-c", TRAIN_ON_JAX, path, expected], check=True, env=env)
        rows.append({"route": "trained and exported on JAX",
                     "max_abs_error": float(np.abs(served(path, xt, folder) - np.load(expected)).max())})
    report = {"command": " ".join(["python"] + sys.argv), "date": date.today().isoformat(),
              "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, CPU only (no GPU)",
              "keras": keras.__version__, "rows": rows}
    with open(args.out + ".partial", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(args.out + ".partial", args.out)
    print("| route (784-500-500-10, MNIST, 2,000 test images) | max abs error of served probabilities |\n|---|---|")
    for row in rows:
        print(f"| {row['route']} | {row['max_abs_error']:.1e} |")


if __name__ == "__main__":
    main()
