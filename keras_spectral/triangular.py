"""Packed storage of an upper-trapezoidal `k × m` matrix (`k <= m`), as one vector.

The `"qr"` eigenvector mode trains only the upper triangle of R. Forming R from a packed
vector with a gather or scatter is slow to differentiate on CPU (a scatter-add over every
entry), so the vector is laid out in blocks that reshape, slice and mask back into R:
with `p = ceil(k / 2)`, `q = k − p`, R = `[[T11, G1], [0, T22, G2]]` where the
triangles T11 (`p × p`) and T22 (`q × q`) share one `(q + 1) × p` block `Z` — T11 is the
upper triangle of `Z[:p]` and T22ᵀ the lower triangle of `Z[1:, :q]`, which do not
overlap — and `G1` (`p × (m − p)`), `G2` (`q × (m − k)`) are stored whole. The length is
exactly the number of entries of the triangle: `k·m − k(k − 1)/2`.
"""

import numpy as np
from keras import ops


def _split(k, m):
    p = (k + 1) // 2
    q = k - p
    return p, q, ((q + 1) * p, p * (m - p), q * (m - k))


def packed_size(k, m):
    return sum(_split(k, m)[2])


def pack(r):
    """The packed vector of the upper-trapezoidal NumPy matrix `r` (`k × m`)."""
    k, m = r.shape
    p, q, _ = _split(k, m)
    z = np.zeros((q + 1, p), dtype=r.dtype)
    upper = np.triu_indices(p)
    z[:p][upper] = r[:p, :p][upper]
    if q:
        lower = np.tril_indices(q)
        z[1:, :q][lower] = r[p:k, p:k].T[lower]
    return np.concatenate([z.ravel(), r[:p, p:].ravel(), r[p:, k:].ravel()])


def unpack(vector, k, m, dtype):
    """R, shape `(k, m)`, from its packed vector (differentiable `keras.ops`)."""
    p, q, (size_z, size_g1, size_g2) = _split(k, m)
    z = ops.reshape(vector[:size_z], (q + 1, p))
    top = [z[:p] * ops.convert_to_tensor(np.triu(np.ones((p, p))), dtype)]
    if size_g1:
        top.append(ops.reshape(vector[size_z : size_z + size_g1], (p, m - p)))
    top = ops.concatenate(top, axis=1) if len(top) > 1 else top[0]
    if not q:
        return top
    t22 = ops.transpose(z[1:, :q] * ops.convert_to_tensor(np.tril(np.ones((q, q))), dtype))
    bottom = [ops.zeros((q, p), dtype=dtype), t22]
    if size_g2:
        bottom.append(ops.reshape(vector[size_z + size_g1 :], (q, m - k)))
    return ops.concatenate([top, ops.concatenate(bottom, axis=1)], axis=0)
