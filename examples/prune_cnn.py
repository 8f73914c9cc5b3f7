"""Shrink a trained CNN channel by channel: convert, prune during `fit`, compact, collapse,
export.

    python examples/prune_cnn.py [--quick] [--sparsity 0.7] [--out pruned_cnn_example]

1. Train a CIFAR-10 CNN conventionally: three stages of Conv2D ('same') → BatchNorm → ReLU
   → max pooling, then global average pooling and a softmax head.
2. `spectralize(model)`: Conv2D → SpectralConv2D and Dense → SpectralDense, identical outputs
   (φ = kernel, λ_in = 1, λ_out = 0; one eigenvalue per input and output channel).
3. `node_groups(model)`: each convolution's channels are a group (the head's outputs are not).
4. Fine-tune with `EigenvaluePruning` removing `--sparsity` of every convolution's channels.
5. `compact` (narrower convolutions, BatchNormalization sliced, same outputs), `collapse`
   (plain Conv2D / Dense again) and `export(format="tf_saved_model")` (TensorFlow or JAX).
"""

import keras
import numpy as np

from _common import check_and_serve, cifar10, parser, prune_while_fine_tuning
from keras_spectral import collapse, compact, node_groups, spectralize

p = parser(__doc__.splitlines()[0])
p.add_argument("--sparsity", type=float, default=0.7, help="fraction of each convolution's channels to remove")
p.add_argument("--out", default="pruned_cnn_example", help="where the SavedModel goes")
args = p.parse_args()
(x, y), (xt, yt) = cifar10(args)
widths, epochs, finetune, batch = ((8, 16, 32), 1, 1, 100) if args.quick else ((32, 64, 128), 6, 2, 200)

keras.utils.set_random_seed(0)
inputs = keras.Input((32, 32, 3))
h = inputs
for i, channels in enumerate(widths):
    h = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"conv_{i}")(h)
    h = keras.layers.BatchNormalization(name=f"bn_{i}")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.MaxPooling2D()(h)
h = keras.layers.GlobalAveragePooling2D()(h)
outputs = keras.layers.Dense(10, activation="softmax", name="classifier")(h)
trained = keras.Model(inputs, outputs, name="trained_cnn")
trained.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
trained.fit(x, y, batch_size=batch, epochs=epochs, verbose=2)
print(f"trained CNN: test accuracy {trained.evaluate(xt, yt, verbose=0)[1]:.4f}, "
      f"{trained.count_params():,} parameters")

model = spectralize(trained)  # eigenvectors="trainable": exact, φ fine-tuned too
diff = np.abs(model.predict(xt[:256], verbose=0) - trained.predict(xt[:256], verbose=0)).max()
print(f"converted to SpectralConv2D: max prediction difference {diff:.2e}")
for group in node_groups(model):
    print(f"  node group {group.name!r} ({group.size} {'channels' if group.channels else 'nodes'}): {group.reason or 'prunable'}")

prune_while_fine_tuning(model, ((x, y), (xt, yt)), args.sparsity, finetune, batch)

small = compact(model)
served = collapse(small)
kept = [small.get_layer(f"conv_{i}").filters for i in range(len(widths))]
print(f"compact: channels {kept} (were {list(widths)}), "
      f"{served.count_params():,} parameters as Conv2D / Dense (was {trained.count_params():,})")
check_and_serve(model, small, served, xt[:256], args.out)
