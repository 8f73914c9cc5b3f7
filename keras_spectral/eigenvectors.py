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
| `qr_full`   | `R Q`, Q fixed orthonormal| `k*units` (the whole R, as the authors train it) |
| `lowrank`   | `A B`, both trained      | `rank * (n_in + units)`                 |

Decomposed modes start from the same random φ as `frozen` (drawn with the layer's
`eigenvectors_initializer`) and factor it exactly with NumPy (`lowrank`: its best rank-r
approximation, rescaled to φ's norm), so changing the mode changes what is trained, not where training starts.

With `eigenvector_basis="kronecker"`, `svd` and `qr` instead take their fixed bases from
random Kronecker-structured orthogonal matrices (`keras_spectral.kronecker`), which cost
`n · (a + b)` rather than `n²` per vector to apply; the trained factor starts from the
initializer's φ (its singular values, or its triangular factor), so φ starts with the same
singular values or column Gram matrix but other, structured, singular vectors. `frozen`
with `eigenvector_basis="kronecker"` is that structure with equal, fixed scales (no
factorization at build, nothing trained): an eigenvalues-only layer at `O(n^1.5)` cost.
"""

import warnings

import numpy as np
from keras import ops

from keras_spectral import kronecker, triangular

MODES = ("frozen", "trainable", "svd", "qr", "qr_full", "lowrank")


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
            autocast=False,  # the kernel is formed in float32 under mixed precision
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
        # Every assignment of the fingerprint (`set_weights` of the layer or of a model,
        # `load_weights`, a direct `assign`) is checked against this layer's φ, so weights
        # trained with other eigenvectors are refused instead of giving a wrong kernel.
        assign = self.fingerprint.assign

        def checked_assign(value):
            self.check(value)
            return assign(value)

        self.fingerprint.assign = checked_assign

    def matrix(self, dtype):
        return _cast(self.constant, dtype)

    def check(self, value):
        """Raise if `value` (a fingerprint about to be assigned) is not this layer's.
        Values that are not concrete (traced inside a compiled step) are not checked:
        they are copies of the variable itself."""
        try:
            stored = np.asarray(ops.convert_to_numpy(value), dtype="float64")
        except Exception:  # a symbolic tensor or tracer: nothing concrete to compare
            return
        if stored.shape != (4,) or not np.allclose(
            stored, self.expected_fingerprint, rtol=1e-5, atol=1e-5
        ):
            raise ValueError(
                f"Layer '{self.layer.name}' regenerates its eigenvectors from "
                f"eigenvector_seed={self.layer.eigenvector_seed}, but the weights given to it "
                "were made with different eigenvectors (another seed): their kernel would be "
                "wrong here. Use a layer with the seed the weights were made with."
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
        self.basis = self._add("eigenvector_basis", (self.n_in, q.shape[1]), _constant(q), False)
        self._add_factor(r)

    def _add_factor(self, r):
        """Store the upper triangle of R (`(k, units)`) as one trained vector."""
        self.k = r.shape[0]
        packed = triangular.pack(r)
        self.factor = self._add("eigenvector_factor", packed.shape, _constant(packed), True)

    def triangular_factor(self, dtype):
        """R, shape `(k, units)`: upper triangular (`qr`) or whole (`qr_full`)."""
        return triangular.unpack(_cast(self.factor, dtype), self.k, self.units, dtype)

    def matrix(self, dtype):
        return ops.matmul(_cast(self.basis, dtype), self.triangular_factor(dtype))

    def project(self, x, dtype):
        h = ops.matmul(x, _cast(self.basis, dtype))
        return ops.matmul(h, self.triangular_factor(dtype))

    def build_flops(self):
        return self.n_in * self.k * self.units

    def project_flops(self, rows):
        return rows * self.k * (self.n_in + self.units)


class _FullFactor:
    """Mixin: R trained whole, `(k, units)`, as in the authors' code (Chicchi et al. 2021):
    it starts triangular and stops being so after the first step."""

    def _add_factor(self, r):
        self.k = r.shape[0]
        self.factor = self._add("eigenvector_factor", r.shape, _constant(r), True)

    def triangular_factor(self, dtype):
        return _cast(self.factor, dtype)


class FullQREigenvectors(_FullFactor, QREigenvectors):
    """φᵀ = Q R with Q fixed (orthonormal columns) and the whole `(k, units)` R trained."""


class LowRankEigenvectors(_Eigenvectors):
    """φᵀ = F_in F_out with both factors (`(n_in, rank)`, `(rank, units)`) trained."""

    takes_rank = True

    def build(self):
        u, s, vt = np.linalg.svd(self._initial_matrix(), full_matrices=False)
        r = self.rank
        # The best rank-r approximation of φ, rescaled to φ's Frobenius norm so the
        # kernel starts at the scale the initializer chose (truncation alone would shrink
        # it by about sqrt(r / k)).
        # A zero φ (`eigenvectors_initializer="zeros"`) has nothing to rescale: it stays
        # zero, and so do both factors' gradients, which the warning says.
        kept = np.sum(s[:r] ** 2)
        if kept > 0:
            s = s * np.sqrt(np.sum(s**2) / kept)
        else:
            warnings.warn(
                f"Layer '{self.layer.name}': the eigenvector initializer gave φ = 0, so both low-rank "
                "factors start at 0 and receive zero gradients (the layer outputs its bias and "
                "stays there). Use a non-zero `eigenvectors_initializer` to train φ.",
                stacklevel=4,
            )
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


def _pad(x, rows=None, cols=None):
    """Zero-pad a 2-D tensor at the end to `rows` rows and/or `cols` columns."""
    extra = [(rows or x.shape[0]) - x.shape[0], (cols or x.shape[1]) - x.shape[1]]
    return x if extra == [0, 0] else ops.pad(x, [[0, extra[0]], [0, extra[1]]])


def _rows(x, n):
    """`x` as a matrix of rows of length `n`, and a function restoring its leading axes."""
    lead = [-1 if d is None else d for d in x.shape[:-1]]
    return ops.reshape(x, (-1, n)), lambda y: ops.reshape(y, (*lead, y.shape[-1]))


class _KroneckerBasis:
    """Mixin: fixed bases that are the leading rows/columns of Kronecker-structured
    orthogonal matrices (`keras_spectral.kronecker`), applied without forming them."""

    def _add_kronecker(self, name, n):
        a, b = kronecker.split_size(n)
        if n > 32 and a + b > n / 2:  # e.g. a prime n: one dense n × n factor
            balanced = kronecker.balanced_width(n)
            warnings.warn(
                f"Layer '{self.layer.name}': {n} = {a} × {b} has no divisor near √{n}, so its "
                f"Kronecker basis costs {n * (a + b):,} multiply-adds per row, no fewer than "
                f"about half a dense basis' {n * n:,}. For the speed-up choose a width with a balanced "
                f"factorisation (the next is {balanced} = {' × '.join(map(str, kronecker.split_size(balanced)))}), "
                'or pass eigenvector_basis="dense".',
                stacklevel=5,
            )
        left, right = kronecker.random_orthogonal_factors(n)
        return (
            self._add(f"{name}_left", left.shape, _constant(left), False),
            self._add(f"{name}_right", right.shape, _constant(right), False),
        )

    @staticmethod
    def _factors(pair, dtype):
        return tuple(_cast(w, dtype) for w in pair)

    @staticmethod
    def _apply_flops(n):
        return n * sum(kronecker.split_size(n))


class KroneckerSVDEigenvectors(_KroneckerBasis, SVDEigenvectors):
    """φᵀ = Vᵀ diag(s) Uᵀ with Vᵀ the first `k` columns of an `n_in × n_in` and Uᵀ the
    first `k` rows of a `units × units` Kronecker-structured random orthogonal matrix;
    the scales `s` start at the singular values of the initializer's φ."""

    def build(self):
        s = np.linalg.svd(self._initial_matrix(), compute_uv=False)
        self.k = s.shape[0]
        self.basis_in = self._add_kronecker("eigenvector_basis_in", self.n_in)
        self.scales = self._add("eigenvector_scales", (self.k,), _constant(s), True)
        self.basis_out = self._add_kronecker("eigenvector_basis_out", self.units)

    def matrix(self, dtype):
        scaled = _pad(ops.diag(_cast(self.scales, dtype)), cols=self.units)  # [diag(s) | 0]
        rows_out = kronecker.apply_right(scaled, *self._factors(self.basis_out, dtype))
        return kronecker.apply_left(*self._factors(self.basis_in, dtype), _pad(rows_out, rows=self.n_in))

    def project(self, x, dtype):
        x, restore = _rows(x, self.n_in)
        h = kronecker.apply_right(x, *self._factors(self.basis_in, dtype))[:, : self.k]
        h = _pad(h * _cast(self.scales, dtype), cols=self.units)
        return restore(kronecker.apply_right(h, *self._factors(self.basis_out, dtype)))

    def build_flops(self):
        return self.k * self._apply_flops(self.units) + self.units * self._apply_flops(self.n_in)

    def project_flops(self, rows):
        return rows * (self._apply_flops(self.n_in) + self._apply_flops(self.units))


class KroneckerFrozenEigenvectors(KroneckerSVDEigenvectors):
    """Frozen φᵀ = c · Vᵀ Uᵀ, the SVD form with every scale equal to
    `c = sqrt(n_in · units / k)` (so φ's entries have unit variance, like the default
    N(0, 1) φ) and nothing trained: an eigenvalues-only layer whose φ costs
    `O(n^1.5)` to apply and to store instead of `O(n_in · units)`. No SVD is taken and
    `eigenvectors_initializer` is not used."""

    def build(self):
        self.k = min(self.n_in, self.units)
        scale = np.full((self.k,), np.sqrt(self.n_in * self.units / self.k))
        self.basis_in = self._add_kronecker("eigenvector_basis_in", self.n_in)
        self.scales = self._add("eigenvector_scales", (self.k,), _constant(scale), False)
        self.basis_out = self._add_kronecker("eigenvector_basis_out", self.units)


class KroneckerQREigenvectors(_KroneckerBasis, QREigenvectors):
    """φᵀ = Q R with Q the first `k` columns of an `n_in × n_in` Kronecker-structured
    random orthogonal matrix and the upper-triangular R trained; R starts at the
    triangular factor of the initializer's φᵀ."""

    def build(self):
        r = np.linalg.qr(self._initial_matrix(), mode="r")
        self.basis = self._add_kronecker("eigenvector_basis", self.n_in)
        self._add_factor(r)

    def matrix(self, dtype):
        factor = _pad(self.triangular_factor(dtype), rows=self.n_in)
        return kronecker.apply_left(*self._factors(self.basis, dtype), factor)

    def project(self, x, dtype):
        x, restore = _rows(x, self.n_in)
        h = kronecker.apply_right(x, *self._factors(self.basis, dtype))[:, : self.k]
        return restore(ops.matmul(h, self.triangular_factor(dtype)))

    def build_flops(self):
        return self.units * self._apply_flops(self.n_in)

    def project_flops(self, rows):
        return rows * (self._apply_flops(self.n_in) + self.k * self.units)


class KroneckerFullQREigenvectors(_FullFactor, KroneckerQREigenvectors):
    """Kronecker-structured Q, whole R trained."""


BASES = ("dense", "kronecker")
_KRONECKER_CLASSES = {
    "frozen": KroneckerFrozenEigenvectors,
    "svd": KroneckerSVDEigenvectors,
    "qr": KroneckerQREigenvectors,
    "qr_full": KroneckerFullQREigenvectors,
}

_CLASSES = {
    "frozen": FrozenEigenvectors,
    "trainable": TrainableEigenvectors,
    "svd": SVDEigenvectors,
    "qr": QREigenvectors,
    "qr_full": FullQREigenvectors,
    "lowrank": LowRankEigenvectors,
}


def takes_rank(mode):
    return _CLASSES[mode].takes_rank


def takes_basis(mode):
    """Whether `mode` has fixed bases that `eigenvector_basis` can choose."""
    return mode in _KRONECKER_CLASSES


def kronecker_by_default(mode):
    """Whether `mode` uses Kronecker bases unless told otherwise (the decomposed modes;
    `frozen` keeps its stored random φ, the method's reference)."""
    return mode in ("svd", "qr", "qr_full")


def make(mode, layer, n_in, units, rank=None, seeded=False, basis="dense"):
    """The eigenvector holder for `mode` (already validated by the layer)."""
    if seeded:
        return SeededEigenvectors(layer, n_in, units, rank)
    if basis == "kronecker":
        return _KRONECKER_CLASSES[mode](layer, n_in, units, rank)
    return _CLASSES[mode](layer, n_in, units, rank)
