"""Pruning schedules: when to prune, and to which sparsity (the fraction removed).

Modelled on tensorflow-model-optimization's `ConstantSparsity` and `PolynomialDecay`:
a schedule maps a training step (the optimizer's iteration count) to
`(should_prune, sparsity)`. Pruning happens every `frequency` steps from `begin_step` to
`end_step` (`-1`: no end) inclusive.
"""

import keras

from keras_spectral.validation import check_fraction, check_positive


def _check_step(name, value, allow_minus_one=False):
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (value >= 0 or (allow_minus_one and value == -1))
    if not ok:
        expected = "a non-negative integer or -1" if allow_minus_one else "a non-negative integer"
        raise ValueError(
            f"Received an invalid value for `{name}`, expected {expected}. Received: {name}={value!r}"
        )


class PruningSchedule:
    """Base class. Subclasses implement `sparsity_at(step)`."""

    def __init__(self, begin_step=0, end_step=-1, frequency=100):
        _check_step("begin_step", begin_step)
        _check_step("end_step", end_step, allow_minus_one=True)
        if not isinstance(frequency, int) or isinstance(frequency, bool) or frequency <= 0:
            raise ValueError(
                "Received an invalid value for `frequency`, expected a positive integer. "
                f"Received: frequency={frequency!r}"
            )
        if end_step != -1 and end_step < begin_step:
            raise ValueError(
                "`end_step` must be -1 or at least `begin_step`. Received: "
                f"begin_step={begin_step}, end_step={end_step}"
            )
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency

    def should_prune(self, step):
        if step < self.begin_step or (self.end_step != -1 and step > self.end_step):
            return False
        return (step - self.begin_step) % self.frequency == 0

    def sparsity_at(self, step):
        raise NotImplementedError

    def __call__(self, step):
        return self.should_prune(step), self.sparsity_at(step)

    def get_config(self):
        return {"begin_step": self.begin_step, "end_step": self.end_step, "frequency": self.frequency}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_spectral")
class ConstantSparsity(PruningSchedule):
    """Prune to `target_sparsity` at every pruning step.

    Example:

    >>> ConstantSparsity(0.8, begin_step=0, frequency=100)(200)
    (True, 0.8)
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        super().__init__(begin_step, end_step, frequency)
        check_fraction("target_sparsity", target_sparsity)
        self.target_sparsity = float(target_sparsity)

    def sparsity_at(self, step):
        return self.target_sparsity

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, **super().get_config()}


@keras.saving.register_keras_serializable(package="keras_spectral")
class PolynomialDecay(PruningSchedule):
    """Sparsity rising from `initial_sparsity` to `final_sparsity` between `begin_step` and
    `end_step` along `final + (initial - final) * (1 - t) ** power`, `t` the fraction of
    the way (as in tfmot). `end_step` must be given.

    Example:

    >>> schedule = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=1000, frequency=100)
    >>> round(schedule.sparsity_at(500), 4)
    0.7875
    """

    def __init__(
        self, initial_sparsity, final_sparsity, begin_step, end_step, power=3, frequency=100
    ):
        super().__init__(begin_step, end_step, frequency)
        check_fraction("initial_sparsity", initial_sparsity)
        check_fraction("final_sparsity", final_sparsity)
        if end_step == -1 or end_step == begin_step:
            raise ValueError(
                "PolynomialDecay needs `end_step` > `begin_step`. Received: "
                f"begin_step={begin_step}, end_step={end_step}"
            )
        if final_sparsity < initial_sparsity:
            raise ValueError(
                "`final_sparsity` must be at least `initial_sparsity`. Received: "
                f"initial_sparsity={initial_sparsity}, final_sparsity={final_sparsity}"
            )
        check_positive("power", power)
        self.initial_sparsity = float(initial_sparsity)
        self.final_sparsity = float(final_sparsity)
        self.power = power

    def should_prune(self, step):
        # Also prune once more at `end_step` itself, so the final sparsity is reached.
        return super().should_prune(step) or step == self.end_step

    def sparsity_at(self, step):
        t = min(max(step - self.begin_step, 0) / (self.end_step - self.begin_step), 1.0)
        span = self.initial_sparsity - self.final_sparsity
        return self.final_sparsity + span * (1.0 - t) ** self.power

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }
