"""Node pruning: score hidden nodes (by their eigenvalues, or another criterion of
`keras_spectral.importance`) and remove the weakest to a budget (`keras_spectral.budgets`),
after training (`prune_nodes`) or during `fit` (`keras_spectral.callbacks.EigenvaluePruning`).

Works on any Sequential or functional model: the removable nodes are the prunable node
groups of its graph (`keras_spectral.graph.node_groups`: the output features of a fully
connected layer, or the channels of a convolution, or of several coupled by an
elementwise join such as a residual Add, that reach only fully connected layers and
convolutions). A chain of SpectralDense layers has one group per hidden layer; a CNN of
spectral convolutions one per convolution (or per residual stream).
Scores are the criteria of `keras_spectral.importance` (`score="l1"` by default, the L1
norm of a node's incoming weights, which did best on converted, converged models; the
eigenvalue scores, `"sum"` and others, for networks trained in reciprocal space).

Removing a node sets its mask to 0 and its eigenvalue to 0: in the producers when they
are spectral layers (their column of weights vanishes and the node outputs the constant
`activation(bias)`, which `compact` folds into the readers' biases; a removed channel
is masked in its spectral readers too), otherwise in the readers (their row vanishes).
Removed nodes stay removed.
"""

import warnings

import numpy as np

from keras_spectral import budgets, importance
from keras_spectral.budgets import BudgetError  # noqa: F401 (public name)
from keras_spectral.graph import ModelGraph, PrunedCost, node_groups
from keras_spectral.graph.rules import rule_for
from keras_spectral.importance import SCORES, NonFiniteScoresError  # noqa: F401 (public names)
from keras_spectral.spectral_layers import is_spectral
from keras_spectral.validation import (
    _is_number,
    check_choice,
    check_exactly_one,
    check_fraction,
    check_non_negative,
    check_positive_int,
)

SCOPES = ("layer", "global")


def _spectral_graph(model):
    """The model's graph, checked to hold a spectral layer."""
    graph = ModelGraph(model)
    if not any(is_spectral(layer) or _holds_inner_masks(layer) for layer in graph.layers):
        raise ValueError(
            f"Model '{model.name}' has no SpectralDense or SpectralConv layer (nor a spectral attention or "
            "keras_hub block), so no node has eigenvalues or masks: convert its layers first with "
            "keras_spectral.spectralize(model)."
        )
    return graph


def _holds_inner_masks(layer):
    """Whether `layer` holds the masks of node groups inside it (attention heads, a keras_hub
    block's heads and units)."""
    rule = rule_for(layer)
    return bool(rule.inner(layer)) and rule.holds_masks(layer)


def removable_groups(model):
    """The prunable node groups of `model` (a model with at least one spectral layer)."""
    return _removable(model, _spectral_graph(model))


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


def node_scores(model, score="l1", data=None, loss=None):
    """`{group name: score per node}` for the groups `score` can rank (`data`, `loss`: for
    `score="taylor"`, as in `prune_nodes`)."""
    groups = prunable_groups(model, score)
    gradients = _gradients(model, groups, score, data, loss)
    return {g.name: importance.scores(g, score, gradients) for g in groups}


