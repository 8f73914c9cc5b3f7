"""The width benchmark's accuracy harness (benchmarks/width_scaling.py) on tiny real MNIST
runs: the validation sweep records a curve per rate and resumes, the chosen settings train
a test cell, and the report names the choice and the cell's settings."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import width_scaling  # noqa: E402
from width_scaling_report import best_setting  # noqa: E402

from harness.results import ResultsFile  # noqa: E402

pytestmark = pytest.mark.slow


def test_tune_then_accuracy_then_report(data_dir, tmp_path, capsys):
    path, out = str(tmp_path / "width.jsonl"), str(tmp_path / "docs")
    tune = ["tune", "--widths", "16", "--epochs", "2", "--rates", "0.003", "0.03", "--datasets", "mnist",
            "--results", path]
    width_scaling.main(tune)
    tuned = ResultsFile(path).records()
    assert [r["key"]["learning_rate"] for r in tuned] == [0.003, 0.03]
    assert all(r["key"]["mode"] == "svd" and len(r["val_accuracy"]) == 2 for r in tuned)
    assert all(0.1 < a <= 1 for r in tuned for a in r["val_accuracy"])  # validation accuracy, not loss
    width_scaling.main(tune)  # a rerun resumes: nothing new
    assert "2 of 2 cells already done; 0 to run." in capsys.readouterr().out
    assert len(ResultsFile(path).records()) == 2

    assert all(r["key"]["schedule"] == "constant" for r in tuned)
    best = max(tuned, key=lambda r: best_setting(r)[0])
    rate, epochs = best["key"]["learning_rate"], best_setting(best)[1]
    width_scaling.main(["accuracy", "--widths", "16", "--modes", "svd", "--seeds", "1", "--datasets", "mnist",
                        "--epochs", str(epochs), "--learning-rate", str(rate), "--results", path])
    cell = ResultsFile(path).records()[-1]
    assert cell["key"] == dict(experiment="accuracy", dataset="mnist", width=16, mode="svd", seed=0,
                               epochs=epochs, learning_rate=rate, schedule="constant")
    assert cell["test_accuracy"] > 0.5

    # A cosine schedule depends on the epoch count, so its setting is always the last epoch.
    width_scaling.main(["tune", "--widths", "16", "--epochs", "2", "--rates", "0.03", "--schedule", "cosine",
                        "--datasets", "mnist", "--results", path])
    cosine = ResultsFile(path).records()[-1]
    assert cosine["key"]["schedule"] == "cosine" and best_setting(cosine) == (cosine["val_accuracy"][-1], 2)

    width_scaling.main(["report", "--results", path, "--out", out])
    with open(os.path.join(out, "width_scaling.md"), encoding="utf-8") as f:
        report = f.read()
    chosen = max(tuned + [cosine], key=lambda r: best_setting(r)[0])
    assert (f"Chosen for mnist, svd (tuned at width 16): Adamax {chosen['key']['learning_rate']:g}, "
            f"{chosen['key']['schedule']}, {best_setting(chosen)[1]} epochs") in report
    assert f"| mnist | 16 | svd | {epochs} | {rate:g} | constant | {100 * cell['test_accuracy']:.1f}" in report
    assert "## Train step" in report and "No accuracy cells yet." not in report
