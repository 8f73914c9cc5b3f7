"""The equal-budget view of the grid (issue #23): method families, the Dense frontier,
accuracy against trainable parameters and against inference multiply-adds, the "which
mode when" table, the eigenvalues-against-cousins comparison and the goal check.

Works on grid records already relabelled by `reproduce_report.relabel_revisions`: only the
current definition of each method (its plain name) is drawn; superseded revisions and the
explicit-basis variants stay in the results file and the other tables.
"""

import math

import numpy as np

from harness.report_utils import finish_figure, stats

# family label, colour, {method: (marker, short label)}: one colour per family.
FAMILIES = (
    ("Dense", "black", {"dense": ("o", "Dense, 2 hidden"), "dense_narrow": ("s", "Dense, 2 narrow hidden"),
                        "dense_one_hidden": ("v", "Dense, 1 hidden")}),
    ("Eigenvalues only", "tab:blue", {"spectral_one_set": ("x", "one set"), "spectral_two_sets": ("o", "two sets")}),
    ("Scales, no eigenvalues", "tab:cyan", {"scaled_frozen": ("D", "diag(a) φ diag(b)")}),
    ("Decomposed φ", "tab:green", {"spectral_svd": ("o", "svd"), "spectral_qr": ("s", "qr"),
                                   "spectral_qr_full": ("^", "qr_full")}),
    ("Low-rank φ", "tab:orange", {"spectral_lowrank": ("o", "lowrank (rank 10)"),
                                  "spectral_lowrank_rank5": ("s", "lowrank (rank 5)")}),
    ("Plain low rank", "tab:brown", {"lowrank_plain": ("o", "A B (rank 10), no eigenvalues")}),
    ("Trainable φ", "tab:red", {"spectral_trainable": ("o", "trainable")}),
)
STYLE = {method: (family, colour, marker, label)
         for family, colour, members in FAMILIES for method, (marker, label) in members.items()}
DENSE_METHODS = tuple(FAMILIES[0][2])
# Budget regimes of the "which mode when" table (trainable parameters).
REGIMES = ((0, 5_000), (5_000, 15_000), (15_000, 50_000), (50_000, 200_000), (200_000, math.inf))
GOAL_PARAMS, GOAL_MARGIN = 10_000, 1.0
# The eigenvalue modes and their cousins without eigenvalues, compared width by width.
COUSINS = (("spectral_lowrank", "lowrank_plain"), ("spectral_two_sets", "scaled_frozen"))


def points(rows, dataset, multiply_adds_of):
    """One point per (method, width) of the drawn methods: mean accuracy (%), its std and
    seeds, trainable parameters and multiply-adds per sample."""
    cells = {}
    for r in rows:
        key = r["key"]
        if key["dataset"] == dataset and key["method"] in STYLE:
            cells.setdefault((key["method"], key["width"]), []).append(r)
    out = []
    for (method, width), group in sorted(cells.items()):
        mean, std, n = stats([r["test_accuracy"] for r in group])
        macs = group[0].get("multiply_adds") or multiply_adds_of(dataset, method, width)
        out.append(dict(method=method, width=width, accuracy=mean, std=std, seeds=n,
                        validation=100 * float(np.mean([r["val_accuracy"] for r in group])),
                        params=group[0]["trainable_params"], macs=macs))
    return out


def frontier(dense_points, axis="params", metric="accuracy"):
    """The Dense frontier: the Dense points no cheaper Dense point matches in `metric`
    (test "accuracy" or "validation"), by `axis`."""
    best, front = -math.inf, []
    for p in sorted(dense_points, key=lambda p: (p[axis], -p[metric])):
        if p[metric] > best:
            front.append(p)
            best = p[metric]
    return front


def frontier_at(front, value, axis="params", metric="accuracy"):
    """The frontier's `metric` at `value` (linear in log `axis` between its points; the
    best cheaper point beyond its last), or None below its first point."""
    if not front or value < front[0][axis]:
        return None
    for low, high in zip(front, front[1:]):
        if low[axis] <= value <= high[axis]:
            t = math.log(value / low[axis]) / math.log(high[axis] / low[axis])
            return low[metric] + t * (high[metric] - low[metric])
    return front[-1][metric]


