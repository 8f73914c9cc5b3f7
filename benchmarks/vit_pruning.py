"""Pruning a trained vision transformer: heads and feed-forward units, or the stream.

    python benchmarks/vit_pruning.py run    [--seeds 3] [--shard I/2] [--quick]
    python benchmarks/vit_pruning.py report [--out docs]

Issue #32's study. Run it as two processes, one per core (JAX, the faster backend for
training on these CPUs): `KERAS_BACKEND=jax taskset -c I python benchmarks/vit_pruning.py
run --shard I/2` (I = 0, 1); a shard holds whole seeds.

Model: a small ViT on MNIST: 7×7 patches (a strided Conv2D, then a Reshape to 16 patches
of `WIDTH` features), a learned position table (`PositionTable`, a layer of this script
with a pruning rule of its own), `DEPTH` pre-LN blocks of self-attention (`HEADS` heads of
key dimension 16) and a feed-forward network (`MLP` units, GELU), a final LayerNorm,
average pooling and a Dense head. Data: MNIST, the last 6,000 training images held out
for validation (early stopping), the 10,000 test images for the figures reported.

Base: Adam 1e-3, batch 128, until the validation accuracy has not improved for
`PATIENCE` epochs (at most `MAX_EPOCHS`; the best weights kept). Then every route gets
the same `FINETUNE_EPOCHS` of fine-tuning (Adam 1e-3) to reach one of two settings:

- `heads_ffn`: half of every attention layer's heads and half of every feed-forward
  layer's units removed (the stream kept);
- `stream`: a quarter of the residual stream's features removed (heads and feed-forward
  units kept).

Routes:

- `spectral`: `spectralize` (exact), `EigenvaluePruning` (score `"sum"`: for stream and
  feed-forward nodes `|λ_out|` of the producers plus `|λ_in|` of the readers, for heads
  `|λ_h|`) along `PolynomialDecay(0 → level)` over the first 60 % of the fine-tuning;
- `magnitude`: the nodes of smallest L2 norm (`score="l2"`) removed at once, then
  fine-tuned;
- `taylor`: the nodes of smallest first-order Taylor score (`score="taylor"`, gradients
  on 2,000 training images) removed at once, then fine-tuned;
- `random`: as many nodes chosen at random (`score="random"`), then fine-tuned: the
  control;
- `scratch`: the ViT of the final shape trained from scratch for the base's epochs plus
  the fine-tuning budget;
- `unpruned`: the base, and as the same-budget reference, fine-tuned for the budget.

Recorded per cell: validation and test accuracy; parameters and multiply-adds of the
served model (`collapse(compact(model))`, `keras_spectral.model_cost`) and its predict
throughput (batch 512, images/s) against the unpruned ViT, timed in the same process.
Cells are appended atomically to `results/vit_pruning.jsonl` and skipped on a rerun; the
trained base models are kept under `results/tmp/vit_pruning/` (not committed).
"""

import argparse
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import keras_spectral as ks  # noqa: E402
from keras_spectral import datasets  # noqa: E402
from keras_spectral.graph.groups import InnerGroup  # noqa: E402
from keras_spectral.graph.rules.weights import numpy as as_numpy  # noqa: E402

from graph_pruning import throughput  # noqa: E402
from harness.cells import run_cells  # noqa: E402
from harness.report_utils import atomic_write, cell, provenance, records_or_exit  # noqa: E402
from harness.results import ResultsFile  # noqa: E402
from reproduce import parse_shard  # noqa: E402

DEFAULT_RESULTS = "results/vit_pruning.jsonl"
BASE_DIR = "results/tmp/vit_pruning"
WIDTH, DEPTH, HEADS, KEY_DIM, MLP, PATCH = 64, 4, 4, 16, 128, 7
MAX_EPOCHS, PATIENCE, FINETUNE_EPOCHS, BATCH, LR = 20, 2, 3, 128, 1e-3
SETTINGS = {"heads_ffn": 0.5, "stream": 0.25}
ROUTES = ("spectral", "magnitude", "taylor", "random", "scratch")
SCHEDULE_SHARE = 0.6
QUICK = {"on": False}


@keras.saving.register_keras_serializable(package="vit_pruning")
class PositionTable(keras.layers.Layer):
    """Adds a learned `(patches, features)` table to its input."""

    def build(self, input_shape):
        self.table = self.add_weight(name="table", shape=tuple(input_shape[1:]), initializer="random_normal")

    def call(self, x):
        return x + self.table