def prune_nodes(
    model,
    fraction=None,
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
):
    """Remove hidden nodes by score, in place, to a budget; returns `node_sparsity(model)`.

    Only node groups that `score` can rank are pruned (`prunable_groups`); a coupled
    group's nodes are removed in every layer of the group at once. Already removed nodes
    count towards the budget and stay removed. See `keras_spectral.budgets` for how the
    groups share a budget, and `pruning_report(model)` for what was removed.

    Args:
        model: A built Sequential or functional model with spectral layers.
        fraction: The fraction of `budget` to remove, in [0, 1): per group
            (`scope="layer"`: each group loses this fraction of its nodes; for a cost
            budget, the smallest such common fraction that reaches it) or over the model
            (`scope="global"`). Or a dict `{name: fraction}` of per-group fractions (the
            name of a group or of any of its producers); groups not named are left alone.
        threshold: Alternatively, remove every node whose score is below this
            non-negative number.
        score: How nodes are ranked, one of `SCORES` (`keras_spectral.importance`).
        scope: `"layer"` or `"global"` (used with a float `fraction`).
        budget: What `fraction` is a fraction of: `"nodes"` (default), `"multiply_adds"`
            or `"parameters"` (of the whole model, as `model_cost` counts them; the
            compacted model's). A cost budget that cannot be reached raises
            `BudgetError` and changes nothing.
        normalizer: With `scope="global"`, how each group's scores are normalized before
            all nodes are ranked together (`keras_spectral.budgets.NORMALIZERS`; default
            `"mean"`, as Torch-Pruning).
        max_fraction: At most this fraction of any group's nodes is removed (Torch-Pruning's
            `max_pruning_ratio`); a group always keeps one node.
        ignored_layers: Layers (or their names) whose output nodes are kept: the groups
            they produce are not pruned (as Torch-Pruning's `ignored_layers`); node group
            names are accepted too (e.g. `"attention/heads"` keeps a layer's heads only).
        round_to: The nodes each pruned group keeps are a multiple of this (or all of
            them), e.g. 8 for fast kernels; the budget is then reached within `round_to`
            nodes per group.
        data: For `score="taylor"`: `(x, y)` arrays or an iterable of `(x, y)` batches
            whose loss gradients rank the nodes.
        loss: For `score="taylor"`: the loss (default: the model's compiled loss).

    Example:

    >>> prune_nodes(model, fraction=0.9)  # doctest: +SKIP
    {'spectral_dense': 0.9, 'spectral_dense_1': 0.9}
    >>> # Half the multiply-adds, ranked globally by weight magnitude, widths multiples of 8:
    >>> prune_nodes(model, fraction=0.5, budget="multiply_adds", scope="global", score="l2",
    ...             round_to=8)  # doctest: +SKIP
    """
    _check_options(score, scope, budget, normalizer, max_fraction, round_to)
    check_exactly_one(fraction=fraction, threshold=threshold)
    _check_fraction(fraction, scope, budget)
    if threshold is not None:
        check_non_negative("threshold", threshold)
    every, groups, plan = _plan(model, fraction, threshold, score, scope, budget, normalizer, max_fraction,
                                ignored_layers, round_to, data, loss)
    for g, nodes in zip(groups, plan):
        g.remove(nodes)
    return node_sparsity(model, every)


def _plan(model, fraction=None, threshold=None, score="l1", scope="layer", budget="nodes", normalizer="mean",
          max_fraction=1.0, ignored_layers=None, round_to=None, data=None, loss=None, warn=True):
    """`(every prunable group, the groups pruned, per group the nodes to remove)`; the
    arguments checked by `prune_nodes`. Changes nothing; `warn`: about tied scores."""
    graph = _spectral_graph(model)
    every = _removable(model, graph)
    groups = _selected(model, prunable_groups(model, score, every), fraction, ignored_layers)
    if not groups:
        return every, [], []
    alive = [g.active() for g in groups]
    gradients = _gradients(model, groups, score, data, loss)
    # Checked first for every group, so non-finite scores change nothing; removed
    # nodes rank below everything, so they stay removed.
    checked = [importance.finite_scores(g, score, gradients) for g in groups]
    scores = [np.where(a, s, -np.inf) for s, a in zip(checked, alive)]

    if threshold is not None:
        plan = [np.flatnonzero(a & (s < threshold)) for a, s in zip(alive, scores)]
        for g, a, nodes in zip(groups, alive, plan):
            if len(nodes) == a.sum():
                raise ValueError(
                    f"threshold={threshold} would remove every node of node group "
                    f"'{g.name}'; nothing was changed."
                )
    else:
        others = [g for g in every if not any(g is h for h in groups)]
        cost = PrunedCost(graph, groups + others) if budget != "nodes" else None
        planner = budgets.Planner(groups, alive, scores, max_fraction, round_to, cost, [~g.active() for g in others])
        if isinstance(fraction, dict):
            counts = planner.per_group([_fraction_of(g, fraction) for g in groups])
        elif scope == "layer":
            counts = planner.layer(fraction, budget)
        else:
            counts = planner.global_(fraction, budget, normalizer)
        plan = planner.plan(counts)
        if warn:
            _warn_about_ties(groups, alive, scores, plan, score)
    return every, groups, plan


