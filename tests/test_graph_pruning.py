"""Pruning any functional graph: conversion, node groups, compaction, on small models.

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_spectral import (
    EigenvaluePruning,
    PolynomialDecay,
    SpectralDense,
    collapse,
    compact,
    node_groups,
    node_sparsity,
    prune_nodes,
    spectralize,
)


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def outputs(model, x):
    return [numpy(y) for y in keras.tree.flatten(model(x, training=False))]


def assert_same_outputs(a, b, x, rtol=1e-5):
    for ya, yb in zip(outputs(a, x), outputs(b, x)):
        scale = max(np.abs(yb).max(), 1e-3)
        assert np.abs(ya - yb).max() <= rtol * scale + 1e-6, np.abs(ya - yb).max() / scale


def randomize_biases(model, seed=0):
    """Non-zero biases and BatchNormalization statistics, so removed nodes output
    non-zero constants that compaction must fold."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        for weight in layer.weights:
            name = weight.path.split("/")[-1]
            if name in ("bias", "beta", "moving_mean"):
                weight.assign(rng.uniform(-0.5, 0.5, weight.shape).astype("float32"))
            elif name in ("moving_variance", "gamma"):
                weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
            elif name == "alpha":
                weight.assign(rng.uniform(0.0, 0.3, weight.shape).astype("float32"))


def groups_by_name(model):
    return {group.name: group for group in node_groups(model)}


