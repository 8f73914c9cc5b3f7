"""Shared by the examples: the `--quick` flag and the data it implies (not part of the library)."""

import argparse

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
