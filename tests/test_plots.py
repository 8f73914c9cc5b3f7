"""Pictures of the spectrum, made headless, and the TensorBoard spectrum summary.

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import os

import keras
import numpy as np
import pytest

from keras_spectral import EigenvaluePruning, ConstantSparsity, SpectralDense, plots, prune_nodes, remove_inputs

pytest.importorskip("matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


def model(n_in=12, seed=0):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential([keras.Input((n_in,)), SpectralDense(8, activation="relu", name="hidden"),
                          SpectralDense(3, activation="softmax", name="head")])
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG


def test_spectrum_has_a_row_per_layer_and_counts_removed_nodes(tmp_path):
    m = model()
    prune_nodes(m, fraction=0.5)
    path = tmp_path / "out" / "spectrum.png"
    figure = plots.spectrum(m, bins=10, path=str(path))
    axes = figure.get_axes()
    assert len(axes) == 4  # 2 layers x (λ_in, λ_out)
    titles = [ax.get_title() for ax in axes]
    assert titles[1] == "hidden: λ_out (4 nodes, 4 removed)"
    assert titles[2] == "head: λ_in (4 nodes, 4 removed)"
    assert titles[0] == "hidden: λ_in (12 nodes)"
    # The histogram counts only the nodes present.
    assert sum(p.get_height() for p in axes[1].patches) == 4
    assert is_png(path) and not os.path.exists(str(path) + ".partial.png")


def test_relevance_map_reshapes_and_sums_channels(tmp_path):
    m = model(n_in=4 * 4 * 3)
    remove_inputs(m, keep=6)
    figure = plots.relevance_map(m, (4, 4, 3), path=str(tmp_path / "map.png"))
    image = np.asarray(figure.get_axes()[0].get_images()[0].get_array(), dtype="float64")
    assert image.shape == (4, 4)
    expected = np.abs(np.asarray(keras.ops.convert_to_numpy(m.layers[0].eigenvalues_in)))
    expected *= np.asarray(keras.ops.convert_to_numpy(m.layers[0].eigenvalues_in_mask)) != 0
    np.testing.assert_allclose(image, expected.reshape(4, 4, 3).sum(-1), rtol=1e-6)
    assert is_png(tmp_path / "map.png")


def test_removal_curves_draws_plain_curves_with_seed_spread(tmp_path):
    curves = {"spectral": ([0.9, 0.0], [[0.5, 0.3], 0.85]), "dense": ((0.0, 0.9), ([0.9, 0.8], [0.25, 0.15]))}
    figure = plots.removal_curves(curves, path=str(tmp_path / "c.png"), title="mnist")
    lines = {c.get_label(): c.lines[0] for c in figure.get_axes()[0].containers}
    assert set(lines) == {"spectral", "dense"}
    np.testing.assert_allclose(np.asarray(lines["spectral"].get_ydata(), float), [85.0, 40.0])  # sorted
    np.testing.assert_allclose(np.asarray(lines["dense"].get_xdata(), float), [0.0, 90.0])
    assert figure.get_axes()[0].get_title() == "mnist"
    assert is_png(tmp_path / "c.png")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: plots.spectrum(m, bins=0), "`bins`"),
        (lambda m: plots.relevance_map(m, (5, 5)), "`image_shape`"),
        (lambda m: plots.relevance_map(m, "28x28"), "`image_shape`"),
        (lambda m: plots.removal_curves({}), "`curves`"),
        (lambda m: plots.removal_curves("results.jsonl"), "`curves`"),
        (lambda m: plots.removal_curves({"a": [0.5]}), r"curve 'a' of `curves`, expected a pair"),
        (lambda m: plots.removal_curves({"a": ([0.0, 0.5], [0.9])}), r"same non-zero length"),
        (lambda m: plots.removal_curves({"a": ([0.0], [97.5])}), r"invalid accuracy for curve 'a'.*97.5"),
        (lambda m: plots.removal_curves({"a": ([90], [0.9])}), r"invalid fraction removed for curve 'a'.*90"),
        (lambda m: plots.removal_curves({"a": (["all"], [0.9])}), r"curve 'a'"),
        (lambda m: plots.spectrum(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])), "no spectral layer"),
        (lambda m: plots.save(plots.spectrum(m), 3), "`path`"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises((ValueError, TypeError, FileNotFoundError), match=match):
        call(model())


def test_spectrum_summary_writes_active_spectrum_and_relevance_image(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("tensorflow")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from keras_spectral.summaries import SpectrumSummary

    m = model(n_in=16)
    x = np.random.default_rng(0).normal(size=(128, 16)).astype("float32")
    y = np.arange(128) % 3
    log_dir = str(tmp_path / "logs")
    callbacks = [EigenvaluePruning(ConstantSparsity(0.5, begin_step=0, frequency=1)),
                 keras.callbacks.TensorBoard(log_dir, histogram_freq=1),
                 SpectrumSummary(log_dir, image_shape=(4, 4))]
    m.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=callbacks)
    events = EventAccumulator(os.path.join(log_dir, "spectrum"), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"spectrum/hidden/eigenvalues_out_active", "spectrum/head/eigenvalues_in_active",
            "spectrum/hidden/active_nodes_out", "relevance/input"} <= tags
    import tensorflow as tf

    counts = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("spectrum/hidden/active_nodes_out")]
    assert counts == [4.0, 4.0]  # 8 units, half removed from the first step on
    image = tf.make_ndarray(events.Tensors("relevance/input")[-1].tensor_proto)
    assert image[0] == b"4" and image[1] == b"4"  # width, height, then the PNG
    train = EventAccumulator(os.path.join(log_dir, "train"), size_guidance={"tensors": 0})
    train.Reload()
    keras_tags = set(train.Tags()["tensors"])
    assert "epoch_node_sparsity/hidden" in keras_tags
    assert any(t.endswith("hidden/eigenvalues_out/histogram") for t in keras_tags)
    assert any(t.endswith("hidden/eigenvalues_out_mask/histogram") for t in keras_tags)


def test_spectrum_summary_rejects_bad_arguments(tmp_path):
    from keras_spectral.summaries import SpectrumSummary

    with pytest.raises(ValueError, match="`freq`"):
        SpectrumSummary(str(tmp_path), freq=0)
    with pytest.raises(ValueError, match="`image_shape`"):
        SpectrumSummary(str(tmp_path), image_shape=(28,))
    with pytest.raises(TypeError, match="`log_dir`"):
        SpectrumSummary(None)
