"""The serving benchmark (benchmarks/serving.py) redraws its figure from a results file."""

import json
import os
import sys

import pytest

pytest.importorskip("matplotlib")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import serving  # noqa: E402


def _report():
    """A results file as `serving.main` writes it (names, fractions and batches its own)."""
    def variant(removed, speed):
        return {"removed": removed, "parameters": 1, "test_accuracy": 0.9,
                "samples_per_second": {str(b): speed * b for b in serving.BATCHES}}

    variants = {"Dense (Keras)": variant(0.0, 100.0), "Dense (SavedModel)": variant(0.0, 120.0),
                "spectral, unpruned (Keras)": variant(0.0, 40.0)}
    for fraction in serving.FRACTIONS:
        for i, way in enumerate(serving.SERVED_WAYS):
            variants[f"{fraction * 100:g} % removed: {way}"] = variant(fraction, 100.0 * (1 + i * fraction))
    return {"command": "python serving.py", "machine": "test machine", "date": "2026-11-28", "variants": variants}


def test_figure_only_redraws_from_the_results_file(tmp_path):
    results, figure = tmp_path / "serving.json", tmp_path / "figures" / "serving.png"
    results.write_text(json.dumps(_report()))
    figure.parent.mkdir()
    serving.main(["--figure-only", "--out", str(results), "--figure", str(figure)])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "figures" / "serving.png.partial.png").exists()

