"""The demo's offline fallback: no local data and no web still gives a real run."""

from keras_spectral import demo


def test_demo_falls_back_to_bundled_digits_without_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo.datasets, "_IDX_URLS", {"mnist": "http://127.0.0.1:9/"})
    demo.main(["--epochs", "1", "--width", "32", "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "MNIST is not available" in out and "scikit-learn digits" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "%" in line and "method" not in line]
    assert len(rows) == len(demo.DEMO_METHODS)
    accuracies = [float(row.split("|")[2].strip().rstrip("%")) for row in rows]
    assert all(0 <= a <= 100 for a in accuracies) and max(accuracies) > 50
