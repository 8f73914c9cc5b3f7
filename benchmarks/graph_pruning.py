"""Pruning the models people already have: train with Dense, convert, prune, compact.

    python benchmarks/graph_pruning.py run    [--models mlp_mnist mlp_fashion_mnist cnn_cifar10 transformer_mnist]
                                              [--seeds 3] [--levels 0.5 0.7 0.9] [--shard I/N]
    python benchmarks/graph_pruning.py report [--out docs]
    (--quick: 2,000 training images and one epoch per phase, to check the harness)

Workflow measured (issue #19): a model is trained conventionally with Dense layers (Adam
1e-3, batch 200, `BASE_EPOCHS`), then each route gets the same fine-tuning budget
(`FINETUNE_EPOCHS` more epochs, same optimizer) to remove a fraction (`--levels`) of the
prunable hidden nodes (the removable node groups of `keras_spectral.node_groups`: the
MLP's two hidden layers, the CNN's 512-node head, the transformer's FFN nodes):

- `spectral`: `spectralize` (φ trainable, exact), `EigenvaluePruning` with
  `PolynomialDecay(0 → level)` over the first 60 % of the fine-tuning steps, then `compact`;
- `magnitude_gradual`: the Dense model fine-tuned with nodes removed by incoming L1 norm
  on the same schedule (their incoming weights and biases held at zero);
- `magnitude_oneshot`: the same removal all at once before the fine-tuning;
- `scratch`: the model of the final widths trained from scratch for
  `BASE_EPOCHS + FINETUNE_EPOCHS` epochs;
- `unpruned`: the base model (and, as a same-budget reference, fine-tuned for the
  fine-tuning budget without pruning).

Recorded per cell: test accuracy, parameters and multiply-adds per sample of the
compacted model (`spectral`; the magnitude routes remove the same number of nodes, and
so have the same counts), and predict throughput (batch 1024, samples/s) of
`collapse(compact(model))` against the unpruned Dense model, timed in the same process.

Cells are appended atomically to `results/graph_pruning.jsonl` and skipped on a rerun;
the trained base models are kept under `results/tmp/graph_pruning/` (not committed) so a
stopped run resumes without retraining them. `--shard I/N` splits the (model, seed)
pairs between processes. `report` writes docs/graph_pruning.md and its figure from the
results file alone. Nothing here was tuned: the settings are fixed above, and only test
accuracy is reported.
"""

import argparse
import math
import os
import time

import keras
import numpy as np

from keras_spectral import EigenvaluePruning, PolynomialDecay, collapse, compact, datasets, spectralize
from keras_spectral import importance
from keras_spectral.graph import ModelGraph
from keras_spectral.graph.groups import InnerGroup, node_groups
from harness.baselines import NodeRemoval
from harness.results import ResultsFile
from keras_spectral.schedules import ConstantSparsity

from harness.cells import run_cells
from reproduce import parse_shard

DEFAULT_RESULTS = "results/graph_pruning.jsonl"
BASE_DIR = "results/tmp/graph_pruning"
LR, BATCH = 1e-3, 200
LEVELS = (0.5, 0.7, 0.9)
ROUTES = ("unpruned", "spectral", "magnitude_gradual", "magnitude_oneshot", "scratch")
SCHEDULE_SHARE = 0.6  # of the fine-tuning steps over which the gradual routes reach their level


# --- models ---------------------------------------------------------------------------------


def mlp(widths=(500, 500)):
    layers = [keras.Input((784,))]
    layers += [keras.layers.Dense(w, activation="relu", name=f"hidden_{i}") for i, w in enumerate(widths)]
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    return keras.Sequential(layers, name="mlp")


def cnn(head=512):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv_0")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv_1")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(head, activation="relu", name="head")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="cnn")


