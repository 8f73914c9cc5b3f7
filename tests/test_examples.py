"""Every script in examples/ runs end to end with `--quick` (tiny settings, real MNIST).

Runs once, from the TensorFlow test process; each example runs in a fresh process.
"""

import os
import subprocess
import sys

import keras
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="runs once, from the TensorFlow test process"),
]
SCRIPTS = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py") and not f.startswith("_"))
EXPECTED = {  # what each example must print (besides exiting 0)
    "mnist_quickstart.py": ["reloaded and collapsed to Dense"],
    "pruning_to_savedmodel.py": ["compact vs masked", "SavedModel at"],
    "input_selection.py": ["kept 157 of 784 pixels", "after retraining the compact model", "pictures:"],
    "compact_checkpoints.py": ["seeded_phi", "kronecker_phi"],
    "prune_trained_model.py": ["converted to SpectralDense", "node group 'hidden_1'", "compact vs masked", "SavedModel at"],
    "distributed_jax.py": ["process 0 of 2", "process 1 of 2"],
    "prune_cnn.py": ["converted to SpectralConv2D", "node group 'conv_0'", "compact: channels [3, 5, 10]",
                     "compact vs masked", "SavedModel at"],
}


def test_every_example_is_covered():
    assert set(SCRIPTS) == set(EXPECTED)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_quick(script, tmp_path, data_dir):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_SPECTRAL_DATA": data_dir}
    env.pop("KERAS_BACKEND", None)  # each example on its own default backend
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), "--quick"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for text in EXPECTED[script]:
        assert text in done.stdout, done.stdout[-3000:]
