"""Shrink a model trained with plain Dense layers: convert, prune during `fit`, compact,
collapse, export.

    python examples/prune_trained_model.py [--quick] [--sparsity 0.9] [--out pruned_example]

1. Train a functional Keras model conventionally (Dense, BatchNormalization, Dropout).
2. `spectralize(model)`: the same model with SpectralDense layers (φᵀ = kernel, λ_in = 1,
   λ_out = 0: identical outputs).
3. `node_groups(model)`: which hidden nodes can be removed, and why the others cannot.
4. Fine-tune with `EigenvaluePruning` removing `--sparsity` of the prunable nodes.
5. `compact` (narrower layers, BatchNormalization sliced, same outputs), `collapse`
   (plain Dense again) and `export(format="tf_saved_model")` (TensorFlow or JAX backend).
"""


import keras
import numpy as np

from _common import check_and_serve, mnist, parser, prune_while_fine_tuning
from keras_spectral import collapse, compact, node_groups, spectralize

p = parser(__doc__.splitlines()[0])
p.add_argument("--sparsity", type=float, default=0.9, help="fraction of the prunable nodes to remove")
p.add_argument("--out", default="pruned_example", help="where the SavedModel goes")
args = p.parse_args()
(x, y), (xt, yt) = mnist(args)
width, epochs, finetune, batch = (64, 1, 2, 200) if args.quick else (500, 10, 5, 200)

keras.utils.set_random_seed(0)
inputs = keras.Input((784,))
h = keras.layers.Dense(width, activation="relu", name="hidden_1")(inputs)
h = keras.layers.BatchNormalization(name="norm")(h)
h = keras.layers.Dropout(0.1)(h)
h = keras.layers.Dense(width, activation="relu", name="hidden_2")(h)
outputs = keras.layers.Dense(10, activation="softmax", name="classifier")(h)
trained = keras.Model(inputs, outputs, name="trained_dense")
trained.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
trained.fit(x, y, batch_size=batch, epochs=epochs, verbose=2)
print(f"trained Dense model: test accuracy {trained.evaluate(xt, yt, verbose=0)[1]:.4f}, "
      f"{trained.count_params():,} parameters")

model = spectralize(trained)  # eigenvectors="trainable": exact, φ fine-tuned too
diff = np.abs(model.predict(xt[:256], verbose=0) - trained.predict(xt[:256], verbose=0)).max()
print(f"converted to SpectralDense: max prediction difference {diff:.2e}")
for group in node_groups(model):
    print(f"  node group {group.name!r} ({group.size} nodes): {group.reason or 'prunable'}")

prune_while_fine_tuning(model, ((x, y), (xt, yt)), args.sparsity, finetune, batch)

small = compact(model)
served = collapse(small)
print(f"compact: widths {small.get_layer('hidden_1').units} and {small.get_layer('hidden_2').units}, "
      f"{served.count_params():,} parameters as Dense (was {trained.count_params():,})")
check_and_serve(model, small, served, xt[:256], args.out)
