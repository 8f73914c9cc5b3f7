"""The ViT pruning benchmark's harness (benchmarks/vit_pruning.py) on tiny real MNIST runs:
every route of a setting records a cell, the pruned routes and the scratch ViT share one
final shape, a rerun resumes, and the report is written from the file."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import vit_pruning  # noqa: E402

from harness.results import ResultsFile  # noqa: E402

pytestmark = pytest.mark.slow


def test_run_resume_and_report(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(vit_pruning, "BASE_DIR", str(tmp_path / "base"))
    for name, value in (("DEPTH", 1), ("WIDTH", 32), ("MLP", 64)):  # a smaller ViT: the harness, not the study
        monkeypatch.setattr(vit_pruning, name, value)
    path, out = str(tmp_path / "vit.jsonl"), str(tmp_path / "docs")
    run = ["run", "--quick", "--seeds", "1", "--settings", "heads_ffn", "--results", path]
    vit_pruning.main(run)
    records = {r["key"]["route"]: r for r in ResultsFile(path).records()}
    assert sorted(records) == sorted(vit_pruning.ROUTES + ("unpruned",))
    assert all(0.1 < r["accuracy"] <= 1 for r in records.values())
    spectral = records["spectral"]
    # Half the heads and half the feed-forward units: every attention and FFN layer halved.
    assert spectral["removed"] == records["magnitude"]["removed"] == records["taylor"]["removed"] == \
        records["random"]["removed"]
    assert set(spectral["removed"].values()) == {0.5}
    assert spectral["params"] == records["scratch"]["params"] < 0.6 * spectral["base_params"]
    assert spectral["accuracy"] == pytest.approx(spectral["masked_accuracy"], abs=2e-3)
    vit_pruning.main(run)
    assert "6 of 6 cells already done; 0 to run." in capsys.readouterr().out
    vit_pruning.main(["report", "--results", path, "--out", out])
    text = open(os.path.join(out, "vit_pruning.md")).read()
    assert "| heads_ffn | spectral |" in text and "`heads_ffn`: spectral" in text
