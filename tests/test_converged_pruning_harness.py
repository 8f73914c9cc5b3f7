"""The converged-ResNet pruning benchmark's harness (benchmarks/converged_pruning.py) on
tiny real Fashion-MNIST runs: `tune` records the penalty grid and `run` uses its choice,
every route records a cell and ends with the same architecture at the multiply-add budget,
a rerun resumes, the ranking check records its accuracies, and the report is written from
the file."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import converged_pruning  # noqa: E402

from harness.results import ResultsFile  # noqa: E402

pytestmark = pytest.mark.slow


def test_tune_run_resume_and_report(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(converged_pruning, "BASE_DIR", str(tmp_path / "base"))
    monkeypatch.setattr(converged_pruning, "WIDTHS", (4, 8, 8))  # a smaller ResNet: the harness, not the study
    monkeypatch.setattr(converged_pruning, "LEVELS", (0.5,))
    monkeypatch.setattr(converged_pruning, "PENALTIES", {"spectral": (1e-3, 1e-2), "slimming": (1e-4,),
                                                         "group": (1e-4,)})
    monkeypatch.setattr(converged_pruning, "throughput", lambda model, x, batch: 1.0)  # timing is not tested
    path, out = str(tmp_path / "converged.jsonl"), str(tmp_path / "docs")
    common = ["--quick", "--dataset", "fashion_mnist", "--results", path]
    with pytest.raises(SystemExit, match="`tune` has not run spectral"):
        converged_pruning.main(["run", "--seeds", "1", *common])
    converged_pruning.main(["tune", *common])
    tuned = {r["key"]["penalty"]: r["val_accuracy"] for r in ResultsFile(path).records()
             if r["key"]["route"] == "spectral"}
    converged_pruning.main(["run", "--seeds", "1", *common])
    records = {r["key"]["route"]: r for r in ResultsFile(path).records() if not r["key"].get("tune")}
    assert sorted(records) == sorted(converged_pruning.ROUTES + ("unpruned",))
    assert records["spectral"]["penalty"] == max(tuned, key=tuned.get)  # the choice made on validation
    base_macs = records["unpruned"]["base_multiply_adds"]
    pruned = [records[r] for r in converged_pruning.ROUTES]
    assert len({r["params"] for r in pruned}) == 1  # one architecture: only the criterion differs
    assert all(0.4 * base_macs < r["multiply_adds"] <= 0.5 * base_macs for r in pruned)
    # Seed 0's spectral cell at the tuning level is the chosen tuning cell itself, not run twice.
    assert records["spectral"]["reused_tuning_cell"] and records["spectral"]["val_accuracy"] == max(tuned.values())
    for route in ("spectral", "l1_oneshot", "taylor"):  # compact is exact: served == masked
        assert records[route]["accuracy"] == pytest.approx(records[route]["masked_accuracy"], abs=2e-3)
    converged_pruning.main(["run", "--seeds", "1", *common])
    assert "9 of 9 cells already done; 0 to run." in capsys.readouterr().out
    converged_pruning.main(["ranking", "--seeds", "1", *common])  # accuracy right after removal
    (check,) = [r for r in ResultsFile(path).records() if r["key"].get("check") == "ranking"]
    assert check["penalty"] == records["spectral"]["penalty"]
    ranked = [f"{phase}_{score}_0.5" for phase, scores in converged_pruning.RANKINGS.items() for score in scores]
    assert all(0.0 <= check[name] <= 1.0 for name in ranked + ["converted_unpruned", "after_phase_unpruned"])
    converged_pruning.main(["report", "--results", path, "--out", out])
    text = open(os.path.join(out, "converged_pruning.md")).read()
    assert "| Fashion-MNIST | 2× fewer |" in text  # the ranking table; its cell is not a route's
    assert "left out of the means" not in text
    assert "| 2× fewer | spectral |" in text and "spectral | 0.01" in text.replace(" (chosen)", "")
    assert os.path.exists(os.path.join(out, "figures", "converged_pruning.png"))
