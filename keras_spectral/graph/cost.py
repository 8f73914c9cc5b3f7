"""What a model costs, read from its graph with the layers' rules: multiply-adds and
parameters, as it is or once its removed nodes are gone (`compact`)."""

import collections

import numpy as np

from keras_spectral.graph.groups import InnerGroup, node_groups
from keras_spectral.graph.model_graph import ModelGraph
from keras_spectral.graph.rules import rule_for

ModelCost = collections.namedtuple("ModelCost", ["multiply_adds", "parameters"])
ModelCost.__doc__ = """Multiply-adds of one sample and parameters of a model (see `model_cost`)."""


def multiply_adds(model):
    """Multiply-adds of one sample through `model` (Sequential or functional, nested
    models expanded): the sum of each layer call's rule (`Rule.multiply_adds`: Dense,
    convolutions of every kind; other layers count 0). Spatial sizes the model leaves
    unknown count as 1: build the model with its input size to count a real image.

    Example:

    >>> multiply_adds(keras.applications.ResNet50(weights=None))  # doctest: +SKIP
    3868706816
    """
    graph = model if isinstance(model, ModelGraph) else ModelGraph(model)
    return int(sum(rule_for(call.layer).multiply_adds(call, graph) for call in graph.calls))


def model_cost(model, pruned=False):
    """Multiply-adds of one sample and parameters of `model`, as a `ModelCost`.

    Parameters are those of the model as served: a spectral layer counts as the Dense or
    convolution it computes (`collapse(model).count_params()`), other layers all their
    weights. Multiply-adds as in `multiply_adds`.

    Args:
        model: A built Sequential or functional model.
        pruned: Count the model without its removed nodes (masked by `prune_nodes` or
            `EigenvaluePruning`), i.e. what `compact(model)` costs.

    Example:

    >>> model_cost(model)  # doctest: +SKIP
    ModelCost(multiply_adds=1200000, parameters=1210)
    """
    graph = model if isinstance(model, ModelGraph) else ModelGraph(model)
    groups = [g for g in node_groups(graph) if g.prunable] if pruned else []
    costs = PrunedCost(graph, groups)
    return costs([~g.active() for g in groups])


class PrunedCost:
    """The cost of a model's graph once some nodes of some groups are removed, computed
    from counts alone (fast enough to search a budget): each call's input and output
    features kept are read from the groups' rows, and its rule's `cost` scales it.

    Call with one boolean array per group (`True` = removed) to get a `ModelCost`.
    """

    def __init__(self, graph, groups):
        self.graph, self.groups = graph, list(groups)
        # (rule, call, input features, output features of a producer, whether it passes
        # features, [(side, group, entries per node)], whether it counts parameters)
        self._calls = []
        roles = {}  # id(layer) -> list of (side, group index, entries per node)
        for gi, group in enumerate(self.groups):
            if isinstance(group, InnerGroup):  # nodes inside one layer (attention heads)
                roles.setdefault(id(group.layer), []).append((f"kept_{group.kind}", gi, np.ones(group.size, dtype=int)))
                continue
            for layer, rows in group.produced:
                roles.setdefault(id(layer), []).append(("out", gi, (rows >= 0).sum(axis=1)))
            for layer, rows in group.consumers:
                roles.setdefault(id(layer), []).append(("in", gi, (rows >= 0).sum(axis=1)))
            for layer, rows in group.passes:
                roles.setdefault(id(layer), []).append(("pass", gi, (rows >= 0).sum(axis=1)))
        seen = set()
        for call in graph.calls:
            layer, rule = call.layer, rule_for(call.layer)
            terms = roles.get(id(layer), [])
            n_in = _features(graph, call, rule) if any(side in _SIDES for side, _, _ in terms) else 1
            produces = any(side == "out" for side, _, _ in terms)
            passes = any(side == "pass" for side, _, _ in terms)
            n_out = rule.width(layer) if produces else None
            self._calls.append((rule, call, n_in, n_out, passes, terms, id(layer) not in seen))
            seen.add(id(layer))

    def __call__(self, removed=None):
        macs = params = 0.0
        for _, call_macs, call_params in self.per_call(removed):
            macs += call_macs
            params += call_params
        return ModelCost(int(round(macs)), int(round(params)))

    def per_call(self, removed=None):
        """`(call, multiply_adds, parameters)` of every call (a shared layer's parameters
        counted at its first call)."""
        removed = removed if removed is not None else [np.zeros(g.size, dtype=bool) for g in self.groups]
        for rule, call, n_in, n_out, passes, terms, first in self._calls:
            gone = dict.fromkeys(_SIDES, 0)
            extra = {}  # a layer with nodes inside is told the fraction of each kind it keeps
            for side, gi, entries in terms:
                if side in _SIDES:
                    gone[side] += int(entries[removed[gi]].sum())
                else:
                    extra[side] = 1.0 - int(entries[removed[gi]].sum()) / len(entries)
            kept_in = 1.0 - (gone["in"] + gone["pass"]) / n_in
            # A per-feature layer keeps the features it reads; a producer its own.
            kept_out = kept_in if passes else (1.0 - gone["out"] / n_out if n_out else 1.0)
            call_macs, call_params = rule.cost(call, self.graph, kept_in, kept_out, **extra)
            yield call, call_macs, call_params if first else 0


_SIDES = ("in", "out", "pass")


def _features(graph, call, rule):
    """Input features of a call (its feature axis)."""
    return int(graph.tensors[call.inputs[0]].shape[rule.feature_axis(call.layer)])
