"""Bad input to every public constructor and function: a clear error naming the argument
and the received value, and nothing changed.

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import importlib.util
import math
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
    collapse,
    compact,
    node_scores,
    prune_nodes,
)
from keras_spectral.models import build_mlp

NAN, INF = math.nan, math.inf


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def chain(n_in=6, widths=(8, 5), classes=3, seed=0, **options):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((n_in,))] + [SpectralDense(w, activation="tanh", **options) for w in widths]
    return keras.Sequential(layers + [SpectralDense(classes, **options)])


def weights_of(model):
    return [numpy(w).copy() for w in model.weights]


def assert_unchanged(model, before):
    for a, b in zip(weights_of(model), before):
        np.testing.assert_array_equal(a, b)


# --- constructors ------------------------------------------------------------------------

LAYER_CASES = [
    (dict(units=0), ValueError, "units=0"),
    (dict(units=None), ValueError, "units=None"),
    (dict(units="4"), ValueError, "units='4'"),
    (dict(units=np.nan), ValueError, "units=nan"),
    (dict(units=4, eigenvectors=None), ValueError, "eigenvectors=None"),
    (dict(units=4, eigenvectors="QR"), ValueError, "eigenvectors='QR'"),
    (dict(units=4, eigenvectors="lowrank", eigenvector_rank=2.0), ValueError, "eigenvector_rank=2.0"),
    (dict(units=4, eigenvectors="lowrank", eigenvector_rank=-1), ValueError, "eigenvector_rank=-1"),
    (dict(units=4, eigenvector_basis="sparse"), ValueError, "eigenvector_basis='sparse'"),
    (dict(units=4, eigenvectors="trainable", eigenvector_basis="kronecker"), ValueError, "eigenvector_basis='kronecker'"),
    (dict(units=4, eigenvector_seed=-1), ValueError, "eigenvector_seed=-1"),
    (dict(units=4, eigenvector_seed=1.5), ValueError, "eigenvector_seed=1.5"),
    (dict(units=4, eigenvector_seed=3, eigenvectors="svd"), ValueError, "eigenvector_seed=3"),
    (dict(units=4, kernel_sparsity=1.0), ValueError, "kernel_sparsity=1.0"),
    (dict(units=4, kernel_sparsity=-0.1), ValueError, "kernel_sparsity=-0.1"),
    (dict(units=4, kernel_sparsity=NAN), ValueError, "kernel_sparsity=nan"),
    (dict(units=4, kernel_sparsity="half"), ValueError, "kernel_sparsity='half'"),
    (dict(units=4, train_eigenvalues_out=1), TypeError, "train_eigenvalues_out=1"),
    (dict(units=4, eigenvalues_in_initializer="no_such_initializer"), ValueError, "no_such_initializer"),
    (dict(units=4, eigenvectors_regularizer="no_such_regularizer"), ValueError, "no_such_regularizer"),
]


@pytest.mark.parametrize("kwargs,error,match", LAYER_CASES, ids=[str(c[0]) for c in LAYER_CASES])
def test_layer_constructor_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        SpectralDense(**kwargs)


@pytest.mark.parametrize("attribute", ["kernel", "eigenvectors", "input_dim"])
def test_unbuilt_layer_properties_say_so(attribute):
    with pytest.raises(ValueError, match=f"`{attribute}` of layer .* not available before the layer is built"):
        getattr(SpectralDense(4), attribute)


def test_unbuilt_layer_to_dense_says_so():
    with pytest.raises(ValueError, match="not available before the layer is built"):
        SpectralDense(4).to_dense()


@pytest.mark.parametrize(
    "shape,match",
    [((None, None), "last dimension"), ((8,), "rank >= 2"), ((None, 3), r"eigenvector_rank.*at most")],
)
def test_layer_build_rejects_shapes(shape, match):
    with pytest.raises(ValueError, match=match):
        SpectralDense(4, eigenvectors="lowrank", eigenvector_rank=4).build(shape)


@pytest.mark.parametrize("dtype", ["uint8", "int32", "int64"])
def test_integer_inputs_work_as_with_dense(dtype):
    layer = SpectralDense(3)
    x = np.arange(12).reshape(2, 6).astype(dtype)
    out = numpy(layer(x))
    dense = layer.to_dense()
    np.testing.assert_allclose(out, numpy(dense(x.astype("float32"))), rtol=1e-5, atol=1e-6)


SCHEDULE_CASES = [
    (lambda: ConstantSparsity(NAN), "target_sparsity=nan"),
    (lambda: ConstantSparsity(1.0), "target_sparsity=1.0"),
    (lambda: ConstantSparsity(0.5, begin_step=-2), "begin_step=-2"),
    (lambda: ConstantSparsity(0.5, begin_step=1.5), "begin_step=1.5"),
    (lambda: ConstantSparsity(0.5, end_step=-5), "end_step=-5"),
    (lambda: ConstantSparsity(0.5, frequency=0), "frequency=0"),
    (lambda: ConstantSparsity(0.5, frequency=INF), "frequency=inf"),
    (lambda: ConstantSparsity(0.5, begin_step=10, end_step=5), "begin_step=10, end_step=5"),
    (lambda: PolynomialDecay(0.0, 0.9, 0, 100, power=NAN), "power=nan"),
    (lambda: PolynomialDecay(0.0, 0.9, 0, 100, power=INF), "power=inf"),
    (lambda: PolynomialDecay(0.0, 0.9, 0, 100, power=0), "power=0"),
    (lambda: PolynomialDecay(0.0, 0.9, 0, 100, power="3"), "power='3'"),
    (lambda: PolynomialDecay(NAN, 0.9, 0, 100), "initial_sparsity=nan"),
    (lambda: PolynomialDecay(0.0, INF, 0, 100), "final_sparsity=inf"),
    (lambda: PolynomialDecay(0.5, 0.2, 0, 100), "initial_sparsity=0.5, final_sparsity=0.2"),
    (lambda: PolynomialDecay(0.0, 0.9, 0, -1), "end_step"),
    (lambda: PolynomialDecay(0.0, 0.9, 5, 5), "begin_step=5, end_step=5"),
]


@pytest.mark.parametrize("make,match", SCHEDULE_CASES, ids=[c[1] for c in SCHEDULE_CASES])
def test_schedules_reject(make, match):
    with pytest.raises(ValueError, match=match):
        make()


CALLBACK_CASES = [
    (dict(), ValueError, "exactly one of `schedule` and `threshold`"),
    (dict(schedule=ConstantSparsity(0.5), threshold=0.1), ValueError, "exactly one"),
    (dict(schedule=0.5), TypeError, "schedule=0.5"),
    (dict(threshold=-1.0), ValueError, "threshold=-1.0"),
    (dict(threshold=NAN), ValueError, "threshold=nan"),
    (dict(threshold=INF), ValueError, "threshold=inf"),
    (dict(threshold=0.1, score="max"), ValueError, "score='max'"),
    (dict(threshold=0.1, scope="model"), ValueError, "scope='model'"),
    (dict(threshold=0.1, frequency=0), ValueError, "frequency=0"),
    (dict(threshold=0.1, begin_step=-1), ValueError, "begin_step=-1"),
    (dict(schedule=ConstantSparsity(0.5), frequency=10), ValueError, r"`frequency` apply only with `threshold=`.*frequency=10"),
    (dict(schedule=ConstantSparsity(0.5), begin_step=3, end_step=9), ValueError, r"`begin_step`, `end_step` apply only"),
]


@pytest.mark.parametrize("kwargs,error,match", CALLBACK_CASES, ids=[str(c[0]) for c in CALLBACK_CASES])
def test_pruning_callback_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        EigenvaluePruning(**kwargs)


# --- functions on models -----------------------------------------------------------------

PRUNE_CASES = [
    (dict(), "exactly one of `fraction` and `threshold`"),
    (dict(fraction=0.5, threshold=0.1), "exactly one"),
    (dict(fraction=1.0), "fraction=1.0"),
    (dict(fraction=-0.1), "fraction=-0.1"),
    (dict(fraction=NAN), "fraction=nan"),
    (dict(fraction="half"), "fraction='half'"),
    (dict(threshold=NAN), "threshold=nan"),
    (dict(threshold=INF), "threshold=inf"),
    (dict(threshold=-0.5), "threshold=-0.5"),
    (dict(fraction=0.5, score="max"), "score='max'"),
    (dict(fraction=0.5, scope="all"), "scope='all'"),
    (dict(threshold=1e9), "would remove every node"),
]


@pytest.mark.parametrize("kwargs,match", PRUNE_CASES, ids=[str(c[0]) for c in PRUNE_CASES])
def test_prune_nodes_rejects_and_changes_nothing(kwargs, match):
    model = chain()
    before = weights_of(model)
    with pytest.raises(ValueError, match=match):
        prune_nodes(model, **kwargs)
    assert_unchanged(model, before)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = SpectralDense(5, activation="tanh")
        self.out = SpectralDense(3)

    def call(self, x):
        return self.out(self.hidden(x))


def subclassed():
    model = Subclassed()
    model(np.zeros((1, 6), "float32"))
    return model


def unbuilt():
    return keras.Sequential([SpectralDense(5), SpectralDense(3)])


def with_conv_only():
    return keras.Sequential([keras.Input((6, 1)), keras.layers.Conv1D(2, 3), keras.layers.Reshape((8,)),
                             SpectralDense(3, name="conv_head")])


def dense_only():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(5), keras.layers.Dense(3)])


def single_layer():
    return keras.Sequential([keras.Input((6,)), SpectralDense(3)])


MODEL_CASES = [
    ("subclassed", subclassed, ValueError, r"subclassed model.*keras.Sequential or a functional"),
    ("unbuilt", unbuilt, ValueError, "is not built"),
    ("no prunable group", with_conv_only, ValueError, r"no hidden nodes that can be pruned.*'conv_head': is a model output"),
    ("no spectral layer", dense_only, ValueError, "has no SpectralDense or SpectralConv layer"),
    ("no hidden layer", single_layer, ValueError, "no hidden nodes that can be pruned"),
    ("not a model", lambda: "model.keras", TypeError, "Expected a keras.Model"),
]


@pytest.mark.parametrize("function", ["prune_nodes", "compact", "node_scores"])
@pytest.mark.parametrize("kind,make,error,match", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_unsupported_models_get_a_clear_error(function, kind, make, error, match):
    if function == "compact" and kind == "no hidden layer":
        return  # a single layer compacts to itself
    call = {
        "prune_nodes": lambda m: prune_nodes(m, fraction=0.5),
        "compact": compact,
        "node_scores": node_scores,
    }[function]
    with pytest.raises(error, match=match):
        call(make())


def test_pruning_callback_rejects_a_subclassed_model_at_fit():
    model = subclassed()
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="subclassed model"):
        model.fit(np.zeros((4, 6)), np.zeros((4, 3)), callbacks=[EigenvaluePruning(threshold=0.1)], verbose=0)


def test_compact_rejects_an_emptied_hidden_layer():
    model = chain()
    model.layers[0].eigenvalues_out_mask.assign(np.zeros(8, "float32"))
    with pytest.raises(ValueError, match=r"Node group '.*' has no nodes left \(all 8 are removed\)"):
        compact(model)


def test_compact_rejects_a_bad_mode():
    with pytest.raises(ValueError, match="eigenvectors='dense'"):
        compact(chain(), eigenvectors="dense")


def test_collapse_rejects_what_is_not_a_model():
    with pytest.raises(TypeError, match="Expected a keras.Model"):
        collapse(SpectralDense(3))


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        ((784, 500, 10), {}, TypeError, r"`hidden`, expected a sequence of positive integers.*hidden=500"),
        ((784, "500", 10), {}, TypeError, "hidden='500'"),
        ((784, (500, 0), 10), {}, ValueError, "hidden=0"),
        ((0, (5,), 10), {}, ValueError, "input_dim=0"),
        ((784, (5,), 1.5), {}, ValueError, "classes=1.5"),
        ((784, (5,), 10), dict(method="svd"), ValueError, "method='svd'"),
        ((784, (5,), 10), dict(method="dense", eigenvectors="svd"), ValueError, "method='dense' takes no SpectralDense arguments"),
    ],
)
def test_build_mlp_rejects(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        build_mlp(*args, **kwargs)


# --- weights from elsewhere --------------------------------------------------------------


def seeded(seed):
    return chain(eigenvector_seed=seed)


def test_model_set_weights_refuses_another_seed():
    source, target = seeded(1), seeded(2)
    with pytest.raises(ValueError, match=r"eigenvector_seed=2.*different eigenvectors"):
        target.set_weights(source.get_weights())


def test_layer_set_weights_refuses_another_seed_and_changes_nothing():
    source, target = seeded(1), seeded(2)
    before = weights_of(target)
    with pytest.raises(ValueError, match="different eigenvectors"):
        target.layers[0].set_weights(source.layers[0].get_weights())
    assert_unchanged(target, before)


def test_set_weights_with_the_same_seed_still_works():
    source, target = seeded(1), seeded(1)
    target.set_weights(source.get_weights())
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    np.testing.assert_allclose(numpy(target(x)), numpy(source(x)), rtol=1e-6)


def test_a_load_refused_for_the_seed_leaves_the_layer_unchanged(tmp_path):
    path = str(tmp_path / "one.weights.h5")
    seeded(1).save_weights(path)
    target = seeded(2)
    before = weights_of(target)
    with pytest.raises(ValueError, match="different eigenvectors"):
        target.load_weights(path)
    assert_unchanged(target, before)


def test_a_model_file_still_loads_after_refused_weights(tmp_path):
    target = seeded(2)
    with pytest.raises(ValueError):
        target.set_weights(seeded(1).get_weights())
    fresh = seeded(2)
    path = str(tmp_path / "m.keras")
    fresh.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(numpy(loaded.layers[0].kernel), numpy(fresh.layers[0].kernel))


# --- relevance, plots, summaries, low rank (reliability round 2, issue #21) ---------------


def relevance_chain(n_in=6, **options):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((n_in,)), SpectralDense(4, name="first", **options),
                              SpectralDense(2, name="head")])
    model.build((None, n_in))
    return model


def test_a_second_remove_inputs_keeps_present_features_with_zero_eigenvalues():
    from keras_spectral import kept_inputs, remove_inputs

    model = relevance_chain()
    layer = model.get_layer("first")
    remove_inputs(model, keep=4)  # the two least relevant features are masked out
    removed = np.flatnonzero(numpy(layer.eigenvalues_in_mask) == 0)
    present = np.flatnonzero(numpy(layer.eigenvalues_in_mask) != 0)
    values = numpy(layer.eigenvalues_in).copy()
    values[present[:2]] = 0.0  # present, but λ_in exactly 0 (as NonNeg can leave them)
    layer.eigenvalues_in.assign(values)
    assert len(removed) == 2
    kept = remove_inputs(model, keep=3)
    assert len(kept) == 3 and not set(kept) & set(removed)
    assert list(kept_inputs(model)) == list(kept)
    remove_inputs(model, fraction=0.5)  # 3 of 6 removed already: nothing more to remove
    assert len(kept_inputs(model)) == 3


def test_rank_inputs_puts_removed_features_last():
    from keras_spectral import rank_inputs, remove_inputs

    model = relevance_chain()
    layer = model.get_layer("first")
    remove_inputs(model, keep=4)
    removed = set(np.flatnonzero(numpy(layer.eigenvalues_in_mask) == 0))
    layer.eigenvalues_in.assign(np.zeros(6, "float32"))  # every score ties at 0
    assert set(rank_inputs(model)[-2:]) == removed


def test_lowrank_with_a_zero_initializer_gives_finite_outputs():
    with pytest.warns(UserWarning, match="φ = 0"):
        model = relevance_chain(eigenvectors="lowrank", eigenvector_rank=2, eigenvectors_initializer="zeros")
    out = numpy(model(np.ones((3, 6), "float32")))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(numpy(model.get_layer("first").kernel), 0.0)


plots_needed = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")


@plots_needed
def test_plots_save_names_figure_and_path(tmp_path):
    from keras_spectral import plots

    with pytest.raises(TypeError, match=r"`figure`.*Received: figure=None"):
        plots.save(None, str(tmp_path / "x.png"))
    figure = plots.spectrum(relevance_chain())
    with pytest.raises(ValueError, match=r"`path`.*\.png, \.pdf, \.svg.*spectrum\.jpg"):
        plots.save(figure, str(tmp_path / "spectrum.jpg"))
    assert not list(tmp_path.iterdir())
    plots.save(figure, str(tmp_path / "spectrum.pdf"))
    with open(tmp_path / "spectrum.pdf", "rb") as f:
        assert f.read(5) == b"%PDF-"
    plots.save(figure, str(tmp_path / "spectrum.svg"))
    with open(tmp_path / "spectrum.svg", encoding="utf-8") as f:
        assert "<svg" in f.read(2000)


@plots_needed
def test_spectrum_names_the_layer_with_non_finite_eigenvalues():
    from keras_spectral import plots

    model = relevance_chain()
    layer = model.get_layer("head")
    layer.eigenvalues_out.assign(np.array([NAN, 1.0], "float32"))
    with pytest.raises(ValueError, match=r"Layer 'head' has 1 non-finite `eigenvalues_out`"):
        plots.spectrum(model)


def flatten_first():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2, 3)), keras.layers.Flatten(name="flat"),
                              SpectralDense(4, activation="relu", name="first"), SpectralDense(2, name="head")])
    model.compile("adam", "mse")
    return model


@plots_needed
def test_spectrum_and_summary_accept_a_flatten_first(tmp_path):
    pytest.importorskip("tensorflow")
    from keras_spectral import plots
    from keras_spectral.summaries import SpectrumSummary

    model = flatten_first()
    assert len(plots.spectrum(model).get_axes()) == 4
    model.fit(np.ones((8, 2, 3)), np.zeros((8, 2)), epochs=1, verbose=0,
              callbacks=[SpectrumSummary(str(tmp_path / "logs"), image_shape=(2, 3))])
    assert os.listdir(tmp_path / "logs" / "spectrum")


def test_spectrum_summary_checks_image_shape_against_the_layer_reading_the_input(tmp_path):
    pytest.importorskip("tensorflow")
    from keras_spectral.summaries import SpectrumSummary

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="dense_first"),
                              SpectralDense(2, name="head")])
    model.compile("adam", "mse")
    for shape in ((2, 3), (5, 1)):  # 6 entries (the Dense's inputs), 5 (the SpectralDense's)
        with pytest.raises(ValueError, match=r"`image_shape`.*needs the model's input.*'dense_first' \(Dense\)"):
            model.fit(np.ones((4, 6)), np.zeros((4, 2)), epochs=1, verbose=0,
                      callbacks=[SpectrumSummary(str(tmp_path / "logs"), image_shape=shape)])
    with pytest.raises(ValueError, match=r"`image_shape`: \(2, 2\) has 4 entries.*6 input features"):
        flatten_first().fit(np.ones((4, 2, 3)), np.zeros((4, 2)), epochs=1, verbose=0,
                            callbacks=[SpectrumSummary(str(tmp_path / "logs"), image_shape=(2, 2))])


def test_spectrum_summary_refuses_a_log_dir_that_is_a_file(tmp_path):
    pytest.importorskip("tensorflow")
    from keras_spectral.summaries import SpectrumSummary

    path = tmp_path / "taken"
    path.write_text("not a directory")
    with pytest.raises(ValueError, match=r"`log_dir`.*existing file"):
        SpectrumSummary(str(path))
    summary = SpectrumSummary(str(tmp_path / "later"))
    (tmp_path / "later").write_text("made a file after the callback")
    model = flatten_first()
    with pytest.raises(ValueError, match=r"`log_dir`.*existing file"):
        model.fit(np.ones((4, 2, 3)), np.zeros((4, 2)), epochs=1, verbose=0, callbacks=[summary])
    assert (tmp_path / "later").read_text() == "made a file after the callback"


def test_spectrum_summary_refuses_a_log_dir_it_cannot_write(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    import tempfile

    from keras_spectral.summaries import SpectrumSummary

    target = tmp_path / "read_only"
    target.mkdir()
    os.chmod(target, 0o500)
    if os.access(target, os.W_OK):  # root writes anywhere: make the probe fail as a read-only mount would
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    try:
        with pytest.raises(PermissionError, match=r"`log_dir` .*read_only.* is not writable"):
            flatten_first().fit(np.ones((4, 2, 3)), np.zeros((4, 2)), epochs=1, verbose=0,
                                callbacks=[SpectrumSummary(str(target))])
    finally:
        os.chmod(target, 0o700)