def prune_check_compact(model, x, fraction=0.5, expected_prunable=None, score="sum"):
    """Prune every prunable group, compact, and check outputs and group structure."""
    groups = groups_by_name(model)
    if expected_prunable is not None:
        assert sorted(n for n, g in groups.items() if g.prunable) == sorted(expected_prunable)
    before = [w.copy() for w in model.get_weights()]
    prune_nodes(model, fraction=fraction, score=score)
    small = compact(model)
    assert_same_outputs(small, model, x)
    assert small.count_params() < model.count_params()
    # compact leaves the masked model as it was
    masked = model.get_weights()
    small2 = compact(model)
    for a, b in zip(masked, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert small2.count_params() == small.count_params()
    return small, before


# --- models --------------------------------------------------------------------------------


def functional_mlp(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    a = SpectralDense(12, activation="relu", name="a")(inputs)
    a = keras.layers.BatchNormalization(name="bn")(a)
    a = keras.layers.Dropout(0.2)(a)
    b = SpectralDense(8, activation="tanh", name="b")(a)
    b = keras.layers.PReLU(name="prelu")(b)
    joined = keras.layers.Concatenate(name="skip")([a, b])
    out = SpectralDense(3, name="head")(joined)
    model = keras.Model(inputs, out)
    randomize_biases(model, seed)
    return model


def cnn(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = SpectralDense(16, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(0.3)(x)
    out = SpectralDense(4, activation="softmax", name="fc2")(x)
    model = keras.Model(inputs, out)
    randomize_biases(model, seed)
    return model


def transformer_block(gated=False, seed=0, tokens=5, width=8, hidden=16):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((tokens, width))
    attended = keras.layers.MultiHeadAttention(2, 4, name="mha")(inputs, inputs)
    x = keras.layers.LayerNormalization(name="ln1")(keras.layers.Add(name="res1")([inputs, attended]))
    h = SpectralDense(hidden, activation="gelu", name="ffn_in")(x)
    if gated:
        gate = SpectralDense(hidden, name="ffn_gate")(x)
        h = keras.layers.Multiply(name="gate")([h, gate])
    h = SpectralDense(width, name="ffn_out")(h)
    x = keras.layers.LayerNormalization(name="ln2")(keras.layers.Add(name="res2")([x, h]))
    pooled = keras.layers.GlobalAveragePooling1D()(x)
    out = SpectralDense(3, name="classifier")(pooled)
    model = keras.Model(inputs, out)
    randomize_biases(model, seed)
    return model


def two_input_model(seed=0):
    keras.utils.set_random_seed(seed)
    left = keras.Input((5,), name="left")
    right = keras.Input((3,), name="right")
    a = SpectralDense(10, activation="relu", name="left_hidden")(left)
    b = SpectralDense(6, activation="relu", name="right_hidden")(right)
    joined = keras.layers.Concatenate()([a, b])
    shared = SpectralDense(7, activation="tanh", name="joint")(joined)
    out_a = SpectralDense(2, name="out_a")(shared)
    out_b = SpectralDense(1, name="out_b")(shared)
    model = keras.Model({"left": left, "right": right}, [out_a, out_b])
    randomize_biases(model, seed)
    return model


def rng_data(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# --- node groups and exact compaction ------------------------------------------------------


def test_functional_mlp_with_batchnorm_dropout_and_concatenate_skip():
    model = functional_mlp()
    x = rng_data((16, 6))
    groups = groups_by_name(model)
    assert [(c.name, rows.ravel().tolist()) for c, rows in groups["a"].consumers] == [
        ("b", list(range(12))), ("head", list(range(12)))]
    assert [(c.name, rows.ravel().tolist()) for c, rows in groups["b"].consumers] == [("head", list(range(12, 20)))]
    assert {p.name for p, _ in groups["a"].passes} >= {"bn"}
    assert "model output" in groups["head"].reason
    small, _ = prune_check_compact(model, x, expected_prunable=["a", "b"])
    assert small.get_layer("bn").gamma.shape == (6,)
    assert small.get_layer("prelu").alpha.shape[-1] == 4
    assert small.get_layer("head").input_dim == 10


def test_cnn_with_a_spectral_head():
    model = cnn()
    x = rng_data((4, 8, 8, 2))
    groups = groups_by_name(model)
    assert sorted(groups) == ["conv", "fc1", "fc2"]
    # The plain Conv2D's channels reach fc1 through pooling and Flatten: 9 rows each,
    # masked in fc1 (the only spectral layer that holds them).
    rows = groups["conv"].consumers[0][1]
    assert rows.shape == (4, 9) and rows[1, :3].tolist() == [1, 5, 9]
    assert groups["conv"].mask_holders == "consumers"
    # score="in": the readers' λ_in (the plain Conv2D has no λ_out to rank by).
    small, _ = prune_check_compact(model, x, fraction=0.75, expected_prunable=["conv", "fc1"], score="in")
    assert small.get_layer("fc1").units == 4
    assert small.get_layer("conv").kernel.shape == (3, 3, 2, 1)
    assert small.get_layer("fc1").input_dim == 9


@pytest.mark.parametrize("gated", [False, True])
def test_transformer_block_ffn_nodes(gated):
    model = transformer_block(gated=gated)
    x = rng_data((3, 5, 8))
    groups = groups_by_name(model)
    ffn = groups["ffn_in"]
    assert ffn.prunable
    assert [p.name for p in ffn.producers] == (["ffn_in", "ffn_gate"] if gated else ["ffn_in"])
    assert "non-prunable source" in groups["ffn_out"].reason
    assert "LayerNormalization" in groups["ffn_out"].reason or "residual" in groups["ffn_out"].reason
    small, _ = prune_check_compact(model, x, fraction=0.75, expected_prunable=["ffn_in"])
    assert small.get_layer("ffn_in").units == 4
    assert small.get_layer("ffn_out").input_dim == 4
    if gated:
        assert small.get_layer("ffn_gate").units == 4


def test_two_input_two_output_model():
    model = two_input_model()
    x = {"left": rng_data((8, 5)), "right": rng_data((8, 3), seed=1)}
    groups = groups_by_name(model)
    assert [(c.name, int(rows[0, 0])) for c, rows in groups["right_hidden"].consumers] == [("joint", 10)]
    small, _ = prune_check_compact(model, x, expected_prunable=["left_hidden", "right_hidden", "joint"])
    assert small.get_layer("joint").input_dim == 5 + 3


def test_nested_models_are_expanded():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((6,)), SpectralDense(9, activation="relu", name="inner_hidden"),
                              SpectralDense(5, activation="relu", name="inner_out")], name="inner")
    inputs = keras.Input((6,))
    out = SpectralDense(2, name="outer_head")(inner(inputs))
    model = keras.Model(inputs, out)
    randomize_biases(model)
    prune_check_compact(model, rng_data((8, 6)), expected_prunable=["inner_hidden", "inner_out"])


def test_groups_that_reach_opaque_layers_are_refused_with_reasons():
    inputs = keras.Input((6,))
    a = SpectralDense(8, name="a")(inputs)
    n = keras.layers.LayerNormalization(name="norm")(a)
    s = SpectralDense(4, activation="softmax", name="soft")(n)
    out = SpectralDense(2, name="out")(s)
    model = keras.Model(inputs, out)
    groups = groups_by_name(model)
    assert "LayerNormalization 'norm'" in groups["a"].reason
    assert "softmax" in groups["soft"].reason
    with pytest.raises(ValueError, match="no hidden nodes that can be pruned"):
        prune_nodes(model, fraction=0.5)


def test_shared_layers_are_not_prunable():
    inputs = keras.Input((6,))
    shared = SpectralDense(8, activation="relu", name="shared")
    a, b = shared(inputs), shared(inputs * 2.0)
    out = SpectralDense(2, name="out")(keras.layers.Add()([a, b]))
    groups = groups_by_name(keras.Model(inputs, out))
    assert "called more than once" in groups["shared"].reason


# --- conversion ----------------------------------------------------------------------------


def dense_transformer(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5, 8))
    x = keras.layers.LayerNormalization()(inputs)
    h = keras.layers.Dense(16, activation="relu", name="ffn_in")(x)
    h = keras.layers.Dense(8, name="ffn_out")(h)
    x = keras.layers.Add()([x, h])
    out = keras.layers.Dense(3, name="classifier")(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model(inputs, out)
    randomize_biases(model, seed)
    return model


@pytest.mark.parametrize("mode", ["trainable", "frozen", "svd", "qr", "qr_full"])
def test_spectralize_is_exact_and_collapse_inverts_it(mode):
    model = dense_transformer()
    x = rng_data((4, 5, 8))
    before = [w.copy() for w in model.get_weights()]
    spectral = spectralize(model, eigenvectors=mode)
    assert all(isinstance(spectral.get_layer(n), SpectralDense) for n in ("ffn_in", "ffn_out", "classifier"))
    assert_same_outputs(spectral, model, x, rtol=1e-5)
    back = collapse(spectral)
    assert isinstance(back.get_layer("ffn_in"), keras.layers.Dense)
    np.testing.assert_allclose(numpy(back.get_layer("ffn_in").kernel), numpy(model.get_layer("ffn_in").kernel),
                               rtol=1e-5, atol=1e-6)
    assert_same_outputs(back, model, x)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_spectralize_selects_layers_by_name_or_predicate():
    model = dense_transformer()
    by_name = spectralize(model, layers=["ffn_in", "ffn_out"])
    assert isinstance(by_name.get_layer("ffn_in"), SpectralDense)
    assert not isinstance(by_name.get_layer("classifier"), SpectralDense)
    by_predicate = spectralize(model, layers=lambda layer: layer.name == "classifier")
    assert isinstance(by_predicate.get_layer("classifier"), SpectralDense)
    assert not isinstance(by_predicate.get_layer("ffn_in"), SpectralDense)
    assert groups_by_name(by_name)["ffn_in"].prunable


def test_spectralize_keeps_sequential_and_nested_structure():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu")], name="inner")
    model = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2)])
    x = rng_data((5, 4))
    spectral = spectralize(model)
    assert isinstance(spectral, keras.Sequential)
    assert isinstance(spectral.layers[0], keras.Sequential)
    assert isinstance(spectral.layers[0].layers[0], SpectralDense)
    assert_same_outputs(spectral, model, x)


