"""The reproduction grid's harness (benchmarks/reproduce.py) on a tiny grid of real MNIST runs:
results appended per cell, a rerun resumes, the width recheck, shards, and the report."""

import argparse
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import reproduce  # noqa: E402

from keras_spectral.models import build_mlp, trainable_count  # noqa: E402
from harness.results import ResultsFile  # noqa: E402

TUNED = 1e-2  # the rate the pre-recorded sweep below makes best


def _record_sweep(results, methods):
    """Record a finished learning-rate sweep, so the test trains grid cells only."""
    for method in methods:
        for lr in reproduce.LEARNING_RATES:
            key = dict(experiment="tune", dataset="mnist", method=method, lr=lr, width=reproduce.TUNE_WIDTH, seed=0)
            results.append(key, {"val_accuracy": 0.9 if lr == TUNED else 0.5})


def _grid_args(path, *extra):
    return ["grid", "--datasets", "mnist", "--widths", "8", "16", "--seeds", "1", "--max-epochs", "1",
            "--results", str(path), *extra]


@pytest.mark.slow
def test_grid_records_resumes_rechecks_and_reports(data_dir, tmp_path, capsys):
    path = tmp_path / "grid.jsonl"
    results = ResultsFile(str(path))
    methods = ["dense", "spectral_two_sets"]
    _record_sweep(results, methods)
    # A narrower cell far better on validation than any 1-epoch run: the W=16 cell of the
    # same method must then also be trained at the next smaller rate.
    narrow = dict(experiment="grid", dataset="mnist", width=8, method="spectral_two_sets", seed=0,
                  max_epochs=1, patience=8)
    results.append(narrow, {"val_accuracy": 1.0, "test_accuracy": 1.0, "trainable_params": 1,
                            "epochs_run": 1, "train_seconds": 0.0, "lr": TUNED})

    reproduce.main(_grid_args(path, "--methods", *methods))
    out = capsys.readouterr().out
    assert "1 of 4 cells already done; 3 to run." in out
    grid = [r for r in results.records() if r["key"]["experiment"] == "grid" and r["key"] != narrow]
    assert sorted((r["key"]["method"], r["key"]["width"]) for r in grid) == [
        ("dense", 8), ("dense", 16), ("spectral_two_sets", 16)
    ]
    for r in grid:
        model = build_mlp(784, (r["key"]["width"],) * 2, 10, r["key"]["method"])
        assert r["trainable_params"] == trainable_count(model)
        assert r["epochs_run"] == 1 and 0 <= r["test_accuracy"] <= 1
    by_cell = {(r["key"]["method"], r["key"]["width"]): r for r in grid}
    assert by_cell[("dense", 16)]["test_accuracy"] > 0.85  # one epoch of a real MNIST run
    rechecked = by_cell[("spectral_two_sets", 16)]
    assert {rechecked["lr"], rechecked["other_lr_tried"]["lr"]} == {TUNED, 3e-3}
    assert "other_lr_tried" not in by_cell[("dense", 16)]

    before = path.read_text()
    reproduce.main(_grid_args(path, "--methods", *methods))
    assert "4 of 4 cells already done; 0 to run." in capsys.readouterr().out
    assert path.read_text() == before

    docs = tmp_path / "docs"
    docs.mkdir()
    reproduce.main(["report", "--results", str(path), "--out", str(docs)])
    report = (docs / "reproduce_results.md").read_text()
    assert "| Dense (direct space) | " in report and "| Spectral, eigenvalues only, two sets | " in report
    assert "(rechecked " in report  # the W=16 spectral cell's second rate is shown
    for name in ("reproduce_accuracy_vs_width.png", "reproduce_accuracy_vs_params.png"):
        assert (docs / "figures" / name).stat().st_size > 1000


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_shards_split_the_grid_exactly(count):
    args = argparse.Namespace(datasets=list(reproduce.GRID_DATASETS), methods=list(reproduce.GRID_METHODS))
    owners = {}
    for index in range(count):
        args.shard = ((index,), count)
        for dataset in args.datasets:
            for method in args.methods:
                if reproduce.in_shard(args, dataset, method):
                    owners.setdefault((dataset, method), []).append(index)
    assert len(owners) == len(reproduce.GRID_DATASETS) * len(reproduce.GRID_METHODS)
    assert all(len(v) == 1 for v in owners.values())


