"""The keras.applications zoo through the pruning pipeline (issue #31), and the speed of
four compacted models at 224 × 224.

    python benchmarks/zoo.py run    [--models NAME ...] [--shard I/N]
    python benchmarks/zoo.py speed  [--models ResNet50 MobileNetV2 EfficientNetB0 ConvNeXtTiny]
    python benchmarks/zoo.py report [--out docs]

`run`: every constructor of the installed `keras.applications` (or `--models`), one cell
each (`harness.zoo.run`): built with `weights=None` at its smallest square input of at
least 32 pixels, 10 logits, random non-trivial weights; `spectralize`, half of every
prunable node group removed (`prune_nodes(fraction=0.5)`, random unequal eigenvalues),
`compact`, `collapse`; recorded: node groups, the share of conv/dense output channels in
prunable groups (the classifier aside) with what blocks the rest, the largest output
difference of the compacted and collapsed models from the masked one (relative to the
output scale), parameters and multiply-adds before and after. `--shard I/N` runs every
N-th model from the I-th (one process per core:
`taskset -c I python benchmarks/zoo.py run --shard I/2`).

`speed`: at 224 × 224 (the models' native size), the unpruned model against
`collapse(compact(...))` with 50 % of every prunable group's channels removed:
parameters, multiply-adds, and predict throughput (`predict_on_batch`, images/s, the
median of timed repeats after a warm-up) at batch 1 and 32, both models timed in the same
process. Run it alone on one core (`taskset -c 0`) with TensorFlow.

Results: `results/zoo.jsonl`, `results/zoo_speed.jsonl` (appended atomically, resumable);
page: docs/zoo.md.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import zoo  # noqa: E402
from harness.cells import run_cells  # noqa: E402
from harness.report_utils import atomic_write, provenance, records_or_exit  # noqa: E402
from harness.results import ResultsFile  # noqa: E402
from reproduce import parse_shard  # noqa: E402

RESULTS = "results/zoo.jsonl"
SPEED_RESULTS = "results/zoo_speed.jsonl"
SPEED_MODELS = ("ResNet50", "MobileNetV2", "EfficientNetB0", "ConvNeXtTiny")
SPEED_SIZE = 224
FRACTION = 0.5
BOUND = 1e-4  # largest relative output difference of an exact compaction in float32


def throughput(model, batch, repeats):
    """Images per second of `model.predict_on_batch` on a batch of `batch` random images
    (median of `repeats` timed calls after two warm-up calls)."""
    x = np.random.default_rng(0).normal(size=(batch, *model.input_shape[1:])).astype("float32")
    for _ in range(2):
        model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def speed_cell(name):
    import keras_spectral as ks

    model = zoo.build(name, SPEED_SIZE)
    zoo.randomize(model)
    spectral = ks.spectralize(model)
    zoo.randomize(spectral, 1)
    ks.prune_nodes(spectral, fraction=FRACTION, score="sum")
    small = ks.collapse(ks.compact(spectral))
    record = {}
    for label, m in (("unpruned", model), ("pruned", small)):
        record[label] = {
            "parameters": int(m.count_params()), "multiply_adds": ks.multiply_adds(m),
            "images_per_second_batch_1": throughput(m, 1, 20),
            "images_per_second_batch_32": throughput(m, 32, 5),
        }
    return record


def run(args):
    names = args.models or zoo.constructors()
    indices, count = args.shard
    names = [n for i, n in enumerate(names) if i % count in indices]
    cells = [({"model": n, "fraction": FRACTION, "seed": 0}, lambda n=n: zoo_cell(n)) for n in names]
    run_cells(cells, ResultsFile(RESULTS), lambda key: key["model"],
              lambda v: v.get("error") or f"{v['share']:.1%} prunable, compact error {v.get('compact_error', 0):.1e}")


def zoo_cell(name):
    """`harness.zoo.run`, or the error it raised (recorded, so the page shows a crash)."""
    try:
        record = zoo.run(name, fraction=FRACTION)
        if max(record.get("compact_error", 0), record.get("collapse_error", 0)) > BOUND:
            # Rounding or a real difference? The same pipeline in float64 tells them apart.
            wide = zoo.run(name, fraction=FRACTION, dtype="float64")
            record.update(compact_error_float64=wide["compact_error"], collapse_error_float64=wide["collapse_error"])
        return record
    except Exception as error:  # noqa: BLE001 - a crash is a result here
        return {"error": f"{type(error).__name__}: {error}"[:400]}


def speed(args):
    names = args.models or list(SPEED_MODELS)
    cells = [({"model": n, "size": SPEED_SIZE, "fraction": FRACTION}, lambda n=n: speed_cell(n)) for n in names]
    run_cells(cells, ResultsFile(SPEED_RESULTS), lambda key: key["model"],
              lambda v: f"{v['pruned']['images_per_second_batch_32'] / v['unpruned']['images_per_second_batch_32']:.2f}× "
                        "throughput at batch 32")


def _millions(n):
    return f"{n / 1e6:.1f} M"


def _blocked(record):
    if not record["blocked"]:
        return "–"
    return "; ".join(f"{reason} ({channels})" for reason, channels in
                     sorted(record["blocked"].items(), key=lambda item: -item[1]))


def coverage_table(records):
    rows = ["| model | input | groups | prunable channels | what blocks the rest (channels) | compact / collapse error "
            "| parameters | multiply-adds |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: r["key"]["model"]):
        if "error" in r:
            rows.append(f"| {r['key']['model']} | | | crashed: {r['error']} | | | | |")
            continue
        error = (f"{r['compact_error']:.1e} / {r['collapse_error']:.1e}" if "compact_error" in r else "–")
        if "compact_error_float64" in r:
            error += f" (float64: {r['compact_error_float64']:.0e} / {r['collapse_error_float64']:.0e})"
        after = (lambda k: f" → {_millions(r[k + '_after'])}" if k + "_after" in r else "")
        rows.append(
            f"| {r['key']['model']} | {r['size']}² | {r['groups']} | {r['share']:.1%} ({r['prunable_channels']:,} of "
            f"{r['channels']:,}) | {_blocked(r)} | {error} | {_millions(r['parameters'])}{after('parameters')} | "
            f"{_millions(r['multiply_adds'])}{after('multiply_adds')} |"
        )
    return "\n".join(rows)


def speed_table(records):
    rows = ["| model | parameters | multiply-adds / image | images/s, batch 1 | images/s, batch 32 |",
            "|---|---|---|---|---|"]
    for r in records:
        u, p = r["unpruned"], r["pruned"]
        ratio = (lambda k: f"{u[k]:.1f} → {p[k]:.1f} ({p[k] / u[k]:.2f}×)")
        rows.append(
            f"| {r['key']['model']} | {_millions(u['parameters'])} → {_millions(p['parameters'])} "
            f"({p['parameters'] / u['parameters']:.0%}) | {u['multiply_adds'] / 1e9:.2f} G → "
            f"{p['multiply_adds'] / 1e9:.2f} G ({p['multiply_adds'] / u['multiply_adds']:.0%}) | "
            f"{ratio('images_per_second_batch_1')} | {ratio('images_per_second_batch_32')} |"
        )
    return "\n".join(rows)


def speed_text(records):
    """What the speed table shows, in words, from its records."""
    def ratios(r, key):
        return r["pruned"][key] / r["unpruned"][key]

    lines = []
    if records:
        macs = [ratios(r, "multiply_adds") for r in records]
        speed = [ratios(r, f"images_per_second_batch_{b}") for r in records for b in (1, 32)]
        lines.append(f"With every channel prunable (half the inputs and half the outputs of most convolutions "
                     f"go), {min(macs):.0%}–{max(macs):.0%} of the multiply-adds remain and predict throughput "
                     f"rises {min(speed):.1f}–{max(speed):.1f}×.")
    return "\n\n".join(lines)


def summary(records):
    crashed = [r["key"]["model"] for r in records if "error" in r]
    within = [r for r in records if max(r.get("compact_error", 1), r.get("collapse_error", 1)) <= BOUND]
    wide = [r for r in records if max(r.get("compact_error_float64", 1), r.get("collapse_error_float64", 1)) <= 1e-10]
    covered = [r for r in records if r.get("share", 0) >= 0.9]
    text = (f"{len(records)} models; {len(records) - len(crashed)} without a crash; {len(within)} compacted and "
            f"collapsed within {BOUND:.0e} of the masked model's outputs in float32")
    if wide:
        text += (f", and {len(wide)} more ({', '.join(r['key']['model'] for r in wide)}) exactly in float64 "
                 "(the float32 difference is rounding, amplified through the depth of a random-weight network)")
    return text + f"; {len(covered)} with at least 90 % of their conv/dense output channels in prunable groups."


def report(args):
    records = records_or_exit(RESULTS, "zoo")
    speed_records = ResultsFile(SPEED_RESULTS).records()
    text = PAGE.format(
        summary=summary(records), provenance=provenance(records), coverage=coverage_table(records),
        speed=speed_table(speed_records) if speed_records else "(not run yet: `python benchmarks/zoo.py speed`)",
        speed_provenance=provenance(speed_records) if speed_records else "",
        speed_text=speed_text(speed_records),
    )
    atomic_write(os.path.join(args.out, "zoo.md"), text)
    print(f"wrote {args.out}/zoo.md")


PAGE = """# Pruning the keras.applications zoo

