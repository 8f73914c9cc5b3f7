"""Pruning converged ResNets to 2× and 4× fewer multiply-adds: every criterion at one budget.

    python benchmarks/converged_pruning.py base   [--dataset D] --seed S  (train one base model)
    python benchmarks/converged_pruning.py tune   [--dataset D] [--shard I/N]
    python benchmarks/converged_pruning.py run    [--dataset D] [--seeds 3] [--shard I/N]
    python benchmarks/converged_pruning.py ranking [--dataset D] [--seeds 3] [--shard I/N]
    python benchmarks/converged_pruning.py report [--out docs]
    (--quick: 1,000 training images and one epoch per phase, to check the harness)

Issue #35's study. Run each command as two processes, one per core:
`KERAS_BACKEND=tensorflow taskset -c I python benchmarks/converged_pruning.py tune --shard
I/2` (I = 0, 1), then the same with `run`; while core 0 trains seed 0's base for `tune`,
core 1 can train another seed's (`base --seed 1`). A base model is trained once per seed and
kept under `results/tmp/converged_pruning/` (a process that needs a base another one is
training waits for it); cells are appended atomically to `results/converged_pruning.jsonl`
and skipped on a rerun, so an interrupted study resumes where it stopped.

Model: ResNet-8 in the CIFAR layout of He et al. (2016): a 3×3 stem convolution, three
stages of one basic block each (16 / 32 / 64 channels, the last two with stride 2 and a
1×1 projection shortcut), BatchNormalization after every convolution, global average
pooling and a softmax Dense head: six coupled channel groups (the residual streams of the
three stages and the three blocks' inner channels). Data: `--dataset` (CIFAR-10 with
random flips and 4-pixel-padded crops, or Fashion-MNIST with crops); `TRAIN_IMAGES` of
the training set train, the last `VALIDATION` training images are the validation set on
which every setting is chosen, the 10,000 test images give the figures reported. The
training subset keeps 3 seeds of every route within a few hours of 2 CPU cores (one
CIFAR-10 epoch of 10,000 images takes about 21 s on one core).

Base: Adam 1e-3, batch 128, until the validation accuracy has not improved for `PATIENCE`
epochs (counted from epoch `MIN_EPOCHS`, Keras' `start_from_epoch`, so that a noisy early
plateau does not end the training: without it one base stopped after 7 epochs, where the
others ran 15 and 20; at most `MAX_EPOCHS`, best weights kept); its epochs E are recorded.
Every route then has the same budget of `phase + fine-tuning` epochs, where the fine-tuning
is F = ceil(E / 4) epochs and the phase `PHASE_EPOCHS`; routes without a phase fine-tune for
the whole budget. Fine-tuning (and the scratch route's training) uses Adam 1e-3 with a
cosine decay to 0 over its epochs: with a constant rate the accuracy at the last epoch
varied by ± 3.9 pt between seeds (a pilot of 2 seeds of the unpruned base, kept in
`results/converged_pruning_pilot_constant_rate.jsonl`), more than the
differences between criteria; the penalty phases train at a constant rate. Each route
removes channels until the served model (`collapse(compact(model))`) has `1 − level` of the
base's multiply-adds (`level` 0.5: 2× fewer; 0.75: 4× fewer), with `budget="multiply_adds"`
and `scope="layer"` (every channel group loses the same fraction), so every route ends with
the same architecture and only the criterion decides which channels go:

- `spectral`: `spectralize` (exact), then `learn_importance` for the phase (the eigenvalues
  alone, with an L1 penalty on the readers' `λ_in`, Adam `PHASE_LR`), then the fine-tuning
  with `EigenvaluePruning(score="in")` along `PolynomialDecay(0 → level)` over its first
  60 %;
- `l1_oneshot`: L1-norm filter pruning (Li et al., ICLR 2017), removed at once, then
  fine-tuned; `l1_gradual`: the same criterion on the spectral route's schedule;
- `taylor`: first-order Taylor (Molchanov et al., 2019) on 2,000 training images, at once;
- `slimming`: network slimming (Liu et al., ICCV 2017): the phase trains the whole model
  with an L1 penalty on BatchNorm's γ, then the channels of smallest |γ| go at once;
- `group`: group sparsity, then removal by group norm (the DepGraph recipe, Fang et al.,
  CVPR 2023): the phase trains with a group-L2 penalty (`Σ_j ‖W_{:,:,:,j}‖₂` on every
  convolution's filters), then the channels of smallest L2 norm over all their producers
  go at once;
- `random`: as many channels chosen at random, at once: the control;
- `scratch`: the final architecture trained from scratch for E + the budget;
- `unpruned`: the base, and fine-tuned for the budget without removal.

The penalties are chosen by `tune` on validation accuracy (seed 0, level 0.5, from
`PENALTIES`); `run` reads the choice from the results file (and records seed 0's tuning cell
of the chosen penalty as its own cell at that level, instead of running it again). Recorded
per cell: validation and test accuracy, parameters, multiply-adds and predict throughput
(batch 1,000, images/s) of the served model and of the base, timed in the same process.

`ranking` (after `tune`) asks why a route loses: per seed, the test accuracy right after
removal at each level, before any fine-tuning (BatchNorm statistics recomputed on 2,000
training images, no weight trained), ranked by L1 and at random from the converted base, and
by `in` and by L1 after the spectral route's phase (the chosen penalty).
"""

import argparse
import contextlib
import fcntl
import math
import os
import sys
import time

import keras
import numpy as np
from keras import ops

sys.path.insert(0, os.path.dirname(__file__))

import keras_spectral as ks  # noqa: E402
from keras_spectral import datasets  # noqa: E402

from graph_pruning import throughput  # noqa: E402
from harness.cells import run_cells  # noqa: E402
from harness.results import ResultsFile  # noqa: E402
from reproduce import parse_shard  # noqa: E402

DEFAULT_RESULTS = "results/converged_pruning.jsonl"
BASE_DIR = "results/tmp/converged_pruning"
WIDTHS = (16, 32, 64)
TRAIN_IMAGES, VALIDATION = 10000, 5000
MAX_EPOCHS, MIN_EPOCHS, PATIENCE, PHASE_EPOCHS, BATCH, LR, PHASE_LR = 40, 10, 4, 2, 128, 1e-3, 1e-2
LEVELS = (0.5, 0.75)
ROUTES = ("spectral", "l1_oneshot", "l1_gradual", "taylor", "slimming", "group", "random", "scratch")
PENALTIES = {"spectral": (1e-4, 1e-3, 1e-2), "slimming": (1e-5, 1e-4, 1e-3), "group": (1e-4, 1e-3)}
SCHEDULE_SHARE = 0.6
TUNE_LEVEL = 0.5
DATASETS = {"cifar10": {"shape": (32, 32, 3), "flip": True}, "fashion_mnist": {"shape": (28, 28, 1), "flip": False}}
QUICK = {"on": False}


# --- model and data ---------------------------------------------------------------------------


def resnet8(input_shape, widths=WIDTHS):
    """ResNet-8, CIFAR layout: stem, one basic block per stage, projection shortcuts."""
    inputs = keras.Input(input_shape)
    conv = lambda w, k, s, name: keras.layers.Conv2D(w, k, strides=s, padding="same", use_bias=False, name=name)  # noqa: E731
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(name="stem_bn")(conv(widths[0], 3, 1, "stem")(inputs)))
    for i, width in enumerate(widths):
        stride = 1 if i == 0 else 2
        y = conv(width, 3, stride, f"block{i}_conv1")(h)
        y = keras.layers.ReLU()(keras.layers.BatchNormalization(name=f"block{i}_bn1")(y))
        y = keras.layers.BatchNormalization(name=f"block{i}_bn2")(conv(width, 3, 1, f"block{i}_conv2")(y))
        if i:
            h = keras.layers.BatchNormalization(name=f"block{i}_bn_short")(conv(width, 1, stride, f"block{i}_short")(h))
        h = keras.layers.ReLU()(keras.layers.Add(name=f"block{i}_add")([h, y]))
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="classifier")(h), name="resnet8")


