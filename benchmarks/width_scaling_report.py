"""Render `results/width_scaling.jsonl` as docs/width_scaling.md and a log-log figure.

Used by `python benchmarks/width_scaling.py report`; reads nothing but the records.
"""

import os

import numpy as np

from harness.report_utils import atomic_write, cell, finish_figure
from width_scaling_settings import CHEAP_MODES

QUANTITIES = (("step_seconds", "train step"), ("peak_rss_mb", "peak RSS rise"),
              ("weights_held", "weights held"), ("keras_bytes", ".keras size"))
FIT_FROM = 1024
ACCURACY_GOALS = {"mnist": 96.5, "fashion_mnist": 87.0}  # test %, issue #13
GOAL_SEEDS = 3  # a setting counts for the goal once it has this many seeds


def _series(cost, mode, field):
    points = sorted((r["key"]["width"], r["modes"][mode][field]) for r in cost if mode in r["modes"])
    return [w for w, _ in points], [v for _, v in points]


def exponent(widths, values):
    """Slope of log(value) against log(width) over the widths >= FIT_FROM (None if < 2)."""
    pairs = [(w, v) for w, v in zip(widths, values) if w >= FIT_FROM and v > 0]
    if len(pairs) < 2:
        return None
    return float(np.polyfit(np.log([w for w, _ in pairs]), np.log([v for _, v in pairs]), 1)[0])


def cost_lines(cost):
    modes = list(dict.fromkeys(m for r in sorted(cost, key=lambda r: r["key"]["width"]) for m in r["modes"]))
    lines = [
        "| width | mode | step (ms) | step / Dense | weights held | / Dense | .keras (MB) | peak RSS rise (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for record in sorted(cost, key=lambda r: r["key"]["width"]):
        dense = record["modes"]["dense"]
        for mode, v in record["modes"].items():
            lines.append(
                f"| {record['key']['width']:,} | {mode} | {v['step_seconds'] * 1000:.1f} | "
                f"{v['step_seconds'] / dense['step_seconds']:.2f} | {v['weights_held']:,} | "
                f"{100 * v['weights_held'] / dense['weights_held']:.2f} % | {v['keras_bytes'] / 1e6:.2f} | "
                f"{v['peak_rss_mb']:.0f} |"
            )
    lines += ["", "The peak RSS rise includes about 600 MB that every mode pays at any width (the "
                  "XLA compilation and runtime of the first steps), which flattens its exponents; "
                  "the weights held and the step time show the growth directly.", "",
              f"Growth exponents (slope of log cost against log width, widths ≥ {FIT_FROM:,}; "
                  "2 is quadratic):", "",
              "| mode | " + " | ".join(label for _, label in QUANTITIES) + " |",
              "|---" * (len(QUANTITIES) + 1) + "|"]
    for mode in modes:
        slopes = [exponent(*_series(cost, mode, field)) for field, _ in QUANTITIES]
        lines.append(f"| {mode} | " + " | ".join("–" if s is None else f"{s:.2f}" for s in slopes) + " |")
    widest = max(cost, key=lambda r: r["key"]["width"])
    if "frozen_kronecker" in widest["modes"]:
        v, d = widest["modes"]["frozen_kronecker"], widest["modes"]["dense"]
        step, held = v["step_seconds"] / d["step_seconds"], v["weights_held"] / d["weights_held"]
        lines += ["", f"Goal at the widest width ({widest['key']['width']:,}), eigenvalues only with a "
                      f"Kronecker-structured frozen φ: step ≤ 0.2× Dense's — {step:.2f}× "
                      f"({'met' if step <= 0.2 else 'missed'}); resident weights ≤ 5 % of Dense's — "
                      f"{100 * held:.2f} % ({'met' if held <= 0.05 else 'missed'})."]
    return lines + [""]


def accuracy_lines(rows):
    if not rows:
        return ["No accuracy cells yet.", ""]
    groups = {}  # (data set, width, mode, epochs, rate, schedule) -> its seeds' records
    for r in rows:
        k = r["key"]
        groups.setdefault((k["dataset"], k["width"], k["mode"], k["epochs"], k["learning_rate"], k["schedule"]),
                          []).append(r)
    order = {name: i for i, name in enumerate(ACCURACY_GOALS)}
    lines = ["| data set | width | mode | epochs | Adamax rate | schedule | test accuracy (%) | trainable params | "
             "% of same-width Dense |", "|---|---|---|---|---|---|---|---|---|"]
    for (dataset, width, mode, epochs, rate, schedule), group in sorted(
            groups.items(), key=lambda item: (order[item[0][0]], item[0][1], CHEAP_MODES.index(item[0][2]),
                                              item[0][5], item[0][3], item[0][4])):
        lines.append(f"| {dataset} | {width:,} | {mode} | {epochs} | {rate:g} | {schedule} | "
                     f"{cell([r['test_accuracy'] for r in group])} | "
                     f"{group[0]['trainable_params']:,} | {group[0]['percent_of_dense']:.2f} % |")
    lines.append("")
    for dataset, goal in ACCURACY_GOALS.items():
        means = [(np.mean([r["test_accuracy"] for r in group]) * 100, len(group), width, mode, epochs, rate, schedule)
                 for (d, width, mode, epochs, rate, schedule), group in groups.items()
                 if d == dataset and group[0]["percent_of_dense"] < 0.5 and len(group) >= GOAL_SEEDS]
        if not means:
            lines.append(f"Goal on {dataset}: no cheap configuration has {GOAL_SEEDS} seeds yet.")
        else:
            best, seeds, width, mode, epochs, rate, schedule = max(means)
            lines.append(f"Goal on {dataset}: ≥ {goal} % at < 0.5 % of the same-width Dense's trainable "
                         f"parameters (settings with ≥ {GOAL_SEEDS} seeds) — best {best:.2f} % ({mode}, "
                         f"width {width:,}, {epochs} epochs, {schedule} rate {rate:g}, {seeds} seeds): "
                         f"{'met' if best >= goal else 'missed'}.")
    return lines + [""]


def best_setting(record):
    """(best validation accuracy, its epoch count) of one `tune` record: the best epoch of a
    constant rate; the last of a schedule that depends on the epoch count."""
    curve = record["val_accuracy"]
    best = int(np.argmax(curve)) if record["key"]["schedule"] == "constant" else len(curve) - 1
    return curve[best], best + 1


def tuning_lines(rows):
    """The validation sweep: per cell the best epoch, and per (data set, width, mode) the choice."""
    if not rows:
        return []
    lines = ["## Settings chosen on validation data", "",
             "Trained on the first 50,000 training images, validation accuracy on the last 10,000 after "
             "every epoch; the test set plays no part.", "",
             "| data set | width | mode | Adamax rate | schedule | val. acc. at 15 epochs (%) | "
             "chosen val. acc. (%) | at epoch | epochs run |", "|---|---|---|---|---|---|---|---|---|"]
    choices = {}
    for r in sorted(rows, key=lambda r: tuple(r["key"][f] for f in ("dataset", "width", "mode", "schedule",
                                                                      "learning_rate"))):
        k, curve = r["key"], r["val_accuracy"]
        accuracy, epoch = best_setting(r)
        at15 = f"{100 * curve[14]:.2f}" if len(curve) >= 15 else "–"
        lines.append(f"| {k['dataset']} | {k['width']:,} | {k['mode']} | {k['learning_rate']:g} | "
                     f"{k['schedule']} | {at15} | "
                     f"{100 * accuracy:.2f} | {epoch} | {len(curve)} |")
        group = (k["dataset"], k["width"], k["mode"])
        if group not in choices or accuracy > choices[group][0]:
            choices[group] = (accuracy, epoch, k["learning_rate"], k["schedule"])
    lines.append("")
    for (dataset, width, mode), (accuracy, epoch, rate, schedule) in choices.items():
        lines.append(f"Chosen for {dataset}, {mode} (tuned at width {width:,}): Adamax {rate:g}, {schedule}, "
                     f"{epoch} epochs ({100 * accuracy:.2f} % validation).")
    return lines + [""]


def plot(cost, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(m for r in cost for m in r["modes"]))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), squeeze=False)
    for ax, (field, label) in zip(axes[0], QUANTITIES[:3]):
        for mode in modes:
            widths, values = _series(cost, mode, field)
            ax.loglog(widths, values, marker="o", label=mode)
        ax.set_xlabel("width")
        ax.set_title(label)
        ax.grid(alpha=0.3, which="both")
    finish_figure(fig, axes, path)