Every model constructor of the installed `keras.applications`, through the whole pipeline
(`benchmarks/zoo.py run`; the suite's `tests/test_zoo.py` runs nine of them on
TensorFlow and PyTorch, where Keras refuses NASNet, and two on JAX): built with `weights=None` at its smallest square input of
at least 32 pixels, 10 logits, random non-trivial weights (biases, BatchNorm statistics,
layer scales), `spectralize`, random unequal eigenvalues, half of every prunable node
group removed (`prune_nodes(fraction=0.5)`), `compact`, `collapse`. The error is the
largest difference of the compacted (and collapsed) model's outputs from the masked
model's, relative to the largest output. "Prunable channels" counts the output channels
(units, filters) of every Dense and convolution, the classifier aside, that lie in
prunable node groups.

**{summary}**

{provenance} Command: `KERAS_BACKEND=tensorflow taskset -c 1 python benchmarks/zoo.py run`
(one process; `--shard I/2` splits the zoo over two), then `python benchmarks/zoo.py report`.

{coverage}

What the rules do on these models (`keras_spectral/graph/rules/`): depthwise convolutions
(and ConvNeXt's `Conv2D(groups=channels)`) pass channels one by one; separable
convolutions read and produce channels (`spectralize` converts them into
`SpectralSeparableConv2D`); squeeze-excite gates (`Multiply` of a `(1, 1, C)` gate with an
`(H, W, C)` map) couple the gate's producer with the map's; `keras.ops` arithmetic with a
scalar (MobileNetV3's hard sigmoid) acts feature by feature, and between two tensors
(ConvNeXt's `inputs + block(x)`) couples them; Reshape to `(1, 1, C)` keeps the features;
ConvNeXt's LayerScale and StochasticDepth and InceptionResNetV2's CustomScaleLayer have
rules of their own. Node groups are followed node by node, so a concatenation of narrow
branches added to a wider convolution (Inception-ResNet and NASNet blocks) is one group.

ConvNeXt: the residual stream of each stage passes LayerNormalization, which mixes the
channels it normalizes; `spectralize` makes each a `MaskedLayerNormalization`, whose
statistics leave removed channels out, so the stream (the stem, each block's second
pointwise Dense and the downsampling convolutions) is prunable and compacts exactly
(before 2026-12-06 only the block-internal channels were: 77–78 %).

## Speed after compaction, 224 × 224

Half of every prunable group's channels removed, `collapse(compact(model))` against the
unpruned model (`benchmarks/zoo.py speed`; `predict_on_batch`, median of timed repeats,
one CPU core with `taskset -c 0`, the other core idle, TensorFlow; ConvNeXtTiny's row was
remeasured with `taskset -c 1` while the other core ran development work). The pruned
models are the same random-weight models as above: this measures cost, not accuracy.

{speed}

{speed_provenance} Command: `KERAS_BACKEND=tensorflow taskset -c 0 python benchmarks/zoo.py speed`.

{speed_text}
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "speed", "report"))
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--shard", type=parse_shard, default=((0,), 1))
    parser.add_argument("--out", default="docs")
    args = parser.parse_args(argv)
    {"run": run, "speed": speed, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