def test_several_shares_in_one_process():
    args = argparse.Namespace(datasets=["a", "b"], methods=["m", "n", "o"], shard=reproduce.parse_shard("0,2/4"))
    owned = {(d, m) for d in args.datasets for m in args.methods if reproduce.in_shard(args, d, m)}
    assert owned == {("a", "m"), ("a", "o"), ("b", "n")}


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "-1/3", "0/0", "0,4/4", "0,/2"])
def test_invalid_shard_is_a_clear_error(text, capsys):
    with pytest.raises(SystemExit):
        reproduce.main(["grid", f"--shard={text}"])
    err = capsys.readouterr().err
    assert f"Received an invalid value for `--shard`, expected I/N or I,J,.../N with 0 <= I < N. Received: {text}" in err



def _record_budget_sweep(results, method, best):
    width = reproduce.BUDGET_METHODS[method][1]
    for lr in reproduce.BUDGET_RATES:
        key = dict(experiment="tune", dataset="mnist", method=method, lr=lr, width=width, seed=0)
        results.append(key, {"val_accuracy": 0.9 if lr == best else 0.5})


@pytest.mark.slow
def test_budget_runs_each_baseline_at_its_widths_and_records_multiply_adds(data_dir, tmp_path, capsys):
    path = tmp_path / "grid.jsonl"
    results = ResultsFile(str(path))
    _record_budget_sweep(results, "dense_narrow", 3e-4)  # a rate only the baselines' sweep has
    # two of the method's own widths (`--widths` selects among them; 7 is not one of them)
    args = ["budget", "--datasets", "mnist", "--methods", "dense_narrow", "--widths", "5", "7", "20", "--seeds", "1",
            "--max-epochs", "1", "--results", str(path)]
    reproduce.main(args)
    widths = [5, 20]
    assert set(widths) < set(reproduce.BUDGET_METHODS["dense_narrow"][0]) and 7 not in reproduce.BUDGET_METHODS["dense_narrow"][0]
    assert f"0 of {len(widths)} cells already done" in capsys.readouterr().out
    grid = [r for r in results.records() if r["key"]["experiment"] == "grid"]
    assert [r["key"]["width"] for r in grid] == list(widths)
    for r in grid:
        model = reproduce.build_network(784, "dense_narrow", r["key"]["width"])
        assert r["trainable_params"] == trainable_count(model)
        assert r["multiply_adds"] == reproduce.multiply_adds(model)
        assert r["lr"] == 3e-4
    assert max(r["test_accuracy"] for r in grid) > 0.4  # one epoch of real MNIST at a low rate (chance: 0.1)
    reproduce.main(args)
    assert f"{len(widths)} of {len(widths)} cells already done" in capsys.readouterr().out