def name(p):
    return f"{STYLE[p['method']][3]}, W={p['width']}"


def _fmt(n):
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def every_configuration(dataset_points):
    """Per data set: each configuration against the Dense frontier at its parameters."""
    lines = ["| family | configuration | trainable params | multiply-adds | test acc (%) | Dense frontier (%) | Δ (pt) "
             "| Δ at equal multiply-adds (pt) |", "|---|---|---|---|---|---|---|---|"]
    dense = [p for p in dataset_points if p["method"] in DENSE_METHODS]
    by_params, by_macs = frontier(dense), frontier(dense, "macs")
    for p in sorted(dataset_points, key=lambda p: p["params"]):
        at = None if p["method"] in DENSE_METHODS else frontier_at(by_params, p["params"])
        at_macs = None if p["method"] in DENSE_METHODS else frontier_at(by_macs, p["macs"], "macs")
        versus = "– | –" if at is None else f"{at:.2f} | {p['accuracy'] - at:+.2f}"
        versus += " | –" if at_macs is None else f" | {p['accuracy'] - at_macs:+.2f}"
        lines.append(f"| {STYLE[p['method']][0]} | {name(p)} | {p['params']:,} | {_fmt(p['macs'])} "
                     f"| {p['accuracy']:.2f} ± {p['std']:.2f} ({p['seeds']}) | {versus} |")
    return lines + [""]


def which_mode_when(by_dataset, dataset_names):
    """For each budget regime and data set: the most accurate configuration, the most
    accurate Dense one, the gap and the multiply-adds of each."""
    lines = ["| trainable params | data set | most accurate | test acc (%) | its multiply-adds | best Dense in range "
             "| test acc (%) | its multiply-adds | Δ (pt) |", "|---|---|---|---|---|---|---|---|---|"]
    for low, high in REGIMES:
        span = f"{_fmt(low) if low else '0'} – {_fmt(high) if high < math.inf else '…'}"
        for dataset, pts in by_dataset.items():
            inside = [p for p in pts if low < p["params"] <= high]
            if not inside:
                continue
            best = max(inside, key=lambda p: p["accuracy"])
            dense = [p for p in inside if p["method"] in DENSE_METHODS]
            top_dense = max(dense, key=lambda p: p["accuracy"]) if dense else None
            dense_cells = (f"{name(top_dense)} | {top_dense['accuracy']:.2f} | {_fmt(top_dense['macs'])} "
                           f"| {best['accuracy'] - top_dense['accuracy']:+.2f}") if top_dense else "none | – | – | –"
            lines.append(f"| {span} | {dataset_names.get(dataset, dataset)} | {STYLE[best['method']][0]}: {name(best)} "
                         f"| {best['accuracy']:.2f} | {_fmt(best['macs'])} | {dense_cells} |")
    return lines + [""]


