"""Weight-level sparsity by magnitude percentile (Chicchi et al., Phys. Rev. E 2021).

The rule: during training, the direct-space weights whose magnitude is below the p-th
percentile of `|w|` are zero at every step.

- `SpectralDense(..., kernel_sparsity=p)` applies it in the forward pass: the kernel formed
  from eigenvalues and eigenvectors is masked to its largest `1 - p` entries every step
  (and at inference), so the weights the network uses are exactly that sparse.
- `MagnitudeSparsity(p)`, a Keras constraint, applies it to a variable such as a `Dense`
  kernel: the optimizer calls it after every update and it zeroes the entries below the
  percentile.
"""

import math

import keras
from keras import ops

from keras_spectral.validation import check_fraction


def check_sparsity(name, value):
    """`None` or a fraction in [0, 1)."""
    if value is not None:
        check_fraction(name, value)


_BISECTION_STEPS = 24


def magnitude_mask(weights, sparsity):
    """1 where `|weights|` is among the largest `1 - sparsity` fraction, else 0; no gradient.

    The threshold is found by bisection on the magnitude (a fixed number of counting
    passes, several times faster than `top_k` or a sort on large kernels); it keeps at
    most `ceil((1 - sparsity) * size)` entries, fewer only by the entries within
    `range / 2**24` of the exact threshold.
    """
    magnitude = ops.stop_gradient(ops.abs(weights))
    size = math.prod(weights.shape)
    keep = max(1, math.ceil((1.0 - sparsity) * size))
    low, high = ops.min(magnitude), ops.max(magnitude)
    # Invariant: more than `keep` entries are >= low; at most `keep` are >= high.
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        too_many = ops.sum(ops.cast(magnitude >= middle, "int32")) > keep
        low = ops.where(too_many, middle, low)
        high = ops.where(too_many, high, middle)
    return ops.cast(magnitude >= high, weights.dtype)


@keras.saving.register_keras_serializable(package="keras_spectral")
class MagnitudeSparsity(keras.constraints.Constraint):
    """Constraint that zeroes the entries of a weight below the `sparsity` quantile of
    their magnitude (applied by the optimizer after every update).

    Example:

    >>> layer = keras.layers.Dense(500, kernel_constraint=MagnitudeSparsity(0.9))
    """

    def __init__(self, sparsity):
        check_sparsity("sparsity", sparsity)
        self.sparsity = float(sparsity)

    def __call__(self, w):
        if self.sparsity == 0:
            return w
        return w * magnitude_mask(w, self.sparsity)

    def get_config(self):
        return {"sparsity": self.sparsity}
