"""Eigenvalue-driven node pruning: score hidden nodes by their eigenvalues, remove the
weakest, during `fit` (`EigenvaluePruning`) or after it (`prune_nodes`).

A hidden node sits between a producing layer (whose output it is) and a consuming layer
(whose input it is). Its spectral knobs are `|λ_out|` of the producer and `|λ_in|` of the
consumer; `score` picks how they rank nodes:

- `"in"`: `|λ_in|` of the consuming layer. In `w = φᵀ ⊙ (λ_in − λ_out)` the node's whole
  outgoing row scales with `λ_in` on top of the part shared by all rows.
- `"out"`: `|λ_out|` of the producing layer (the criterion of Buffoni et al., 2022, whose
  layers train `λ_out` alone).
- `"sum"` (default): `|λ_out| + |λ_in|`, both knobs of the node.
- `"product"`: `|λ_out| · |λ_in|`.

The default was chosen by experiment (`benchmarks/sparsity.py nodes` records the
accuracy after pruning with every score; see `docs/sparsity.md`).

Removing a node sets its mask to 0 and its eigenvalue to 0: in the producer when it is a
`SpectralDense` (its column of weights vanishes and the node outputs the constant
`activation(bias)`, which `compact` folds into the next layer's bias), otherwise in the
consumer (its row vanishes). Removed nodes stay removed.
"""

import warnings

import keras
import numpy as np
from keras import ops

from keras_spectral import topology
from keras_spectral.layers import SpectralDense
from keras_spectral.schedules import PruningSchedule
from keras_spectral.validation import (
    check_choice,
    check_exactly_one,
    check_fraction,
    check_non_negative,
)

SCORES = ("in", "out", "sum", "product")
SCOPES = ("layer", "global")


class NonFiniteScoresError(ValueError):
    """Raised when nodes would be ranked by NaN or infinite eigenvalues (a diverged run)."""


def _values(variable):
    return np.asarray(ops.convert_to_numpy(variable), dtype="float64")


class _HiddenLayer:
    """The nodes between a producing and a consuming fully connected layer."""

    def __init__(self, producer, consumer):
        self.producer = producer
        self.consumer = consumer
        self.size = producer.units

    @property
    def name(self):
        return self.producer.name

    def _mask_variable(self):
        if isinstance(self.producer, SpectralDense):
            return self.producer.eigenvalues_out_mask, self.producer.eigenvalues_out
        return self.consumer.eigenvalues_in_mask, self.consumer.eigenvalues_in

    def active(self):
        """Boolean array: which nodes are still present."""
        alive = np.ones(self.size, dtype=bool)
        if isinstance(self.producer, SpectralDense):
            alive &= _values(self.producer.eigenvalues_out_mask) != 0
        if isinstance(self.consumer, SpectralDense):
            alive &= _values(self.consumer.eigenvalues_in_mask) != 0
        return alive

    def _needs(self, score):
        """(needs the producer's λ_out, needs the consumer's λ_in) for a score."""
        return score in ("out", "sum", "product"), score in ("in", "sum", "product")

    def can_score(self, score):
        needs_out, needs_in = self._needs(score)
        return (not needs_out or isinstance(self.producer, SpectralDense)) and (
            not needs_in or isinstance(self.consumer, SpectralDense)
        )

    def scores(self, score):
        needs_out, needs_in = self._needs(score)
        lam_out = np.abs(_values(self.producer.eigenvalues_out)) if needs_out else None
        lam_in = np.abs(_values(self.consumer.eigenvalues_in)) if needs_in else None
        if score == "in":
            return lam_in
        if score == "out":
            return lam_out
        return lam_out + lam_in if score == "sum" else lam_out * lam_in

    def finite_scores(self, score):
        """`scores(score)`, checked: a NaN or infinite score of a node still present
        raises `NonFiniteScoresError` naming the layers (removed nodes do not count)."""
        values = self.scores(score)
        bad = ~np.isfinite(values) & self.active()
        if bad.any():
            raise NonFiniteScoresError(
                f"Hidden layer '{self.name}' has {int(bad.sum())} node(s) with non-finite "
                f"eigenvalues (NaN or inf; read from '{self.producer.name}' and/or "
                f"'{self.consumer.name}' with score={score!r}), so its nodes cannot be ranked; "
                "nothing was pruned. The training has probably diverged: lower the learning "
                "rate, or stop such runs with keras.callbacks.TerminateOnNaN."
            )
        return values

    def remove(self, nodes):
        """Mask the given node indices (and zero their eigenvalue)."""
        if not len(nodes):
            return
        mask, eigenvalues = self._mask_variable()
        keep = np.ones(self.size, dtype="float32")
        keep[nodes] = 0.0
        mask.assign(ops.cast(_values(mask) * keep, mask.dtype))
        eigenvalues.assign(ops.cast(_values(eigenvalues) * keep, eigenvalues.dtype))


