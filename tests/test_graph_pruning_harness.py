"""The pruning benchmark's harness (benchmarks/graph_pruning.py) on tiny real MNIST runs:
every route records a cell, a rerun resumes, and the report is written from the file."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import graph_pruning  # noqa: E402

from harness.results import ResultsFile  # noqa: E402

pytestmark = pytest.mark.slow


def test_run_resume_and_report(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(graph_pruning, "BASE_DIR", str(tmp_path / "base"))
    path, out = str(tmp_path / "pruning.jsonl"), str(tmp_path / "docs")
    run = ["run", "--quick", "--models", "mlp_mnist", "--seeds", "1", "--levels", "0.9", "--results", path]
    graph_pruning.main(run)
    records = {r["key"]["route"]: r for r in ResultsFile(path).records()}
    assert sorted(records) == sorted(graph_pruning.ROUTES)
    assert all(0.1 < r["accuracy"] <= 1 for r in records.values())
    spectral = records["spectral"]
    # 90 % of both hidden layers gone: parameters and multiply-adds fall with them.
    assert spectral["params"] < 0.15 * spectral["base_params"]
    assert spectral["multiply_adds"] < 0.15 * spectral["base_multiply_adds"]
    assert spectral["accuracy"] == pytest.approx(spectral["masked_accuracy"], abs=2e-3)
    assert records["magnitude_oneshot"]["removed"] == [0.9, 0.9]
    assert records["scratch"]["params"] == pytest.approx(spectral["params"], rel=0.01)
    graph_pruning.main(run)
    assert "5 of 5 cells already done; 0 to run." in capsys.readouterr().out
    graph_pruning.main(["report", "--results", path, "--out", out])
    text = open(os.path.join(out, "graph_pruning.md")).read()
    assert "## mlp_mnist" in text and "| 90 % |" in text
    assert os.path.exists(os.path.join(out, "figures", "graph_pruning.png"))
