"""The GPU check script runs (here on the CPU device) and writes a complete report."""

import json
import os
import subprocess
import sys

import keras
import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "gpu_check.py")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(keras.backend.backend() != "jax", reason="the script runs on JAX only")]


def test_gpu_check_quick_on_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, SCRIPT, "--quick", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["modes"]) == {"dense", "frozen", "frozen_kronecker", "svd", "qr", "qr_full", "trainable", "lowrank"}
    assert report["modes"]["dense"]["ratio"] == 1.0
    for mode, values in report["modes"].items():
        assert values["step_ms"] > 0
        assert values["loss_rel_diff_vs_cpu"] < 1e-4  # default device vs CPU: the same training
    assert report["modes"]["dense"]["rss_rise_mb"] > 0
    assert "| frozen_kronecker |" in done.stdout
