"""Which initializers let a trained eigenvector block train as well as Dense at Dense's rate?

Swapping `keras.layers.Dense` for `SpectralDense(..., eigenvectors=mode)` should need no
new learning rate. This script trains 784-W-W-10 ReLU networks (the grid's protocol:
Adamax, batch 200, 20 % of the training set held out, up to 12 epochs with early stopping
after 8 without progress) at
the learning rate the reproduction grid tuned for *Dense* on each data set, for each mode
whose φ (or a factor of it) trains, under three initializations:

- `previous`: the eigenvalues-only defaults (φ ~ N(0, 1), eigenvalues ~ U(±0.02));
- `issue`: eigenvalues ~ U(±1), φ ~ N(0, 0.05) (the check quoted in issue #10);
- `glorot`: eigenvalues ~ U(±1), φ ~ VarianceScaling(1.5, fan_avg), so the kernel starts
  at Glorot's variance whatever the width.

Settings are compared on *validation* accuracy; the test column is reported, never used.

    python benchmarks/eigenvector_defaults.py run    [--datasets mnist fashion_mnist] [--width 500]
                                                     [--epochs 12] [--shard I/N]
    python benchmarks/eigenvector_defaults.py report [--out docs]

Results: `results/eigenvector_defaults.jsonl` (resumable); `report` writes
`docs/eigenvector_defaults.md` from that file alone.
"""

import argparse
import os
import sys

import keras

from keras_spectral import datasets
from keras_spectral.models import build_mlp, trainable_count
from harness.results import ResultsFile
from harness.report_utils import atomic_write, provenance
from reproduce import DEFAULT_RESULTS as GRID_RESULTS, fit_and_score, parse_shard, stamp, tuned_rate

DEFAULT_RESULTS = os.path.join("results", "eigenvector_defaults.jsonl")
INITS = {
    "previous": dict(
        eigenvalues_in_initializer=keras.initializers.RandomUniform(-0.02, 0.02),
        eigenvalues_out_initializer=keras.initializers.RandomUniform(-0.02, 0.02),
        eigenvectors_initializer=keras.initializers.RandomNormal(stddev=1.0),
    ),
    "issue": dict(
        eigenvalues_in_initializer=keras.initializers.RandomUniform(-1.0, 1.0),
        eigenvalues_out_initializer=keras.initializers.RandomUniform(-1.0, 1.0),
        eigenvectors_initializer=keras.initializers.RandomNormal(stddev=0.05),
    ),
    "glorot": dict(
        eigenvalues_in_initializer=keras.initializers.RandomUniform(-1.0, 1.0),
        eigenvalues_out_initializer=keras.initializers.RandomUniform(-1.0, 1.0),
        eigenvectors_initializer=keras.initializers.VarianceScaling(1.5, "fan_avg", "untruncated_normal"),
    ),
}
# name -> SpectralDense arguments (lowrank: rank per layer, capped at the layer's size)
MODES = {
    "trainable": dict(eigenvectors="trainable"),
    "qr": dict(eigenvectors="qr"),
    "qr_full": dict(eigenvectors="qr_full"),
    "svd": dict(eigenvectors="svd"),
    "svd_kronecker": dict(eigenvectors="svd", eigenvector_basis="kronecker"),
    "qr_kronecker": dict(eigenvectors="qr", eigenvector_basis="kronecker"),
    "lowrank8": dict(eigenvectors="lowrank", eigenvector_rank=8),
}
PATIENCE = 8
RUN_COMMAND = ("KERAS_BACKEND=jax XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' "
               "taskset -c I python benchmarks/eigenvector_defaults.py run --shard I/2  (I = 0, 1)")


def cells(args):
    out = []
    for name in args.datasets:
        out.append(dict(dataset=name, mode="dense", init="-", seed=args.seed, width=args.width, epochs=args.epochs))
        for mode in MODES:
            for init in INITS:
                out.append(dict(dataset=name, mode=mode, init=init, seed=args.seed, width=args.width, epochs=args.epochs))
    return [c for i, c in enumerate(out) if i % args.shard[1] in args.shard[0]]


def run(args, results):
    grid = ResultsFile(GRID_RESULTS)
    todo = results.missing(cells(args))
    print(f"{len(todo)} runs to do", flush=True)
    data = {name: datasets.load_flat(name) for name in dict.fromkeys(c["dataset"] for c in todo)}
    for key in todo:
        lr = tuned_rate(grid, key["dataset"], "dense", None)  # Dense's rate, already tuned by the grid
        keras.backend.clear_session()
        keras.utils.set_random_seed(key["seed"])
        input_dim = data[key["dataset"]][0][0].shape[1]
        hidden = (key["width"], key["width"])
        options = {} if key["mode"] == "dense" else dict(MODES[key["mode"]], **INITS[key["init"]])
        method = "dense" if key["mode"] == "dense" else "spectral_two_sets"
        model = build_mlp(input_dim, hidden, 10, method, **options)
        values, _ = fit_and_score(model, data[key["dataset"]], lr, key["epochs"], PATIENCE)
        values = stamp(dict(values, lr=lr, trainable_params=trainable_count(model)))
        results.append(key, values)
        print(f"{key['dataset']} {key['mode']} {key['init']}: val {values['val_accuracy']:.4f} "
              f"test {values['test_accuracy']:.4f} ({values['train_seconds']} s)", flush=True)


def report(records, out, command):
    rows = ["| data set | mode | trainable params | " + " | ".join(f"{i} val / test" for i in INITS) + " |",
            "|---|---|---|" + "---|" * len(INITS)]
    for name in dict.fromkeys(r["key"]["dataset"] for r in records):
        mine = {(r["key"]["mode"], r["key"]["init"]): r for r in records if r["key"]["dataset"] == name}
        dense = mine.get(("dense", "-"))
        if dense:
            rows.append(f"| {name} | Dense (lr {dense['lr']}) | {dense['trainable_params']:,} | "
                        f"{100 * dense['val_accuracy']:.2f} / {100 * dense['test_accuracy']:.2f} |" + " |" * (len(INITS) - 1))
        for mode in MODES:
            found = [mine.get((mode, init)) for init in INITS]
            if not any(found):
                continue
            params = next(r["trainable_params"] for r in found if r)
            scores = [f"{100 * r['val_accuracy']:.2f} / {100 * r['test_accuracy']:.2f}" if r else "–" for r in found]
            rows.append(f"| {name} | {mode} | {params:,} | " + " | ".join(scores) + " |")
    text = "\n".join([
        "# Default initializers for trained eigenvectors: the experiment",
        "",
        __doc__.split("    python")[0].split("\n", 2)[2].strip(),
        "",
        f"Run: `{RUN_COMMAND}`; this page: `{command}`. " + provenance(records),
        "Columns: validation / test accuracy (%) of the restored best epoch, one seed (0).",
        "",
        *rows,
        "",
    ])
    atomic_write(os.path.join(out, "eigenvector_defaults.md"), text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard", type=parse_shard, default=((0,), 1), metavar="I/N")
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--out", default="docs")
    args = parser.parse_args(argv)
    results = ResultsFile(args.results)
    if args.command == "run":
        run(args, results)
    else:
        report(results.records(), args.out, " ".join(["python"] + sys.argv))


if __name__ == "__main__":
    main()