def cousins(by_dataset, dataset_names):
    """Each eigenvalue mode against its cousin without eigenvalues, width by width."""
    lines = ["| data set | width | with eigenvalues | test acc (%) | params | without | test acc (%) | params | Δ (pt) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dataset, pts in by_dataset.items():
        index = {(p["method"], p["width"]): p for p in pts}
        for spectral, cousin in COUSINS:
            for (method, width), p in sorted(index.items()):
                other = index.get((cousin, width))
                if method != spectral or other is None:
                    continue
                lines.append(f"| {dataset_names.get(dataset, dataset)} | {width} | {STYLE[spectral][3]} "
                             f"| {p['accuracy']:.2f} ± {p['std']:.2f} | {p['params']:,} | {STYLE[cousin][3]} "
                             f"| {other['accuracy']:.2f} ± {other['std']:.2f} | {other['params']:,} "
                             f"| {p['accuracy'] - other['accuracy']:+.2f} |")
    return lines + [""]


def margins(pts, metric):
    """`{(method, width): (margin over the Dense frontier in metric, point)}` of the
    configurations above `GOAL_PARAMS` trainable parameters."""
    front = frontier([p for p in pts if p["method"] in DENSE_METHODS], metric=metric)
    out = {}
    for p in pts:
        at = frontier_at(front, p["params"], metric=metric)
        if p["method"] not in DENSE_METHODS and p["params"] > GOAL_PARAMS and at is not None:
            out[(p["method"], p["width"])] = (p[metric] - at, p)
    return out


def goal(by_dataset, dataset_names, datasets=("mnist", "fashion_mnist")):
    """The issue's goal: a configuration above `GOAL_PARAMS` trainable parameters that is
    at least `GOAL_MARGIN` pt above the Dense frontier on every one of `datasets`. The
    configurations are ranked by their smallest margin in validation accuracy (frontier
    and configuration alike), and the test margins of the first five are reported."""
    if not all(d in by_dataset for d in datasets):
        return ["The goal needs cells on MNIST and Fashion-MNIST.", ""]
    test = {d: margins(by_dataset[d], "accuracy") for d in datasets}
    validation = {d: margins(by_dataset[d], "validation") for d in datasets}
    common = [k for k in validation[datasets[0]] if all(k in validation[d] and k in test[d] for d in datasets)]
    ranked = sorted(common, key=lambda k: -min(validation[d][k][0] for d in datasets))
    names = [dataset_names.get(d, d) for d in datasets]
    lines = ["| configuration (ranked on validation) | trainable params | "
             + " | ".join(f"Δ {n}, validation (pt)" for n in names) + " | "
             + " | ".join(f"Δ {n}, test (pt)" for n in names) + " | met on test |",
             "|---|---|" + "---|" * (2 * len(datasets)) + "---|"]
    for k in ranked[:5]:
        point = test[datasets[0]][k][1]
        met = min(test[d][k][0] for d in datasets) >= GOAL_MARGIN
        lines.append(f"| {name(point)} | {point['params']:,} | "
                     + " | ".join(f"{validation[d][k][0]:+.2f}" for d in datasets) + " | "
                     + " | ".join(f"{test[d][k][0]:+.2f}" for d in datasets) + f" | {'yes' if met else 'no'} |")
    if not ranked:
        return lines + ["", "No configuration to rank yet.", ""]
    chosen = ranked[0]
    smallest = min(test[d][chosen][0] for d in datasets)
    verdict = (f"The configuration chosen on validation, {name(test[datasets[0]][chosen][1])}, is {smallest:+.2f} pt "
               f"above the Dense frontier on test at its worst: the goal is {'met' if smallest >= GOAL_MARGIN else 'not met'}.")
    return lines + ["", verdict, ""]


def plot(by_dataset, dataset_names, path, axis):
    """Accuracy against `axis` ("params" or "macs"), one panel per data set, one colour
    per family, the Dense frontier as a dashed line; one legend below the panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(by_dataset), figsize=(4.4 * len(by_dataset), 4.2), squeeze=False)
    for ax, (dataset, pts) in zip(axes[0], by_dataset.items()):
        for method, (family, colour, marker, label) in STYLE.items():
            mine = sorted((p for p in pts if p["method"] == method), key=lambda p: p[axis])
            if mine:
                ax.errorbar([p[axis] for p in mine], [p["accuracy"] for p in mine], yerr=[p["std"] for p in mine],
                            color=colour, marker=marker, linestyle="none", markersize=5, capsize=2,
                            markerfacecolor="none" if family != "Dense" else colour, label=f"{family}: {label}")
        front = frontier([p for p in pts if p["method"] in DENSE_METHODS], axis)
        ax.plot([p[axis] for p in front], [p["accuracy"] for p in front], "k--", linewidth=1, label="Dense frontier")
        low = min(p["accuracy"] for p in pts)
        ax.set_ylim(max(low - 2, np.percentile([p["accuracy"] for p in pts], 10) - 8), None)
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters" if axis == "params" else "multiply-adds per sample (inference)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(dataset_names.get(dataset, dataset))
        ax.grid(alpha=0.3)
    finish_figure(fig, axes, path, legend_size=8, below=True, dpi=100)
