"""The learned-importance phase (#35, item 1): `learn_importance` trains the eigenvalues
alone with an L1 penalty on the readers' λ_in, so that `score="in"` ranks hidden nodes
right after `spectralize`; the model comes back trainable and compiled as before."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_spectral as ks


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def planted(seed=0, batch_norm=False):
    """A trained Dense network whose hidden node i carries input i (kernel = I, held):
    inputs 0-3 make the target, inputs 4-7 are noise, so hidden nodes 4-7 are not needed
    (`batch_norm`: a BatchNormalization between the hidden and the output layer)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, :4] @ np.array([1.0, -1.0, 0.5, 0.8])).astype("float32")[:, None]
    keras.utils.set_random_seed(seed)
    norm = [keras.layers.BatchNormalization(name="norm")] if batch_norm else []
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, name="hidden"), *norm,
                              keras.layers.Dense(1, name="out")])
    model.get_layer("hidden").set_weights([np.eye(8, dtype="float32"), np.zeros(8, "float32")])
    model.get_layer("hidden").trainable = False
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(x, y, epochs=20, batch_size=64, verbose=0)
    model.get_layer("hidden").trainable = True
    return model, x, y


def compiled(model):
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def test_the_phase_trains_eigenvalues_alone_and_restores_the_model():
    model, x, y = planted()
    spectral = compiled(ks.spectralize(model))
    before = {v.path: numpy(v) for v in spectral.weights}
    trainable = [v.path for v in spectral.trainable_weights]
    history = ks.learn_importance(spectral, x, y, penalty=1e-3, epochs=2, batch_size=64, verbose=0)
    assert len(history.history["loss"]) == 2
    changed = {v.path for v in spectral.weights if not np.array_equal(numpy(v), before[v.path])}
    assert changed and all(path.split("/")[-1].startswith("eigenvalues_") for path in changed)
    assert "out/eigenvalues_in" in changed
    assert [v.path for v in spectral.trainable_weights] == trainable
    assert all(v.regularizer is None for v in spectral.weights)
    spectral.fit(x, y, epochs=1, batch_size=64, verbose=0)  # compiled and trainable as before
    assert any(not np.array_equal(numpy(v), before[v.path]) for v in spectral.weights if "eigenvectors" in v.path)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm_after_the_producer"])
def test_the_penalty_ranks_the_nodes_that_are_not_needed_lowest(batch_norm):
    # A normalization after the producer divides each hidden channel by its spread, which
    # cancels the producer's scale of it (λ_in − λ_out); the reader's λ_in, after it,
    # still learns which channels matter.
    model, x, y = planted(batch_norm=batch_norm)
    spectral = compiled(ks.spectralize(model))
    ks.learn_importance(spectral, x, y, penalty=1e-2, epochs=8, batch_size=32, verbose=0)
    scores = ks.node_scores(spectral, score="in")["hidden"]
    assert scores[4:].max() < 0.5 * scores[:4].min()
    ks.prune_nodes(spectral, fraction=0.5, score="in")
    assert np.array_equal(numpy(spectral.get_layer("hidden").eigenvalues_out_mask), [1, 1, 1, 1, 0, 0, 0, 0])


def test_the_phase_can_have_its_own_optimizer_and_the_model_keeps_its_own():
    model, x, y = planted()
    moved = {}
    for learning_rate in (None, 0.1):
        spectral = compiled(ks.spectralize(model))
        optimizer = None if learning_rate is None else keras.optimizers.Adam(learning_rate)
        ks.learn_importance(spectral, x, y, penalty=1e-3, epochs=1, batch_size=64, optimizer=optimizer, verbose=0)
        moved[learning_rate] = np.abs(numpy(spectral.get_layer("out").eigenvalues_in) - 1).max()
        assert spectral.get_compile_config()["optimizer"]["config"]["learning_rate"] == pytest.approx(0.01)
    assert moved[0.1] > 3 * moved[None]  # the model's Adam(0.01) moved the eigenvalues less


def test_bad_input_is_refused_and_changes_nothing():
    model, x, y = planted()
    with pytest.raises(ValueError, match="no trainable eigenvalues"):
        ks.learn_importance(compiled(model), x, y, penalty=1e-3)
    spectral = ks.spectralize(keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)]))  # not compiled
    with pytest.raises(ValueError, match="not compiled"):
        ks.learn_importance(spectral, x, y, penalty=1e-3)
    spectral = compiled(spectral)
    with pytest.raises(ValueError, match="`penalty`"):
        ks.learn_importance(spectral, x, y, penalty=-1.0)
    with pytest.raises(ValueError, match="`epochs`"):
        ks.learn_importance(spectral, x, y, penalty=1e-3, epochs=0)
    with pytest.raises(ValueError, match="`optimizer`.*optimizer='nope'"):
        ks.learn_importance(spectral, x, y, penalty=1e-3, optimizer="nope")