@pytest.mark.parametrize("command, method", [("grid", "dense_narrow"), ("budget", "dense")])
def test_methods_belong_to_their_command(command, method, tmp_path, capsys):
    with pytest.raises(SystemExit):
        reproduce.main([command, "--methods", method, "--results", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert f"Received an invalid value for `--methods`: {method} runs with the" in err
    assert f"Received: command={command}" in err


def _point(method, params, accuracy, validation=None, width=1):
    return dict(method=method, width=width, accuracy=accuracy, std=0.0, seeds=3, params=params, macs=params,
                validation=accuracy if validation is None else validation)


def test_dense_frontier_skips_dominated_points_and_interpolates_in_log_parameters():
    import reproduce_pareto as pareto

    dense = [_point("dense_one_hidden", 1000, 90.0), _point("dense_narrow", 2000, 89.0),
             _point("dense", 4000, 94.0)]
    front = pareto.frontier(dense)
    assert [p["params"] for p in front] == [1000, 4000]
    assert pareto.frontier_at(front, 2000) == pytest.approx(92.0)  # halfway in log(params)
    assert pareto.frontier_at(front, 999) is None
    assert pareto.frontier_at(front, 10_000) == 94.0


def test_goal_ranks_on_validation_and_reports_test():
    import reproduce_pareto as pareto

    def dataset(test_margin_a, test_margin_b):
        dense = [_point("dense_one_hidden", 5_000, 90.0), _point("dense_one_hidden", 50_000, 95.0)]
        at = 92.5  # the frontier at 15,811 parameters, halfway in log(params)
        return dense + [
            # a: best on validation; b: better on test, worse on validation; c: too small
            _point("spectral_lowrank", 15_811, at + test_margin_a, validation=at + 3, width=100),
            _point("spectral_qr", 15_811, at + test_margin_b, validation=at + 1, width=200),
            _point("spectral_svd", 9_000, 99.0, width=300),
        ]

    lines = pareto.goal({"mnist": dataset(1.5, 4.0), "fashion_mnist": dataset(1.2, 4.0)}, {})
    text = "\n".join(lines)
    assert "svd" not in text  # not above 10,000 parameters
    rows = [line for line in lines if line.startswith("| lowrank") or line.startswith("| qr")]
    assert rows[0].startswith("| lowrank (rank 10), W=100")
    assert "+1.50 | +1.20 | yes |" in rows[0]
    assert "lowrank (rank 10), W=100, is +1.20 pt above the Dense frontier on test at its worst: the goal is met" in text
    missed = "\n".join(pareto.goal({"mnist": dataset(1.5, 4.0), "fashion_mnist": dataset(0.4, 4.0)}, {}))
    assert "+0.40 pt above the Dense frontier on test at its worst: the goal is not met" in missed


def test_report_draws_the_equal_budget_view_from_the_records(tmp_path):
    import reproduce_report

    records, asked = [], []
    accuracy = {"dense": 0.97, "dense_one_hidden": 0.93, "spectral_lowrank": 0.965, "lowrank_plain": 0.96,
                "spectral_two_sets": 0.94, "scaled_frozen": 0.92}
    for dataset in ("mnist", "fashion_mnist"):
        for method, widths in (("dense", (50,)), ("dense_one_hidden", (10, 20)), ("spectral_lowrank", (100,)),
                               ("lowrank_plain", (100,)), ("spectral_two_sets", (100,)), ("scaled_frozen", (100,))):
            for width in widths:
                for seed in range(2):
                    model = reproduce.build_network(784, method, width)
                    record = {"key": dict(experiment="grid", dataset=dataset, width=width, seed=seed,
                                          **reproduce.method_key(method)),
                              "test_accuracy": accuracy[method] + 0.001 * seed, "val_accuracy": accuracy[method],
                              "trainable_params": trainable_count(model), "epochs_run": 5, "train_seconds": 1.0,
                              "lr": 0.01, "machine": "test", "date": "2026-12-06"}
                    if method != "spectral_two_sets":  # a cell recorded before multiply-adds were
                        record["multiply_adds"] = reproduce.multiply_adds(model)
                    records.append(record)

    def multiply_adds_of(dataset, method, width):
        asked.append((dataset, method, width))
        return reproduce.network_multiply_adds(dataset, method, width)

    reproduce_report.write_report(records, str(tmp_path), "test", reproduce.ALL_DESCRIPTIONS, reproduce.GRID_METHODS,
                                  reproduce.GRID_SIZE, reproduce.REVISIONS, tuple(reproduce.BUDGET_METHODS),
                                  multiply_adds_of)
    page = (tmp_path / "reproduce_results.md").read_text()
    assert sorted(set(asked)) == [("fashion_mnist", "spectral_two_sets", 100), ("mnist", "spectral_two_sets", 100)]
    for name in ("reproduce_accuracy_vs_params.png", "reproduce_accuracy_vs_multiply_adds.png",
                 "reproduce_accuracy_vs_width.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 1000
        assert f"figures/{name}" in page
    assert "### Which mode when" in page
    # lowrank W=100 against its cousin: 96.55 vs 96.05 (seed means, in %)
    assert "| MNIST | 100 | lowrank (rank 10) | 96.55 ± 0.05 | 13,344 | A B (rank 10), no eigenvalues | 96.05 ± 0.05 | 12,150 | +0.50 |" in page
    # the baselines stay out of the grid's width table
    width_tables = page.split("## Test accuracy by width")[1].split("## Targets")[0]
    assert "W=10 " not in width_tables and "Plain low rank" not in width_tables
