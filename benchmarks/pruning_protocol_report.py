"""Render `results/pruning_protocol.jsonl` as docs/pruning_protocol.md and two figures.

Used by `python benchmarks/pruning_protocol.py report`; reads nothing but the records.
"""

import os

import numpy as np

from harness.report_utils import atomic_write, cell, finish_figure, provenance, stats
from sparsity_report import DATASET_NAMES, PUBLISHED_90

NODE_LABELS = {
    "dense_l1": "Dense + incoming-L1 removal after training",
    "spectral_post": "Spectral (φ, both sets trained), removal after training",
    "spectral_filter": "Spectral pre-training filter (eigenvalues only) + retraining",
    "spectral_during_fit": "**Recipe**: spectral, `EigenvaluePruning` during `fit`",
    "dense_small": "Reference: Dense trained from scratch at the width left",
}
WEIGHT_LABELS = {
    "dense_percentile": "Dense, percentile rule",
    "spectral_qr_percentile": "Spectral (QR eigenvectors), percentile rule",
    "tfmot": "tfmot `prune_low_magnitude` (PolynomialDecay)",
}
FRACTIONS = ("0.0", "0.5", "0.7", "0.8", "0.9", "0.95")


def _rows(records, experiment):
    return [r for r in records if r["key"]["experiment"] == experiment and r["key"].get("protocol") == "authors"]


def _mean_epochs(rows):
    counts = []
    for r in rows:
        value = r.get("epochs_run")
        counts += list(value.values()) if isinstance(value, dict) else [value]
    return f"{np.mean(counts):.0f}" if counts else "–"


def node_tables(rows):
    lines = []
    for dataset, activation in sorted({(r["key"]["dataset"], r["key"]["activation"]) for r in rows}):
        lines += [
            f"### {DATASET_NAMES.get(dataset, dataset)}, 784-500-10 {activation}",
            "",
            "| method | " + " | ".join(f"{float(f) * 100:g} % removed" for f in FRACTIONS)
            + " | published @ 90 % | epochs (mean) |",
            "|---" * (len(FRACTIONS) + 3) + "|",
        ]
        for method, label in NODE_LABELS.items():
            group = [r for r in rows if (r["key"]["dataset"], r["key"]["activation"], r["key"]["method"])
                     == (dataset, activation, method)]
            if not group:
                continue
            cells = [cell([r["accuracy"][f] for r in group if f in r["accuracy"]]) for f in FRACTIONS]
            published = PUBLISHED_90.get(dataset, {}).get(method) if activation == "tanh" else None
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {published or '–'} | {_mean_epochs(group)} |")
        lines.append("")
    return lines


def score_table(rows):
    per = {}
    for r in rows:
        if r["key"]["method"] == "spectral_post":
            for score, curve in r["accuracy_by_score"].items():
                for fraction, value in curve.items():
                    per.setdefault(score, {}).setdefault(fraction, []).append(value)
    if not per:
        return []
    fractions = FRACTIONS[1:]
    lines = [
        "Removal after training by each score (`prune_nodes(score=...)`), mean test accuracy (%) "
        "over every data set, activation and seed:",
        "",
        "| score | " + " | ".join(f"{float(f) * 100:g} %" for f in fractions) + " | mean |",
        "|---" * (len(fractions) + 2) + "|",
    ]
    for score in sorted(per):
        means = [np.mean(per[score][f]) * 100 for f in fractions]
        lines.append(f"| `{score}` | " + " | ".join(f"{m:.1f}" for m in means) + f" | {np.mean(means):.1f} |")
    return lines + [""]


