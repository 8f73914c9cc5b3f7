"""The page and figure of the CNN channel-pruning study (`benchmarks/cnn_pruning.py report`),
written from its results file alone."""

import numpy as np

from cnn_pruning_settings import (
    BASE_EPOCHS,
    DEFAULT_RESULTS,
    FINETUNE_EPOCHS,
    LEVELS,
    PRUNING_ROUTES,
    SLIMMING_L1,
    STUDY_ROUTES,
    WIDTHS,
)
from harness.report_utils import cell, finish_figure, provenance, records_or_exit, write_page

COMMAND = "python benchmarks/cnn_pruning.py report"
LABELS = {
    "spectral": "spectral (convert, EigenvaluePruning, compact)",
    "l1_gradual": "L1 filter norm, gradual",
    "l1_oneshot": "L1 filter norm, one-shot (Li et al.)",
    "slimming": "network slimming (Liu et al.)",
    "scratch": "final widths from scratch",
}
STUDY_LABELS = {
    "unpruned": "Conv2D, same architecture",
    "study_frozen": "SpectralConv2D, eigenvalues only (φ frozen)",
    "study_trainable": "SpectralConv2D, φ trained",
    "study_conv_equal": "Conv2D at equal trainable parameters",
}


def summarize(records):
    """`{(route, level): {field: [values over seeds]}}` of the grid's cells (not the pilot's)."""
    table = {}
    for record in records:
        key = record["key"]
        if key.get("tune"):
            continue
        slot = table.setdefault((key["route"], key["level"]), {})
        for field, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                slot.setdefault(field, []).append(value)
            elif isinstance(value, list) and field == "widths":
                slot.setdefault(field, []).append(value)
    return table


def mean(values):
    return float(np.mean(values)) if values else None


def fmt(values):
    return cell(values, digits=2)


def accuracy(table, route, level, field="accuracy"):
    return table.get((route, level), {}).get(field, [])


def goal_lines(table):
    """The issue's goals in words (only once every route has its cells at 70 %)."""
    base = accuracy(table, "unpruned", 0.0)
    spectral = accuracy(table, "spectral", 0.7)
    rivals = {r: accuracy(table, r, 0.7) for r in ("l1_gradual", "l1_oneshot", "slimming")}
    if not (base and spectral and all(rivals.values())):
        return []
    gap = 100 * (mean(spectral) - mean(base))
    best_route = max(rivals, key=lambda r: mean(rivals[r]))
    lead = 100 * (mean(spectral) - mean(rivals[best_route]))
    tuned = accuracy(table, "unpruned", 0.0, "finetuned_accuracy")
    lines = [
        f"- **Within 1 pt of the unpruned CNN at 70 % removed:** spectral {100 * mean(spectral):.2f} %, "
        f"{gap:+.2f} pt against the unpruned {100 * mean(base):.2f} % ({'met' if gap >= -1 else 'missed'})"
        + (f"; {100 * (mean(spectral) - mean(tuned)):+.2f} pt against the unpruned CNN fine-tuned for the same "
           f"budget ({100 * mean(tuned):.2f} %)" if tuned else "") + ".",
        f"- **At or above the best of the L1-filter and slimming routes at 70 %:** the best is "
        f"{LABELS[best_route]} at {100 * mean(rivals[best_route]):.2f} %; spectral is {lead:+.2f} pt "
        f"({'met' if lead >= 0 else 'missed'}). Seeds: {len(spectral)}.",
    ]
    spectral = table.get(("spectral", 0.9), {})
    if spectral.get("accuracy"):
        others = ", ".join(f"{r.replace('_', ' ')} {100 * mean(accuracy(table, r, 0.9)):.2f} %"
                           for r in ("l1_gradual", "l1_oneshot", "slimming", "scratch") if accuracy(table, r, 0.9))
        lines.append(f"- **At 90 % removed:** spectral {100 * mean(spectral['accuracy']):.2f} %; {others}.")
    losses = []
    for level in LEVELS:
        ahead = [(r, mean(accuracy(table, r, level))) for r in (*PRUNING_ROUTES[1:], "scratch")
                 if accuracy(table, r, level) and accuracy(table, "spectral", level)
                 and mean(accuracy(table, r, level)) > mean(accuracy(table, "spectral", level))]
        if ahead:
            losses.append(f"at {int(round(100 * level))} % ({100 * mean(accuracy(table, 'spectral', level)):.2f} %) "
                          + ", ".join(f"{LABELS[r]} {100 * a:.2f} %" for r, a in ahead))
    if losses:
        lines.append("- **Where the spectral route does not win** (routes ahead of it): " + "; ".join(losses) + ".")
    return lines


