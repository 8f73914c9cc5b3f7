"""Pruning schedules: when to prune, and to which sparsity (the fraction removed).

Modelled on tensorflow-model-optimization's `ConstantSparsity` and `PolynomialDecay`:
a schedule maps a training step (the optimizer's iteration count) to
`(should_prune, sparsity)`. Pruning happens every `frequency` steps from `begin_step` to
`end_step` (`-1`: no end) inclusive.

The timing can be given in epochs instead (`begin_epoch`, `end_epoch`, numbers that may
be fractional): `EigenvaluePruning` turns it into steps when training starts, from the
number of steps per epoch that `fit` reports (`in_steps`). `frequency` stays in steps;
left out, it is a twentieth of the pruning span (or once per epoch without an end).
"""

import copy
import math

import keras

from keras_spectral.validation import _is_number, check_fraction, check_positive

PRUNING_STEPS_PER_SPAN = 20  # default number of pruning steps over an epoch-given span


def _check_step(name, value, allow_minus_one=False):
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (value >= 0 or (allow_minus_one and value == -1))
    if not ok:
        expected = "a non-negative integer or -1" if allow_minus_one else "a non-negative integer"
        raise ValueError(
            f"Received an invalid value for `{name}`, expected {expected}. Received: {name}={value!r}"
        )


def _check_epoch(name, value):
    if value is not None and not (_is_number(value) and value >= 0):
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a non-negative number of epochs. "
            f"Received: {name}={value!r}"
        )