def load_data(name):
    """((x_train, y_train), (x_val, y_val), (x_test, y_test)) of dataset `name`, in [0, 1]."""
    (x, y), (xt, yt) = datasets.load(name)
    shape = DATASETS[name]["shape"]
    scale = lambda a: (a.astype("float32") / 255.0).reshape((-1, *shape))  # noqa: E731
    x, xt, y, yt = scale(x), scale(xt), y.astype("int32").reshape(-1), yt.astype("int32").reshape(-1)
    train, val = (x[:TRAIN_IMAGES], y[:TRAIN_IMAGES]), (x[-VALIDATION:], y[-VALIDATION:])
    if QUICK["on"]:
        return (x[:1000], y[:1000]), (val[0][:500], val[1][:500]), (xt[:1000], yt[:1000])
    return train, val, (xt, yt)


class Augmented(keras.utils.PyDataset):
    """Shuffled batches of `(x, y)` with random 4-pixel-padded crops (and horizontal flips)."""

    def __init__(self, x, y, flip, batch=BATCH):
        super().__init__()
        self.x, self.y, self.flip, self.batch = x, y, flip, batch
        self.padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
        self.rng = np.random.default_rng(int(np.random.randint(2**31)))  # seeded by set_random_seed
        self.order = self.rng.permutation(len(x))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch)

    def __getitem__(self, index):
        rows = self.order[index * self.batch:(index + 1) * self.batch]
        height, width = self.x.shape[1:3]
        dy, dx = self.rng.integers(0, 9, size=(2, len(rows)))
        images = np.stack([self.padded[r, a:a + height, b:b + width] for r, a, b in zip(rows, dy, dx)])
        if self.flip:
            flipped = self.rng.random(len(rows)) < 0.5
            images[flipped] = images[flipped, :, ::-1]
        return images, self.y[rows]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.x))


def compile_model(model, decay_steps=None):
    """Adam `LR`; with `decay_steps`, its learning rate follows a cosine decay to 0 over them
    (every training after the base: the fine-tuning, the scratch route)."""
    rate = keras.optimizers.schedules.CosineDecay(LR, decay_steps) if decay_steps else LR
    model.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def accuracy(model, data):
    x, y = data
    return float(np.mean(model.predict(x, batch_size=1000, verbose=0).argmax(-1) == y))


# --- base models ------------------------------------------------------------------------------


def base_model(dataset, seed, data):
    """The base of `seed` and its epochs and training seconds, trained once and cached. A
    process that finds another one training it waits for it (a lock per base)."""
    directory = os.path.join(BASE_DIR + ("_quick" if QUICK["on"] else ""), dataset)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"seed{seed}.weights.h5")
    info = path.replace(".weights.h5", ".txt")
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        keras.utils.set_random_seed(seed)
        model = compile_model(resnet8(DATASETS[dataset]["shape"]))
        if os.path.exists(path) and os.path.exists(info):
            model.load_weights(path)
            epochs, seconds = open(info).read().split()
            return model, int(epochs), float(seconds)
        train, val, _ = data
        stop = keras.callbacks.EarlyStopping("val_accuracy", patience=PATIENCE, restore_best_weights=True,
                                             start_from_epoch=0 if QUICK["on"] else MIN_EPOCHS)
        start = time.perf_counter()
        history = model.fit(Augmented(*train, DATASETS[dataset]["flip"]), epochs=1 if QUICK["on"] else MAX_EPOCHS,
                            validation_data=val, callbacks=[stop], verbose=0)
        seconds = time.perf_counter() - start
        runs = len(history.history["loss"])
        epochs = runs - PATIENCE if stop.stopped_epoch else runs  # the best epoch's, as kept
        model.save_weights(path + ".partial.weights.h5")
        with open(info + ".partial", "w") as f:
            f.write(f"{epochs} {seconds:.1f}")
        os.replace(info + ".partial", info)
        os.replace(path + ".partial.weights.h5", path)
        return model, epochs, seconds


