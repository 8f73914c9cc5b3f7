"""Input-feature relevance and selection: rank the pixels by eigenvalue, keep the best,
and get a model that takes only those.

    python examples/input_selection.py [--quick] [--keep 0.2] [--out relevance_example]

1. Train SpectralDense 784-500-10 (φ and both eigenvalue sets trained) with an L1 penalty
   on `eigenvalues_in` that pushes the eigenvalues of unused pixels to zero (the
   combination that let the most pixels go in docs/relevance.md).
2. `input_relevance` / `rank_inputs`: one score per pixel; the map is saved as a PNG
   (with matplotlib) next to the spectrum of both layers.
3. `remove_inputs(model, fraction=...)` masks the least relevant pixels;
   `compact(model, drop_inputs=True)` builds a model that takes only the kept columns,
   `kept_inputs(model)` says which; its outputs on `x[:, kept]` equal the masked model's.
4. A short retraining of the compact model recovers most of the accuracy.
"""

import keras
import numpy as np

from _common import mnist, parser
from keras_spectral import SpectralDense, compact, input_relevance, kept_inputs, rank_inputs, remove_inputs

p = parser(__doc__.splitlines()[0])
p.add_argument("--keep", type=float, default=0.2, help="fraction of the pixels to keep")
p.add_argument("--out", default="relevance_example", help="folder for the pictures")
args = p.parse_args()
(x, y), (xt, yt) = mnist(args)
width, epochs = (64, 2) if args.quick else (500, 10)

model = keras.Sequential([
    keras.Input((784,)),
    SpectralDense(width, activation="relu", eigenvectors="trainable",
                  eigenvalues_in_regularizer=keras.regularizers.L1(1e-4)),
    SpectralDense(10, activation="softmax", eigenvectors="trainable"),
])
model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, batch_size=200, epochs=epochs, verbose=2)
full = model.evaluate(xt, yt, verbose=0)[1]

scores = input_relevance(model)
top = rank_inputs(model)[:5]
print(f"all 784 pixels: test accuracy {full:.4f}; most relevant pixels (row, col): "
      f"{[divmod(int(i), 28) for i in top]}, scores {np.round(scores[top], 4).tolist()}")
try:
    from keras_spectral import plots

    print("pictures:", plots.save(plots.relevance_map(model, (28, 28)), f"{args.out}/relevance_map.png"),
          plots.save(plots.spectrum(model), f"{args.out}/spectrum.png"))
except ImportError:
    print("(matplotlib is not installed: no pictures)")

remove_inputs(model, fraction=1 - args.keep)
kept = kept_inputs(model)
masked = model.evaluate(xt, yt, verbose=0)[1]
small = compact(model, drop_inputs=True)  # takes only x[:, kept]
small.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
diff = np.abs(small.predict(xt[:256, kept], verbose=0) - model.predict(xt[:256], verbose=0)).max()
assert diff < 1e-4, diff
print(f"kept {len(kept)} of 784 pixels: test accuracy {masked:.4f} without retraining "
      f"(compact model on x[:, kept] matches, max difference {diff:.1e})")
small.fit(x[:, kept], y, batch_size=200, epochs=1 if args.quick else 2, verbose=2)
print(f"after retraining the compact model: test accuracy {small.evaluate(xt[:, kept], yt, verbose=0)[1]:.4f}")
