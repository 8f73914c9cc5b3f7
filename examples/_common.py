"""Shared by the examples: the `--quick` flag, the data it implies, and the check that a
compacted, collapsed and exported model predicts as the masked one (not part of the library)."""

import argparse
import os

import keras
import numpy as np

from keras_spectral import datasets


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="tiny settings (a few thousand images, narrow layers, 1-2 epochs): a smoke test")
    p.add_argument("--data-dir", default=None, help=f"data directory (default ${datasets.ENV_VAR})")
    return p


def mnist(args, quick_train=4000, quick_test=1000):
    """MNIST flattened to 784 features in [0, 1]; a small slice of it with `--quick`."""
    (x, y), (xt, yt) = datasets.load_flat("mnist", data_dir=args.data_dir)
    if args.quick:
        return (x[:quick_train], y[:quick_train]), (xt[:quick_test], yt[:quick_test])
    return (x, y), (xt, yt)


def cifar10(args, quick_train=2000, quick_test=500):
    """CIFAR-10 images (32, 32, 3) in [0, 1] and integer labels; a small slice with `--quick`."""
    (x, y), (xt, yt) = datasets.load("cifar10", data_dir=args.data_dir)
    x, xt = x.astype("float32") / 255.0, xt.astype("float32") / 255.0
    y, yt = y.astype("int32").reshape(-1), yt.astype("int32").reshape(-1)
    if args.quick:
        return (x[:quick_train], y[:quick_train]), (xt[:quick_test], yt[:quick_test])
    return (x, y), (xt, yt)


def prune_while_fine_tuning(model, data, sparsity, epochs, batch):
    """Compile `model` (Adam 1e-3) and fine-tune it with `EigenvaluePruning` reaching
    `sparsity` over the first 60 % of the steps; prints the test accuracy after."""
    from keras_spectral import EigenvaluePruning, PolynomialDecay

    (x, y), (xt, yt) = data
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    pruning = EigenvaluePruning(PolynomialDecay(0.0, sparsity, begin_epoch=0, end_epoch=0.6 * epochs))
    model.fit(x, y, batch_size=batch, epochs=epochs, callbacks=[pruning], verbose=2)
    print(f"pruned while fine-tuning: test accuracy {model.evaluate(xt, yt, verbose=0)[1]:.4f}")


def check_and_serve(masked, small, served, x, out):
    """Check that the compact and collapsed models predict as the masked one did, then
    export the collapsed one as a SavedModel under `out` and check what it serves
    (TensorFlow and JAX backends; the torch backend cannot write one)."""
    expected = masked.predict(x, verbose=0)
    for name, m in (("compact", small), ("collapsed", served)):
        diff = np.abs(m.predict(x, verbose=0) - expected).max()
        print(f"{name} vs masked: max prediction difference {diff:.2e}")
        assert diff < 1e-4
    if keras.backend.backend() not in ("tensorflow", "jax"):
        print(f"SavedModel export skipped: the {keras.backend.backend()} backend cannot write one.")
        return
    import tensorflow as tf

    path = os.path.join(out, "1")
    served.export(path, format="tf_saved_model", verbose=0)
    reloaded = tf.saved_model.load(path)  # held: its variables die with it
    diff = np.abs(np.asarray(reloaded.serve(x)) - expected).max()
    print(f"SavedModel at {path}: served predictions match (max difference {diff:.2e})")
    assert diff < 1e-4
