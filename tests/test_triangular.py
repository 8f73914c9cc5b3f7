"""Packed storage of the QR mode's triangular factor (`keras_spectral.triangular`).

Backend-agnostic: run under each backend with `KERAS_BACKEND=tensorflow|jax|torch`.
"""

import numpy as np
import pytest
from keras import ops

from keras_spectral import triangular


@pytest.mark.parametrize("k,m", [(1, 1), (1, 4), (2, 2), (3, 3), (3, 7), (4, 4), (5, 9), (6, 6), (7, 8)])
def test_pack_then_unpack_gives_the_upper_triangle(k, m):
    r = np.random.default_rng(k * 10 + m).normal(size=(k, m))
    packed = triangular.pack(r)
    assert packed.shape == (triangular.packed_size(k, m),)
    assert triangular.packed_size(k, m) == k * m - k * (k - 1) // 2  # no wasted entry
    assert set(np.round(packed, 12)) == set(np.round(np.triu(r)[np.triu_indices(k, m=m)], 12))
    unpacked = ops.convert_to_numpy(triangular.unpack(ops.convert_to_tensor(packed.astype("float32")), k, m, "float32"))
    np.testing.assert_allclose(unpacked, np.triu(r), rtol=1e-6, atol=1e-6)
