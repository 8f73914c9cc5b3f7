"""Node pruning during `fit`, then `compact` -> `collapse` -> SavedModel for serving.

    python examples/pruning_to_savedmodel.py [--quick] [--sparsity 0.9] [--out serving_example]

Trains 784-500-500-10 (tanh; φ and both eigenvalue sets trained) while `EigenvaluePruning`
removes hidden nodes by eigenvalue on a `PolynomialDecay` schedule (to `--sparsity` over
the first half of training), then:
  1. `compact(model)`: narrower layers, the same outputs as the masked model;
  2. `collapse(...)`: plain `keras.layers.Dense` layers (no keras-spectral needed to serve);
  3. `export(..., format="tf_saved_model")` and a reload with `tf.saved_model.load`.
The SavedModel step needs TensorFlow (the TensorFlow or JAX backend).
"""


import keras
import numpy as np

from _common import check_and_serve, mnist, parser
from keras_spectral import EigenvaluePruning, PolynomialDecay, SpectralDense, collapse, compact, node_sparsity

p = parser(__doc__.splitlines()[0])
p.add_argument("--sparsity", type=float, default=0.9, help="fraction of hidden nodes to remove")
p.add_argument("--out", default="serving_example", help="where the SavedModel goes")
args = p.parse_args()
(x, y), (xt, yt) = mnist(args)
width, epochs, batch = (64, 2, 200) if args.quick else (500, 10, 200)

model = keras.Sequential([
    keras.Input((784,)),
    SpectralDense(width, activation="tanh", eigenvectors="trainable"),
    SpectralDense(width, activation="tanh", eigenvectors="trainable"),
    SpectralDense(10, activation="softmax", eigenvectors="trainable"),
])
model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
steps = epochs * int(np.ceil(len(x) / batch))
pruning = EigenvaluePruning(PolynomialDecay(0.0, args.sparsity, begin_step=0, end_step=steps // 2,
                                            frequency=max(1, steps // 20)), score="sum")  # by eigenvalue
model.fit(x, y, batch_size=batch, epochs=epochs, callbacks=[pruning], verbose=2)
accuracy = model.evaluate(xt, yt, verbose=0)[1]
print(f"masked model: test accuracy {accuracy:.4f}, node sparsity {node_sparsity(model)}")

small = compact(model)
print(f"compact: hidden widths {[layer.units for layer in small.layers[:-1]]}, "
      f"{small.count_params():,} parameters (was {model.count_params():,})")
served = collapse(small)
check_and_serve(model, small, served, xt[:256], args.out)
