"""Channel pruning of a trained CIFAR-10 CNN, and spectral convolutions trained from scratch.

    python benchmarks/cnn_pruning.py run    [--seeds 3] [--levels 0.5 0.7 0.9] [--units ...]
    python benchmarks/cnn_pruning.py tune   (the validation pilot that fixed SPECTRAL_L1)
    python benchmarks/cnn_pruning.py report [--out docs]
    (--quick: 2,000 training images and one epoch per phase, to check the harness)

Run the study as two processes, one per core (TensorFlow, whose CPU convolutions are
about twice as fast as JAX's here; a process sees only its core):

    KERAS_BACKEND=tensorflow taskset -c I python benchmarks/cnn_pruning.py run   (I = 0, 1)

Each process claims the next unit of work nobody holds (a seed's trained CNN and every
route that starts from it; a seed's from-scratch cells), so both cores stay busy; a unit
left by a process that died is claimed again. `--units NAME --share I/N` (I = 0 .. N-1)
splits one unit's cells between N processes (once its base model is trained), e.g. to
finish the last unit on both cores; don't mix split and whole runs of one unit.

Model (issue #20): three stages of Conv2D 3×3 ('same', no bias) → BatchNormalization →
ReLU → 2×2 max pooling, with 32 / 64 / 128 channels, then global average pooling and a
softmax Dense head. One epoch on the 45,000 training images takes about 47 s on one core
of this machine (TensorFlow). Data: CIFAR-10, the last 5,000 training images held out as
validation (settings are chosen there), the 10,000 test images for the figures reported.

Trained conventionally (Adam 1e-3, batch 200, `BASE_EPOCHS`), then each route gets the
same fine-tuning budget (`FINETUNE_EPOCHS` epochs, Adam 1e-3) to remove a fraction
(`--levels`) of every convolution's channels (the three prunable channel groups of
`keras_spectral.node_groups`):

- `spectral`: `spectralize` (φ trainable, exact: λ_in = 1, λ_out = 0), `EigenvaluePruning`
  (score `"sum"`: |λ_out| of the producer plus |λ_in| of the reader) with
  `PolynomialDecay(0 → level)` over the first 60 % of the fine-tuning steps, then `compact`;
  during the fine-tuning an L1 penalty `SPECTRAL_L1` on every λ_in (the readers'
  per-channel scales: the spectral analogue of network slimming), chosen on validation
  by `tune` from `TUNE_PENALTIES` (0 included: no penalty);
- `l1_gradual`: L1-norm filter pruning (Li et al., ICLR 2017) on the spectral route's
  schedule: the filters of smallest L1 norm are removed (their filter and the
  BatchNorm's γ and β held at zero, so the channel is 0 after the ReLU);
- `l1_oneshot`: the same removal at once before the fine-tuning (Li et al.'s protocol);
- `slimming`: network slimming (Liu et al., ICCV 2017): half the budget with an L1
  penalty 1e-4 on BatchNorm's γ (the paper's value), then the channels of smallest |γ|
  removed, and the other half fine-tuned without the penalty;
- `scratch`: the CNN of the final widths trained from scratch for
  `BASE_EPOCHS + FINETUNE_EPOCHS` epochs (the whole budget of the other routes);
- `unpruned`: the base model, and as the same-budget reference, fine-tuned for the
  fine-tuning budget without pruning.

Recorded per cell: validation and test accuracy; for `spectral*`, parameters and
multiply-adds per image of `collapse(compact(model))` (the other pruning routes remove as
many channels per layer, so they have the same counts) and its predict throughput (batch
1024, images/s) against the unpruned CNN, timed in the same process.

From scratch (`study_*` routes, `BASE_EPOCHS` epochs, Adam 1e-3 like the base): the same
CNN with `SpectralConv2D` / `SpectralDense` layers, eigenvalues only (`frozen`) and with φ
trained (`trainable`), against Conv2D at the same architecture (the `unpruned` base) and at
equal trainable parameters (`study_conv_equal`: widths w / 2w / 4w, w chosen so its
trainable count is nearest the eigenvalues-only CNN's).

Cells are appended atomically to `results/cnn_pruning.jsonl` and skipped on a rerun; the
trained base models are kept under `results/tmp/cnn_pruning/` (not committed).
"""

import argparse
import contextlib
import math
import os

import keras
import numpy as np
from keras import ops

from keras_spectral import (
    EigenvaluePruning,
    PolynomialDecay,
    SpectralConv2D,
    SpectralDense,
    collapse,
    compact,
    datasets,
    importance,
    node_groups,
    spectralize,
)
from keras_spectral.models import trainable_count

