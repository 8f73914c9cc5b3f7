"""Render the sparsity experiments' results file as markdown tables and PNG plots.

Used by `python benchmarks/sparsity.py report`; reads nothing but the records it is given.
"""

import os
from collections import defaultdict

import numpy as np

from harness.report_utils import atomic_write as _atomic_write
from harness.report_utils import cell as _cell
from harness.report_utils import provenance as _provenance
from harness.report_utils import finish_figure
from harness.report_utils import stats as _stats

NODE_LABELS = {
    "dense_l1": "Dense + incoming-L1 removal",
    "spectral_post": "Spectral, removal after training",
    "spectral_filter": "Spectral, pre-training filter + retraining",
}
WEIGHT_LABELS = {
    "dense_percentile": "Dense, percentile rule",
    "spectral_percentile": "Spectral (trainable φ), percentile rule",
    "tfmot": "tfmot prune_low_magnitude (PolynomialDecay)",
}
# The authors' published result files, 90 % of hidden nodes removed (issue #3).
PUBLISHED_90 = {
    "fashion_mnist": {"dense_l1": 24.8, "spectral_post": 64.8, "spectral_filter": 88.6},
    "mnist": {"dense_l1": 60.3, "spectral_post": 73.3, "spectral_filter": 97.7},
}
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def node_tables(records, score):
    rows = [r for r in records if r["key"]["experiment"] == "nodes" and r["key"].get("score") == score]
    fractions = ["0.0", "0.5", "0.7", "0.8", "0.9", "0.95"]
    groups = sorted({(r["key"]["dataset"], r["key"]["activation"]) for r in rows})
    lines = []
    for dataset, activation in groups:
        epochs = sorted({r["key"]["epochs"] for r in rows})
        retrain = sorted({r["key"]["retrain_epochs"] for r in rows if "retrain_epochs" in r["key"]})
        lines += [
            f"#### {DATASET_NAMES.get(dataset, dataset)}, 784-500-10 {activation} "
            f"({', '.join(map(str, epochs))} epochs per training; the filter's compact network "
            f"is retrained for {', '.join(map(str, retrain)) or '–'})",
            "",
            "| method | " + " | ".join(f"{float(f) * 100:g} % removed" for f in fractions)
            + " | published @ 90 % |",
            "|---" * (len(fractions) + 2) + "|",
        ]
        for method, label in NODE_LABELS.items():
            cell_rows = [r for r in rows if (r["key"]["dataset"], r["key"]["activation"], r["key"]["method"]) == (dataset, activation, method)]
            cells = [_cell([r["accuracy"][f] for r in cell_rows if f in r["accuracy"]]) for f in fractions]
            published = PUBLISHED_90.get(dataset, {}).get(method)
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {published if published else '–'} |")
        lines.append("")
    return lines


def score_table(records, score):
    """Accuracy after removal without retraining, by score, over the node-experiment cells
    of the main run (`score`; every cell records the curves of all scores)."""
    lines = []
    for method, field in (("spectral_post", "accuracy_by_score"), ("spectral_filter", "accuracy_without_retraining_by_score")):
        per = defaultdict(lambda: defaultdict(list))
        for r in records:
            key = r["key"]
            if key["experiment"] == "nodes" and key["method"] == method and key.get("score") == score and field in r:
                for name, curve in r[field].items():
                    for fraction, acc in curve.items():
                        per[name][fraction].append(acc)
        if not per:
            continue
        fractions = ["0.5", "0.7", "0.8", "0.9", "0.95"]
        title = "after training (φ and both sets trained)" if method == "spectral_post" else "eigenvalues-only networks, before retraining"
        lines += [
            f"Removal {title}, mean test accuracy (%) over all data sets, activations and seeds:",
            "",
            "| score | " + " | ".join(f"{float(f) * 100:g} %" for f in fractions) + " | mean |",
            "|---" * (len(fractions) + 2) + "|",
        ]
        for name in sorted(per):
            means = [np.mean(per[name][f]) * 100 for f in fractions]
            lines.append(f"| `{name}` | " + " | ".join(f"{m:.1f}" for m in means) + f" | {np.mean(means):.1f} |")
        lines.append("")
    return lines


def scope_table(records):
    """Per-layer vs global ranking on 784-500-500-10, mean accuracy by score."""
    rows = [r for r in records if r["key"]["experiment"] == "scope"]
    if not rows:
        return ["No scope cells have run yet.", ""]
    fractions = ["0.5", "0.7", "0.8", "0.9", "0.95"]
    lines = [
        f"784-500-500-10 tanh on MNIST (φ and both sets trained, {rows[0]['key']['epochs']} epochs), "
        f"removal after training without retraining, mean test accuracy (%) over {len(rows)} seeds:",
        "",
        "| scope | score | " + " | ".join(f"{float(f) * 100:g} %" for f in fractions) + " | mean |",
        "|---" * (len(fractions) + 3) + "|",
    ]
    for scope in ("layer", "global"):
        for score in sorted(rows[0]["accuracy_by_scope"][scope]):
            means = [np.mean([r["accuracy_by_scope"][scope][score][f] for r in rows]) * 100 for f in fractions]
            lines.append(f"| `{scope}` | `{score}` | " + " | ".join(f"{m:.1f}" for m in means) + f" | {np.mean(means):.1f} |")
    return lines + [""]


