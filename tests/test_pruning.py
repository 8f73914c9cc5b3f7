"""Node pruning by eigenvalue: schedules, masks, the callback, persistence, compaction.

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_spectral import (
    ConstantSparsity,
    EigenvaluePruning,
    PolynomialDecay,
    SpectralDense,
    compact,
    node_scores,
    node_sparsity,
    prune_nodes,
)


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def spectral_mlp(widths=(12, 10), n_in=6, classes=3, mode="frozen", activation="tanh", seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((n_in,))]
    layers += [SpectralDense(w, activation=activation, eigenvectors=mode) for w in widths]
    layers.append(SpectralDense(classes, eigenvectors=mode))
    model = keras.Sequential(layers)
    for layer in model.layers:  # non-zero biases, so dead nodes output non-zero constants
        layer.bias.assign(np.random.default_rng(seed).uniform(-0.5, 0.5, layer.units).astype("float32"))
    return model


def data(n=64, n_in=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32") % classes


# --- schedules ---------------------------------------------------------------------------


def test_constant_sparsity_timing():
    schedule = ConstantSparsity(0.5, begin_step=10, end_step=30, frequency=10)
    assert [schedule(step)[0] for step in (0, 10, 15, 20, 30, 40)] == [False, True, False, True, True, False]
    assert schedule(20)[1] == 0.5


def test_polynomial_decay_reaches_final_sparsity_at_end_step():
    schedule = PolynomialDecay(0.1, 0.9, begin_step=0, end_step=95, frequency=10)
    assert schedule.sparsity_at(0) == pytest.approx(0.1)
    assert schedule.sparsity_at(95) == pytest.approx(0.9)
    assert schedule.sparsity_at(500) == pytest.approx(0.9)
    assert schedule.should_prune(95) and not schedule.should_prune(96)
    values = [schedule.sparsity_at(s) for s in range(0, 96, 5)]
    assert values == sorted(values)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: ConstantSparsity(1.0), "target_sparsity"),
        (lambda: ConstantSparsity(-0.1), "target_sparsity"),
        (lambda: ConstantSparsity(0.5, frequency=0), "frequency"),
        (lambda: ConstantSparsity(0.5, begin_step=10, end_step=5), "end_step"),
        (lambda: PolynomialDecay(0.0, 0.5, begin_step=100, end_step=10), "end_step"),
        (lambda: PolynomialDecay(0.6, 0.5, begin_step=0, end_step=10), "final_sparsity"),
        (lambda: PolynomialDecay(0.0, 0.5, begin_step=0, end_step=-1), "end_step"),
    ],
)
def test_bad_schedules_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# --- prune_nodes -------------------------------------------------------------------------


def test_layer_scope_removes_the_lowest_scored_fraction_of_each_layer():
    model = spectral_mlp()
    scores = node_scores(model, "in")
    sparsity = prune_nodes(model, fraction=0.5, score="in")
    assert sparsity == {model.layers[0].name: 0.5, model.layers[1].name: 0.5}
    for producer, name in zip(model.layers[:2], scores):
        removed = numpy(producer.eigenvalues_out_mask) == 0
        assert removed.sum() == producer.units // 2
        assert scores[name][removed].max() <= scores[name][~removed].min()
        # The node's column of the masked kernel is exactly zero, and so is its eigenvalue.
        assert np.all(numpy(producer.kernel)[:, removed] == 0)
        assert np.all(numpy(producer.eigenvalues_out)[removed] == 0)


def test_pruning_is_monotone_and_counts_removed_nodes():
    model = spectral_mlp()
    prune_nodes(model, fraction=0.5)
    first = numpy(model.layers[0].eigenvalues_out_mask).copy()
    prune_nodes(model, fraction=0.25)  # a lower target removes nothing and restores nothing
    np.testing.assert_array_equal(numpy(model.layers[0].eigenvalues_out_mask), first)
    prune_nodes(model, fraction=0.75)
    assert node_sparsity(model)[model.layers[0].name] == 0.75
    assert np.all(numpy(model.layers[0].eigenvalues_out_mask)[first == 0] == 0)


def test_global_scope_keeps_a_node_in_every_layer():
    model = spectral_mlp(widths=(4, 30))
    model.layers[1].eigenvalues_in.assign(np.full(4, 1e-6, "float32"))  # layer 0's nodes score lowest
    sparsity = prune_nodes(model, fraction=0.5, score="sum", scope="global", normalizer=None)
    assert sparsity[model.layers[0].name] == 0.75  # 3 of 4, never the last one
    assert sum(round(v * n) for v, n in zip(sparsity.values(), (4, 30))) == 17


def test_threshold_removes_nodes_below_it_and_refuses_to_remove_everything():
    model = spectral_mlp()
    scores = node_scores(model, "out")
    cut = float(np.median(scores[model.layers[0].name]))
    prune_nodes(model, threshold=cut, score="out")
    removed = numpy(model.layers[0].eigenvalues_out_mask) == 0
    np.testing.assert_array_equal(removed, scores[model.layers[0].name] < cut)
    before = [numpy(w).copy() for w in model.weights]
    with pytest.raises(ValueError, match="would remove every node"):
        prune_nodes(model, threshold=1e9, score="out")
    for old, w in zip(before, model.weights):
        np.testing.assert_array_equal(old, numpy(w))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(fraction=1.0), "`fraction`"),
        (dict(fraction=-0.2), "`fraction`"),
        (dict(threshold=-1.0), "`threshold`"),
        (dict(fraction=0.5, threshold=0.1), "exactly one"),
        (dict(), "exactly one"),
        (dict(fraction=0.5, score="weights"), "`score`"),
        (dict(fraction=0.5, scope="model"), "`scope`"),
    ],
)
def test_bad_pruning_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        prune_nodes(spectral_mlp(), **kwargs)


def test_models_without_spectral_layers_are_rejected():
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no SpectralDense or SpectralConv layer"):
        prune_nodes(dense, fraction=0.5)
    with pytest.raises(ValueError, match="no SpectralDense or SpectralConv layer"):
        compact(dense)
    callback = EigenvaluePruning(ConstantSparsity(0.5))
    callback.set_model(dense)
    with pytest.raises(ValueError, match="no SpectralDense or SpectralConv layer"):
        callback.on_train_begin()


def test_callback_arguments_are_checked():
    with pytest.raises(ValueError, match="exactly one"):
        EigenvaluePruning()
    with pytest.raises(TypeError, match="`schedule`"):
        EigenvaluePruning(schedule=0.5)
    with pytest.raises(ValueError, match="`threshold`"):
        EigenvaluePruning(threshold=-0.5)
    with pytest.raises(ValueError, match="`score`"):
        EigenvaluePruning(ConstantSparsity(0.5), score="weights")


# --- training with the callback ----------------------------------------------------------


def test_callback_prunes_on_schedule_and_masked_entries_stay_zero():
    model = spectral_mlp()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x, y = data()
    callback = EigenvaluePruning(PolynomialDecay(0.0, 0.6, begin_step=0, end_step=12, frequency=4))
    history = model.fit(x, y, batch_size=8, epochs=3, callbacks=[callback], verbose=0)  # 24 steps
    names = [layer.name for layer in model.layers[:2]]
    assert [round(history.history[f"node_sparsity/{n}"][-1], 2) for n in names] == [0.58, 0.6]
    # Training continued for 12 steps after the last pruning step: the removed nodes'
    # weights and eigenvalues are still exactly zero.
    for layer in model.layers[:2]:
        removed = numpy(layer.eigenvalues_out_mask) == 0
        assert removed.any()
        assert np.all(numpy(layer.kernel)[:, removed] == 0)
        assert np.all(numpy(layer.eigenvalues_out)[removed] * numpy(layer.eigenvalues_out_mask)[removed] == 0)


def test_masks_survive_keras_save_and_load(tmp_path):
    model = spectral_mlp(mode="svd")
    prune_nodes(model, fraction=0.7)
    path = os.path.join(tmp_path, "pruned.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert node_sparsity(loaded) == node_sparsity(model)
    x, _ = data()
    np.testing.assert_array_equal(numpy(loaded.predict(x, verbose=0)), numpy(model.predict(x, verbose=0)))


def _masks(model):
    return [numpy(layer.eigenvalues_out_mask).copy() for layer in model.layers]


class _Interrupt(keras.callbacks.Callback):
    """Records the masks at the end of `epoch`, then stops the run with an error."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.masks = _masks(self.model)
            raise RuntimeError("interrupted")


