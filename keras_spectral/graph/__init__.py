"""Pruning any functional model: read its graph, find the groups of removable hidden
nodes, and slice layers to keep only some of their features.

The pieces, each in its own module (the layout of Torch-Pruning's dependency graph):

- `model_graph`: a model as a flat list of layer calls (nested models expanded), run or
  rebuilt with other layers;
- `rules`: one rule object per layer type (and `keras.ops` operation): how it treats the
  feature axis (produce, per-feature, relay, couple, join, or opaque), how to slice it,
  and its multiply-adds; a registry that users extend with `register_rule`;
- `groups`: the node groups of a model, found from its graph (`node_groups`);
- `cost`: multiply-adds and parameters of a model, from the rules.

A new layer type means one new rule, not edits elsewhere.
"""

from keras_spectral.graph import rules
from keras_spectral.graph.cost import ModelCost, PrunedCost, model_cost, multiply_adds
from keras_spectral.graph.groups import NodeGroup, node_groups
from keras_spectral.graph.model_graph import ModelGraph
from keras_spectral.graph.rules import register_rule, rule_for

__all__ = ["ModelGraph", "NodeGroup", "node_groups", "multiply_adds", "model_cost", "ModelCost", "PrunedCost", "register_rule", "rule_for", "rules"]