def write_report(records, out_dir, command):
    cost = [r for r in records if r["key"]["experiment"] == "cost"]
    accuracy = [r for r in records if r["key"]["experiment"] == "accuracy"]
    tuning = [r for r in records if r["key"]["experiment"] == "tune"]
    os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
    machines = sorted({r.get("machine", "?") for r in records})
    dates = sorted({r.get("date", "?") for r in records})
    lines = [
        "# Cost against width: results",
        "",
        f"Generated from `results/width_scaling.jsonl` by `{command}`; the runs were made with "
        "`python benchmarks/width_scaling.py cost`, `... accuracy` and `... tune` (protocol in that script's "
        f"docstring). Machine: {'; '.join(machines)}. Dates: {', '.join(dates)}.",
        "",
        "## Train step, memory and size (W-W-W-10, batch 256)",
        "",
    ]
    if cost:
        lines += cost_lines(cost)
        plot(cost, os.path.join(out_dir, "figures", "width_scaling.png"))
        lines += ["![cost against width, log-log](figures/width_scaling.png)", ""]
    lines += ["## Accuracy of the cheap configurations (784-W-W-10, Adamax, batch 200)", ""]
    lines += accuracy_lines(accuracy)
    lines += tuning_lines(tuning)
    atomic_write(os.path.join(out_dir, "width_scaling.md"), "\n".join(lines) + "\n")
    print(f"wrote {os.path.join(out_dir, 'width_scaling.md')}")