def transformer(ffn=(128, 128), width=32, heads=2):
    inputs = keras.Input((28, 28))
    x = keras.layers.Dense(width, name="embed")(inputs)
    for i, hidden in enumerate(ffn):
        attended = keras.layers.MultiHeadAttention(heads, width // heads, name=f"attention_{i}")(x, x)
        x = keras.layers.LayerNormalization(name=f"norm_a{i}")(keras.layers.Add()([x, attended]))
        h = keras.layers.Dense(hidden, activation="gelu", name=f"ffn_in_{i}")(x)
        h = keras.layers.Dense(width, name=f"ffn_out_{i}")(h)
        x = keras.layers.LayerNormalization(name=f"norm_f{i}")(keras.layers.Add()([x, h]))
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="transformer")


# name: (data set, input form, builder(kept fraction or None), base epochs, fine-tuning epochs)
MODELS = {
    "mlp_mnist": ("mnist", "flat", lambda keep=1.0: mlp(tuple(_width(500, keep) for _ in range(2))), 10, 5),
    "mlp_fashion_mnist": ("fashion_mnist", "flat", lambda keep=1.0: mlp(tuple(_width(500, keep) for _ in range(2))), 10, 5),
    "cnn_cifar10": ("cifar10", "image", lambda keep=1.0: cnn(_width(512, keep)), 8, 4),
    "transformer_mnist": ("mnist", "tokens", lambda keep=1.0: transformer(tuple(_width(128, keep) for _ in range(2))), 8, 4),
}


def _width(full, keep):
    return full - int(math.floor((1.0 - keep) * full + 1e-9))


QUICK = {"on": False}


def epochs_of(name):
    """(base, fine-tuning) epochs of a model (one each with --quick)."""
    return (1, 1) if QUICK["on"] else MODELS[name][3:5]


def load_data(name):
    data = _load_data(name)
    if QUICK["on"]:
        (x, y), (xt, yt) = data
        data = (x[:2000], y[:2000]), (xt[:1000], yt[:1000])
    return data


def _load_data(name):
    dataset, form, *_ = MODELS[name]
    if form == "flat":
        return datasets.load_flat(dataset)
    (x, y), (xt, yt) = datasets.load(dataset)
    scale = lambda a: a.astype("float32") / 255.0  # noqa: E731
    if form == "tokens":
        x, xt = x.reshape(-1, 28, 28), xt.reshape(-1, 28, 28)
    return (scale(x), y.astype("int32").reshape(-1)), (scale(xt), yt.astype("int32").reshape(-1))


# --- training and measurements --------------------------------------------------------------


