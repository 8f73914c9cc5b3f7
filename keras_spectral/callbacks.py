"""`EigenvaluePruning`: remove hidden nodes during `fit`, on a schedule, to a budget, with
an optional guard on a monitored metric (the callback of `keras_spectral.pruning`)."""

import warnings

import keras
from keras import ops

from keras_spectral.importance import NonFiniteScoresError
from keras_spectral.pruning import (
    _check_options,
    _plan,
    _sync_jax_state,
    node_sparsity,
    prunable_groups,
    prune_nodes,
)
from keras_spectral.schedules import PruningSchedule
from keras_spectral.validation import _is_number, check_choice, check_exactly_one, check_non_negative


class EigenvaluePruning(keras.callbacks.Callback):
    """Remove hidden nodes during `fit`, on a schedule, to a budget.

    At each pruning step (the optimizer's iteration count, so a resumed run continues the
    schedule) nodes are removed either down to the schedule's sparsity (the fraction of
    `budget` removed, as `prune_nodes`'s `fraction`) or, with `threshold`, wherever the
    score is below it. Masks are weights of the spectral layers, so they are saved with
    the model and restored by `BackupAndRestore`. At each epoch end the fraction removed
    per node group is added to the logs as `node_sparsity/<group name>`.

    Args:
        schedule: A `keras_spectral.schedules` schedule (`ConstantSparsity`,
            `PolynomialDecay`), in steps or in epochs (`PolynomialDecay(0.0, 0.5,
            begin_epoch=0, end_epoch=3)`: turned into steps when `fit` starts).
        threshold: Instead of a schedule: an absolute score below which nodes are removed,
            applied every `frequency` steps from `begin_step` to `end_step`.
        score, scope, budget, normalizer, max_fraction, ignored_layers, round_to, data,
            loss: As in `prune_nodes` (`data`: the batches whose gradients rank the nodes
            at each pruning step for `score="taylor"`). A cost budget the schedule cannot
            reach is refused when training starts.
        frequency, begin_step, end_step: Timing, with `threshold` only (defaults 100, 0
            and -1: every 100 steps from the start, without end); a schedule carries its
            own timing.
        monitor: A guard: the metric to watch (e.g. `"val_accuracy"`), read from the logs
            at each epoch end. None (default): no guard.
        max_drop: How far `monitor` may fall below its value before pruning (rise above
            it, for a loss) before the guard acts.
        baseline: The value before pruning; default: the best value at an epoch end
            before the first pruning step of this `fit` (the first epoch's value if
            pruning starts at once: start at `begin_epoch=1` for a true one).
        on_drop: `"stop"` (default): remove no more nodes for the rest of the run (those
            removed stay removed), with a warning; `"warn"`: warn and go on.
        mode: `"auto"` (a name with "loss" or "error" is minimized), `"min"` or `"max"`.
        verbose: 1 prints the sparsity after each pruning step.

    Steps are optimizer steps, also with `compile(..., steps_per_execution=k)`: the
    callback then runs once per k steps and prunes at the first chance after a scheduled
    step, to the schedule's sparsity at that step. If an eigenvalue becomes NaN or infinite
    (a diverging run), pruning stops for the rest of the run with a warning, and no mask is
    set from such scores; `keras.callbacks.TerminateOnNaN` ends such a run.

    Example:

    >>> callback = EigenvaluePruning(PolynomialDecay(0.0, 0.9, begin_step=0, end_step=2000))
    >>> model.fit(x, y, epochs=10, callbacks=[callback])  # doctest: +SKIP
    >>> # Half the multiply-adds by epoch 3, stopping if validation accuracy falls 2 points:
    >>> callback = EigenvaluePruning(PolynomialDecay(0.0, 0.5, begin_epoch=1, end_epoch=3),
    ...                              budget="multiply_adds", scope="global", score="l2",
    ...                              monitor="val_accuracy", max_drop=0.02)  # doctest: +SKIP
    """

    def __init__(
        self,
        schedule=None,
        threshold=None,
        score="l1",
        scope="layer",
        budget="nodes",
        normalizer="mean",
        max_fraction=1.0,
        ignored_layers=None,
        round_to=None,
        data=None,
        loss=None,
        frequency=None,
        begin_step=None,
        end_step=None,
        monitor=None,
        max_drop=None,
        baseline=None,
        on_drop="stop",
        mode="auto",
        verbose=0,
    ):
        super().__init__()
        _check_options(score, scope, budget, normalizer, max_fraction, round_to)
        check_exactly_one(schedule=schedule, threshold=threshold)
        if schedule is not None and not isinstance(schedule, PruningSchedule):
            raise TypeError(
                "Received an invalid value for `schedule`, expected a keras_spectral "
                f"PruningSchedule such as ConstantSparsity. Received: schedule={schedule!r}"
            )
        timing = dict(frequency=frequency, begin_step=begin_step, end_step=end_step)
        given = {name: value for name, value in timing.items() if value is not None}
        if schedule is not None and given:
            raise ValueError(
                f"{', '.join(f'`{name}`' for name in given)} apply only with `threshold=`; a "
                "schedule carries its own timing (pass them to the schedule instead). "
                f"Received: schedule={schedule!r}, "
                + ", ".join(f"{name}={value!r}" for name, value in given.items())
            )
        if threshold is not None:
            check_non_negative("threshold", threshold)
        if score == "taylor" and data is None:
            raise ValueError("score='taylor' needs `data`: (x, y) arrays or batches whose loss gradients rank the nodes.")
        self._check_guard(monitor, max_drop, baseline, on_drop, mode)
        self.schedule = schedule  # as given (in epochs, or steps); `timing` is it in steps
        self.threshold = threshold
        self.timing = schedule or PruningSchedule(
            0 if begin_step is None else begin_step,
            -1 if end_step is None else end_step,
            100 if frequency is None else frequency,
        )
        self.score = score
        self.scope = scope
        self.options = dict(budget=budget, normalizer=normalizer, max_fraction=max_fraction,
                            ignored_layers=ignored_layers, round_to=round_to)
        self.data, self.loss = data, loss
        self.monitor, self.max_drop, self.baseline, self.on_drop = monitor, max_drop, baseline, on_drop
        self.mode = mode
        self.verbose = verbose
        self._step = None
        self.stopped_reason = None

    @staticmethod
    def _check_guard(monitor, max_drop, baseline, on_drop, mode):
        check_choice("on_drop", on_drop, ("stop", "warn"))
        check_choice("mode", mode, ("auto", "min", "max"))
        if monitor is None:
            if max_drop is not None or baseline is not None:
                raise ValueError(
                    "`max_drop` and `baseline` belong to the guard: name the metric to watch with `monitor=` "
                    f"(e.g. 'val_accuracy'). Received: max_drop={max_drop!r}, baseline={baseline!r}"
                )
            return
        if not isinstance(monitor, str):
            raise TypeError(f"Received an invalid value for `monitor`, expected a metric name. Received: monitor={monitor!r}")
        check_non_negative("max_drop", max_drop)
        if baseline is not None and not _is_number(baseline):
            raise ValueError(f"Received an invalid value for `baseline`, expected a number. Received: baseline={baseline!r}")

    def _prune_options(self, fraction):
        gradients = dict(data=self.data, loss=self.loss) if self.score == "taylor" else {}
        if self.threshold is not None:
            return dict(threshold=self.threshold, score=self.score,
                        ignored_layers=self.options["ignored_layers"], **gradients)
        return dict(fraction=fraction, score=self.score, scope=self.scope, **self.options, **gradients)

    def on_train_begin(self, logs=None):
        prunable_groups(self.model, self.score)  # fail early on an unsupported model
        # Epochs become steps at every fit (the steps per epoch may differ between fits).
        given = self.schedule if self.schedule is not None else self.timing
        self.timing = given.in_steps(self.params.get("steps") if self.params else None)
        if self.schedule is not None:
            if self.options["budget"] != "nodes":  # refuse an unreachable budget now, not mid-run
                final = max(self.timing.sparsity_at(s) for s in (self.timing.begin_step, self.timing.end_step))
                _plan(self.model, **{**self._prune_options(final), "score": "l2" if self.score == "taylor" else self.score,
                                     "data": None, "loss": None, "warn": False})
        self._step = None
        self.stopped_reason = None
        self._pruned = False
        self._before = self.baseline  # the guard's reference value
        self._warned_drop = False

    def on_train_batch_begin(self, batch, logs=None):
        if self._step is None:  # read once per fit: after BackupAndRestore has restored it
            _sync_jax_state(self.model)
            self._step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
            self._checked = self._step
        self._begin = batch
        step = self._step
        # Once per execution of `steps_per_execution` steps: prune if any scheduled
        # pruning step came since the last check.
        due = any(self.timing.should_prune(s) for s in range(self._checked, step + 1))
        self._checked = step + 1
        if not due or self.stopped_reason is not None:
            return
        _sync_jax_state(self.model)
        fraction = None if self.threshold is not None else self.timing.sparsity_at(step)
        try:
            sparsity = prune_nodes(self.model, **self._prune_options(fraction))
        except NonFiniteScoresError as error:
            self._stop(f"EigenvaluePruning stopped at step {step}: {error}")
            return
        self._pruned = True
        if self.verbose:
            report = ", ".join(f"{name}: {value:.3f}" for name, value in sparsity.items())
            print(f"\nEigenvaluePruning step {step}: node sparsity {report}")

    def _stop(self, reason):
        self.stopped_reason = reason
        warnings.warn(reason, RuntimeWarning, stacklevel=3)

    def on_train_batch_end(self, batch, logs=None):
        self._step += batch - self._begin + 1  # the optimizer steps this execution took

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name, value in node_sparsity(self.model).items():
                logs[f"node_sparsity/{name}"] = value
        if self.monitor is not None:
            self._guard(epoch, logs or {})

    def _guard(self, epoch, logs):
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"EigenvaluePruning's guard: `{self.monitor}` is not in the logs (available: "
                          f"{sorted(logs)}); pass validation_data to fit for a val_ metric.", RuntimeWarning, stacklevel=2)
            return
        value = float(value)
        lower = self.mode == "min" or (self.mode == "auto" and ("loss" in self.monitor or "error" in self.monitor))
        if self._before is None or (not self._pruned and self.baseline is None):
            better = self._before is None or (value < self._before if lower else value > self._before)
            self._before = value if better else self._before
            if not self._pruned:
                return
        drop = (value - self._before) if lower else (self._before - value)
        if drop <= self.max_drop or self.stopped_reason is not None:
            return
        message = (f"EigenvaluePruning's guard at epoch {epoch + 1}: {self.monitor} = {value:.4g}, "
                   f"{drop:.4g} {'above' if lower else 'below'} its value before pruning ({self._before:.4g}; "
                   f"max_drop={self.max_drop})")
        if self.on_drop == "stop":
            self._stop(message + ": no more nodes are removed in this run.")
        elif not self._warned_drop:
            self._warned_drop = True
            warnings.warn(message + ".", RuntimeWarning, stacklevel=2)
