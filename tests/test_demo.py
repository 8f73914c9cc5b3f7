"""The demo's offline fallback: no local data and no web still gives a real run."""

from keras_spectral import demo


def test_demo_falls_back_to_bundled_digits_without_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo.datasets, "_IDX_URLS", {"mnist": "http://127.0.0.1:9/"})
    out_dir = tmp_path / "pictures"
    demo.main(["--epochs", "1", "--width", "32", "--data-dir", str(tmp_path), "--out", str(out_dir)])
    out = capsys.readouterr().out
    assert "MNIST is not available" in out and "scikit-learn digits" in out
    comparison, compression = out.split("Compressing the trained Dense network")
    rows = [line for line in comparison.splitlines() if line.startswith("| ") and "%" in line and "method" not in line]
    assert len(rows) == len(demo.DEMO_METHODS)
    accuracies = [float(row.split("|")[2].strip().rstrip("%")) for row in rows]
    assert all(0 <= a <= 100 for a in accuracies) and max(accuracies) > 50
    for name in ("relevance_map.png", "spectrum.png"):  # 8x8 digits: an 8x8 relevance map
        assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Pictures of the eigenvalues-only" in out
    # The compression job: a report, then before/after rows with a quarter of the multiply-adds.
    assert "Pruning report" in compression and "Total" in compression
    before, after = [line.split("|") for line in compression.splitlines()
                     if line.startswith("| trained Dense model") or line.startswith("| pruned, compacted")]
    macs_before, macs_after = (int(row[4].strip().replace(",", "")) for row in (before, after))
    assert macs_after <= 0.25 * macs_before
    assert float(after[2].strip().rstrip("%")) > 40  # still far above chance (10 %) after fine-tuning
