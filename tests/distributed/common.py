"""Shared by the distributed-training scripts: data, model and a run summary."""

import json
import sys

import keras
import numpy as np

from keras_spectral import EigenvaluePruning, PolynomialDecay, SpectralDense, node_sparsity

GLOBAL_BATCH = 64
EPOCHS = 4


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 12)).astype("float32")
    y = ((x[:, 0] + x[:, 1] * x[:, 2]) > 0).astype("int32")
    return x, y


def build_and_compile():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((12,)),
            SpectralDense(32, activation="tanh", eigenvectors="svd"),
            SpectralDense(32, activation="tanh"),
            SpectralDense(2, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def pruning():
    return EigenvaluePruning(PolynomialDecay(0.0, 0.5, begin_step=0, end_step=16, frequency=4))


def summary(model, history):
    x, y = data()
    loss, accuracy = model.evaluate(x, y, batch_size=GLOBAL_BATCH, verbose=0)
    return {
        "loss": float(loss),
        "accuracy": float(accuracy),
        "train_loss": [float(v) for v in history.history["loss"]],
        "node_sparsity": list(node_sparsity(model).values()),
        "masks": [keras.ops.convert_to_numpy(l.eigenvalues_out_mask).tolist() for l in model.layers],
    }


def write(path, result):
    with open(path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    sys.exit("a helper module, not a script")
