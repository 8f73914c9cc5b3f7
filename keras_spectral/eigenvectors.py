"""How a `SpectralDense` layer holds its eigenvector block φ.

Every mode stores φᵀ in Keras kernel layout, shape `(n_in, units)`, either whole or as
factors. A mode creates its weights on the layer with `add_weight`, returns φᵀ on demand
(`matrix`) and can also apply it to inputs without forming it (`project`, `x @ φᵀ`), so the
layer can choose the cheaper of the two evaluation orders (see `prefer_factored`).

| mode        | φ                        | trainable eigenvector parameters        |
|-------------|--------------------------|-----------------------------------------|
| `frozen`    | random, fixed            | 0                                       |
| `trainable` | full matrix              | `n_in * units`                          |
| `svd`       | `U diag(s) V`, U, V fixed | `min(n_in, units)` (the `s`)            |
| `qr`        | `R Q`, Q fixed orthonormal| `k*units - k*(k-1)/2`, `k = min(n_in, units)` (triangular R) |
| `lowrank`   | `A B`, both trained      | `rank * (n_in + units)`                 |

Decomposed modes start from the same random φ as `frozen` (drawn with the layer's
`eigenvectors_initializer`) and factor it exactly with NumPy (`lowrank`: its best rank-r
approximation), so changing the mode changes what is trained, not where training starts.
"""

import numpy as np
from keras import ops

MODES = ("frozen", "trainable", "svd", "qr", "lowrank")


def _constant(array):
    """An initializer that returns a precomputed array (used for factors of φ)."""

    def initializer(shape, dtype=None):
        return ops.cast(ops.convert_to_tensor(array), dtype)

    return initializer


class _Eigenvectors:
    """Base class: one way of holding φᵀ (shape `(n_in, units)`) on a layer."""

    takes_rank = False

    def __init__(self, layer, n_in, units, rank=None):
        self.layer = layer
        self.n_in = n_in
        self.units = units
        self.rank = rank

    def _add(self, name, shape, initializer, trainable):
        layer = self.layer
        return layer.add_weight(
            name=name,
            shape=shape,
            initializer=initializer,
            regularizer=layer.eigenvectors_regularizer if trainable else None,
            constraint=layer.eigenvectors_constraint if trainable else None,
            trainable=trainable,
        )

    def _initial_matrix(self):
        """φᵀ as drawn by the layer's `eigenvectors_initializer`, as a float64 array."""
        init = self.layer.eigenvectors_initializer
        value = init(shape=(self.n_in, self.units), dtype=self.layer.variable_dtype)
        return np.asarray(ops.convert_to_numpy(value), dtype="float64")

    def matrix(self, dtype):
        """φᵀ, shape `(n_in, units)`."""
        raise NotImplementedError

    def project(self, x, dtype):
        """`x @ φᵀ` without forming φᵀ (the factored order)."""
        return ops.matmul(x, self.matrix(dtype))

    def build_flops(self):
        """Multiply-adds to form φᵀ from its factors (0 when it is stored whole)."""
        return 0

    def project_flops(self, rows):
        """Multiply-adds of `project` on `rows` input rows."""
        return rows * self.n_in * self.units

    def prefer_factored(self, rows):
        """True when applying the factors to `rows` rows (twice: for `x` and `x * λ_in`)
        costs less than forming φᵀ and doing one dense matmul. `rows=None` (unknown batch
        size) keeps the dense order, whose cost does not grow with the factors' size."""
        if rows is None or self.build_flops() == 0:
            return False
        dense = self.build_flops() + rows * self.n_in * self.units
        return 2 * self.project_flops(rows) < dense


def _cast(weight, dtype):
    return ops.cast(weight, dtype)


class FrozenEigenvectors(_Eigenvectors):
    """φ drawn once at random and kept fixed."""

    trainable = False

    def build(self):
        self.weight = self._add(
            "eigenvectors",
            (self.n_in, self.units),
            self.layer.eigenvectors_initializer,
            self.trainable,
        )

    def matrix(self, dtype):
        return _cast(self.weight, dtype)


def seeded_matrix(seed, n_in, units):
    """φᵀ, shape `(n_in, units)`, uniform with unit variance (on ±√3), from the raw bits
    of NumPy's PCG64 generator with only exactly rounded arithmetic: the same numbers on
    every platform, backend and NumPy version, so φ need not be saved."""
    bits = np.random.PCG64(seed).random_raw(n_in * units)
    uniform = (bits >> np.uint64(11)).astype("float64") * 2.0**-53  # [0, 1), exact
    return ((2.0 * uniform - 1.0) * np.sqrt(3.0)).reshape(n_in, units)


def fingerprint(matrix):
    """Four numbers that tell one φ from another (checked when seeded weights load)."""
    matrix = np.asarray(matrix, dtype="float64")
    return np.array([matrix.sum(), (matrix**2).mean(), matrix.flat[0], matrix.flat[-1]])


