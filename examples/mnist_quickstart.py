"""Quick start: an eigenvalues-only SpectralDense network in an ordinary Keras workflow.

    python examples/mnist_quickstart.py [--quick] [--data-dir DIR]

Trains 784-500-500-10 with only the eigenvalues (and biases) trainable, evaluates it,
saves it as a `.keras` file, reloads it without `custom_objects`, and converts it to plain
Dense layers for serving.
"""

import os
import tempfile

import keras
import numpy as np

from _common import mnist, parser
from keras_spectral import SpectralDense, collapse

args = parser(__doc__.splitlines()[0]).parse_args()
(x_train, y_train), (x_test, y_test) = mnist(args)
width, epochs = (64, 1) if args.quick else (500, 3)

model = keras.Sequential()
model.add(keras.Input((784,)))
model.add(SpectralDense(width, activation="relu"))
model.add(SpectralDense(width, activation="relu"))
model.add(SpectralDense(10, activation="softmax"))
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.summary()

model.fit(x_train, y_train, batch_size=200, epochs=epochs, validation_split=0.1, verbose=2)
print("test accuracy:", model.evaluate(x_test, y_test, verbose=0)[1])

path = os.path.join(tempfile.mkdtemp(), "spectral_mnist.keras")
model.save(path)
reloaded = keras.saving.load_model(path)  # no custom_objects needed
dense = collapse(reloaded)  # plain Dense layers, same outputs
diff = np.abs(dense.predict(x_test[:100], verbose=0) - model.predict(x_test[:100], verbose=0)).max()
print(f"reloaded and collapsed to Dense; max prediction difference {diff:.2e}")
assert diff < 1e-4