class PruningSchedule:
    """Base class. Subclasses implement `sparsity_at(step)`."""

    def __init__(self, begin_step=0, end_step=-1, frequency=100, begin_epoch=None, end_epoch=None):
        self.begin_epoch, self.end_epoch = begin_epoch, end_epoch
        if self.in_epochs:
            if (begin_step, end_step) not in ((0, -1), (None, None)):
                raise ValueError(
                    "Give the timing in steps or in epochs, not both. Received: "
                    f"begin_step={begin_step!r}, end_step={end_step!r}, begin_epoch={begin_epoch!r}, "
                    f"end_epoch={end_epoch!r}"
                )
            _check_epoch("begin_epoch", begin_epoch)
            _check_epoch("end_epoch", end_epoch)
            if end_epoch is not None and end_epoch < (begin_epoch or 0):
                raise ValueError(
                    "`end_epoch` must be at least `begin_epoch`. Received: "
                    f"begin_epoch={begin_epoch}, end_epoch={end_epoch}"
                )
            begin_step, end_step = 0, -1  # set by in_steps()
        frequency = 100 if frequency is None and not self.in_epochs else frequency
        _check_step("begin_step", begin_step)
        _check_step("end_step", end_step, allow_minus_one=True)
        if frequency is not None and (not isinstance(frequency, int) or isinstance(frequency, bool) or frequency <= 0):
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

    @property
    def in_epochs(self):
        """Whether the timing is given in epochs (and must be turned into steps)."""
        return self.begin_epoch is not None or self.end_epoch is not None

    def in_steps(self, steps_per_epoch):
        """This schedule with its epoch timing turned into steps (itself if in steps)."""
        if not self.in_epochs:
            return self
        if not (isinstance(steps_per_epoch, int) and steps_per_epoch > 0):
            raise ValueError(
                "A schedule given in epochs needs the number of steps per epoch, which `fit` did not "
                f"report (a dataset of unknown length?): pass `steps_per_epoch` to fit, or give the schedule "
                f"in steps. Received: steps_per_epoch={steps_per_epoch!r}"
            )
        begin = int(round((self.begin_epoch or 0) * steps_per_epoch))
        end = -1 if self.end_epoch is None else int(round(self.end_epoch * steps_per_epoch))
        if end != -1 and self.end_epoch > (self.begin_epoch or 0):
            end = max(end, begin + 1)  # a span shorter than a step still spans one
        frequency = self.frequency or (
            steps_per_epoch if end == -1 else max(1, math.ceil((end - begin) / PRUNING_STEPS_PER_SPAN)))
        resolved = copy.copy(self)
        resolved.begin_epoch = resolved.end_epoch = None
        resolved.begin_step, resolved.end_step, resolved.frequency = begin, end, frequency
        resolved._check_span()
        return resolved

    def _check_span(self):
        """Checks of the step timing that a subclass needs (run once it is in steps)."""

    def _due(self, step):
        if self.in_epochs:
            raise ValueError(
                "This schedule is given in epochs: turn it into steps first with `in_steps(steps_per_epoch)` "
                "(EigenvaluePruning does so when training starts)."
            )

    def should_prune(self, step):
        self._due(step)
        if step < self.begin_step or (self.end_step != -1 and step > self.end_step):
            return False
        return (step - self.begin_step) % self.frequency == 0

    def sparsity_at(self, step):
        raise NotImplementedError

    def __call__(self, step):
        return self.should_prune(step), self.sparsity_at(step)

    def _timing_config(self):
        if self.in_epochs:
            return {"begin_epoch": self.begin_epoch, "end_epoch": self.end_epoch, "frequency": self.frequency}
        return {"begin_step": self.begin_step, "end_step": self.end_step, "frequency": self.frequency}

    def get_config(self):
        return self._timing_config()

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_spectral")
class ConstantSparsity(PruningSchedule):
    """Prune to `target_sparsity` at every pruning step.

    Example:

    >>> ConstantSparsity(0.8, begin_step=0, frequency=100)(200)
    (True, 0.8)
    >>> ConstantSparsity(0.8, begin_epoch=1).in_steps(50).begin_step
    50
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=None, begin_epoch=None, end_epoch=None):
        super().__init__(begin_step, end_step, frequency, begin_epoch, end_epoch)
        check_fraction("target_sparsity", target_sparsity)
        self.target_sparsity = float(target_sparsity)

    def sparsity_at(self, step):
        return self.target_sparsity

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, **self._timing_config()}


@keras.saving.register_keras_serializable(package="keras_spectral")
class PolynomialDecay(PruningSchedule):
    """Sparsity rising from `initial_sparsity` to `final_sparsity` between `begin_step` and
    `end_step` along `final + (initial - final) * (1 - t) ** power`, `t` the fraction of
    the way (as in tfmot). `end_step` (or `end_epoch`) must be given.

    Example:

    >>> schedule = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=1000, frequency=100)
    >>> round(schedule.sparsity_at(500), 4)
    0.7875
    >>> # Reach 90 % at 60 % of a 5-epoch fit, whatever the steps per epoch:
    >>> schedule = PolynomialDecay(0.0, 0.9, begin_epoch=0, end_epoch=3)
    """

    def __init__(
        self, initial_sparsity, final_sparsity, begin_step=None, end_step=None, power=3, frequency=None,
        begin_epoch=None, end_epoch=None,
    ):
        if begin_epoch is None and end_epoch is None:
            if end_step is None:
                raise ValueError(
                    "PolynomialDecay needs `end_step` (or `end_epoch`). Received: "
                    f"begin_step={begin_step}, end_step={end_step}"
                )
            begin_step = 0 if begin_step is None else begin_step
        elif end_epoch is None:
            raise ValueError(f"PolynomialDecay needs `end_epoch` with `begin_epoch`. Received: begin_epoch={begin_epoch}")
        super().__init__(begin_step, end_step, frequency, begin_epoch, end_epoch)
        check_fraction("initial_sparsity", initial_sparsity)
        check_fraction("final_sparsity", final_sparsity)
        if not self.in_epochs:
            self._check_span()
        if final_sparsity < initial_sparsity:
            raise ValueError(
                "`final_sparsity` must be at least `initial_sparsity`. Received: "
                f"initial_sparsity={initial_sparsity}, final_sparsity={final_sparsity}"
            )
        check_positive("power", power)
        self.initial_sparsity = float(initial_sparsity)
        self.final_sparsity = float(final_sparsity)
        self.power = power

    def _check_span(self):
        if self.end_step == -1 or self.end_step == self.begin_step:
            raise ValueError(
                "PolynomialDecay needs `end_step` > `begin_step` (for a schedule in epochs, an `end_epoch` at "
                f"least one step after `begin_epoch`). Received: begin_step={self.begin_step}, "
                f"end_step={self.end_step}"
            )

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
            "power": self.power,
            **self._timing_config(),
        }
