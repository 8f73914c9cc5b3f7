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