def budget_epochs(base_epochs):
    """(phase, fine-tuning) epochs: `PHASE_EPOCHS` and ceil(E / 4)."""
    return (1, 1) if QUICK["on"] else (PHASE_EPOCHS, math.ceil(base_epochs / 4))


# --- penalties ------------------------------------------------------------------------------


class GroupL2(keras.regularizers.Regularizer):
    """`penalty · Σ_j ‖W[..., j]‖₂`: the group-L2 norm of a kernel's output channels."""

    def __init__(self, penalty):
        self.penalty = float(penalty)

    def __call__(self, kernel):
        norms = ops.sqrt(ops.sum(ops.square(ops.reshape(kernel, (-1, kernel.shape[-1]))), axis=0) + 1e-12)
        return self.penalty * ops.sum(norms)

    def get_config(self):
        return {"penalty": self.penalty}


@contextlib.contextmanager
def penalized(variables, regularizer):
    """`regularizer` on each of `variables` for the duration (restored after)."""
    before = [v.regularizer for v in variables]
    for v in variables:
        v.regularizer = regularizer
    try:
        yield
    finally:
        for v, old in zip(variables, before):
            v.regularizer = old


def phase_variables(model, route):
    if route == "slimming":
        return [layer.gamma for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    return [layer.kernel for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


# --- routes -----------------------------------------------------------------------------------


SCORES = {"l1_oneshot": "l1", "l1_gradual": "l1", "taylor": "taylor", "slimming": "bn", "group": "l2",
          "random": "random", "spectral": "in"}


def gradual(level, epochs, score):
    schedule = ks.PolynomialDecay(0.0, level, begin_epoch=0, end_epoch=SCHEDULE_SHARE * epochs)
    return ks.EigenvaluePruning(schedule, score=score, budget="multiply_adds")


def final_architecture(base, level):
    """The served model of `level` (its layer widths; weights irrelevant)."""
    model = ks.spectralize(base)
    ks.prune_nodes(model, fraction=level, budget="multiply_adds", score="l1")
    return ks.collapse(ks.compact(model))


def served_values(model, base, data):
    _, val, test = data
    served = compile_model(ks.collapse(ks.compact(model)))
    cost = ks.model_cost(served)
    return {"accuracy": accuracy(served, test), "val_accuracy": accuracy(served, val),
            "masked_accuracy": accuracy(model, test), "params": cost.parameters, "multiply_adds": cost.multiply_adds,
            "widths": [served.get_layer(f"block{i}_conv1").filters for i in range(len(WIDTHS))]
            + [served.get_layer(f"block{i}_conv2").filters for i in range(len(WIDTHS))],
            "samples_per_second": throughput(served, test[0], batch=1000),
            "base_samples_per_second": throughput(base, test[0], batch=1000)}


def run_route(dataset, seed, route, level, penalty, data):
    train, val, test = data
    augmented = Augmented(*train, DATASETS[dataset]["flip"])
    base, base_epochs, base_seconds = base_model(dataset, seed, data)
    keras.utils.set_random_seed(seed)
    phase, finetune = budget_epochs(base_epochs)
    budget = phase + finetune
    cost = ks.model_cost(base)
    reference = {"base_epochs": base_epochs, "base_seconds": base_seconds, "phase_epochs": phase,
                 "finetune_epochs": finetune, "base_params": cost.parameters, "base_multiply_adds": cost.multiply_adds}
    steps = len(augmented)
    if route == "unpruned":
        values = {"accuracy": accuracy(base, test), "val_accuracy": accuracy(base, val), **reference}
        compile_model(base, budget * steps).fit(augmented, epochs=budget, verbose=0)
        return {**values, "finetuned_accuracy": accuracy(base, test), "finetuned_val_accuracy": accuracy(base, val)}
    if route == "scratch":
        model = compile_model(keras.models.clone_model(final_architecture(base, level)),  # fresh weights
                              (base_epochs + budget) * steps)
        model.fit(augmented, epochs=base_epochs + budget, verbose=0)
        cost = ks.model_cost(model)
        return {"accuracy": accuracy(model, test), "val_accuracy": accuracy(model, val), "params": cost.parameters,
                "multiply_adds": cost.multiply_adds, "epochs": base_epochs + budget, **reference}
    score, callbacks = SCORES[route], []
    if route in ("slimming", "group"):  # the penalty phase trains the whole base model
        regularizer = keras.regularizers.L1(penalty) if route == "slimming" else GroupL2(penalty)
        with penalized(phase_variables(base, route), regularizer):
            compile_model(base).fit(augmented, epochs=phase, verbose=0)
    model = ks.spectralize(base)
    epochs = finetune if route in ("spectral", "slimming", "group") else budget
    compile_model(model, epochs * steps)
    if route == "spectral":
        ks.learn_importance(model, augmented, penalty=penalty, epochs=phase,
                            optimizer=keras.optimizers.Adam(PHASE_LR), verbose=0)
    if route in ("spectral", "l1_gradual"):
        callbacks.append(gradual(level, epochs, score))
    else:
        extra = {"data": (train[0][:2000], train[1][:2000])} if score == "taylor" else {}
        ks.prune_nodes(model, fraction=level, budget="multiply_adds", score=score, **extra)
    model.fit(augmented, epochs=epochs, callbacks=callbacks, verbose=0)
    return {**served_values(model, base, data), **reference, "penalty": penalty}


# --- the ranking at the moment of removal ------------------------------------------------------


RANKINGS = {"converted": ("l1", "random"), "after_phase": ("in", "l1")}  # the scores ranked from each model
RECALIBRATION_IMAGES = 2000


def recalibrated_accuracy(model, images, data):
    """`model`'s accuracy on `data` once its BatchNorm statistics are those of `images` (one
    batch, no weight trains): removal leaves them stale, which hides what the ranking kept."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum
    return accuracy(model, data)


def ranking_cell(dataset, seed, penalty, data):
    """Test accuracy right after removal (no fine-tuning, BatchNorm statistics recomputed) at
    each level, by L1 and random from the converted base and by `in` and L1 after the
    spectral route's phase: whether the learned eigenvalues rank channels better than L1."""
    train, _, test = data
    images = train[0][:RECALIBRATION_IMAGES]
    base, base_epochs, _ = base_model(dataset, seed, data)
    keras.utils.set_random_seed(seed)
    plain = ks.spectralize(base)
    learned = compile_model(ks.spectralize(base))
    ks.learn_importance(learned, Augmented(*train, DATASETS[dataset]["flip"]), penalty=penalty,
                        epochs=budget_epochs(base_epochs)[0], optimizer=keras.optimizers.Adam(PHASE_LR), verbose=0)
    values = {"penalty": penalty}
    for phase, model in (("converted", plain), ("after_phase", learned)):
        weights = model.get_weights()
        values[f"{phase}_unpruned"] = recalibrated_accuracy(model, images, test)
        for level in LEVELS:
            for score in RANKINGS[phase]:
                model.set_weights(weights)
                ks.prune_nodes(model, fraction=level, budget="multiply_adds", score=score)
                values[f"{phase}_{score}_{level}"] = recalibrated_accuracy(model, images, test)
        model.set_weights(weights)
    return values


# --- cells ------------------------------------------------------------------------------------


def tune_keys(dataset):
    return [{"dataset": dataset, "seed": 0, "route": route, "level": TUNE_LEVEL, "penalty": p, "tune": True}
            for route, grid in PENALTIES.items() for p in grid]


def chosen_penalty(results, dataset, route):
    """The penalty of `route` with the best validation accuracy in `tune`'s cells."""
    keys = [k for k in tune_keys(dataset) if k["route"] == route]
    found = {k["penalty"]: results.get(k) for k in keys}
    missing = [p for p, record in found.items() if record is None]
    if missing:
        raise SystemExit(f"`tune` has not run {route} with penalties {missing} on {dataset}: run it first.")
    return max(found, key=lambda p: found[p]["val_accuracy"])


def run_keys(dataset, seeds, results):
    keys = []
    for seed in range(seeds):
        keys.append({"dataset": dataset, "seed": seed, "route": "unpruned", "level": 0.0})
        keys += [{"dataset": dataset, "seed": seed, "route": r, "level": lv} for lv in LEVELS for r in ROUTES]
    for key in keys:
        if key["route"] in PENALTIES:
            key["penalty"] = chosen_penalty(results, dataset, key["route"])
    return keys


def reuse_tuning(results, key):
    """The values of the tuning cell that is this cell (seed 0, the tuning level, the chosen
    penalty), so it is not run twice; None if there is none."""
    twin = {**key, "tune": True}
    record = results.get(twin) if key.get("penalty") is not None else None
    if record is None:
        return None
    skip = ("key", "seconds", "machine", "date")
    return {**{k: v for k, v in record.items() if k not in skip}, "reused_tuning_cell": True}


def ranking_keys(dataset, seeds):
    return [{"dataset": dataset, "seed": seed, "check": "ranking"} for seed in range(seeds)]


def describe(key):
    if key.get("check"):
        return f"{key['dataset']} seed {key['seed']} {key['check']}"
    return f"{key['dataset']} seed {key['seed']} {key['route']} {key['level']}" + (
        f" penalty {key['penalty']}" if "penalty" in key else "")


def summary(values):
    if "val_accuracy" not in values:  # a ranking cell
        return " ".join(f"{k} {100 * v:.1f}" for k, v in values.items() if k.startswith(tuple(RANKINGS)))
    return f"val {100 * values['val_accuracy']:.2f} % test {100 * values['accuracy']:.2f} %"


def execute(args, keys):
    results = ResultsFile(args.results)
    shares, count = args.shard
    if count:
        keys = [k for i, k in enumerate(keys) if i % count in shares]
    data = load_data(args.dataset)
    if args.command == "ranking":
        penalty = chosen_penalty(results, args.dataset, "spectral")
        cells = [(k, lambda k=k: ranking_cell(k["dataset"], k["seed"], penalty, data)) for k in keys]
    else:
        cells = [(k, lambda k=k: reuse_tuning(results, k)
                  or run_route(k["dataset"], k["seed"], k["route"], k["level"], k.get("penalty"), data))
                 for k in keys]
    run_cells(cells, results, describe, summary)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("base", "tune", "run", "ranking", "report"))
    parser.add_argument("--dataset", default="cifar10", choices=list(DATASETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="the base model's seed (`base`)")
    parser.add_argument("--shard", type=parse_shard, default=((0,), 0))
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--out", default="docs")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    QUICK["on"] = args.quick
    if args.command == "report":
        from converged_pruning_report import report

        return report(args)
    if args.command == "base":
        _, epochs, seconds = base_model(args.dataset, args.seed, load_data(args.dataset))
        return print(f"{args.dataset} seed {args.seed}: base trained for {epochs} epochs ({seconds:.0f} s)")
    if args.command == "tune":
        keys = tune_keys(args.dataset)
    elif args.command == "ranking":
        keys = ranking_keys(args.dataset, args.seeds)
    else:
        keys = run_keys(args.dataset, args.seeds, ResultsFile(args.results))
    execute(args, keys)


if __name__ == "__main__":
    main()