def test_lowrank_conversion_warns_with_its_error():
    dense = keras.layers.Dense(6)
    dense.build((None, 5))
    with pytest.warns(UserWarning, match="relative"):
        approx = SpectralDense.from_dense(dense, eigenvectors="lowrank", eigenvector_rank=2)
    exact = SpectralDense.from_dense(dense, eigenvectors="lowrank")  # full rank: exact
    np.testing.assert_allclose(numpy(exact.kernel), numpy(dense.kernel), rtol=1e-4, atol=1e-5)
    assert approx.eigenvector_rank == 2


def test_callable_initializer_layers_compact():
    """The defect of the conversion by hand: compact() rebuilt layers from config."""
    def phi_init(shape, dtype=None):
        return keras.random.normal(shape, seed=1, dtype=dtype)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), SpectralDense(10, activation="relu", eigenvectors_initializer=phi_init),
                              SpectralDense(3, eigenvectors_initializer=lambda shape, dtype=None: keras.ops.ones(shape, dtype))])
    prune_nodes(model, fraction=0.5)
    small = compact(model)
    assert_same_outputs(small, model, rng_data((4, 6)))


def test_converted_model_is_pruned_during_fit_and_compacted():
    keras.utils.set_random_seed(0)
    x = rng_data((256, 5, 8))
    y = (x.mean(axis=(1, 2)) > 0).astype("int32")
    model = dense_transformer()
    spectral = spectralize(model)
    spectral.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    schedule = PolynomialDecay(0.0, 0.75, begin_step=0, end_step=12, frequency=4)
    spectral.fit(x, y, batch_size=32, epochs=2, callbacks=[EigenvaluePruning(schedule)], verbose=0)
    assert node_sparsity(spectral)["ffn_in"] == pytest.approx(0.75)
    small = compact(spectral)
    assert small.get_layer("ffn_in").units == 4
    assert_same_outputs(small, spectral, x[:16])
    assert_same_outputs(collapse(small), spectral, x[:16])