def hidden_layers(model):
    """The hidden layers of nodes of a chain of fully connected layers."""
    pairs = topology.hidden_layers(topology.layer_chain(model))
    if not pairs:
        raise ValueError(f"Model '{model.name}' has no hidden layer of nodes to prune.")
    return [_HiddenLayer(producer, consumer) for producer, consumer in pairs]


def node_sparsity(model):
    """`{hidden layer name: fraction of its nodes removed}`."""
    return {h.name: float(1.0 - h.active().mean()) for h in hidden_layers(model)}


def prunable_layers(model, score):
    """The hidden layers that `score` can rank: those whose needed neighbours are
    SpectralDense (`"out"`: the producer, `"in"`: the consumer, others: both)."""
    check_choice("score", score, SCORES)
    layers = [h for h in hidden_layers(model) if h.can_score(score)]
    if not layers:
        raise ValueError(
            f"No hidden layer of model '{model.name}' can be scored with score={score!r}: "
            "it needs SpectralDense layers on the sides it reads (see `SCORES`)."
        )
    return layers


def node_scores(model, score="sum"):
    """`{hidden layer name: score per node}` for the layers `score` can rank."""
    return {h.name: h.scores(score) for h in prunable_layers(model, score)}


def prune_nodes(model, fraction=None, threshold=None, score="sum", scope="layer"):
    """Remove hidden nodes by eigenvalue score, in place; returns `node_sparsity(model)`.

    Only hidden layers that `score` can rank are pruned (`prunable_layers`).

    Args:
        model: A built chain of SpectralDense / Dense (/ Dropout) layers.
        fraction: Target fraction of hidden nodes removed, in [0, 1): per prunable layer
            (`scope="layer"`) or over all hidden nodes (`scope="global"`, at least one
            node kept per layer). Already removed nodes count towards it.
        threshold: Alternatively, remove every node whose score is below this
            non-negative number.
        score: How nodes are ranked, one of `SCORES`.
        scope: `"layer"` or `"global"` (used with `fraction`).

    Example:

    >>> prune_nodes(model, fraction=0.9)  # doctest: +SKIP
    {'spectral_dense': 0.9, 'spectral_dense_1': 0.9}
    """
    check_choice("score", score, SCORES)
    check_choice("scope", scope, SCOPES)
    check_exactly_one(fraction=fraction, threshold=threshold)
    if fraction is not None:
        check_fraction("fraction", fraction)
    if threshold is not None:
        check_non_negative("threshold", threshold)
    layers = prunable_layers(model, score)
    alive = [h.active() for h in layers]
    # Checked first for every layer, so non-finite eigenvalues change nothing; removed
    # nodes rank below everything, so they stay removed.
    checked = [h.finite_scores(score) for h in layers]
    scores = [np.where(a, s, -np.inf) for s, a in zip(checked, alive)]

    if threshold is not None:
        plan = [np.flatnonzero(a & (s < threshold)) for a, s in zip(alive, scores)]
        for h, a, nodes in zip(layers, alive, plan):
            if len(nodes) == a.sum():
                raise ValueError(
                    f"threshold={threshold} would remove every node of hidden layer "
                    f"'{h.name}'; nothing was changed."
                )
    elif scope == "layer":
        plan = []
        for a, s in zip(alive, scores):
            target = int(np.floor(fraction * len(s) + 1e-9))
            order = np.argsort(s, kind="stable")
            plan.append(order[:target][a[order[:target]]])
    else:
        plan = _global_plan(layers, alive, scores, fraction)
    for h, nodes in zip(layers, plan):
        h.remove(nodes)
    return node_sparsity(model)