from graph_pruning import _width, multiply_adds, removal_schedule, throughput
from harness.baselines import NodeRemoval, batch_norms
from harness.cells import run_cells
from harness.results import ResultsFile
from reproduce import parse_shard

from cnn_pruning_report import report
from cnn_pruning_settings import (
    BASE_EPOCHS, BATCH, DEFAULT_RESULTS, FINETUNE_EPOCHS, LEVELS, LR, PRUNING_ROUTES, SLIMMING_L1, SPECTRAL_L1,
    STUDY_ROUTES, TUNE_PENALTIES, VALIDATION, WIDTHS, WORK_DIR,
)

QUICK = {"on": False}


# --- model and data ---------------------------------------------------------------------------


def cnn(widths=WIDTHS, mode=None):
    """The study's CNN; `mode` None for Conv2D / Dense, else the spectral layers' eigenvector
    mode (`"frozen"`: eigenvalues only, `"trainable"`)."""
    inputs = keras.Input((32, 32, 3))
    h = inputs
    for i, channels in enumerate(widths):
        if mode is None:
            h = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"conv_{i}")(h)
        else:
            h = SpectralConv2D(channels, 3, padding="same", use_bias=False, eigenvectors=mode, name=f"conv_{i}")(h)
        h = keras.layers.BatchNormalization(name=f"bn_{i}")(h)
        h = keras.layers.ReLU(name=f"relu_{i}")(h)
        h = keras.layers.MaxPooling2D(name=f"pool_{i}")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    if mode is None:
        outputs = keras.layers.Dense(10, activation="softmax", name="classifier")(h)
    else:
        outputs = SpectralDense(10, activation="softmax", eigenvectors=mode, name="classifier")(h)
    return keras.Model(inputs, outputs, name="cnn" if mode is None else f"spectral_cnn_{mode}")


def pruned_widths(level):
    return tuple(_width(w, 1.0 - level) for w in WIDTHS)


def load_data():
    """((x_train, y_train), (x_val, y_val), (x_test, y_test)), images in [0, 1]."""
    (x, y), (xt, yt) = datasets.load("cifar10")
    x, xt = x.astype("float32") / 255.0, xt.astype("float32") / 255.0
    y, yt = y.astype("int32").reshape(-1), yt.astype("int32").reshape(-1)
    train, val = (x[:-VALIDATION], y[:-VALIDATION]), (x[-VALIDATION:], y[-VALIDATION:])
    if QUICK["on"]:
        return (x[:2000], y[:2000]), (val[0][:500], val[1][:500]), (xt[:1000], yt[:1000])
    return train, val, (xt, yt)


def epochs():
    """(base, fine-tuning) epochs (one each with --quick)."""
    return (1, 1) if QUICK["on"] else (BASE_EPOCHS, FINETUNE_EPOCHS)


