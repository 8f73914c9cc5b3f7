"""Helpers shared by the benchmark reports: statistics cells, provenance, atomic writes."""

import os

import numpy as np


def stats(values):
    """(mean, std, n) of accuracies given as fractions, in percent."""
    values = np.asarray(values, dtype=float) * 100
    return values.mean(), values.std(), len(values)


def cell(values, digits=1):
    """`mean ± std (n)` in percent of accuracies given as fractions, or "–" for none."""
    if not values:
        return "–"
    mean, std, n = stats(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f} ({n})"


def atomic_write(path, text):
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def records_or_exit(results, study):
    """The records of the results file `results`, or exit saying to run `study` first. A
    cell recorded twice (two processes that ran it at once) counts once: its first record."""
    import json

    from harness.results import ResultsFile

    records, seen = [], set()
    for record in ResultsFile(results).records():
        key = json.dumps(record.get("key"), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            records.append(record)
    if not records:
        raise SystemExit(f"{results} holds no records yet: run `python benchmarks/{study}.py run` first.")
    return records


def write_page(out, name, records, plot, text):
    """Write `out/<name>.md` (`text`) and its figure `out/figures/<name>.png`
    (`plot(records, path)`), each atomically."""
    os.makedirs(os.path.join(out, "figures"), exist_ok=True)
    figure = os.path.join(out, "figures", f"{name}.png")
    plot(records, figure)
    atomic_write(os.path.join(out, f"{name}.md"), text)
    print(f"wrote {out}/{name}.md and {figure}")


def provenance(records):
    machines = sorted({r.get("machine", "?") for r in records})
    dates = sorted({r.get("date", "?") for r in records})
    seconds = sum(r.get("seconds", r.get("train_seconds", 0)) for r in records)
    return (
        f"Machine: {'; '.join(machines)}. Dates: {dates[0]} to {dates[-1]}. "
        f"{len(records)} cells, {seconds / 60:.0f} min of training and evaluation."
    )


def finish_figure(fig, axes, path, legend_size=7, below=False, dpi=110):
    """One legend (on the first panel, or `below` the panels in 4 columns), tight layout,
    atomic save, close."""
    import matplotlib.pyplot as plt

    labelled = {}  # every panel's lines, once each: a method may be missing from the first
    for ax in (a for row in axes for a in row):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labelled.setdefault(label, handle)
    if below:
        fig.legend(list(labelled.values()), list(labelled), loc="lower center", ncol=4, fontsize=legend_size,
                   frameon=False)
        fig.tight_layout(rect=(0, 0.17, 1, 1))
    else:
        axes[0][0].legend(list(labelled.values()), list(labelled), fontsize=legend_size)
        fig.tight_layout()
    fig.savefig(path + ".partial.png", dpi=dpi)
    os.replace(path + ".partial.png", path)
    plt.close(fig)
