"""Compact checkpoints: an eigenvalues-only network whose `.keras` file holds O(width)
numbers, because its eigenvectors are regenerated instead of stored.

    python examples/compact_checkpoints.py [--quick] [--out checkpoint_example]

Two ways to keep φ out of the file, compared with Dense and with a stored random φ:
  - `eigenvector_seed=s`: φ is drawn from the seed, identically on every platform and
    backend, and not saved; loading checks a fingerprint, so a file cannot be paired with
    the wrong φ;
  - `eigenvector_basis="kronecker"` with φ frozen: φ is structured (Kronecker factors of
    about 2·sqrt(n) x sqrt(n) numbers each), cheap to store and to apply at any width.
Each model is trained briefly, saved, reloaded (no `custom_objects`), and its predictions
compared with the original's.
"""

import os

import keras
import numpy as np

from _common import mnist, parser
from keras_spectral import SpectralDense

p = parser(__doc__.splitlines()[0])
p.add_argument("--out", default="checkpoint_example", help="folder for the .keras files")
args = p.parse_args()
(x, y), (xt, yt) = mnist(args)
width, epochs = (64, 1) if args.quick else (500, 3)
os.makedirs(args.out, exist_ok=True)


def network(**options):
    keras.utils.set_random_seed(0)
    if options.get("dense"):
        layers = [keras.layers.Dense(width, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    else:
        layers = [SpectralDense(width, activation="relu", **options), SpectralDense(10, activation="softmax", **options)]
    model = keras.Sequential([keras.Input((784,))] + layers)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


variants = {
    "dense": dict(dense=True),
    "stored_phi": dict(),
    "seeded_phi": dict(eigenvector_seed=7),
    "kronecker_phi": dict(eigenvector_basis="kronecker"),
}
sizes = {}
for name, options in variants.items():
    model = network(**options)
    model.fit(x, y, batch_size=200, epochs=epochs, verbose=0)
    path = os.path.join(args.out, f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    diff = np.abs(reloaded.predict(xt[:256], verbose=0) - model.predict(xt[:256], verbose=0)).max()
    assert diff < 1e-5, (name, diff)
    sizes[name] = os.path.getsize(path)
    print(f"{name:14s} test accuracy {model.evaluate(xt, yt, verbose=0)[1]:.4f}  .keras {sizes[name] / 1e3:8.1f} kB "
          f"({100 * sizes[name] / sizes['dense']:5.1f} % of Dense)  reload max difference {diff:.1e}")
