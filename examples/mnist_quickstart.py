"""MNIST quickstart: an eigenvalues-only SpectralDense network in an ordinary Keras workflow.

    KERAS_SPECTRAL_DATA=/path/to/data python examples/mnist_quickstart.py

Trains 784-500-500-10 with only the eigenvalues (and biases) trainable, evaluates it,
saves it as a `.keras` file, reloads it without `custom_objects`, and converts it to plain
Dense layers for serving.
"""

import os
import tempfile

import keras
import numpy as np

from keras_spectral import SpectralDense, datasets

(x_train, y_train), (x_test, y_test) = datasets.load_flat("mnist")

model = keras.Sequential()
model.add(keras.Input((784,)))
model.add(SpectralDense(500, activation="relu"))
model.add(SpectralDense(500, activation="relu"))
model.add(SpectralDense(10, activation="softmax"))
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.summary()

model.fit(x_train, y_train, batch_size=200, epochs=3, validation_split=0.1)
print("test accuracy:", model.evaluate(x_test, y_test, verbose=0)[1])

# Which input pixels matter? |eigenvalues_in| of the first layer, as an image.
importance = np.abs(keras.ops.convert_to_numpy(model.layers[0].eigenvalues_in)).reshape(28, 28)
print("most important pixel (row, col):", np.unravel_index(importance.argmax(), importance.shape))

path = os.path.join(tempfile.mkdtemp(), "spectral_mnist.keras")
model.save(path)
reloaded = keras.saving.load_model(path)  # no custom_objects needed
dense = keras.Sequential([keras.Input((784,))] + [layer.to_dense() for layer in reloaded.layers])
diff = np.abs(dense.predict(x_test[:100], verbose=0) - model.predict(x_test[:100], verbose=0)).max()
print(f"reloaded and collapsed to Dense; max prediction difference {diff:.2e}")