def pruning_table(table, levels):
    lines = ["| removed | " + " | ".join(LABELS[r] for r in (*PRUNING_ROUTES, "scratch"))
             + " | channels kept | params (% of base) | multiply-adds (% of base) | throughput × base |",
             "|---" * (len(PRUNING_ROUTES) + 6) + "|"]
    for level in levels:
        row = [f"{int(round(100 * level))} %"]
        row += [fmt(accuracy(table, r, level)) for r in (*PRUNING_ROUTES, "scratch")]
        spectral = table.get(("spectral", level), {})
        if spectral.get("params"):
            row.append(" / ".join(str(w) for w in spectral["widths"][0]))
            row.append(f"{100 * mean(spectral['params']) / mean(spectral['base_params']):.1f}")
            row.append(f"{100 * mean(spectral['multiply_adds']) / mean(spectral['base_multiply_adds']):.1f}")
            ratios = np.array(spectral["samples_per_second"]) / np.array(spectral["base_samples_per_second"])
            row.append(f"{ratios.mean():.2f} ± {ratios.std():.2f}")
        else:
            row += ["–"] * 4
        lines.append("| " + " | ".join(row) + " |")
    return lines


def validation_table(table, levels):
    lines = ["| removed | " + " | ".join(r.replace("_", " ") for r in (*PRUNING_ROUTES, "scratch")) + " |",
             "|---" * (len(PRUNING_ROUTES) + 2) + "|"]
    for level in levels:
        row = [f"{int(round(100 * level))} %"]
        row += [fmt(accuracy(table, r, level, "val_accuracy")) for r in (*PRUNING_ROUTES, "scratch")]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _variant(key):
    """The pilot variant of a tune key, in words."""
    if "delay" in key:
        return f"pruning from {int(100 * key['delay'])} % to 80 % of the steps"
    if key.get("eigenvalues") == "reader_norms":
        return "λ_in = the reader's weight RMS per channel at conversion"
    return "as in the grid"


def tune_lines(records):
    pilot = [r for r in records if r["key"].get("tune")]
    if not pilot:
        return []
    pilot.sort(key=lambda r: (_variant(r["key"]) != "as in the grid", r["key"]["penalty"]))
    grid = [r for r in pilot if _variant(r["key"]) == "as in the grid"]
    lines = ["| L1 penalty on λ_in | variant | validation | test |", "|---|---|---|---|"]
    lines += [f"| {r['key']['penalty']:g} | {_variant(r['key'])} | {100 * r['val_accuracy']:.2f} | "
              f"{100 * r['accuracy']:.2f} |" for r in pilot]
    if grid:
        lines += ["", f"Chosen on validation: {max(grid, key=lambda r: r['val_accuracy'])['key']['penalty']:g}, "
                  "with the grid's schedule and conversion."]
    return lines


def study_lines(table):
    rows = []
    for route in ("unpruned", *STUDY_ROUTES):
        slot = table.get((route, 0.0), {})
        if not slot.get("accuracy"):
            continue
        trainable = slot.get("trainable") or slot.get("base_trainable")
        macs = slot.get("multiply_adds") or slot.get("base_multiply_adds")
        label = STUDY_LABELS[route]
        if route == "study_conv_equal" and slot.get("widths"):
            label += f" (widths {' / '.join(str(w) for w in slot['widths'][0])})"
        rows.append(f"| {label} | {int(mean(trainable)):,} | {mean(macs) / 1e6:.2f} M | "
                    f"{fmt(slot['val_accuracy'])} | {fmt(slot['accuracy'])} |")
    if not rows:
        return []
    return ["| CNN | trainable params | multiply-adds per image | validation | test |",
            "|---|---|---|---|---|", *rows]