# --- bad input -----------------------------------------------------------------------------


def test_conversion_refuses_clearly_and_changes_nothing():
    model = dense_transformer()
    with pytest.raises(ValueError, match=r"no convertible layer named \['nope'\]"):
        spectralize(model, layers=["ffn_in", "nope"])
    with pytest.raises(ValueError, match="`eigenvectors`"):
        spectralize(model, eigenvectors="kronecker")
    with pytest.raises(TypeError, match="`layers`"):
        spectralize(model, layers=3)
    with pytest.raises(ValueError, match="no keras.layers.Dense"):
        spectralize(keras.Sequential([keras.Input((3,)), keras.layers.Activation("relu")]))
    with pytest.raises(ValueError, match="`eigenvector_basis`"):
        spectralize(model, eigenvector_basis="kronecker")
    with pytest.raises(TypeError, match="`layer`"):
        SpectralDense.from_dense(keras.layers.Conv1D(2, 3))
    unbuilt = keras.layers.Dense(3)
    with pytest.raises(ValueError, match="not built"):
        SpectralDense.from_dense(unbuilt)


def test_compact_refuses_an_emptied_group_and_leaves_the_model(unchanged):
    model = transformer_block(gated=True)
    group = groups_by_name(model)["ffn_in"]
    group.remove(np.arange(group.size))
    with unchanged(model), pytest.raises(ValueError, match=r"Node group 'ffn_in' has no nodes left \(all 16 are removed\)"):
        compact(model)


def test_dense_models_need_conversion_first():
    model = dense_transformer()
    with pytest.raises(ValueError, match="spectralize"):
        prune_nodes(model, fraction=0.5)
    assert "spectralize" in groups_by_name(model)["ffn_in"].reason


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="sub")
        self.hidden = keras.layers.Dense(4)
        self.head = keras.layers.Dense(2)

    def call(self, x):
        return self.head(self.hidden(x))


def test_pruning_refuses_models_it_cannot_read_and_changes_nothing(unchanged):
    sub = _Subclassed()
    sub(np.ones((1, 3), "float32"))
    with pytest.raises(ValueError, match=r"Model 'sub' \(_Subclassed\) could not be rebuilt.*subclassed"):
        spectralize(sub)
    with pytest.raises(ValueError, match=r"Model 'sub' \(_Subclassed\) is a subclassed model"):
        node_groups(sub)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    h = keras.layers.Dense(4, name="h")(inputs)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.UnitNormalization(name="norm")(h))
    blocked = spectralize(keras.Model(inputs, outputs))
    with pytest.raises(ValueError, match=r"no hidden nodes that can be pruned.*'h': reaches UnitNormalization 'norm'"):
        prune_nodes(blocked, fraction=0.5)
    free = spectralize(keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="h"), keras.layers.Dense(2)]))
    with unchanged(free), pytest.raises(ValueError, match=r"would remove every node of node group 'h'; nothing was changed"):
        prune_nodes(free, threshold=1e9)
