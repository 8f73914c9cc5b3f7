"""Eigenvalue-driven node pruning: score hidden nodes by their eigenvalues, remove the
weakest, during `fit` (`EigenvaluePruning`) or after it (`prune_nodes`).

Works on any Sequential or functional model: the removable nodes are the prunable node
groups of its graph (`keras_spectral.graph.node_groups`: the output features of a fully
connected layer, or the channels of a convolution, or of several coupled by an
elementwise join such as a residual Add, that reach only fully connected layers and
convolutions). A chain of SpectralDense layers has one group per hidden layer; a CNN of
spectral convolutions one per convolution (or per residual stream).
Scores are the criteria of `keras_spectral.importance` (`score="sum"` by default:
`|λ_out|` of the producers plus `|λ_in|` of the readers).

Removing a node sets its mask to 0 and its eigenvalue to 0: in the producers when they
are spectral layers (their column of weights vanishes and the node outputs the constant
`activation(bias)`, which `compact` folds into the readers' biases; a removed channel
is masked in its spectral readers too), otherwise in the readers (their row vanishes).
Removed nodes stay removed.
"""

import warnings

import keras
import numpy as np
from keras import ops

from keras_spectral import importance
from keras_spectral.graph import ModelGraph, node_groups
from keras_spectral.importance import SCORES, NonFiniteScoresError  # noqa: F401 (public names)
from keras_spectral.spectral_layers import is_spectral
from keras_spectral.schedules import PruningSchedule
from keras_spectral.validation import (
    check_choice,
    check_exactly_one,
    check_fraction,
    check_non_negative,
)

SCOPES = ("layer", "global")


def _spectral_graph(model):
    """The model's graph, checked to hold a spectral layer."""
    graph = ModelGraph(model)
    if not any(is_spectral(layer) for layer in graph.layers):
        raise ValueError(
            f"Model '{model.name}' has no SpectralDense or SpectralConv layer, so no node has eigenvalues "
            "or masks: convert its Dense and Conv layers first with keras_spectral.spectralize(model)."
        )
    return graph


def removable_groups(model):
    """The prunable node groups of `model` (a model with at least one spectral layer)."""
    every = node_groups(_spectral_graph(model))
    groups = [group for group in every if group.prunable]
    if not groups:
        described = "; ".join(f"'{g.name}': {g.reason}" for g in every) or "none"
        raise ValueError(
            f"Model '{model.name}' has no hidden nodes that can be pruned. Its node groups: {described}."
        )
    return groups


def node_sparsity(model, groups=None):
    """`{group name: fraction of its nodes removed}` for every prunable node group (a
    chain's groups are its hidden layers, named after their producing layer); `groups`:
    those of `removable_groups(model)`, if already read."""
    return {g.name: float(1.0 - g.active().mean()) for g in (groups or removable_groups(model))}


def prunable_groups(model, score, groups=None):
    """The prunable node groups that `score` can rank: those whose layers it reads are
    spectral (`"out"`: the producers, `"in"`: the readers, `"sum"`/`"product"`:
    both; `"l1"`, `"l2"`, `"random"`: any; `"bn"`: groups that pass a
    BatchNormalization). `groups`: those of `removable_groups(model)`, if already read."""
    check_choice("score", score, SCORES)
    groups = [g for g in (groups or removable_groups(model)) if importance.can_score(g, score)]
    if not groups:
        raise ValueError(
            f"No node group of model '{model.name}' can be scored with score={score!r}: "
            "it needs spectral layers on the sides it reads, or for score='bn' a BatchNormalization "
            "after the producers (see `keras_spectral.importance`)."
        )
    return groups


def node_scores(model, score="sum"):
    """`{group name: score per node}` for the groups `score` can rank."""
    return {g.name: importance.scores(g, score) for g in prunable_groups(model, score)}


def prune_nodes(model, fraction=None, threshold=None, score="sum", scope="layer"):
    """Remove hidden nodes by score, in place; returns `node_sparsity(model)`.

    Only node groups that `score` can rank are pruned (`prunable_groups`); a coupled
    group's nodes are removed in every layer of the group at once.

    Args:
        model: A built Sequential or functional model with spectral layers.
        fraction: Target fraction of hidden nodes removed, in [0, 1): per prunable group
            (`scope="layer"`) or over all of their nodes (`scope="global"`, at least one
            node kept per group). Already removed nodes count towards it.
        threshold: Alternatively, remove every node whose score is below this
            non-negative number.
        score: How nodes are ranked, one of `SCORES` (`keras_spectral.importance`).
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
    every = removable_groups(model)
    groups = prunable_groups(model, score, every)
    alive = [g.active() for g in groups]
    # Checked first for every group, so non-finite scores change nothing; removed
    # nodes rank below everything, so they stay removed.
    checked = [importance.finite_scores(g, score) for g in groups]
    scores = [np.where(a, s, -np.inf) for s, a in zip(checked, alive)]

    if threshold is not None:
        plan = [np.flatnonzero(a & (s < threshold)) for a, s in zip(alive, scores)]
        for g, a, nodes in zip(groups, alive, plan):
            if len(nodes) == a.sum():
                raise ValueError(
                    f"threshold={threshold} would remove every node of node group "
                    f"'{g.name}'; nothing was changed."
                )
    elif scope == "layer":
        plan = []
        for a, s in zip(alive, scores):
            target = int(np.floor(fraction * len(s) + 1e-9))
            order = np.argsort(s, kind="stable")
            plan.append(order[:target][a[order[:target]]])
    else:
        plan = _global_plan(groups, alive, scores, fraction)
    if fraction is not None:
        _warn_about_ties(groups, alive, scores, plan, score)
    for g, nodes in zip(groups, plan):
        g.remove(nodes)
    return node_sparsity(model, every)


def _warn_about_ties(groups, alive, scores, plan, score):
    """Warn where the nodes removed tie with nodes kept, so index order chose between them
    (every score of a group is equal right after `spectralize`: λ_in = 1, λ_out = 0)."""
    tied = []
    for g, a, s, nodes in zip(groups, alive, scores, plan):
        kept = a.copy()
        kept[nodes] = False
        if len(nodes) and kept.any() and np.max(s[nodes]) >= np.min(s[kept]):
            tied.append(f"'{g.name}'")
    if tied:
        warnings.warn(
            f"prune_nodes(score={score!r}): in node group(s) {', '.join(tied)} the nodes removed score the "
            "same as nodes kept, so the order of the nodes chose between them. Right after "
            "keras_spectral.spectralize every eigenvalue score is equal: train the eigenvalues first "
            "(EigenvaluePruning during fit removes nodes as they learn), or rank by weights (score='l1').",
            UserWarning,
            stacklevel=3,
        )


def _global_plan(groups, alive, scores, fraction):
    total = sum(len(s) for s in scores)
    target = int(np.floor(fraction * total + 1e-9))
    # Rank all nodes together, but never take a group's last remaining node.
    candidates = sorted(
        (s[i], gi, i) for gi, s in enumerate(scores) for i in range(len(s))
    )
    removed = [list(np.flatnonzero(~a)) for a in alive]
    plan = [[] for _ in groups]
    count = sum(len(r) for r in removed)
    for value, gi, i in candidates:
        if count >= target:
            break
        if not alive[gi][i]:
            continue
        if len(removed[gi]) + len(plan[gi]) + 1 >= len(scores[gi]):
            continue
        plan[gi].append(i)
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
    weights of the spectral layers, so they are saved with the model and restored by
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
        prunable_groups(self.model, self.score)  # fail early on an unsupported model
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