def weight_tables(rows):
    lines = []
    for dataset in sorted({r["key"]["dataset"] for r in rows}):
        group = [r for r in rows if r["key"]["dataset"] == dataset]
        sparsities = sorted({r["key"]["sparsity"] for r in group})
        epochs = sorted({r["key"]["epochs"] for r in group})
        lines += [
            f"### {DATASET_NAMES.get(dataset, dataset)}, 784-500-500-10 tanh "
            f"({', '.join(map(str, epochs))} epochs, Adam 1e-3, batch 200)",
            "",
            "| method | " + " | ".join(f"{s * 100:g} % zero" for s in sparsities) + " |",
            "|---" * (len(sparsities) + 1) + "|",
        ]
        for method, label in WEIGHT_LABELS.items():
            cells = [cell([r["accuracy"] for r in group if (r["key"]["method"], r["key"]["sparsity"]) == (method, s)])
                     for s in sparsities]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _plot(panels, path, xlabel):
    """`panels`: [(title, {label: [(x, values), ...]})]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels):
        for label, points in curves.items():
            means = [stats(values) for _, values in points]
            ax.errorbar([x for x, _ in points], [m[0] for m in means], yerr=[m[1] for m in means],
                        marker="o", capsize=3, label=label.replace("**", "").replace("`", ""))
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    finish_figure(fig, axes, path)


def plot_nodes(rows, path):
    panels = []
    for dataset, activation in sorted({(r["key"]["dataset"], r["key"]["activation"]) for r in rows}):
        curves = {}
        for method, label in NODE_LABELS.items():
            group = [r for r in rows if (r["key"]["dataset"], r["key"]["activation"], r["key"]["method"])
                     == (dataset, activation, method)]
            points = [(float(f) * 100, [r["accuracy"][f] for r in group if f in r["accuracy"]]) for f in FRACTIONS]
            points = [(x, values) for x, values in points if values]
            if points:
                curves[label] = points
        panels.append((f"{DATASET_NAMES.get(dataset, dataset)}, {activation}", curves))
    _plot(panels, path, "hidden nodes removed (%)")


def plot_weights(rows, path):
    panels = []
    for dataset in sorted({r["key"]["dataset"] for r in rows}):
        group = [r for r in rows if r["key"]["dataset"] == dataset]
        curves = {}
        for method, label in WEIGHT_LABELS.items():
            points = [(s * 100, [r["accuracy"] for r in group if (r["key"]["method"], r["key"]["sparsity"]) == (method, s)])
                      for s in sorted({r["key"]["sparsity"] for r in group})]
            points = [(x, values) for x, values in points if values]
            if points:
                curves[label] = points
        panels.append((DATASET_NAMES.get(dataset, dataset), curves))
    _plot(panels, path, "weights zeroed (%)")


def write_report(records, out_dir, command, score="sum"):
    figures = os.path.join(out_dir, "figures")
    os.makedirs(figures, exist_ok=True)
    nodes, weights = _rows(records, "nodes"), _rows(records, "weights")
    lines = [
        "# Sparsity with the authors' protocol: results",
        "",
        f"Generated from `results/pruning_protocol.jsonl` by `{command}`; the runs were made with "
        "`python benchmarks/pruning_protocol.py nodes` and `... weights` (protocol in that "
        "script's docstring). Test accuracy in %, mean ± standard deviation over seeds (number "
        "of seeds in brackets). Spectral rows rank nodes with "
        f"`score=\"{score}\"`. The published column is Buffoni et al. (Sci. Rep. 2022), tanh, "
        "5 seeds.",
        "",
        "## Accuracy vs fraction of hidden nodes removed",
        "",
        provenance(nodes) if nodes else "No results yet.",
        "",
    ]
    lines += node_tables(nodes)
    if nodes:
        plot_nodes(nodes, os.path.join(figures, "pruning_protocol_nodes.png"))
        lines += ["![accuracy vs nodes removed](figures/pruning_protocol_nodes.png)", ""]
    lines += score_table(nodes)
    lines += ["## Accuracy vs weight sparsity", "", provenance(weights) if weights else "No results yet.", ""]
    lines += weight_tables(weights)
    if weights:
        plot_weights(weights, os.path.join(figures, "pruning_protocol_weights.png"))
        lines += ["![accuracy vs weight sparsity](figures/pruning_protocol_weights.png)", ""]
    atomic_write(os.path.join(out_dir, "pruning_protocol.md"), "\n".join(lines) + "\n")
    print(f"wrote {os.path.join(out_dir, 'pruning_protocol.md')}")