def compile_model(model, optimizer=None):
    model.compile(optimizer or keras.optimizers.Adam(LR), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(model, data, n_epochs, callbacks=()):
    x, y = data[0]
    model.fit(x, y, batch_size=BATCH, epochs=n_epochs, callbacks=list(callbacks), verbose=0)
    return model


def accuracies(model, data):
    """{"val_accuracy", "accuracy" (test)}."""
    out = {}
    for field, (x, y) in (("val_accuracy", data[1]), ("accuracy", data[2])):
        out[field] = float(np.mean(model.predict(x, batch_size=1000, verbose=0).argmax(axis=-1) == y))
    return out


def steps_per_epoch(data):
    return math.ceil(len(data[0][0]) / BATCH)


def base_model(seed, data):
    """The conventionally trained CNN of `seed`, trained once and cached."""
    path = os.path.join(WORK_DIR + ("_quick" if QUICK["on"] else ""), f"cnn_seed{seed}.weights.h5")
    keras.utils.set_random_seed(seed)
    model = compile_model(cnn())
    if os.path.exists(path):
        model.load_weights(path)
        return model
    fit(model, data, epochs()[0])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path[: -len(".weights.h5")] + ".partial.weights.h5"
    model.save_weights(partial)
    os.replace(partial, path)
    return model


# --- conventional channel pruning -----------------------------------------------------------


def channel_groups(model):
    """The removable channel groups (one per convolution here)."""
    groups = [g for g in node_groups(model) if g.removable and g.channels]
    if len(groups) != len(WIDTHS):
        raise RuntimeError(f"expected {len(WIDTHS)} removable channel groups, found {groups}")
    return groups


def gamma_scores(group):
    """Network slimming's criterion: |γ| of the BatchNormalization the channel passes."""
    return sum(np.abs(ops.convert_to_numpy(bn.gamma))[features] for bn, features in batch_norms(group))


def gradual(level, data, n_epochs):
    """graph_pruning's gradual schedule: `level` reached over the first 60 % of the steps."""
    return removal_schedule(level, n_epochs * steps_per_epoch(data))


def at_once(level):
    return removal_schedule(level, 0, oneshot=True)


def l1_score(group):
    return importance.scores(group, "l1")


# --- routes -----------------------------------------------------------------------------------


def reader_norm_eigenvalues(model):
    """Refactor each spectral convolution after the first exactly with informative input
    eigenvalues: λ_in[i] = the RMS of the kernel's weights on input channel i, φ divided by
    it (so the `"sum"` score starts as each channel's outgoing weight magnitude)."""
    for layer in [layer for layer in model.layers if isinstance(layer, SpectralConv2D)][1:]:
        phi = ops.convert_to_numpy(layer.eigenvectors)
        scale = np.sqrt((phi**2).mean(axis=(0, 1, 3)))
        scale[scale == 0] = 1.0
        layer.eigenvalues_in.assign(scale.astype("float32"))
        layer.eigenvectors.assign((phi / scale[:, None]).astype("float32"))
    return model


def run_spectral(base, level, data, penalty, delay=0.0, eigenvalues="unit"):
    kwargs = {"eigenvalues_in_regularizer": keras.regularizers.L1(penalty)} if penalty else {}
    model = spectralize(base, **kwargs)
    if eigenvalues == "reader_norms":
        reader_norm_eigenvalues(model)
    steps = epochs()[1] * steps_per_epoch(data)
    if delay:  # prune over 50 % to 80 % of the steps instead of 0 to 60 %
        schedule = PolynomialDecay(0.0, level, begin_step=int(delay * steps), end_step=int(0.8 * steps),
                                   frequency=max(1, int((0.8 - delay) * steps) // 20))
    else:
        schedule = gradual(level, data, epochs()[1])
    fit(compile_model(model), data, epochs()[1], [EigenvaluePruning(schedule, score="sum")])
    small = compile_model(collapse(compact(model)))
    x_probe = data[2][0]
    masked = accuracies(model, data)
    return {**accuracies(small, data), "masked_accuracy": masked["accuracy"],
            "params": small.count_params(), "multiply_adds": multiply_adds(small),
            "widths": [small.get_layer(f"conv_{i}").filters for i in range(len(WIDTHS))],
            "samples_per_second": throughput(small, x_probe),
            "base_samples_per_second": throughput(base, x_probe)}


def run_slimming(base, level, data):
    finetune = epochs()[1]
    first = max(1, finetune // 2)
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for bn in norms:
        bn.gamma.regularizer = keras.regularizers.L1(SLIMMING_L1)
    optimizer = keras.optimizers.Adam(LR)
    fit(compile_model(base, optimizer), data, first)
    for bn in norms:
        bn.gamma.regularizer = None
    callback = NodeRemoval(channel_groups(base), at_once(level), gamma_scores)
    fit(compile_model(base, optimizer), data, max(1, finetune - first), [callback])  # the same Adam state
    return {**accuracies(base, data), "removed": [float(r.mean()) for r in callback.removed]}


def run_route(seed, route, level, data, penalty=None, variant=None):
    base_epochs, finetune = epochs()
    if route == "scratch":
        model = compile_model(cnn(pruned_widths(level)))
        fit(model, data, base_epochs + finetune)
        return {**accuracies(model, data), "params": model.count_params(), "multiply_adds": multiply_adds(model)}
    if route.startswith("study_"):
        return run_study(route, data)
    base = base_model(seed, data)
    reference = {"base_params": base.count_params(), "base_multiply_adds": multiply_adds(base),
                 "base_trainable": trainable_count(base)}
    if route == "unpruned":
        values = {**accuracies(base, data), **reference}
        fit(base, data, finetune)
        tuned = accuracies(base, data)
        return {**values, "finetuned_accuracy": tuned["accuracy"], "finetuned_val_accuracy": tuned["val_accuracy"]}
    if route == "spectral":
        penalty = SPECTRAL_L1 if penalty is None else penalty  # `run` waits until `tune` has set it
        return {**run_spectral(base, level, data, penalty, **(variant or {})), "penalty": penalty, **reference}
    if route == "slimming":
        return {**run_slimming(base, level, data), **reference}
    schedule = at_once(level) if route == "l1_oneshot" else gradual(level, data, finetune)
    callback = NodeRemoval(channel_groups(base), schedule, l1_score)
    fit(compile_model(base), data, finetune, [callback])
    return {**accuracies(base, data), "removed": [float(r.mean()) for r in callback.removed], **reference}


def equal_width():
    """w such that the Conv2D CNN of widths (w, 2w, 4w) has the trainable count nearest the
    eigenvalues-only spectral CNN's."""
    target = trainable_count(cnn(mode="frozen"))
    counts = {w: trainable_count(cnn((w, 2 * w, 4 * w))) for w in range(1, 33)}
    return min(counts, key=lambda w: abs(counts[w] - target)), target


def run_study(route, data):
    if route == "study_conv_equal":
        w, target = equal_width()
        model = cnn((w, 2 * w, 4 * w))
        extra = {"widths": [w, 2 * w, 4 * w], "spectral_trainable": target}
    else:
        model, extra = cnn(mode=route[len("study_"):]), {}
    compile_model(model)
    fit(model, data, epochs()[0])
    plain = model if route == "study_conv_equal" else collapse(model)  # the same function as Conv2D / Dense
    return {**accuracies(model, data), "trainable": trainable_count(model), "params": model.count_params(),
            "multiply_adds": multiply_adds(plain), **extra}


# --- units of work ----------------------------------------------------------------------------


def units(args):
    """`{unit name: [cell keys]}`, biggest first: a seed's base and every route from it; a
    seed's from-scratch cells."""
    out = {}
    for seed in range(args.seeds):
        cells = [{"seed": seed, "route": "unpruned", "level": 0.0}]
        cells += [{"seed": seed, "route": r, "level": lv} for lv in args.levels for r in PRUNING_ROUTES]
        out[f"base_seed{seed}"] = cells
    for seed in range(args.seeds):
        out[f"scratch_seed{seed}"] = [{"seed": seed, "route": "scratch", "level": lv} for lv in args.levels]
        out[f"study_seed{seed}"] = [{"seed": seed, "route": r, "level": 0.0} for r in STUDY_ROUTES]
    return out


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def claim(name):
    """Hold unit `name` for this process (yields False if a live process holds it)."""
    directory = os.path.join(WORK_DIR + ("_quick" if QUICK["on"] else ""), "claims")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(open(path).read().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and _alive(holder) and holder != os.getpid():
                yield False
                return
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)  # left by a process that died
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        try:
            yield True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        return
    yield False


def describe(key):
    extra = "".join(f" {k} {key[k]}" for k in ("penalty", "delay", "eigenvalues") if k in key)
    return f"seed {key['seed']} {key['route']} {key['level']}{extra}"


def summary(values):
    return f"val {100 * values['val_accuracy']:.2f} % test {100 * values['accuracy']:.2f} %"


def run_keys(keys, results, data):
    def cell(key):
        variant = {k: key[k] for k in ("delay", "eigenvalues") if k in key}
        return key, lambda: run_route(key["seed"], key["route"], key["level"], data, key.get("penalty"), variant)

    run_cells([cell(k) for k in keys], results, describe, summary)


def run(args):
    results = ResultsFile(args.results)
    data = load_data()
    todo = {name: keys for name, keys in units(args).items() if not args.units or name in args.units}
    (share,), count = args.share
    if count:  # every count-th cell of each unit, from the share-th: a unit split between processes
        todo = {f"{name}.{share}of{count}": keys[share::count] for name, keys in todo.items()}
    for name, keys in todo.items():
        if all(results.has(k) for k in keys):
            continue
        if name.startswith("base_") and SPECTRAL_L1 is None:  # (a split unit keeps its name's start)
            print(f"unit {name} waits for `tune` (SPECTRAL_L1 is not set)", flush=True)
            continue
        with claim(name) as mine:
            if mine:
                print(f"unit {name}", flush=True)
                run_keys(keys, results, data)


def tune(args):
    """The pilot that chose SPECTRAL_L1 (seed 0, 70 % removed, validation accuracy), and two
    variants tried with the chosen penalty: pruning later (50 % to 80 % of the steps), and
    informative input eigenvalues at conversion (`reader_norm_eigenvalues`)."""
    keys = [{"seed": 0, "route": "spectral", "level": 0.7, "penalty": p, "tune": True} for p in TUNE_PENALTIES]
    keys += [{"seed": 0, "route": "spectral", "level": 0.7, "penalty": 1e-2, "tune": True, **variant}
             for variant in ({"delay": 0.5}, {"eigenvalues": "reader_norms"})]
    run_keys(keys, ResultsFile(args.results), load_data())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "tune", "report"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--levels", nargs="+", type=float, default=list(LEVELS))
    parser.add_argument("--units", nargs="*", default=None, help="only these units (names as printed)")
    parser.add_argument("--share", type=parse_shard, default=((0,), 0),
                        help="I/N: every N-th cell of each unit, from the I-th (to split a unit's cells)")
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--out", default="docs")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    QUICK["on"] = args.quick
    if args.command == "run":
        run(args)
    elif args.command == "tune":
        tune(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
