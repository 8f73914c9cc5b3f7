"""Orthogonal matrices with Kronecker structure, cheap to apply.

An `n × n` orthogonal matrix `M = kron(A, B)`, with `A` (`a × a`) and `B` (`b × b`)
orthogonal and `n = a · b`, multiplies a vector in `n · (a + b)` multiply-adds instead of
`n²` (784 = 28 · 28: 56 instead of 784 per entry). The decomposed eigenvector modes use
such matrices as their fixed bases when `eigenvector_basis="kronecker"`.
"""

import math

import keras
import numpy as np
from keras import ops


def split_size(n):
    """`(a, b)` with `a · b = n` and `a` the largest divisor of `n` not above `√n`
    (a prime `n` gives `(1, n)`: one dense factor)."""
    a = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return a, n // a


def balanced_width(n):
    """The smallest width `m ≥ n` whose split `a × b` has `a + b` within 25 % of `2√m`
    (the cheapest a Kronecker basis can be), to suggest in place of an unbalanced `n`."""
    m = n
    while sum(split_size(m)) > 1.25 * 2 * math.sqrt(m):
        m += 1
    return m


def random_orthogonal_factors(n):
    """The two orthogonal factors of a random `n × n` Kronecker-structured orthogonal
    matrix, as float64 arrays, drawn with Keras' (seedable) random generator."""
    return tuple(
        np.asarray(ops.convert_to_numpy(keras.initializers.Orthogonal()(shape=(m, m))), "float64")
        for m in split_size(n)
    )


def apply_right(x, left, right):
    """`x @ kron(left, right)` along the last axis of `x` (shape `(rows, a·b)`)."""
    a, b = left.shape[0], right.shape[0]
    blocks = ops.matmul(ops.reshape(x, (-1, a, b)), right)  # (rows, a, b) @ (b, b)
    blocks = ops.matmul(ops.transpose(left), blocks)  # (a, a) @ (rows, a, b), broadcast
    return ops.reshape(blocks, (-1, a * b))


def apply_left(left, right, matrix):
    """`kron(left, right) @ matrix` (`matrix` of shape `(a·b, m)`)."""
    a, b = left.shape[0], right.shape[0]
    blocks = ops.matmul(right, ops.reshape(matrix, (a, b, -1)))  # (b, b) @ (a, b, m), broadcast
    blocks = ops.matmul(left, ops.reshape(blocks, (a, -1)))  # (a, a) @ (a, b·m)
    return ops.reshape(blocks, (a * b, -1))


def dense(left, right):
    """`kron(left, right)` as a NumPy array (for tests and inspection)."""
    return np.kron(np.asarray(left), np.asarray(right))
