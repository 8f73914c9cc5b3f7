"""Input-feature relevance from the input eigenvalues: ranking, removal, compaction.

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_spectral import SpectralDense, compact, input_relevance, kept_inputs, rank_inputs, remove_inputs

INFORMATIVE = [3, 7, 11, 16]


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def planted(n=2048, n_in=20, seed=0):
    """Labels depend on 4 planted features (equally); the other 16 are noise of the same scale."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in)).astype("float32")
    y = (x[:, INFORMATIVE] @ np.array([2.0, -2.0, 2.0, -2.0]) > 0).astype("int32")
    return x, y


def trained(seed=0, penalty=1e-3):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((20,)),
        SpectralDense(32, activation="relu",
                      eigenvalues_in_regularizer=keras.regularizers.L1(penalty)),
        SpectralDense(2, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = planted()
    model.fit(x, y, batch_size=64, epochs=15, verbose=0)
    return model, x, y


@pytest.fixture(scope="module")
def model_and_data():
    return trained()


def test_ranking_recovers_the_planted_informative_features(model_and_data):
    model, _, _ = model_and_data
    order = rank_inputs(model)
    assert sorted(order[:4].tolist()) == INFORMATIVE
    scores = input_relevance(model)
    assert scores[order[3]] > 1.5 * scores[order[4]]  # a clear gap to the best noise feature
    assert scores.shape == (20,) and np.all(scores >= 0)


def test_removed_features_and_compacted_model_match_the_masked_one(model_and_data):
    model, x, y = model_and_data
    model = keras.models.clone_model(model)
    model.set_weights(model_and_data[0].get_weights())
    kept = remove_inputs(model, keep=4)
    assert sorted(kept.tolist()) == INFORMATIVE and kept_inputs(model).tolist() == kept.tolist()
    assert input_relevance(model)[np.setdiff1d(np.arange(20), kept)].max() == 0.0
    masked = numpy(model.predict(x, verbose=0))
    small = compact(model, drop_inputs=True)
    assert small.input_shape == (None, 4)
    np.testing.assert_allclose(numpy(small.predict(x[:, kept], verbose=0)), masked, rtol=1e-5, atol=1e-6)
    assert np.mean(masked.argmax(1) == y) > 0.9  # the 4 planted features carry the labels


def test_remove_inputs_by_fraction_counts_removed_features():
    model, _, _ = trained(penalty=0.0)
    assert len(remove_inputs(model, fraction=0.5)) == 10
    assert len(remove_inputs(model, fraction=0.75)) == 5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(fraction=1.0), "fraction=1.0"),
        (dict(keep=0), "keep=0"),
        (dict(keep=21), r"at most the 20 input features.*keep=21"),
        (dict(fraction=0.5, keep=3), "exactly one"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), SpectralDense(8), SpectralDense(2)])
    with pytest.raises(ValueError, match=match):
        remove_inputs(model, **kwargs)


def test_a_dense_first_layer_is_refused():
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(8), SpectralDense(2)])
    with pytest.raises(ValueError, match="needs a SpectralDense there"):
        input_relevance(model)
    with pytest.raises(ValueError, match="drop_inputs=True needs the model input to be read by one SpectralDense layer"):
        compact(model, drop_inputs=True)
