import os

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
