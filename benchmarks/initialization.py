"""Choose SpectralDense's default initializers by experiment.

Trains 784-500-500-10 (ReLU) eigenvalues-only networks (φ frozen, two eigenvalue sets) on
MNIST for a few epochs with Keras' default optimizer settings (Adam, lr 1e-3, batch 200)
under several initializations, and prints validation accuracy (last 10,000 training
images held out; the test set is not used).

    python benchmarks/initialization.py [--epochs 3] [--seed 0]
"""

import argparse
import time

import keras

from keras_spectral import SpectralDense, datasets

CANDIDATES = {
    # the authors' code: Glorot-uniform φ, eigenvalues U(-0.5, 0.5)
    "glorot_phi/uniform0.5_eig": dict(
        eigenvectors_initializer="glorot_uniform",
        eigenvalues_in_initializer=keras.initializers.RandomUniform(-0.5, 0.5),
        eigenvalues_out_initializer=keras.initializers.RandomUniform(-0.5, 0.5),
    ),
    # kernel equal to a Glorot kernel at start: φ Glorot, λ_in = 1, λ_out = 0
    "glorot_phi/ones_zeros_eig": dict(
        eigenvectors_initializer="glorot_uniform",
        eigenvalues_in_initializer="ones",
        eigenvalues_out_initializer="zeros",
    ),
    # unit-scale φ, small eigenvalues (weight-sized, so Adam's steps are relatively large)
    "normal1_phi/uniform0.05_eig": dict(
        eigenvectors_initializer=keras.initializers.RandomNormal(stddev=1.0),
        eigenvalues_in_initializer=keras.initializers.RandomUniform(-0.05, 0.05),
        eigenvalues_out_initializer=keras.initializers.RandomUniform(-0.05, 0.05),
    ),
}
for _scale in (0.01, 0.02, 0.1, 0.2):
    CANDIDATES[f"normal1_phi/uniform{_scale}_eig"] = dict(
        eigenvectors_initializer=keras.initializers.RandomNormal(stddev=1.0),
        eigenvalues_in_initializer=keras.initializers.RandomUniform(-_scale, _scale),
        eigenvalues_out_initializer=keras.initializers.RandomUniform(-_scale, _scale),
    )


def run(name, init, data, epochs, seed):
    keras.utils.set_random_seed(seed)
    (x, y), (xv, yv) = data
    model = keras.Sequential(
        [keras.Input((784,))]
        + [SpectralDense(500, activation="relu", **init) for _ in range(2)]
        + [SpectralDense(10, activation="softmax", **init)]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=200, epochs=epochs, validation_data=(xv, yv), verbose=0)
    accs = " ".join(f"{a:.4f}" for a in history.history["val_accuracy"])
    print(f"{name:32s} val_acc per epoch: {accs}  ({time.perf_counter() - start:.0f} s)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    (x, y), _ = datasets.load_flat("mnist")
    data = ((x[:50000], y[:50000]), (x[50000:], y[50000:]))
    for name, init in CANDIDATES.items():
        run(name, init, data, args.epochs, args.seed)


if __name__ == "__main__":
    main()
