"""The CNN channel-pruning benchmark's harness (benchmarks/cnn_pruning.py): the conventional
channel removal really silences channels, units of work are claimed once, and on a tiny
real CIFAR-10 run every route records a cell, a rerun resumes and the report is written."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import cnn_pruning  # noqa: E402

from harness.results import ResultsFile  # noqa: E402


def test_channel_removal_silences_the_weakest_filters():
    keras.utils.set_random_seed(0)
    model = cnn_pruning.cnn()
    groups = cnn_pruning.channel_groups(model)
    assert [g.size for g in groups] == list(cnn_pruning.WIDTHS)
    scores = [cnn_pruning.l1_score(g) for g in groups]
    callback = cnn_pruning.NodeRemoval(groups, cnn_pruning.at_once(0.5), cnn_pruning.l1_score)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_train_batch_begin(0)
    probe = keras.Model(model.inputs, [model.get_layer(f"relu_{i}").output for i in range(3)])
    x = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    for group, score, removed, out in zip(groups, scores, callback.removed, probe.predict(x, verbose=0)):
        assert removed.sum() == group.size // 2
        # The weakest filters by L1 norm go, and their channels are 0 after the ReLU.
        assert score[removed].max() <= score[~removed].min()
        assert np.all(out[..., removed] == 0)
        assert np.any(out[..., ~removed] != 0)
        bn = model.get_layer(group.passes[0][0].name)
        assert np.all(keras.ops.convert_to_numpy(bn.gamma)[removed] == 0)


def test_reader_norm_eigenvalues_keep_the_outputs_and_rank_by_outgoing_weights():
    from keras_spectral import spectralize

    keras.utils.set_random_seed(0)
    model = cnn_pruning.cnn()
    spectral = spectralize(model)
    x = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    before = spectral.predict(x, verbose=0)
    kernel = keras.ops.convert_to_numpy(model.get_layer("conv_1").kernel)
    cnn_pruning.reader_norm_eigenvalues(spectral)
    np.testing.assert_allclose(spectral.predict(x, verbose=0), before, rtol=1e-5, atol=1e-6)
    lam_in = keras.ops.convert_to_numpy(spectral.get_layer("conv_1").eigenvalues_in)
    np.testing.assert_allclose(lam_in, np.sqrt((kernel**2).mean(axis=(0, 1, 3))), rtol=1e-6)
    # The first convolution reads the image, not a channel group: left as converted.
    assert np.all(keras.ops.convert_to_numpy(spectral.get_layer("conv_0").eigenvalues_in) == 1)


def test_a_unit_is_claimed_once_and_a_dead_holder_releases_it(tmp_path, monkeypatch):
    monkeypatch.setattr(cnn_pruning, "WORK_DIR", str(tmp_path))
    with cnn_pruning.claim("unit") as mine:
        assert mine and os.path.exists(tmp_path / "claims" / "unit")
    assert not os.path.exists(tmp_path / "claims" / "unit")  # released when done
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    os.makedirs(tmp_path / "claims", exist_ok=True)
    (tmp_path / "claims" / "left").write_text(str(dead.pid))
    with cnn_pruning.claim("left") as mine:
        assert mine
    (tmp_path / "claims" / "held").write_text(str(os.getppid()))  # a live process
    with cnn_pruning.claim("held") as mine:
        assert not mine


@pytest.mark.slow
def test_run_resume_and_report(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cnn_pruning, "WORK_DIR", str(tmp_path / "work"))
    path, out = str(tmp_path / "cnn.jsonl"), str(tmp_path / "docs")
    run = ["run", "--quick", "--seeds", "1", "--levels", "0.9", "--results", path,
           "--units", "base_seed0", "study_seed0", "scratch_seed0"]
    monkeypatch.setattr(cnn_pruning, "SPECTRAL_L1", None)
    cnn_pruning.main(run)  # the spectral route waits for its setting
    assert "base_seed0 waits for `tune`" in capsys.readouterr().out
    monkeypatch.setattr(cnn_pruning, "SPECTRAL_L1", 1e-3)
    cnn_pruning.main(run)
    capsys.readouterr()
    records = {r["key"]["route"]: r for r in ResultsFile(path).records()}
    expected = {"unpruned", "scratch", *cnn_pruning.PRUNING_ROUTES, *cnn_pruning.STUDY_ROUTES}
    assert set(records) == expected
    assert all(0.0 < r["accuracy"] <= 1 and 0.0 < r["val_accuracy"] <= 1 for r in records.values())
    spectral = records["spectral"]
    # 90 % of every convolution's channels gone, compacted exactly.
    assert spectral["widths"] == [4, 7, 13] and spectral["penalty"] == 1e-3
    assert spectral["accuracy"] == pytest.approx(spectral["masked_accuracy"], abs=2e-3)
    assert spectral["multiply_adds"] < 0.05 * spectral["base_multiply_adds"]
    assert records["scratch"]["params"] == spectral["params"]
    for route in ("l1_gradual", "l1_oneshot", "slimming"):
        assert records[route]["removed"] == pytest.approx([28 / 32, 57 / 64, 115 / 128])
    assert records["study_frozen"]["trainable"] < 0.02 * records["study_trainable"]["trainable"]
    assert records["study_frozen"]["multiply_adds"] == records["unpruned"]["base_multiply_adds"]
    cnn_pruning.main(run)
    assert "unit " not in capsys.readouterr().out  # every unit complete: none claimed again
    cnn_pruning.main(["report", "--results", path, "--out", out])
    text = open(os.path.join(out, "cnn_pruning.md")).read()
    assert "| 90 % |" in text and "Spectral convolutions trained from scratch" in text
    assert os.path.exists(os.path.join(out, "figures", "cnn_pruning.png"))