class SeededEigenvectors(_Eigenvectors):
    """Frozen φ regenerated from `eigenvector_seed` instead of stored: a saved layer keeps
    only four fingerprint numbers of it, to detect a mismatched seed on load."""

    def build(self):
        phi = seeded_matrix(self.layer.eigenvector_seed, self.n_in, self.units)
        self.expected_fingerprint = fingerprint(phi)
        self.constant = ops.convert_to_tensor(phi.astype(self.layer.variable_dtype))
        self.fingerprint = self._add(
            "eigenvector_fingerprint", (4,), _constant(self.expected_fingerprint), False
        )

    def matrix(self, dtype):
        return _cast(self.constant, dtype)

    def check(self):
        stored = np.asarray(ops.convert_to_numpy(self.fingerprint), dtype="float64")
        if not np.allclose(stored, self.expected_fingerprint, rtol=1e-5, atol=1e-5):
            raise ValueError(
                f"Layer '{self.layer.name}' regenerates its eigenvectors from "
                f"eigenvector_seed={self.layer.eigenvector_seed}, but the loaded weights were "
                "saved with different eigenvectors (another seed). Load them into a layer "
                "with the seed they were saved with."
            )


class TrainableEigenvectors(FrozenEigenvectors):
    """φ trained in full (as many parameters as a Dense kernel)."""

    trainable = True


class SVDEigenvectors(_Eigenvectors):
    """φᵀ = Vᵀ diag(s) Uᵀ with the orthonormal bases fixed and the `k` scales `s` trained."""

    def build(self):
        u, s, vt = np.linalg.svd(self._initial_matrix(), full_matrices=False)
        k = s.shape[0]
        self.k = k
        self.basis_in = self._add("eigenvector_basis_in", (self.n_in, k), _constant(u), False)
        self.scales = self._add("eigenvector_scales", (k,), _constant(s), True)
        self.basis_out = self._add("eigenvector_basis_out", (k, self.units), _constant(vt), False)

    def matrix(self, dtype):
        scaled = _cast(self.basis_in, dtype) * _cast(self.scales, dtype)[None, :]
        return ops.matmul(scaled, _cast(self.basis_out, dtype))

    def project(self, x, dtype):
        h = ops.matmul(x, _cast(self.basis_in, dtype)) * _cast(self.scales, dtype)
        return ops.matmul(h, _cast(self.basis_out, dtype))

    def build_flops(self):
        return self.n_in * self.k * self.units

    def project_flops(self, rows):
        return rows * self.k * (self.n_in + self.units)


class QREigenvectors(_Eigenvectors):
    """φᵀ = Q R (the QR factorization of φᵀ, i.e. φ = Rᵀ Qᵀ): Q fixed with orthonormal
    columns, the upper-triangular R trained. Only R's triangle is stored."""

    def build(self):
        q, r = np.linalg.qr(self._initial_matrix(), mode="reduced")
        k = q.shape[1]
        self.k = k
        rows, cols = np.triu_indices(k, m=self.units)
        # Position of each (row, col) of R in the packed vector; the lower part points at
        # an extra trailing zero so R is formed with one gather.
        index = np.full((k, self.units), len(rows), dtype="int32")
        index[rows, cols] = np.arange(len(rows), dtype="int32")
        self._index = index
        self.basis = self._add("eigenvector_basis", (self.n_in, k), _constant(q), False)
        self.factor = self._add(
            "eigenvector_factor", (len(rows),), _constant(r[rows, cols]), True
        )

    def triangular_factor(self, dtype):
        """R, shape `(k, units)`, upper triangular."""
        packed = ops.concatenate([_cast(self.factor, dtype), ops.zeros((1,), dtype=dtype)])
        return ops.take(packed, self._index, axis=0)

    def matrix(self, dtype):
        return ops.matmul(_cast(self.basis, dtype), self.triangular_factor(dtype))

    def project(self, x, dtype):
        h = ops.matmul(x, _cast(self.basis, dtype))
        return ops.matmul(h, self.triangular_factor(dtype))

    def build_flops(self):
        return self.n_in * self.k * self.units

    def project_flops(self, rows):
        return rows * self.k * (self.n_in + self.units)


class LowRankEigenvectors(_Eigenvectors):
    """φᵀ = F_in F_out with both factors (`(n_in, rank)`, `(rank, units)`) trained."""

    takes_rank = True

    def build(self):
        u, s, vt = np.linalg.svd(self._initial_matrix(), full_matrices=False)
        r = self.rank
        root = np.sqrt(s[:r])
        self.factor_in = self._add(
            "eigenvector_factor_in", (self.n_in, r), _constant(u[:, :r] * root), True
        )
        self.factor_out = self._add(
            "eigenvector_factor_out", (r, self.units), _constant(root[:, None] * vt[:r]), True
        )

    def matrix(self, dtype):
        return ops.matmul(_cast(self.factor_in, dtype), _cast(self.factor_out, dtype))

    def project(self, x, dtype):
        h = ops.matmul(x, _cast(self.factor_in, dtype))
        return ops.matmul(h, _cast(self.factor_out, dtype))

    def build_flops(self):
        return self.n_in * self.rank * self.units

    def project_flops(self, rows):
        return rows * self.rank * (self.n_in + self.units)


_CLASSES = {
    "frozen": FrozenEigenvectors,
    "trainable": TrainableEigenvectors,
    "svd": SVDEigenvectors,
    "qr": QREigenvectors,
    "lowrank": LowRankEigenvectors,
}


def takes_rank(mode):
    return _CLASSES[mode].takes_rank


def make(mode, layer, n_in, units, rank=None, seeded=False):
    """The eigenvector holder for `mode` (already validated by the layer)."""
    if seeded:
        return SeededEigenvectors(layer, n_in, units, rank)
    return _CLASSES[mode](layer, n_in, units, rank)
