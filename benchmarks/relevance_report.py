"""Render `results/relevance.jsonl` as docs/relevance.md and its figure.

Used by `python benchmarks/relevance.py report`; reads nothing but the records.
"""

import os

import numpy as np

from harness.report_utils import atomic_write, cell, finish_figure, provenance
from relevance_settings import KEEP, RANKINGS, REMOVE

NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "planted": "Planted (tabular)"}


def rank_tables(rows):
    lines = []
    for dataset in [d for d in NAMES if any(r["key"]["dataset"] == d for r in rows)]:
        group = [r for r in rows if r["key"]["dataset"] == dataset]
        lines += [
            f"### {NAMES[dataset]}: test accuracy (%) of a Dense network retrained on the top k % of the features",
            "",
            "| ranking | " + " | ".join(f"k = {f * 100:g} %" for f in KEEP) + " | ranking cost (s) |"
            + (" informative features in top 10 |" if dataset == "planted" else ""),
            "|---" * (len(KEEP) + 2 + (dataset == "planted")) + "|",
        ]
        for method in RANKINGS:
            cells = [cell([r["accuracy"][method][str(f)] for r in group]) for f in KEEP]
            seconds = np.mean([r["seconds"][method] for r in group])
            extra = ""
            if dataset == "planted":
                extra = f" {np.mean([r['informative_in_top10'][method] for r in group]) * 10:.1f} of 10 |"
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {seconds:.1f} |" + extra)
        lines += ["", f"All features: {cell([r['all_features'] for r in group])}.", ""]
    return lines


def penalty_table(rows):
    if not rows:
        return ["No penalty cells yet.", ""]
    lines = [
        "| φ | L1 on λ_in | all inputs | " + " | ".join(f"{f * 100:g} % removed" for f in REMOVE)
        + " | removable at ≤ 1 pt (no retraining / 2 epochs retraining) |",
        "|---" * (len(REMOVE) + 4) + "|",
    ]
    for mode in ("frozen", "trainable"):
        base = [r["full"] for r in rows if r["key"]["eigenvectors"] == mode and r["key"]["penalty"] == 0.0]
        if not base:
            continue
        reference = np.mean(base)
        for penalty in sorted({r["key"]["penalty"] for r in rows}):
            group = [r for r in rows if r["key"]["eigenvectors"] == mode and r["key"]["penalty"] == penalty]
            if not group:
                continue
            cells, best = [], {"removed": 0.0, "retrained": 0.0}
            for f in REMOVE:
                removed = np.mean([r["removed"][str(f)] for r in group])
                retrained = np.mean([r["retrained"][str(f)] for r in group])
                cells.append(f"{removed * 100:.1f} / {retrained * 100:.1f}")
                for name, value in (("removed", removed), ("retrained", retrained)):
                    if value >= reference - 0.01:
                        best[name] = max(best[name], f)
            lines.append(
                f"| {mode} | {penalty:g} | {cell([r['full'] for r in group])} | " + " | ".join(cells)
                + f" | {best['removed'] * 100:g} % / {best['retrained'] * 100:g} % |"
            )
    return lines + [""]


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in NAMES if any(r["key"]["dataset"] == d for r in rows)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        group = [r for r in rows if r["key"]["dataset"] == dataset]
        for method in RANKINGS:
            means = [100 * np.mean([r["accuracy"][method][str(f)] for r in group]) for f in KEEP]
            ax.plot([100 * f for f in KEEP], means, marker="o", label=method)
        ax.set_xscale("log")
        ax.set_title(NAMES[dataset])
        ax.set_xlabel("features kept (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    finish_figure(fig, axes, path)


def write_report(records, out_dir, command):
    rank = [r for r in records if r["key"]["experiment"] == "rank"]
    penalty = [r for r in records if r["key"]["experiment"] == "penalty"]
    os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
    lines = [
        "# Input-feature relevance: results",
        "",
        f"Generated from `results/relevance.jsonl` by `{command}`; the runs were made with "
        "`python benchmarks/relevance.py rank` and `... penalty` (protocol in that script's "
        "docstring). Mean ± standard deviation over seeds (number of seeds in brackets).",
        "",
        "## Rankings compared: keep the top k %, retrain, test",
        "",
        provenance([dict(r, seconds=r.get("total_seconds", 0)) for r in rank]) if rank else "No results yet.",
        "",
    ]
    lines += rank_tables(rank)
    if rank:
        plot(rank, os.path.join(out_dir, "figures", "relevance_rankings.png"))
        lines += ["![accuracy vs features kept](figures/relevance_rankings.png)", ""]
    lines += [
        "## The L1 workflow on MNIST: how many inputs can go",
        "",
        "SpectralDense 784-500-10, L1 on `eigenvalues_in`, 10 epochs; then `remove_inputs` by "
        "relevance. Cells: test accuracy (%) without retraining / after 2 epochs of training "
        "`compact(model, drop_inputs=True)` on the kept columns. The last column is the largest "
        "fraction removed that stays within 1 point of the same φ mode without penalty and with "
        "every input.",
        "",
        provenance([dict(r, seconds=r.get("total_seconds", 0)) for r in penalty]) if penalty else "",
        "",
    ]
    lines += penalty_table(penalty)
    atomic_write(os.path.join(out_dir, "relevance.md"), "\n".join(lines) + "\n")
    print(f"wrote {os.path.join(out_dir, 'relevance.md')}")
