"""Render `results/reproduce.jsonl` as markdown tables, a targets check and PNG plots."""

import os

import numpy as np

import reproduce_pareto as pareto
from harness.report_utils import atomic_write, cell, finish_figure, provenance, stats

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10 (flattened)"}


def _datasets(rows):
    """The data sets in `rows`: MNIST, Fashion-MNIST, CIFAR-10 first, any others after."""
    known = list(DATASET_NAMES)
    return sorted({r["key"]["dataset"] for r in rows}, key=lambda d: (known.index(d) if d in known else len(known), d))


def _group(rows, **match):
    return [r for r in rows if all(r["key"][k] == v for k, v in match.items())]


def tables(rows, descriptions):
    lines = []
    for dataset in _datasets(rows):
        widths = sorted({r["key"]["width"] for r in rows if r["key"]["dataset"] == dataset})
        lines += [
            f"### {DATASET_NAMES.get(dataset, dataset)}",
            "",
            "| method | " + " | ".join(f"W={w}" for w in widths) + " | trainable params (W=" + str(widths[-1]) + ") | epochs run (median) | learning rate |",
            "|---" * (len(widths) + 4) + "|",
        ]
        for method, label in descriptions.items():
            group = _group(rows, dataset=dataset, method=method)
            if not group:
                continue
            cells = [cell([r["test_accuracy"] for r in _group(group, width=w)]) for w in widths]
            widest = _group(group, width=widths[-1])
            params = f"{widest[0]['trainable_params']:,}" if widest else "–"
            epochs = int(np.median([r["epochs_run"] for r in group]))
            rates = sorted({r["lr"] for r in group})
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {params} | {epochs} | {', '.join(map(str, rates))} |")
        lines.append("")
    return lines