@ks.register_rule(PositionTable)
class PositionTableRule(ks.rules.PerFeature):
    """Feature `i` of the output is feature `i` of the input plus its column of the table."""

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        new = PositionTable(name=layer.name)
        new.build(tuple(input_shape))
        new.table.assign(as_numpy(layer.table)[:, keep_in])
        return new


def vit(width=None, heads=None, mlp=None):
    """The ViT (defaults: `WIDTH`, `HEADS`, `MLP`, read when called)."""
    width, heads, mlp = width or WIDTH, heads or HEADS, mlp or MLP
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(width, PATCH, strides=PATCH, name="patchify")(inputs)
    h = keras.layers.Reshape(((28 // PATCH) ** 2, width))(h)
    h = PositionTable(name="positions")(h)
    for i in range(DEPTH):
        y = keras.layers.LayerNormalization(name=f"norm_attention_{i}")(h)
        y = keras.layers.MultiHeadAttention(heads, KEY_DIM, name=f"attention_{i}")(y, y)
        h = keras.layers.Add(name=f"residual_attention_{i}")([h, y])
        y = keras.layers.LayerNormalization(name=f"norm_ffn_{i}")(h)
        y = keras.layers.Dense(mlp, activation="gelu", name=f"ffn_up_{i}")(y)
        y = keras.layers.Dense(width, name=f"ffn_down_{i}")(y)
        h = keras.layers.Add(name=f"residual_ffn_{i}")([h, y])
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.LayerNormalization(name="norm_final")(h))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(h), name="vit")


def final_shape(setting):
    """The ViT of a setting's final shape (for the scratch route)."""
    level = SETTINGS[setting]
    if setting == "stream":
        return vit(width=WIDTH - int(level * WIDTH))
    return vit(heads=HEADS - int(level * HEADS), mlp=MLP - int(level * MLP))


def load_data():
    (x, y), (xt, yt) = datasets.load("mnist")
    scale = lambda a: (a.astype("float32") / 255.0).reshape(-1, 28, 28, 1)  # noqa: E731
    x, xt, y, yt = scale(x), scale(xt), y.astype("int32"), yt.astype("int32")
    train, val = (x[:-6000], y[:-6000]), (x[-6000:], y[-6000:])
    if QUICK["on"]:
        train, val, (xt, yt) = (x[:1000], y[:1000]), (x[-300:], y[-300:]), (xt[:500], yt[:500])
    return train, val, (xt, yt)


def compile_model(model):
    model.compile(keras.optimizers.Adam(LR), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def accuracy(model, data):
    x, y = data
    return float(np.mean(model.predict(x, batch_size=1000, verbose=0).argmax(-1) == y))


def train_to_plateau(model, data):
    """Fit until validation accuracy stops improving; returns the epochs run."""
    train, val, _ = data
    stop = keras.callbacks.EarlyStopping("val_accuracy", patience=PATIENCE, restore_best_weights=True)
    history = model.fit(*train, batch_size=BATCH, epochs=1 if QUICK["on"] else MAX_EPOCHS,
                        validation_data=val, callbacks=[stop], verbose=0)
    return len(history.history["loss"])


def base_model(seed, data):
    """The trained ViT of `seed` and its epochs, trained once and cached."""
    directory = BASE_DIR + ("_quick" if QUICK["on"] else "")
    path = os.path.join(directory, f"seed{seed}.weights.h5")
    epochs_path = path.replace(".weights.h5", ".epochs")
    keras.utils.set_random_seed(seed)
    model = compile_model(vit())
    if os.path.exists(path) and os.path.exists(epochs_path):
        model.load_weights(path)
        return model, int(open(epochs_path).read())
    epochs = train_to_plateau(model, data)
    os.makedirs(directory, exist_ok=True)
    partial = path[: -len(".weights.h5")] + ".partial.weights.h5"
    model.save_weights(partial)
    atomic_write(epochs_path, str(epochs))
    os.replace(partial, path)
    return model, epochs


def finetune_epochs():
    return 1 if QUICK["on"] else FINETUNE_EPOCHS


def ignored(model, setting):
    """The node groups a setting keeps whole: the stream (`heads_ffn`), or the heads and
    feed-forward groups (`stream`)."""
    groups = [g for g in ks.node_groups(model) if g.prunable]
    stream = [g for g in groups if "patchify" in [p.name for p in g.producers]]
    if setting == "heads_ffn":
        return [g.name for g in stream]
    return [g.name for g in groups if g not in stream]


def served_values(model, data, base):
    """Accuracy, cost and throughput of `collapse(compact(model))`."""
    _, val, test = data
    served = compile_model(ks.collapse(ks.compact(model)))
    cost = ks.model_cost(served)
    return {"accuracy": accuracy(served, test), "val_accuracy": accuracy(served, val),
            "masked_accuracy": accuracy(model, test), "params": cost.parameters,
            "multiply_adds": cost.multiply_adds, "samples_per_second": throughput(served, test[0], batch=512),
            "base_samples_per_second": throughput(base, test[0], batch=512)}


def run_route(seed, setting, route, data):
    train, val, test = data
    if route == "scratch":
        _, epochs = base_model(seed, data)
        keras.utils.set_random_seed(seed)
        model = compile_model(final_shape(setting))
        model.fit(*train, batch_size=BATCH, epochs=epochs + finetune_epochs(), verbose=0)
        cost = ks.model_cost(model)
        return {"accuracy": accuracy(model, test), "val_accuracy": accuracy(model, val),
                "params": cost.parameters, "multiply_adds": cost.multiply_adds, "epochs": epochs + finetune_epochs()}
    base, epochs = base_model(seed, data)
    reference = {"base_epochs": epochs, "base_params": ks.model_cost(base).parameters,
                 "base_multiply_adds": ks.model_cost(base).multiply_adds}
    if route == "unpruned":
        values = {"accuracy": accuracy(base, test), "val_accuracy": accuracy(base, val), **reference}
        base.fit(*train, batch_size=BATCH, epochs=finetune_epochs(), verbose=0)
        values["finetuned_accuracy"] = accuracy(base, test)
        return values
    level = SETTINGS[setting]
    model = compile_model(ks.spectralize(base))
    keep = ignored(model, setting)
    callbacks = []
    if route == "spectral":
        callbacks.append(ks.EigenvaluePruning(
            ks.PolynomialDecay(0.0, level, begin_epoch=0, end_epoch=SCHEDULE_SHARE * finetune_epochs()),
            score="sum", ignored_layers=keep))
    else:
        extra = {"data": (train[0][:2000], train[1][:2000])} if route == "taylor" else {}
        score = {"magnitude": "l2", "taylor": "taylor", "random": "random"}[route]
        ks.prune_nodes(model, fraction=level, score=score, ignored_layers=keep, **extra)
    model.fit(*train, batch_size=BATCH, epochs=finetune_epochs(), callbacks=callbacks, verbose=0)
    removed = {name: round(value, 4) for name, value in ks.node_sparsity(model).items() if value}
    return {**served_values(model, data, base), **reference, "removed": removed}


def cells(args):
    shares, count = args.shard
    for seed in range(args.seeds):
        if count and seed % count not in shares:
            continue
        yield {"seed": seed, "setting": "none", "route": "unpruned"}
        for setting in args.settings:
            for route in ROUTES:
                yield {"seed": seed, "setting": setting, "route": route}


def run(args):
    data = load_data()
    keys = list(cells(args))
    describe = lambda k: f"seed {k['seed']} {k['setting']} {k['route']}"  # noqa: E731
    run_cells([(k, lambda k=k: run_route(k["seed"], k["setting"], k["route"], data)) for k in keys],
              ResultsFile(args.results), describe, lambda v: f"test accuracy {100 * v['accuracy']:.2f} %")


# --- report ---------------------------------------------------------------------------------


def _field(records, setting, route, field):
    return [r[field] for r in records
            if r["key"]["setting"] == setting and r["key"]["route"] == route and field in r]


def report_text(records):
    base = _field(records, "none", "unpruned", "accuracy")
    tuned = _field(records, "none", "unpruned", "finetuned_accuracy")
    epochs = _field(records, "none", "unpruned", "base_epochs")
    params = _field(records, "none", "unpruned", "base_params")
    macs = _field(records, "none", "unpruned", "base_multiply_adds")
    lines = [
        "# Pruning a trained vision transformer",
        "",
        "`benchmarks/vit_pruning.py` (its docstring has the protocol): a small ViT (7×7 patches, "
        f"width {WIDTH}, {DEPTH} pre-LN blocks of {HEADS} heads and {MLP} feed-forward units) trained on "
        "MNIST until its validation accuracy stops improving, then every route gets the same "
        f"{FINETUNE_EPOCHS} epochs of fine-tuning to remove half of every layer's heads and feed-forward "
        "units (`heads_ffn`), or a quarter of the residual stream (`stream`). Test accuracy, mean ± std "
        "over seeds (count in brackets).",
        "",
        f"Unpruned: {cell(base, 2)} after {', '.join(map(str, epochs)) or '–'} epochs; fine-tuned for the "
        f"same budget: {cell(tuned, 2)}. Parameters {params[0] if params else '–':,}, multiply-adds per "
        f"image {macs[0] if macs else '–':,}.",
        "",
        "| setting | route | test accuracy | parameters | multiply-adds | predict throughput |",
        "|---|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        for route in ROUTES:
            acc = _field(records, setting, route, "accuracy")
            if not acc:
                continue
            p, m = _field(records, setting, route, "params"), _field(records, setting, route, "multiply_adds")
            speed = [s / b for s, b in zip(_field(records, setting, route, "samples_per_second"),
                                           _field(records, setting, route, "base_samples_per_second"))]
            share = (lambda v, full: f"{np.mean(v):,.0f} ({np.mean(v) / full[0]:.0%})" if v and full else "–")
            lines.append(f"| {setting} | {route} | {cell(acc, 2)} | {share(p, params)} | {share(m, macs)} | "
                         f"{f'{np.mean(speed):.2f}×' if speed else '–'} |")
    lines += [""] + verdicts(records) + ["", READING, "", provenance(records) + " Commands: `KERAS_BACKEND=jax taskset -c I python "
              "benchmarks/vit_pruning.py run --shard I/3` (I = 0, 1: seeds 0 and 1, one core each), then seed 2 "
              "split by setting over the two cores (`--shard 2/3 --settings heads_ffn`, `--shard 2/3 --settings "
              "stream`), then `python benchmarks/vit_pruning.py report`.",
              ""]
    return "\n".join(lines)


READING = (
    "How to read it: every pruning route ends with the same shape and gets the same fine-tuning epochs. The "
    "spectral route removes nodes gradually over the first 60 % of them, so it trains fewer epochs at its final "
    "shape than the one-shot routes; and right after `spectralize` its eigenvalues all equal 1 (a head's `λ_h`, a "
    "feature's `λ_in`), so they have only the fine-tuning to learn which nodes matter (issue #35's learned-"
    "importance phase is about that). The random route is the control: where it ties the criteria, the "
    "criterion does not decide the result at this budget. The scratch route trains the final shape for the "
    "base's epochs plus the fine-tuning, more epochs than any pruning route's fine-tuning."
)


def verdicts(records):
    """Per setting, the spectral route against the best other pruning route and the
    final shape trained from scratch, in words (computed from the records)."""
    lines = []
    for setting in SETTINGS:
        means = {route: np.mean(v) for route in ROUTES if (v := _field(records, setting, route, "accuracy"))}
        if "spectral" not in means or len(means) < 2:
            continue
        others = {r: m for r, m in means.items() if r not in ("spectral", "scratch")}
        text = f"`{setting}`: spectral {100 * means['spectral']:.2f} %"
        if others:
            best = max(others, key=others.get)
            text += f", {100 * (means['spectral'] - others[best]):+.2f} pt against the best other pruning route ({best})"
        if "scratch" in means:
            text += f", {100 * (means['spectral'] - means['scratch']):+.2f} pt against the final shape trained from scratch"
        criteria = {r: m for r, m in others.items() if r != "random"}
        if "random" in means and criteria:
            best = max(criteria, key=criteria.get)
            text += (f"; the random control {100 * means['random']:.2f} % "
                     f"({100 * (means['random'] - criteria[best]):+.2f} pt against {best})")
        lines.append(f"- {text}.")
    return lines


def report(args):
    records = records_or_exit(args.results, "vit_pruning")
    os.makedirs(args.out, exist_ok=True)
    atomic_write(os.path.join(args.out, "vit_pruning.md"), report_text(records))
    print(f"wrote {args.out}/vit_pruning.md")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--shard", type=parse_shard, default=((0,), 0))
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--out", default="docs")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    QUICK["on"] = args.quick
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
