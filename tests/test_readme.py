"""The README's opening example runs as written, on a small trained MNIST model."""

import os
import re

import keras
import pytest

import keras_spectral as ks
from keras_spectral import datasets

README = os.path.join(os.path.dirname(__file__), "..", "README.md")
MARK = "<!-- tests/test_readme.py runs this block -->"


def _marked_block():
    text = open(README, encoding="utf-8").read()
    match = re.search(re.escape(MARK) + r"\s*```python\n(.*?)```", text, re.S)
    assert match, "the README lost its tested example"
    return match.group(1)


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() == "torch", reason="the torch backend cannot write a SavedModel")
def test_readme_compression_example_runs(data_dir, tmp_path, monkeypatch):
    (x, y), (x_val, y_val) = datasets.load_flat("mnist", data_dir=data_dir)
    x, y, x_val, y_val = x[:6000], y[:6000], x_val[:1000], y_val[:1000]
    keras.utils.set_random_seed(0)
    trained = keras.Sequential([keras.Input((784,)), keras.layers.Dense(128, activation="relu"),
                                keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
    trained.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    trained.fit(x, y, batch_size=100, epochs=2, verbose=0)
    accuracy = trained.evaluate(x_val, y_val, verbose=0)[1]
    monkeypatch.chdir(tmp_path)
    scope = {"trained": trained, "x": x, "y": y, "x_val": x_val, "y_val": y_val}
    exec(compile(_marked_block(), "README.md", "exec"), scope)
    served = scope["served"]
    before, after = ks.model_cost(trained), ks.model_cost(served)
    assert after.multiply_adds <= 0.5 * before.multiply_adds
    assert all(layer.units % 8 == 0 for layer in served.layers[:-1])  # round_to=8
    assert served.evaluate(x_val, y_val, verbose=0)[1] > accuracy - 0.05  # the guard's promise, on real data
    assert os.path.isfile(tmp_path / "served" / "1" / "saved_model.pb")