class _MasksAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.masks = _masks(self.model)


def test_interrupted_fit_resumes_with_the_same_masks(tmp_path):
    x, y = data(n=64)

    def run(backup, extra):
        model = spectral_mlp()
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=30, frequency=2)
        callbacks = [keras.callbacks.BackupAndRestore(backup, save_freq="epoch")] + extra + [EigenvaluePruning(schedule)]
        model.fit(x, y, batch_size=16, epochs=10, callbacks=callbacks, verbose=0, shuffle=False)
        return model

    interrupt = _Interrupt(epoch=3)  # after 16 of 40 steps: sparsity partway
    with pytest.raises(RuntimeError, match="interrupted"):
        run(str(tmp_path / "backup"), [interrupt])
    partway = [1 - m.mean() for m in interrupt.masks[:2]]
    assert all(0 < s < 0.8 for s in partway), partway

    at_start = _MasksAtStart()
    resumed = run(str(tmp_path / "backup"), [at_start])
    for before, after in zip(interrupt.masks, at_start.masks):
        np.testing.assert_array_equal(before, after)  # restored, not recomputed
    uninterrupted = run(str(tmp_path / "fresh"), [])
    assert list(node_sparsity(resumed).values()) == list(node_sparsity(uninterrupted).values())
    for a, b in zip(_masks(resumed), _masks(uninterrupted)):
        np.testing.assert_array_equal(a, b)


