"""What forming the kernel in float32 costs under mixed precision, and what it buys.

    python benchmarks/mixed_precision.py [--policies mixed_bfloat16 mixed_float16]
                                         [--batch 1024] [--repeats 5] [--out results/mixed_precision.json]

Under a mixed policy SpectralDense reads its eigenvalues and eigenvector factors in
float32 and forms the kernel `φᵀ ⊙ (λ_in − λ_out)` there, casting it once (as Dense casts
its kernel). The alternative, forming it in the compute dtype (`ComputeDtypeKernel`
below: the layer's behaviour before), rounds every factor of a decomposed mode first. For
each policy and decomposed mode (svd and qr with dense bases, lowrank rank 200) on
784-500-500-10, in one process: the train-step time of Dense, of the float32-kernel layer
and of the compute-dtype-kernel layer (interleaved repeats, `speed.step_times`), and the
largest output error of one layer against float64, next to Dense's with the same kernel.
The batch is large enough that the kernel is formed (small known batches apply the
factors to the input instead, which no kernel dtype affects). Writes JSON (atomically)
and prints a markdown table. CPU only here: bfloat16 and float16 matmuls on a CPU say
little about a GPU's tensor cores, so the ratio is this machine's.
"""

import argparse
import json
import os
import sys
from datetime import date

import keras
import numpy as np
from keras import ops

from keras_spectral import SpectralDense

from harness.cells import machine
from harness.report_utils import atomic_write
from speed import step_times

MODES = {
    "svd": dict(eigenvectors="svd", eigenvector_basis="dense"),
    "qr": dict(eigenvectors="qr", eigenvector_basis="dense"),
    "lowrank": dict(eigenvectors="lowrank", eigenvector_rank=200),  # below ~150 the factors are applied, no kernel
}


class ComputeDtypeKernel(SpectralDense):
    """SpectralDense forming its kernel in the compute dtype (the behaviour replaced)."""

    def call(self, inputs):
        dtype = self.compute_dtype
        mask_in, mask_out = self._masks(dtype)
        inputs = ops.cast(inputs, dtype) * mask_in
        gap = ops.cast(self.eigenvalues_in, dtype)[:, None] - ops.cast(self.eigenvalues_out, dtype)[None, :]
        x = ops.matmul(inputs, self._eigenvectors.matrix(dtype) * gap) * mask_out
        if self.bias is not None:
            x = ops.add(x, ops.cast(self.bias, dtype))
        return self.activation(x) if self.activation is not None else x


def mlp(layer, options, shape=(784, 500, 500, 10)):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((shape[0],))]
    layers += [layer(w, activation="relu", **options) for w in shape[1:-1]]
    layers.append(keras.layers.Dense(shape[-1], dtype="float32"))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def output_errors(options, rng, rows, n_in=784, units=500):
    """Largest |output − float64 output| of one layer of each kind, and of Dense with its kernel."""
    x = rng.normal(size=(rows, n_in)).astype("float32")
    errors = {}
    for name, kind in (("float32_kernel", SpectralDense), ("compute_dtype_kernel", ComputeDtypeKernel)):
        keras.utils.set_random_seed(0)
        layer = kind(units, use_bias=False, **options)
        layer.build((None, n_in))
        assert not layer._eigenvectors.prefer_factored(rows)
        kernel = np.asarray(ops.convert_to_numpy(layer.kernel), "float64")
        exact = x.astype("float64") @ kernel
        y = np.asarray(ops.convert_to_numpy(layer(ops.convert_to_tensor(x))), "float64")
        errors[name] = float(np.abs(y - exact).max())
    dense = keras.layers.Dense(units, use_bias=False)
    dense.build((None, n_in))
    dense.kernel.assign(kernel.astype("float32"))
    errors["dense"] = float(np.abs(np.asarray(ops.convert_to_numpy(dense(x)), "float64") - exact).max())
    errors["output_scale"] = float(np.abs(exact).max())
    return errors


def measure(policy, batch, repeats):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        rows = {}
        for mode, options in MODES.items():
            models = {"dense": mlp(keras.layers.Dense, {}), "float32_kernel": mlp(SpectralDense, options),
                      "compute_dtype_kernel": mlp(ComputeDtypeKernel, options)}
            assert not models["float32_kernel"].layers[0]._eigenvectors.prefer_factored(batch)
            times = step_times(models, (784, 10), batch, None, repeats)
            medians = {k: float(np.median(v)) for k, v in times.items()}
            rows[mode] = {"step_seconds": medians, **output_errors(options, np.random.default_rng(0), batch)}
        return rows
    finally:
        keras.config.set_dtype_policy(previous)


def table(data):
    lines = ["| policy | mode | step, float32 kernel / compute-dtype kernel | float32 kernel / Dense | "
             "max error: float32 kernel | compute-dtype kernel | Dense |", "|---|---|---|---|---|---|---|"]
    for policy, rows in data["policies"].items():
        for mode, row in rows.items():
            t = row["step_seconds"]
            lines.append(f"| {policy} | {mode} | {t['float32_kernel'] / t['compute_dtype_kernel']:.3f} | "
                         f"{t['float32_kernel'] / t['dense']:.2f} | {row['float32_kernel']:.2e} | "
                         f"{row['compute_dtype_kernel']:.2e} | {row['dense']:.2e} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", default=["mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/mixed_precision.json")
    args = parser.parse_args(argv)
    data = {"command": "python benchmarks/mixed_precision.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": machine(), "date": date.today().isoformat(), "batch": args.batch,
            "policies": {policy: measure(policy, args.batch, args.repeats) for policy in args.policies}}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write(args.out, json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(table(data))


if __name__ == "__main__":
    main()
