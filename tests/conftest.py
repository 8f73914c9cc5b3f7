import contextlib
import os

import numpy as np
import pytest

from keras_spectral import datasets


@pytest.fixture(scope="session")
def data_dir():
    """The prepared data directory ($KERAS_SPECTRAL_DATA); tests that need real data skip
    without it only when CI is not set (CI must always have it)."""
    path = os.environ.get(datasets.ENV_VAR)
    if not path or not os.path.isdir(path):
        if os.environ.get("CI"):
            pytest.fail(f"${datasets.ENV_VAR} must point at the prepared data sets in CI")
        pytest.skip(f"${datasets.ENV_VAR} is not set to a prepared data directory")
    return path


@pytest.fixture
def unchanged():
    """`with unchanged(model): ...`: the block leaves the model's weights as they were (a
    refused call changes nothing)."""

    @contextlib.contextmanager
    def check(model):
        before = [w.copy() for w in model.get_weights()]
        yield
        after = model.get_weights()
        assert len(after) == len(before)
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b)

    return check