def weight_tables(records):
    rows = [r for r in records if r["key"]["experiment"] == "weights"]
    sparsities = sorted({r["key"]["sparsity"] for r in rows})
    lines = []
    for dataset in sorted({r["key"]["dataset"] for r in rows}):
        epochs = sorted({r["key"]["epochs"] for r in rows if r["key"]["dataset"] == dataset})
        lines += [
            f"#### {DATASET_NAMES.get(dataset, dataset)}, 784-500-10 tanh ({', '.join(map(str, epochs))} epochs)",
            "",
            "| method | " + " | ".join(f"{s * 100:g} % zero" for s in sparsities) + " |",
            "|---" * (len(sparsities) + 1) + "|",
        ]
        for method, label in WEIGHT_LABELS.items():
            cells = [
                _cell([r["accuracy"] for r in rows if (r["key"]["dataset"], r["key"]["method"], r["key"]["sparsity"]) == (dataset, method, s)])
                for s in sparsities
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plot_nodes(records, score, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if r["key"]["experiment"] == "nodes" and r["key"].get("score") == score]
    groups = sorted({(r["key"]["dataset"], r["key"]["activation"]) for r in rows})
    if not groups:
        return False
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, (dataset, activation) in zip(axes[0], groups):
        for method, label in NODE_LABELS.items():
            cell_rows = [r for r in rows if (r["key"]["dataset"], r["key"]["activation"], r["key"]["method"]) == (dataset, activation, method)]
            if not cell_rows:
                continue
            fractions = sorted(cell_rows[0]["accuracy"], key=float)
            stats = [_stats([r["accuracy"][f] for r in cell_rows]) for f in fractions]
            ax.errorbar([float(f) * 100 for f in fractions], [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3, label=label)
        ax.set_title(f"{DATASET_NAMES.get(dataset, dataset)}, {activation}")
        ax.set_xlabel("hidden nodes removed (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    finish_figure(fig, axes, path)
    return True


def plot_weights(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if r["key"]["experiment"] == "weights"]
    datasets = sorted({r["key"]["dataset"] for r in rows})
    if not datasets:
        return False
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for method, label in WEIGHT_LABELS.items():
            sparsities = sorted({r["key"]["sparsity"] for r in rows if (r["key"]["dataset"], r["key"]["method"]) == (dataset, method)})
            if not sparsities:
                continue
            stats = [_stats([r["accuracy"] for r in rows if (r["key"]["dataset"], r["key"]["method"], r["key"]["sparsity"]) == (dataset, method, s)]) for s in sparsities]
            ax.errorbar([s * 100 for s in sparsities], [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3, label=label)
        ax.set_title(DATASET_NAMES.get(dataset, dataset))
        ax.set_xlabel("weights zeroed (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    finish_figure(fig, axes, path)
    return True


def write_report(records, out_dir, command, score="sum"):
    """Write `sparsity_results.md` and the figures into `out_dir`."""
    figures = os.path.join(out_dir, "figures")
    os.makedirs(figures, exist_ok=True)
    node_records = [r for r in records if r["key"]["experiment"] == "nodes"]
    weight_records = [r for r in records if r["key"]["experiment"] == "weights"]
    lines = [
        "# Sparsity experiments: results",
        "",
        "Generated from `results/sparsity.jsonl` by `" + command + "`; the runs were made with "
        "`python benchmarks/sparsity.py nodes` and `python benchmarks/sparsity.py weights` "
        "(see that script's docstring for the protocol). Test accuracy in %, mean ± standard "
        "deviation over seeds (number of seeds in brackets).",
        "",
        "## 1. Accuracy vs fraction of hidden nodes removed",
        "",
        f"Spectral rows rank nodes with `score=\"{score}\"`. " + (_provenance(node_records) if node_records else "No results yet."),
        "",
    ]
    lines += node_tables(records, score)
    if plot_nodes(records, score, os.path.join(figures, "sparsity_nodes.png")):
        lines += ["![accuracy vs nodes removed](figures/sparsity_nodes.png)", ""]
    lines += ["### Node scores compared", ""] + score_table(records, score)
    lines += ["### Per-layer vs global ranking", ""] + scope_table(records)
    lines += ["## 2. Accuracy vs weight sparsity", "", _provenance(weight_records) if weight_records else "No results yet.", ""]
    lines += weight_tables(records)
    if plot_weights(records, os.path.join(figures, "sparsity_weights.png")):
        lines += ["![accuracy vs weight sparsity](figures/sparsity_weights.png)", ""]
    _atomic_write(os.path.join(out_dir, "sparsity_results.md"), "\n".join(lines) + "\n")
    print(f"wrote {os.path.join(out_dir, 'sparsity_results.md')}")