def report_text(records):
    table = summarize(records)
    levels = sorted({level for (route, level) in table if route in PRUNING_ROUTES})
    base, tuned = accuracy(table, "unpruned", 0.0), accuracy(table, "unpruned", 0.0, "finetuned_accuracy")
    lines = [
        "# Channel pruning of a trained CNN, and spectral convolutions from scratch",
        "",
        f"Generated by `{COMMAND}` from `{DEFAULT_RESULTS}`. Protocol: `benchmarks/cnn_pruning.py` "
        "(its docstring has every setting and the run commands). CIFAR-10; accuracies in %, mean ± std "
        "(seeds); settings chosen on the 5,000 held-out validation images, test accuracy reported.",
        "",
        provenance([r for r in records if not r["key"].get("tune")]),
        "",
        f"CNN: three stages Conv2D 3×3 → BatchNorm → ReLU → max pool of {' / '.join(map(str, WIDTHS))} channels, "
        f"global average pooling, Dense head; trained {BASE_EPOCHS} epochs (Adam 1e-3, batch 200). "
        f"Unpruned test accuracy {fmt(base)}; fine-tuned {FINETUNE_EPOCHS} more epochs without pruning "
        f"(the same budget every route gets): {fmt(tuned)}.",
        "",
    ]
    goals = goal_lines(table)
    if goals:
        lines += ["## Goals", "", *goals, ""]
    lines += [
        "## Channels removed (test accuracy)",
        "",
        f"Every route fine-tunes for {FINETUNE_EPOCHS} epochs; `scratch` trains the CNN of the final widths "
        f"for {BASE_EPOCHS + FINETUNE_EPOCHS}. The same fraction of each convolution's channels goes in every "
        "route, so parameters and multiply-adds (of `collapse(compact(model))`, plain Conv2D / Dense) are "
        "those of every route. Throughput: `predict_on_batch` of 1,024 images on one core (the other core ran "
        "the other half of the study), the compacted CNN against the unpruned one in the same process.",
        "",
        *pruning_table(table, levels),
        "",
        "Validation accuracy of the same cells:",
        "",
        *validation_table(table, levels),
        "",
    ]
    tune = tune_lines(records)
    if tune:
        lines += [
            "## The spectral route's one setting",
            "",
            "An L1 penalty on every λ_in during the fine-tuning (the readers' channel scales, as network slimming "
            f"penalizes BatchNorm's γ, whose paper value {SLIMMING_L1:g} the slimming route uses). Chosen on the "
            "validation accuracy of one pilot run (seed 0, 70 % removed; `python benchmarks/cnn_pruning.py tune`), "
            "where two variants were also tried with the chosen penalty: pruning later in the fine-tuning, and "
            "informative input eigenvalues at conversion (φ divided by them, still exact):",
            "",
            *tune,
            "",
        ]
    study = study_lines(table)
    if study:
        lines += [
            "## Spectral convolutions trained from scratch",
            "",
            f"The same CNN, {BASE_EPOCHS} epochs, Adam 1e-3 (no setting tuned), with `SpectralConv2D` and a "
            "`SpectralDense` head. Trainable parameters include BatchNorm's γ and β.",
            "",
            *study,
            "",
        ]
    lines += ["![accuracy and speed against channels removed](figures/cnn_pruning.png)", ""]
    return "\n".join(lines)


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    table = summarize(records)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), squeeze=False)
    styles = {"spectral": ("tab:blue", "o"), "l1_gradual": ("tab:orange", "s"), "l1_oneshot": ("tab:red", "v"),
              "slimming": ("tab:green", "D"), "scratch": ("tab:gray", "^")}
    ax = axes[0][0]
    for route, (color, marker) in styles.items():
        points = [(lv, accuracy(table, route, lv)) for lv in LEVELS if accuracy(table, route, lv)]
        if points:
            ax.errorbar([100 * p[0] for p in points], [100 * np.mean(p[1]) for p in points],
                        yerr=[100 * np.std(p[1]) for p in points], color=color, marker=marker, capsize=3,
                        label=LABELS[route])
    base = accuracy(table, "unpruned", 0.0)
    if base:
        ax.axhline(100 * np.mean(base), color="black", linestyle="--", linewidth=1, label="unpruned")
    ax.set_xlabel("channels removed (%)")
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    ax.grid(alpha=0.3)
    ax = axes[0][1]
    levels = [lv for lv in LEVELS if table.get(("spectral", lv), {}).get("params")]
    if levels:
        spectral = [table[("spectral", lv)] for lv in levels]
        macs = [mean(s["base_multiply_adds"]) / mean(s["multiply_adds"]) for s in spectral]
        speed = [np.mean(np.array(s["samples_per_second"]) / np.array(s["base_samples_per_second"])) for s in spectral]
        x = [100 * lv for lv in levels]
        ax.plot(x, macs, marker="o", color="tab:purple", label="multiply-adds: base / compacted")
        ax.plot(x, speed, marker="s", color="tab:cyan", label="measured throughput: compacted / base")
        ax.set_yscale("log")
        ax.set_yticks([1, 2, 5, 10, 20, 50, 100])
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("channels removed (%)")
        ax.set_ylabel("× the unpruned CNN")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    machines = "; ".join(sorted({r.get("machine", "?") for r in records}))
    dates = sorted({r.get("date", "?") for r in records})
    fig.suptitle(f"{COMMAND} · {machines} · {dates[0]} to {dates[-1]}", fontsize=7)
    finish_figure(fig, [[axes[0][0]]], path)


def report(args):
    records = records_or_exit(args.results, "cnn_pruning")
    write_page(args.out, "cnn_pruning", records, plot, report_text(records))
