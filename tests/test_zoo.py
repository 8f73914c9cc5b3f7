"""The keras.applications zoo (issue #31): a representative set of models, converted,
half of every prunable group removed, compacted and collapsed, equal to the masked model,
with the share of prunable channels each architecture allows (the whole zoo runs in
`benchmarks/zoo.py`, docs/zoo.md)."""

import os
import sys

import keras
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
from harness import zoo  # noqa: E402

# Shares below 0.9 that an architecture allows (none since normalized streams prune):
SHARE_FLOOR = {}
# On JAX every first call of a new layer compiles (10-15 s per pass over a model here; 88 s
# for MobileNetV3Small), so the suite runs one model there: ConvNeXtTiny (depthwise-grouped
# convolutions, layer scales, LayerNormalization streams). The other models' rules (tensor
# operations, squeeze-excite, separable convolutions) are tested on JAX in tests/test_rules.py,
# and every model here on TensorFlow and PyTorch.
JAX_SET = ("ConvNeXtTiny",)


def test_the_zoo_lists_every_constructor():
    names = zoo.constructors()
    assert len(names) >= 40 and set(zoo.REPRESENTATIVE) <= set(names)


@pytest.mark.parametrize("name", zoo.REPRESENTATIVE)
def test_model_prunes_and_compacts_exactly(name):
    backend = keras.backend.backend()
    if backend == "jax" and name not in JAX_SET:
        pytest.skip(f"{name} runs on TensorFlow and PyTorch; on JAX the suite runs {JAX_SET} (time budget)")
    if backend == "torch" and name.startswith("NASNet"):
        pytest.skip("Keras' NASNet constructors refuse the torch backend (a known Keras bug)")
    record = zoo.run(name, fraction=0.5)
    assert record["share"] >= SHARE_FLOOR.get(name, 0.9), record["blocked"]
    assert record["compact_error"] <= 1e-4 and record["collapse_error"] <= 1e-4
    assert record["parameters_after"] < 0.6 * record["parameters"]
    assert record["multiply_adds_after"] < 0.6 * record["multiply_adds"]
    keras.backend.clear_session()