def _check_options(score, scope, budget, normalizer, max_fraction, round_to):
    check_choice("score", score, SCORES)
    check_choice("scope", scope, SCOPES)
    check_choice("budget", budget, budgets.BUDGETS)
    check_choice("normalizer", normalizer, budgets.NORMALIZERS)
    if not (_is_number(max_fraction) and 0 < max_fraction <= 1):
        raise ValueError(
            "Received an invalid value for `max_fraction`, expected a number in (0, 1]. "
            f"Received: max_fraction={max_fraction!r}"
        )
    if round_to is not None:
        check_positive_int("round_to", round_to)


def _check_fraction(fraction, scope, budget):
    if not isinstance(fraction, dict):
        if fraction is not None:
            check_fraction("fraction", fraction)
        return
    if budget != "nodes" or scope != "layer":
        raise ValueError(
            "Per-group fractions (a dict `fraction`) are fractions of each group's nodes: use them with "
            f"budget='nodes' and scope='layer'. Received: budget={budget!r}, scope={scope!r}"
        )
    for name, value in fraction.items():
        check_fraction(f"fraction[{name!r}]", value)


def _names(group):
    return [group.name] + [p.name for p in group.producers]


def _fraction_of(group, fractions):
    return next(fractions[name] for name in _names(group) if name in fractions)


def _selected(model, groups, fraction, ignored_layers):
    """The groups to prune: those named by a dict `fraction`, less those that an ignored
    layer produces; names that match nothing are refused."""
    known = {name for g in groups for name in _names(g)}
    if isinstance(fraction, dict):
        unknown = [name for name in fraction if name not in known]
        if unknown:
            raise ValueError(
                f"Received an invalid value for `fraction`: {unknown} name no node group of model '{model.name}' "
                f"that can be pruned. Groups (and their producers): "
                f"{ {g.name: [p.name for p in g.producers] for g in groups} }"
            )
        groups = [g for g in groups if any(name in fraction for name in _names(g))]
    if ignored_layers:
        names = set()
        layer_names = {layer.name for layer in model._flatten_layers(include_self=False)}
        for item in ignored_layers if isinstance(ignored_layers, (list, tuple, set)) else [ignored_layers]:
            name = item if isinstance(item, str) else getattr(item, "name", None)
            if name is None or (name not in layer_names and name not in known):
                raise ValueError(
                    "Received an invalid value for `ignored_layers`, expected layers of the model, their "
                    f"names, or node group names. Received: {item!r}, which is neither a layer nor a node "
                    f"group of model '{model.name}'"
                )
            names.add(name)
        # A group is kept whole when its name or any of its producers is ignored (an
        # attention layer's heads are named "<layer>/heads": ignoring the layer keeps
        # both the features it makes and its heads).
        groups = [g for g in groups if not any(name in names for name in _names(g))]
    return groups


def _gradients(model, groups, score, data, loss):
    """The masks' loss gradients for `score="taylor"` (None for other scores)."""
    if score != "taylor":
        if data is not None or loss is not None:
            raise ValueError(
                f"`data` and `loss` are used by score='taylor' only. Received: score={score!r} with "
                f"{'data' if data is not None else 'loss'}"
            )
        return None
    if data is None:
        raise ValueError(
            "score='taylor' ranks nodes by the loss gradients on batches of data: pass `data=(x, y)` "
            "(a few hundred samples of the training set) or an iterable of (x, y) batches."
        )
    _sync_jax_state(model)
    return importance.mask_gradients(model, groups, data, loss)


def _removable(model, graph):
    every = node_groups(graph)
    groups = [group for group in every if group.prunable]
    if not groups:
        described = "; ".join(f"'{g.name}': {g.reason}" for g in every) or "none"
        raise ValueError(
            f"Model '{model.name}' has no hidden nodes that can be pruned. Its node groups: {described}."
        )
    return groups


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
            "(EigenvaluePruning during fit removes nodes as they learn), or choose a criterion that "
            "reads the trained weights: score='l2' (or 'l1'), or score='taylor' with data=(x, y).",
            UserWarning,
            stacklevel=4,
        )


def _sync_jax_state(model):
    """On JAX, `fit` keeps the state outside the variables; write it back first."""
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()
