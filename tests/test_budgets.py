"""Steering compression: costs, budgets, limits, normalizers, the Taylor criterion, the
report, schedules in epochs, the guard during fit, and compile state (all backends)."""

import warnings

import keras
import numpy as np
import pytest

import keras_spectral as ks
from keras_spectral import budgets
from keras_spectral.graph import ModelGraph, PrunedCost, node_groups
from keras_spectral.schedules import ConstantSparsity, PolynomialDecay


def small_cnn(seed=0):
    """Conv/BN stem, a residual block, a depthwise step, global pooling, two Dense."""
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.Conv2D(24, 3, padding="same", activation="relu")(x)
    y = keras.layers.Conv2D(16, 1)(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Conv2D(32, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(20, activation="relu")(x)
    outputs = keras.layers.Dense(5)(x)
    model = keras.Model(inputs, outputs)
    for layer in model.layers:  # non-trivial BatchNorm state and biases
        for w in layer.weights:
            if "moving_variance" in w.path or "gamma" in w.path:
                w.assign(np.random.uniform(0.5, 2.0, w.shape))
            elif "bias" in w.path or "beta" in w.path or "moving_mean" in w.path:
                w.assign(np.random.normal(0, 0.1, w.shape))
    return model


# A JAX fit compiles for several seconds per model; the callbacks' logic does not depend on
# the backend, and tests/test_transformers.py runs a pruning fit on JAX.
skip_fit_on_jax = pytest.mark.skipif(keras.backend.backend() == "jax", reason="fit-based; compile time on JAX")


def removed_fraction(model, original, key):
    before = getattr(ks.model_cost(original), key)
    return 1.0 - getattr(ks.model_cost(model, pruned=True), key) / before


@skip_fit_on_jax  # counting is backend-free; compaction on JAX is tested elsewhere
def test_model_cost_is_what_the_compacted_collapsed_model_has():
    model = small_cnn()
    cost = ks.model_cost(model)
    assert cost.parameters == model.count_params()
    assert cost.multiply_adds == ks.multiply_adds(model)
    spectral = ks.spectralize(model)
    assert ks.model_cost(spectral) == cost  # a spectral layer counts as the layer it computes
    ks.prune_nodes(spectral, fraction=0.4, score="l2")
    pruned = ks.model_cost(spectral, pruned=True)
    served = ks.collapse(ks.compact(spectral))
    assert pruned == (ks.multiply_adds(served), served.count_params())
    assert pruned.parameters < cost.parameters and pruned.multiply_adds < cost.multiply_adds


def _one_node_costs(model, key):
    """Per prunable group: the largest share of `key` that one of its nodes carries."""
    graph = ModelGraph(model)
    groups = [g for g in node_groups(graph) if g.prunable]
    costs = PrunedCost(graph, groups)
    full = getattr(costs(), key)
    shares = []
    for gi, g in enumerate(groups):
        best = 0.0
        for node in range(g.size):
            removed = [np.zeros(h.size, bool) for h in groups]
            removed[gi][node] = True
            best = max(best, 1 - getattr(costs(removed), key) / full)
        shares.append(best)
    return shares


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("budget", ["multiply_adds", "parameters"])
def test_cost_budgets_are_reached_within_one_node_per_group(scope, budget):
    model = small_cnn()
    spectral = ks.spectralize(model)
    ks.prune_nodes(spectral, fraction=0.5, budget=budget, scope=scope, score="l2")
    reached = removed_fraction(spectral, model, budget)
    slack = sum(_one_node_costs(ks.spectralize(model), budget))
    assert 0.5 <= reached < 0.5 + slack + 1e-9


def test_global_node_budget_and_normalizers():
    model = small_cnn()
    spectral = ks.spectralize(model)
    groups = ks.pruning.removable_groups(spectral)
    total = sum(g.size for g in groups)
    ks.prune_nodes(spectral, fraction=0.5, scope="global", score="l1")
    removed = sum(int((~g.active()).sum()) for g in ks.pruning.removable_groups(spectral))
    assert removed == int(np.floor(0.5 * total))


def test_normalizers_against_hand_computed_values():
    s = np.array([1.0, 2.0, 5.0, -np.inf])
    alive = np.array([True, True, True, False])
    np.testing.assert_allclose(budgets.normalized(s, alive, "mean")[:3], [0.375, 0.75, 1.875])
    np.testing.assert_allclose(budgets.normalized(s, alive, "max")[:3], [0.2, 0.4, 1.0])
    np.testing.assert_allclose(budgets.normalized(s, alive, "sum")[:3], [0.125, 0.25, 0.625])
    np.testing.assert_allclose(budgets.normalized(s, alive, "standardization")[:3], [0.0, 0.25, 1.0])
    # LAMP: each score over the sum of the scores not smaller: 1/8, 2/7, 5/5.
    np.testing.assert_allclose(budgets.normalized(s, alive, "lamp")[:3], [1 / 8, 2 / 7, 1.0])
    assert budgets.normalized(s, alive, "lamp")[3] == -np.inf
    np.testing.assert_array_equal(budgets.normalized(s, alive, None), s)


def test_round_to_max_fraction_ignored_layers_and_per_group_fractions(unchanged):
    model = small_cnn()
    spectral = ks.spectralize(model)
    names = [g.name for g in ks.pruning.removable_groups(spectral)]
    ks.prune_nodes(spectral, fraction=0.6, score="l2", round_to=8, max_fraction=0.5, ignored_layers=[names[0]])
    for g in ks.pruning.removable_groups(spectral):
        kept = int(g.active().sum())
        if g.name == names[0]:
            assert kept == g.size  # ignored
        else:
            assert kept % 8 == 0 or kept == g.size
            assert g.size - kept <= 0.5 * g.size

    spectral = ks.spectralize(model)
    sparsity = ks.prune_nodes(spectral, fraction={names[1]: 0.5}, score="l2")
    assert sparsity[names[1]] == 0.5
    assert all(value == 0.0 for name, value in sparsity.items() if name != names[1])

    spectral = ks.spectralize(model)
    with unchanged(spectral):
        with pytest.raises(ValueError, match=r"`fraction`: \['nope'\] name no node group"):
            ks.prune_nodes(spectral, fraction={"nope": 0.5}, score="l2")
        with pytest.raises(ValueError, match="ignored_layers"):
            ks.prune_nodes(spectral, fraction=0.5, score="l2", ignored_layers=["nope"])
        with pytest.raises(ks.BudgetError, match="cannot be reached"):
            ks.prune_nodes(spectral, fraction=0.9, budget="multiply_adds", max_fraction=0.3, score="l2")
        with pytest.raises(ValueError, match="round_to"):
            ks.prune_nodes(spectral, fraction=0.5, score="l2", round_to=0)
        with pytest.raises(ValueError, match="max_fraction"):
            ks.prune_nodes(spectral, fraction=0.5, score="l2", max_fraction=0.0)
        with pytest.raises(ValueError, match="budget"):
            ks.prune_nodes(spectral, fraction=0.5, budget="flops")
        with pytest.raises(ValueError, match="normalizer"):
            ks.prune_nodes(spectral, fraction=0.5, scope="global", normalizer="median")
        with pytest.raises(ValueError, match="budget='nodes' and scope='layer'"):
            ks.prune_nodes(spectral, fraction={names[1]: 0.5}, budget="parameters")


def test_taylor_scores_against_hand_computed_gradients():
    keras.utils.set_random_seed(1)
    x = np.random.normal(size=(10, 4)).astype("float32")
    t = np.random.normal(size=(10, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, use_bias=False), keras.layers.Dense(1, use_bias=False)])
    spectral = ks.spectralize(model)
    w1, w2 = (np.asarray(w, "float64") for w in model.get_weights())
    h = x @ w1  # the hidden nodes
    y = h @ w2
    # L = mean((y - t)^2); dL/dm_i = mean(2 (y - t) w2_i h_i) for the mask m_i of node i.
    expected = np.abs((2 * (y - t) * h * w2[:, 0]).mean(axis=0))
    scores = ks.node_scores(spectral, "taylor", data=(x, t), loss="mse")
    np.testing.assert_allclose(scores[spectral.layers[0].name], expected, rtol=1e-4)
    # Over several batches the gradients (of each batch mean) are summed.
    halves = [(x[:5], t[:5]), (x[5:], t[5:])]
    split = ks.node_scores(spectral, "taylor", data=halves, loss="mse")
    hand = np.abs(sum((2 * (h[s] @ w2 - t[s]) * h[s] * w2[:, 0]).mean(axis=0) for s in (slice(0, 5), slice(5, 10))))
    np.testing.assert_allclose(split[spectral.layers[0].name], hand, rtol=1e-4)
    with pytest.raises(ValueError, match="pass `data="):
        ks.prune_nodes(spectral, fraction=0.5, score="taylor")
    with pytest.raises(ValueError, match="not compiled with a loss"):
        ks.node_scores(spectral, "taylor", data=(x, t))
    with pytest.raises(ValueError, match="score='taylor' only"):
        ks.prune_nodes(spectral, fraction=0.5, score="l1", data=(x, t))


def test_taylor_leaves_the_model_and_its_metrics_alone():
    model = small_cnn()
    spectral = ks.spectralize(model)
    spectral.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.rand(8, 12, 12, 3).astype("float32")
    y = np.random.randint(0, 5, 8)
    before = [w.copy() for w in spectral.get_weights()]
    scores = ks.node_scores(spectral, "taylor", data=(x, y))
    assert all(np.isfinite(s).all() and (s >= 0).all() for s in scores.values())
    assert any(s.std() > 0 for s in scores.values())
    for a, b in zip(before, spectral.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_report_adds_up_and_prints_a_table():
    model = small_cnn()
    spectral = ks.spectralize(model)
    ks.prune_nodes(spectral, fraction=0.5, budget="multiply_adds", score="l2")
    report = ks.pruning_report(spectral)
    full, pruned = ks.model_cost(spectral), ks.model_cost(spectral, pruned=True)
    assert report.totals["parameters"] == (full.parameters, pruned.parameters)
    assert report.totals["multiply_adds"] == (full.multiply_adds, pruned.multiply_adds)
    for key in ("parameters", "multiply_adds"):
        for i in (0, 1):
            assert sum(row[key][i] for row in report.rows) == report.totals[key][i]
    widths = {row["group"]: row["width"] for row in report.rows}
    for g in ks.pruning.removable_groups(spectral):
        assert widths[g.name] == (g.size, int(g.active().sum()))
    lines = []
    report.summary(print_fn=lines.append)
    assert "Total" in lines[0] and "Multiply-adds" in lines[0]
    # Two models: before, and after compact + collapse.
    served = ks.collapse(ks.compact(spectral))
    compared = ks.pruning_report(served, original=model)
    assert compared.totals["parameters"] == (model.count_params(), served.count_params())
    assert compared.totals["multiply_adds"] == (ks.multiply_adds(model), ks.multiply_adds(served))
    assert report.as_dict()["totals"] == report.totals


def test_schedules_in_epochs_become_steps():
    schedule = PolynomialDecay(0.0, 0.6, begin_epoch=1, end_epoch=3)
    steps = schedule.in_steps(10)
    assert (steps.begin_step, steps.end_step, steps.frequency) == (10, 30, 1)
    assert steps.sparsity_at(30) == pytest.approx(0.6)
    assert PolynomialDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()
    assert ConstantSparsity(0.5, begin_epoch=2).in_steps(7).begin_step == 14
    with pytest.raises(ValueError, match="in epochs"):
        schedule.should_prune(3)
    with pytest.raises(ValueError, match="not both"):
        PolynomialDecay(0.0, 0.5, begin_step=0, end_step=10, end_epoch=2)
    with pytest.raises(ValueError, match="steps per epoch"):
        schedule.in_steps(None)


class _InjectLogs(keras.callbacks.Callback):
    """Writes given values of a fake metric into the epoch logs (before the guard reads them)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_score"] = self.values[epoch]


def _fit_with(callbacks, epochs, budget="nodes"):
    keras.utils.set_random_seed(0)
    model = ks.spectralize(small_cnn())
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.rand(40, 12, 12, 3).astype("float32")
    y = np.random.randint(0, 5, 40)
    model.fit(x, y, batch_size=10, epochs=epochs, callbacks=callbacks, verbose=0)
    return model


@skip_fit_on_jax
def test_callback_reaches_a_cost_budget_given_in_epochs():
    pruning = ks.EigenvaluePruning(PolynomialDecay(0.0, 0.4, begin_epoch=0, end_epoch=2), score="l2",
                                   budget="multiply_adds", scope="global")
    model = _fit_with([pruning], epochs=3)
    assert pruning.timing.end_step == 8  # 2 epochs of 4 steps
    reached = 1 - ks.model_cost(model, pruned=True).multiply_adds / ks.model_cost(model).multiply_adds
    assert reached >= 0.4
    with pytest.raises(ks.BudgetError):
        _fit_with([ks.EigenvaluePruning(ConstantSparsity(0.95, begin_epoch=0), score="l2", budget="multiply_adds",
                                        max_fraction=0.2)], epochs=1)


@skip_fit_on_jax
def test_guard_stops_pruning_when_the_metric_drops():
    pruning = ks.EigenvaluePruning(PolynomialDecay(0.0, 0.6, begin_epoch=1, end_epoch=4), score="l2",
                                   monitor="val_score", max_drop=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _fit_with([_InjectLogs([0.9, 0.85, 0.5, 0.5, 0.5]), pruning], epochs=5)
    assert pruning.stopped_reason and "val_score" in pruning.stopped_reason
    assert any("guard" in str(w.message) for w in caught)
    reached = max(ks.node_sparsity(model).values())
    assert 0 < reached < 0.6  # stopped after epoch 3, before the end of the schedule
    quiet = ks.EigenvaluePruning(PolynomialDecay(0.0, 0.6, begin_epoch=1, end_epoch=4), score="l2",
                                 monitor="val_score", max_drop=0.1)
    model = _fit_with([_InjectLogs([0.9, 0.88, 0.86, 0.85, 0.85]), quiet], epochs=5)
    assert quiet.stopped_reason is None
    assert max(ks.node_sparsity(model).values()) == pytest.approx(0.6, abs=0.07)
    with pytest.raises(ValueError, match="monitor"):
        ks.EigenvaluePruning(ConstantSparsity(0.5), max_drop=0.1)


@skip_fit_on_jax
def test_taylor_during_fit_and_compile_state_kept():
    x = np.random.rand(16, 12, 12, 3).astype("float32")
    y = np.random.randint(0, 5, 16)
    pruning = ks.EigenvaluePruning(ConstantSparsity(0.25, begin_step=2, frequency=100), score="taylor", data=(x, y))
    model = _fit_with([pruning], epochs=1)
    assert all(v == pytest.approx(0.25, abs=0.07) for v in ks.node_sparsity(model).values())
    small = ks.compact(model)
    served = ks.collapse(small)
    for m in (small, served):
        assert m.compiled
        m.evaluate(x, y, verbose=0)


def test_weight_criteria_against_hand_computed_values():
    model = small_cnn()
    spectral = ks.spectralize(model)
    stem, block_out = model.layers[1], model.layers[5]  # the residual stream's two producers
    bn = model.layers[2]
    name = spectral.layers[1].name
    columns = [np.asarray(layer.kernel).reshape(-1, 16) for layer in (stem, block_out)]
    l1 = ks.node_scores(spectral, "l1")[name]
    np.testing.assert_allclose(l1, sum(np.abs(c).sum(axis=0) for c in columns), rtol=1e-5)
    l2 = ks.node_scores(spectral, "l2")[name]
    np.testing.assert_allclose(l2, np.sqrt(sum((c ** 2).sum(axis=0) for c in columns)), rtol=1e-5)
    slimming = ks.node_scores(spectral, "bn")[name]
    np.testing.assert_allclose(slimming, np.abs(np.asarray(bn.gamma)), rtol=1e-6)