def compile_model(model):
    model.compile(keras.optimizers.Adam(LR), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(model, data, epochs, callbacks=()):
    (x, y), _ = data
    model.fit(x, y, batch_size=BATCH, epochs=epochs, callbacks=list(callbacks), verbose=0)
    return model


def accuracy(model, data):
    _, (xt, yt) = data
    predictions = model.predict(xt, batch_size=1000, verbose=0)
    return float(np.mean(predictions.argmax(axis=-1) == yt))


def multiply_adds(model):
    """Multiply-adds per sample of the Dense / SpectralDense, convolution and attention
    layers (the rest is negligible), read from the model's graph."""
    graph = ModelGraph(model)
    total = 0
    for call in graph.calls:
        layer = call.layer
        shape = graph.tensors[call.inputs[0]].shape
        out_shape = graph.tensors[call.outputs[0]].shape
        if hasattr(layer, "units"):
            total += math.prod(shape[1:-1]) * shape[-1] * layer.units
        elif isinstance(layer, keras.layers.Conv2D):
            total += math.prod(out_shape[1:]) * math.prod(layer.kernel_size) * shape[-1]
        elif isinstance(layer, keras.layers.MultiHeadAttention):
            tokens, width = shape[1], shape[-1]
            inner = layer._num_heads * layer._key_dim
            total += 4 * tokens * width * inner + 2 * tokens * tokens * inner
    return int(total)


def throughput(model, x, batch=1024, repeats=5, min_seconds=0.3):
    """Median samples/s of `model.predict_on_batch` on one batch."""
    x = x[:batch]
    for _ in range(3):
        model.predict_on_batch(x)
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            model.predict_on_batch(x)
            calls += 1
        rates.append(calls * len(x) / (time.perf_counter() - start))
    return float(np.median(rates))


def base_model(name, seed, data):
    """The conventionally trained model of (name, seed), trained once and cached."""
    build, (base_epochs, _) = MODELS[name][2], epochs_of(name)
    path = os.path.join(BASE_DIR + ("_quick" if QUICK["on"] else ""), f"{name}_seed{seed}.weights.h5")
    keras.utils.set_random_seed(seed)
    model = compile_model(build())
    if os.path.exists(path):
        model.load_weights(path)
        return model
    fit(model, data, base_epochs)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path[: -len(".weights.h5")] + ".partial.weights.h5"
    model.save_weights(partial)
    os.replace(partial, path)
    return model


def removable(model):
    """The removable groups of hidden nodes this study prunes: dense ones (the CNN's
    channels are left to benchmarks of channel pruning; attention heads, and the
    transformer's stream that its LayerNormalizations block in the plain model, to
    `vit_pruning.py`)."""
    return [g for g in node_groups(model) if g.removable and not g.channels and not isinstance(g, InnerGroup)]


def schedule_for(level, data, epochs, oneshot=False):
    (x, _), _ = data
    return removal_schedule(level, epochs * math.ceil(len(x) / BATCH), oneshot)


def removal_schedule(level, steps, oneshot=False):
    """`level` of the nodes removed at once before step 0 (`oneshot`), or gradually over the
    first `SCHEDULE_SHARE` of `steps` (`PolynomialDecay`, about 20 pruning steps)."""
    if oneshot:
        return ConstantSparsity(level, begin_step=0, end_step=0, frequency=1)
    end = max(1, int(SCHEDULE_SHARE * steps))
    return PolynomialDecay(0.0, level, begin_step=0, end_step=end, frequency=max(1, end // 20))


def run_route(name, seed, route, level, data):
    build, (base_epochs, finetune_epochs) = MODELS[name][2], epochs_of(name)
    x_probe = data[1][0]
    if route == "scratch":
        keras.utils.set_random_seed(seed)
        model = compile_model(build(1.0 - level))
        fit(model, data, base_epochs + finetune_epochs)
        return {"accuracy": accuracy(model, data), "params": model.count_params(),
                "multiply_adds": multiply_adds(model)}
    base = base_model(name, seed, data)
    reference = {"base_params": base.count_params(), "base_multiply_adds": multiply_adds(base)}
    if route == "unpruned":
        values = {"accuracy": accuracy(base, data), **reference,
                  "base_samples_per_second": throughput(base, x_probe)}
        fit(base, data, finetune_epochs)
        values["finetuned_accuracy"] = accuracy(base, data)
        return values
    if route == "spectral":
        groups = removable(base)
        names = {layer.name for g in groups for layer in g.producers + [c for c, _ in g.consumers]}
        model = compile_model(spectralize(base, layers=lambda layer: layer.name in names))
        callback = EigenvaluePruning(schedule_for(level, data, finetune_epochs), score="sum")
        fit(model, data, finetune_epochs, [callback])
        small = collapse(compact(model))
        compile_model(small)
        return {"accuracy": accuracy(small, data), "masked_accuracy": accuracy(model, data),
                "params": small.count_params(), "multiply_adds": multiply_adds(small), **reference,
                "samples_per_second": throughput(small, x_probe),
                "base_samples_per_second": throughput(base, x_probe)}
    oneshot = route == "magnitude_oneshot"
    callback = NodeRemoval(removable(base), schedule_for(level, data, finetune_epochs, oneshot),
                           lambda group: importance.scores(group, "l1"))
    fit(base, data, finetune_epochs, [callback])
    removed = [float(r.mean()) for r in callback.removed]
    return {"accuracy": accuracy(base, data), "removed": removed, **reference}


def cells(args):
    pairs = [(name, seed) for seed in range(args.seeds) for name in args.models]
    shares, count = args.shard
    mine = [pair for i, pair in enumerate(pairs) if count == 0 or i % count in shares]
    for name, seed in mine:
        for route in ROUTES:
            for level in ((0.0,) if route == "unpruned" else args.levels):
                yield {"model": name, "seed": seed, "route": route, "level": level}


def run(args):
    results = ResultsFile(args.results)
    keys = list(cells(args))
    loaded = {}

    def cell(key):
        def fn():
            name = key["model"]
            if name not in loaded:
                loaded.clear()
                loaded[name] = load_data(name)
            return run_route(name, key["seed"], key["route"], key["level"], loaded[name])

        return key, fn

    describe = lambda k: f"{k['model']} seed {k['seed']} {k['route']} {k['level']}"  # noqa: E731
    run_cells([cell(k) for k in keys], results, describe, lambda v: f"acc {100 * v['accuracy']:.2f} %")


# --- report ---------------------------------------------------------------------------------


def _mean(values):
    return (float(np.mean(values)), float(np.std(values)), len(values)) if values else None


def _fmt(stat, digits=2):
    if stat is None:
        return "–"
    mean, std, n = stat
    return f"{100 * mean:.{digits}f} ± {100 * std:.{digits}f} ({n})"


def summarize(records):
    """`{(model, route, level): {field: [values over seeds]}}`."""
    table = {}
    for record in records:
        key = record["key"]
        slot = table.setdefault((key["model"], key["route"], key["level"]), {})
        for field, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                slot.setdefault(field, []).append(value)
    return table


def goal_verdict(table, model):
    """The issue's goal at 90 % removed, in words, or None while a route has no cell yet."""
    goal = table.get((model, "spectral", 0.9), {}).get("accuracy", [])
    unpruned = table.get((model, "unpruned", 0.0), {})
    base, tuned = unpruned.get("accuracy", []), unpruned.get("finetuned_accuracy", [])
    magnitude = [table.get((model, r, 0.9), {}).get("accuracy", []) for r in ("magnitude_gradual", "magnitude_oneshot")]
    if not (goal and base and tuned and all(magnitude)):
        return None
    spectral = np.mean(goal)
    gap, best = 100 * (spectral - np.mean(base)), max(np.mean(m) for m in magnitude)
    return (f"At 90 % removed: spectral {100 * spectral:.2f} %, {gap:+.2f} pt against the unpruned model "
            f"(goal: within 0.3 pt: {'met' if gap >= -0.3 else 'missed'}) and "
            f"{100 * (spectral - np.mean(tuned)):+.2f} pt against it fine-tuned for the same budget; "
            f"{100 * (spectral - best):+.2f} pt against the better magnitude route "
            f"(goal: at or above: {'met' if spectral >= best else 'missed'}); seeds: {len(goal)}.")


def report_text(records, command):
    table = summarize(records)
    models = [m for m in MODELS if any(k[0] == m for k in table)]
    lines = [
        "# Pruning trained models: convert, prune during fine-tuning, compact",
        "",
        f"Generated by `{command}` from `{DEFAULT_RESULTS}` "
        f"({len(records)} cells). Protocol: `benchmarks/graph_pruning.py` (its docstring); "
        "test accuracy in %, mean ± std (seeds). Every route gets the same fine-tuning budget.",
        "",
    ]
    machines = sorted({r.get("machine", "?") for r in records})
    dates = sorted({r.get("date", "?") for r in records})
    lines += [f"Machine: {'; '.join(machines)}. Dates: {dates[0]} to {dates[-1]}.", ""]
    verdicts = []
    for model in models:
        dataset, _, _, base_epochs, finetune_epochs = MODELS[model]
        unpruned = table.get((model, "unpruned", 0.0), {})
        lines += [f"## {model}", "",
                  f"Base: {base_epochs} epochs of Dense training; fine-tuning budget: {finetune_epochs} epochs. "
                  f"Unpruned: {_fmt(_mean(unpruned.get('accuracy', [])))}; fine-tuned {finetune_epochs} more epochs "
                  f"without pruning: {_fmt(_mean(unpruned.get('finetuned_accuracy', [])))}.", "",
                  "| removed | spectral | magnitude, gradual | magnitude, one-shot | final widths from scratch | params (% of base) | multiply-adds (% of base) | throughput × base |",
                  "|---|---|---|---|---|---|---|---|"]
        for level in LEVELS:
            row = [f"{int(round(100 * level))} %"]
            for route in ("spectral", "magnitude_gradual", "magnitude_oneshot", "scratch"):
                row.append(_fmt(_mean(table.get((model, route, level), {}).get("accuracy", []))))
            spectral = table.get((model, "spectral", level), {})
            if spectral.get("params"):
                row.append(f"{100 * np.mean(spectral['params']) / np.mean(spectral['base_params']):.1f}")
                row.append(f"{100 * np.mean(spectral['multiply_adds']) / np.mean(spectral['base_multiply_adds']):.1f}")
                ratios = np.array(spectral["samples_per_second"]) / np.array(spectral["base_samples_per_second"])
                row.append(f"{ratios.mean():.2f}")
            else:
                row += ["–", "–", "–"]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        verdict = goal_verdict(table, model)
        if verdict:
            lines += [verdict, ""]
            verdicts.append(f"- {model}: {verdict[len('At 90 % removed: '):]}")
    if verdicts:
        at = lines.index(f"## {models[0]}")
        lines[at:at] = ["## Goals at 90 % removed (3-seed means where 3 seeds are in)", "",
                        "Goal: the spectral route within 0.3 pt of the unpruned model and at or above the better "
                        "magnitude route. The unpruned model fine-tuned for the same budget is the stricter "
                        "reference, given beside it.", "", *verdicts, ""]
    return "\n".join(lines)


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.report_utils import finish_figure

    table = summarize(records)
    models = [m for m in MODELS if any(k[0] == m for k in table)]
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
    styles = {"spectral": ("tab:blue", "o"), "magnitude_gradual": ("tab:orange", "s"),
              "magnitude_oneshot": ("tab:red", "v"), "scratch": ("tab:gray", "^")}
    for ax, model in zip(axes[0], models):
        for route, (color, marker) in styles.items():
            points = [(level, table[(model, route, level)]["accuracy"]) for level in LEVELS
                      if (model, route, level) in table]
            if points:
                ax.errorbar([100 * p[0] for p in points], [100 * np.mean(p[1]) for p in points],
                            yerr=[100 * np.std(p[1]) for p in points], color=color, marker=marker,
                            capsize=3, label=route.replace("_", ", "))
        base = table.get((model, "unpruned", 0.0), {}).get("accuracy")
        if base:
            ax.axhline(100 * np.mean(base), color="black", linestyle="--", linewidth=1, label="unpruned")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("prunable nodes removed (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    machines = "; ".join(sorted({r.get("machine", "?") for r in records}))
    dates = sorted({r.get("date", "?") for r in records})
    fig.suptitle(f"python benchmarks/graph_pruning.py report · {machines} · {dates[0]} to {dates[-1]}", fontsize=7)
    finish_figure(fig, axes, path)


def report(args):
    from harness.report_utils import records_or_exit, write_page

    records = records_or_exit(args.results, "graph_pruning")
    text = report_text(records, "python benchmarks/graph_pruning.py report")
    text += "\n![accuracy against nodes removed](figures/graph_pruning.png)\n"
    write_page(args.out, "graph_pruning", records, plot, text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--levels", nargs="+", type=float, default=list(LEVELS))
    parser.add_argument("--shard", type=parse_shard, default=((0,), 0))
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--out", default="docs")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    QUICK["on"] = args.quick
    if args.command == "run":
        run(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