# --- compaction --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["frozen", "seeded", "trainable", "svd", "qr", "lowrank"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_compact_gives_the_masked_models_outputs_with_fewer_parameters(mode, activation):
    keras.utils.set_random_seed(1)
    rank = dict(eigenvector_rank=3) if mode == "lowrank" else {}
    if mode == "seeded":
        mode, rank = "frozen", dict(eigenvector_seed=5)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            SpectralDense(12, activation=activation, eigenvectors=mode, **rank),
            keras.layers.Dropout(0.2),
            SpectralDense(10, activation=activation, eigenvectors=mode, **rank),
            SpectralDense(3, eigenvectors=mode, **rank),
        ]
    )
    for layer in model.layers[::2]:
        layer.bias.assign(np.random.default_rng(0).uniform(-1, 1, layer.units).astype("float32"))
    prune_nodes(model, fraction=0.6)
    small = compact(model)
    assert [l.units for l in small.layers if hasattr(l, "units")] == [5, 4, 3]
    assert small.count_params() < model.count_params()
    x, _ = data(n=32)
    np.testing.assert_allclose(numpy(small(x)), numpy(model(x)), rtol=1e-5, atol=1e-5)
    retrainable = compact(model, eigenvectors="trainable")
    np.testing.assert_allclose(numpy(retrainable(x)), numpy(model(x)), rtol=1e-5, atol=1e-5)


def test_compact_folds_dead_node_constants_into_a_dense_consumer_and_handles_functional_models():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((5,))
    h = SpectralDense(9, activation="sigmoid")(inputs)
    h = keras.layers.Dense(7, activation="relu", use_bias=False)(h)
    h = SpectralDense(6, activation="tanh")(h)
    outputs = SpectralDense(2)(h)
    model = keras.Model(inputs, outputs)
    for layer in model.layers[1:]:
        if getattr(layer, "use_bias", False):
            layer.bias.assign(np.random.default_rng(3).uniform(-1, 1, layer.units).astype("float32"))
    prune_nodes(model, fraction=0.5, score="out")  # ranks layers with a spectral producer
    sparsity = node_sparsity(model)
    assert sparsity[model.layers[1].name] == pytest.approx(4 / 9)
    small = compact(model)
    x, _ = data(n=16, n_in=5)
    np.testing.assert_allclose(numpy(small(x)), numpy(model(x)), rtol=1e-5, atol=1e-5)
    # The Dense consumer had no bias; the dead sigmoid nodes' constants needed one.
    assert small.layers[1].use_bias


def test_compact_handles_branches_and_batchnorm_that_chains_could_not():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    a = SpectralDense(6, activation="relu")(inputs)
    b = SpectralDense(6, activation="relu")(inputs)
    head = SpectralDense(2)
    branching = keras.Model(inputs, head(keras.layers.Add()([a, b])))
    prune_nodes(branching, fraction=0.5)  # one coupled group: a and b lose the same nodes
    small = compact(branching)
    x, _ = data(n=8, n_in=4)
    np.testing.assert_allclose(numpy(small(x)), numpy(branching(x)), rtol=1e-5, atol=1e-5)
    assert small.layers[-1].input_dim == 3
    normalized = keras.Sequential(
        [keras.Input((4,)), SpectralDense(3), keras.layers.BatchNormalization(), SpectralDense(2)]
    )
    prune_nodes(normalized, fraction=0.4)
    assert compact(normalized).layers[1].gamma.shape == (2,)
    with pytest.raises(ValueError, match="`eigenvectors`"):
        compact(spectral_mlp(), eigenvectors="dense")