def summary(rows, descriptions):
    """Mean test accuracy at each data set's widest width, one row per method."""
    sets = _datasets(rows)
    widest = {d: max(r["key"]["width"] for r in _group(rows, dataset=d)) for d in sets}
    lines = [
        "| method | " + " | ".join(f"{DATASET_NAMES.get(d, d)}, W={widest[d]}" for d in sets) + " |",
        "|---" * (len(sets) + 1) + "|",
    ]
    for method, label in descriptions.items():
        cells = [cell([r["test_accuracy"] for r in _group(rows, dataset=d, method=method, width=widest[d])]) for d in sets]
        if any(c != "–" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def details(rows, descriptions):
    """One line per (data set, method, width): accuracy, parameters, epochs, wall time, rate."""
    lines = []
    for dataset in _datasets(rows):
        lines += [
            f"### {DATASET_NAMES.get(dataset, dataset)}: every cell",
            "",
            "| method | width | test acc (%) | trainable params | % of Dense | epochs run (mean) | wall time (mean s) | learning rate |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method, label in descriptions.items():
            for width in sorted({r["key"]["width"] for r in _group(rows, dataset=dataset, method=method)}):
                group = _group(rows, dataset=dataset, method=method, width=width)
                dense = _group(rows, dataset=dataset, method="dense", width=width)
                share = f"{group[0]['trainable_params'] / dense[0]['trainable_params'] * 100:.2f}" if dense else "–"
                rates = ", ".join(
                    str(r["lr"]) + (f" (rechecked {r['other_lr_tried']['lr']})" if "other_lr_tried" in r else "")
                    for r in sorted(group, key=lambda r: r["key"]["seed"])
                )
                lines.append(
                    f"| {label} | {width} | {cell([r['test_accuracy'] for r in group])} | {group[0]['trainable_params']:,} | {share} "
                    f"| {np.mean([r['epochs_run'] for r in group]):.0f} | {np.mean([r['train_seconds'] for r in group]):.0f} | {rates} |"
                )
        lines.append("")
    return lines


def coverage(rows, grid_size):
    seeds = {}
    for r in rows:
        seeds.setdefault(r["key"]["dataset"], set()).add(r["key"]["seed"])
    per_dataset = "; ".join(
        f"{DATASET_NAMES.get(d, d)}: {len(_group(rows, dataset=d))} cells, seeds {sorted(s)}" for d, s in sorted(seeds.items())
    )
    return f"Cells run: {len(rows)} of the {grid_size} in the full grid ({per_dataset})."


def targets(rows):
    """The issue's targets, evaluated on whatever cells exist (never asserted as met)."""

    def mean(dataset, method, width):
        group = _group(rows, dataset=dataset, method=method, width=width)
        return (np.mean([r["test_accuracy"] for r in group]) * 100, group) if group else (None, [])

    lines = ["| target | data set, width | measured | met? |", "|---|---|---|---|"]
    for dataset, floor in (("mnist", 95.5), ("fashion_mnist", 86.0)):
        for width in sorted({r["key"]["width"] for r in _group(rows, dataset=dataset)}):
            acc, group = mean(dataset, "spectral_two_sets", width)
            dense = _group(rows, dataset=dataset, method="dense", width=width)
            if acc is None or not dense:
                continue
            share = group[0]["trainable_params"] / dense[0]["trainable_params"] * 100
            if share < 1:
                lines.append(f"| two sets ≥ {floor} % at < 1 % of Dense's parameters ({share:.2f} %) | "
                             f"{dataset}, {width} | {acc:.2f} % | {'yes' if acc >= floor else 'no'} |")
    for dataset in _datasets(rows):
        for width in sorted({r["key"]["width"] for r in _group(rows, dataset=dataset)}):
            dense, _ = mean(dataset, "dense", width)
            one, _ = mean(dataset, "spectral_one_set", width)
            two, _ = mean(dataset, "spectral_two_sets", width)
            if one is not None and two is not None:
                lines.append(f"| two sets clearly above one set | {dataset}, {width} | {two:.2f} vs {one:.2f} % | {'yes' if two >= one + 1 else 'no'} |")
            if dense is None:
                continue
            for method, gap in (("spectral_svd", 1.0), ("spectral_qr", 0.3), ("spectral_qr_full", 0.3),
                                ("spectral_trainable", 0.3), ("spectral_lowrank", 1.0)):
                acc, group = mean(dataset, method, width)
                if acc is None:
                    continue
                dense_params = _group(rows, dataset=dataset, method="dense", width=width)[0]["trainable_params"]
                share = group[0]["trainable_params"] / dense_params * 100
                seeds = len(group)
                lines.append(f"| {method} within {gap} pt of Dense ({share:.2f} % of its parameters; {seeds} seed{'s' * (seeds > 1)}) "
                             f"| {dataset}, {width} | {acc:.2f} vs {dense:.2f} % | {'yes' if acc >= dense - gap else 'no'} |")
    if len(lines) == 2:
        return ["No target can be evaluated on the cells run so far.", ""]
    return lines + [""]


def width_plot(rows, folder):
    """Accuracy against hidden width of the grid's methods as currently defined (one
    colour per family, as in the equal-budget figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = _datasets(rows)
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for method, (family, colour, marker, label) in pareto.STYLE.items():
            group = _group(rows, dataset=dataset, method=method)
            widths = sorted({r["key"]["width"] for r in group})
            if not widths:
                continue
            s = [stats([r["test_accuracy"] for r in _group(group, width=w)]) for w in widths]
            ax.errorbar(widths, [v[0] for v in s], yerr=[v[1] for v in s], color=colour, marker=marker,
                        capsize=3, label=f"{family}: {label}")
        ax.set_xlabel("hidden width")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(DATASET_NAMES.get(dataset, dataset))
        ax.grid(alpha=0.3)
    name = "reproduce_accuracy_vs_width.png"
    finish_figure(fig, axes, os.path.join(folder, name), legend_size=6)
    return name


def equal_budgets(rows, folder, multiply_adds_of):
    """The equal-budget section: figures against parameters and multiply-adds, the
    "which mode when" table, the eigenvalues against their cousins, the goal, every
    configuration against the Dense frontier."""
    by_dataset = {d: pareto.points(rows, d, multiply_adds_of) for d in _datasets(rows)}
    by_dataset = {d: pts for d, pts in by_dataset.items() if pts}
    lines = [
        "## Equal budgets",
        "",
        "Every configuration of the grid and of `python benchmarks/reproduce.py budget` (the equal-budget "
        "baselines), as currently defined: superseded revisions and the explicit-basis variants are left out "
        "here. The Dense frontier joins the Dense configurations (one or two hidden layers, any width) that no "
        "Dense configuration with fewer trainable parameters matches, linearly in log-parameters; a "
        "configuration's Δ is its mean test accuracy minus the frontier at its parameter count (or, in the last "
        "column, at its multiply-adds). Multiply-adds "
        "are per sample at inference, each SpectralDense layer counted in its cheaper order (the collapsed "
        "dense kernel, or its factors). The y axes start a little under most points: the narrowest one-set "
        "cells lie below them (see the tables).",
        "",
    ]
    for axis, name in (("params", "reproduce_accuracy_vs_params.png"), ("macs", "reproduce_accuracy_vs_multiply_adds.png")):
        pareto.plot(by_dataset, DATASET_NAMES, os.path.join(folder, name), axis)
        lines += [f"![{name}](figures/{name})", ""]
    lines += ["### Which mode when", "",
              "For each budget of trainable parameters, the most accurate configuration and the most accurate "
              "Dense one within it.", ""] + pareto.which_mode_when(by_dataset, DATASET_NAMES)
    lines += ["### Do the eigenvalues matter? Each mode against its cousin without them", ""]
    lines += pareto.cousins(by_dataset, DATASET_NAMES)
    lines += [f"### Goal: ≥ {pareto.GOAL_MARGIN} pt above the Dense frontier above {pareto.GOAL_PARAMS:,} parameters "
              "on MNIST and Fashion-MNIST", ""] + pareto.goal(by_dataset, DATASET_NAMES)
    for dataset, pts in by_dataset.items():
        lines += [f"### {DATASET_NAMES.get(dataset, dataset)}: every configuration against the Dense frontier", ""]
        lines += pareto.every_configuration(pts)
    return lines


def relabel_revisions(rows, descriptions, revisions):
    """Records of a method from before its current revision become their own method
    (`<method>@first`, "first grid"), so tables and targets show the current definition
    under the plain name and the first grid's beside it."""
    out, labels = [], dict(descriptions)
    for record in rows:
        key = record["key"]
        method = key["method"]
        revision = key.get("revision")
        if method in revisions and revision != revisions[method]:
            old = f"{method}@{revision or 'first'}"
            note = (" [first grid: previous defaults]" if revision is None
                    else f" [revision {revision}, superseded: see docs/benchmarks.md]")
            labels.setdefault(old, descriptions.get(method, method) + note)
            record = dict(record, key=dict(key, method=old))
        out.append(record)
    ordered = {m: labels[m] for m in descriptions}
    ordered.update({m: label for m, label in labels.items() if m not in ordered})
    return out, ordered


def first_grid(rows, grid_methods, revisions):
    """The cells of the first, 270-cell grid: its methods as they were defined then."""
    def first(method):
        base = method.removesuffix("@first")
        return base in grid_methods and (method.endswith("@first") or base not in revisions)

    return [r for r in rows if first(r["key"]["method"])]


def write_report(records, out_dir, command, descriptions, grid_methods, grid_size, revisions=None,
                 budget_methods=(), multiply_adds_of=None):
    """`budget_methods`: the equal-budget baselines, shown only in the equal-budget section
    and the list of every cell; `multiply_adds_of(dataset, method, width)` gives the
    multiply-adds of cells recorded without them."""
    every = [r for r in records if r["key"]["experiment"] == "grid"]
    every, descriptions = relabel_revisions(every, descriptions, revisions or {})
    rows = [r for r in every if r["key"]["method"] not in budget_methods]
    figures = os.path.join(out_dir, "figures")
    os.makedirs(figures, exist_ok=True)
    lines = [
        "# Dense vs spectral: reproduction results",
        "",
        f"Generated from `results/reproduce.jsonl` by `{command}`; runs made with "
        "`python benchmarks/reproduce.py grid` and `... budget` (protocol in its docstring). Test accuracy in %, "
        "mean ± std over seeds (number of seeds in brackets).",
        "",
        provenance(every) if every else "No grid cells have run yet.",
        "",
    ]
    if rows:
        lines += [coverage(first_grid(rows, grid_methods, revisions or {}), grid_size), ""]
        revised = [r for r in rows if "revision" in r["key"]]
        if revised:
            lines += [f"Rerun with the current definitions (records with `revision`, 2026-11-28 on): "
                      f"{len(revised)} cells of {', '.join(sorted({r['key']['method'] for r in revised}))}; "
                      "the first grid's cells of those methods are listed as \"[first grid: previous defaults]\".", ""]
        lines += ["## At the widest width", ""] + summary(rows, descriptions)
        lines += ["## Test accuracy by width", ""] + tables(rows, descriptions)
        lines += ["## Targets", ""] + targets(rows)
        name = width_plot(rows, figures)
        lines += [f"![{name}](figures/{name})", ""]
        if multiply_adds_of is not None:
            lines += equal_budgets(every, figures, multiply_adds_of)
        lines += ["## Every cell", ""] + details(every, descriptions)
    atomic_write(os.path.join(out_dir, "reproduce_results.md"), "\n".join(lines) + "\n")
    print(f"wrote {os.path.join(out_dir, 'reproduce_results.md')}")