def _global_plan(layers, alive, scores, fraction):
    total = sum(len(s) for s in scores)
    target = int(np.floor(fraction * total + 1e-9))
    # Rank all nodes together, but never take a layer's last remaining node.
    candidates = sorted(
        (s[i], li, i) for li, s in enumerate(scores) for i in range(len(s))
    )
    removed = [list(np.flatnonzero(~a)) for a in alive]
    plan = [[] for _ in layers]
    count = sum(len(r) for r in removed)
    for value, li, i in candidates:
        if count >= target:
            break
        if not alive[li][i]:
            continue
        if len(removed[li]) + len(plan[li]) + 1 >= len(scores[li]):
            continue
        plan[li].append(i)
        count += 1
    return [np.asarray(p, dtype=int) for p in plan]


def _sync_jax_state(model):
    """On JAX, `fit` keeps the state outside the variables; write it back first."""
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


class EigenvaluePruning(keras.callbacks.Callback):
    """Remove hidden nodes by eigenvalue during `fit`, on a schedule.

    At each pruning step (the optimizer's iteration count, so a resumed run continues the
    schedule) nodes are removed either down to the schedule's sparsity (the fraction of
    hidden nodes removed) or, with `threshold`, wherever the score is below it. Masks are
    weights of the `SpectralDense` layers, so they are saved with the model and restored by
    `BackupAndRestore`. At each epoch end the fraction removed per hidden layer is added to
    the logs as `node_sparsity/<layer name>`.

    Args:
        schedule: A `keras_spectral.schedules` schedule (`ConstantSparsity`,
            `PolynomialDecay`).
        threshold: Instead of a schedule: an absolute score below which nodes are removed,
            applied every `frequency` steps from `begin_step` to `end_step`.
        score: Node score, one of `SCORES` (see the module docstring).
        scope: `"layer"` (each hidden layer reaches the sparsity) or `"global"`.
        frequency, begin_step, end_step: Timing, with `threshold` only (defaults 100, 0
            and -1: every 100 steps from the start, without end); a schedule carries its
            own timing.
        verbose: 1 prints the sparsity after each pruning step.

    Steps are optimizer steps, also with `compile(..., steps_per_execution=k)`: the
    callback then runs once per k steps and prunes at the first chance after a scheduled
    step, to the schedule's sparsity at that step. If an eigenvalue becomes NaN or infinite
    (a diverging run), pruning stops for the rest of the run with a warning, and no mask is
    set from such scores; `keras.callbacks.TerminateOnNaN` ends such a run.

    Example:

    >>> callback = EigenvaluePruning(PolynomialDecay(0.0, 0.9, begin_step=0, end_step=2000))
    >>> model.fit(x, y, epochs=10, callbacks=[callback])  # doctest: +SKIP
    """

    def __init__(
        self,
        schedule=None,
        threshold=None,
        score="sum",
        scope="layer",
        frequency=None,
        begin_step=None,
        end_step=None,
        verbose=0,
    ):
        super().__init__()
        check_choice("score", score, SCORES)
        check_choice("scope", scope, SCOPES)
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
        self.schedule = schedule
        self.threshold = threshold
        self.timing = schedule or PruningSchedule(
            0 if begin_step is None else begin_step,
            -1 if end_step is None else end_step,
            100 if frequency is None else frequency,
        )
        self.score = score
        self.scope = scope
        self.verbose = verbose
        self._step = None
        self.stopped_reason = None

    def on_train_begin(self, logs=None):
        prunable_layers(self.model, self.score)  # fail early on an unsupported model
        self._step = None
        self.stopped_reason = None

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
        try:
            if self.threshold is not None:
                sparsity = prune_nodes(self.model, threshold=self.threshold, score=self.score)
            else:
                sparsity = prune_nodes(
                    self.model, fraction=self.schedule.sparsity_at(step), score=self.score, scope=self.scope
                )
        except NonFiniteScoresError as error:
            self.stopped_reason = f"EigenvaluePruning stopped at step {step}: {error}"
            warnings.warn(self.stopped_reason, RuntimeWarning, stacklevel=2)
            return
        if self.verbose:
            report = ", ".join(f"{name}: {value:.3f}" for name, value in sparsity.items())
            print(f"\nEigenvaluePruning step {step}: node sparsity {report}")

    def on_train_batch_end(self, batch, logs=None):
        self._step += batch - self._begin + 1  # the optimizer steps this execution took

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name, value in node_sparsity(self.model).items():
                logs[f"node_sparsity/{name}"] = value
