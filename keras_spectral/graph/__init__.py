"""Pruning any functional model: read its graph, find the groups of removable hidden
nodes, and slice layers to keep only some of their features.

The pieces, each in its own module (the layout of Torch-Pruning's dependency graph):

- `model_graph`: a model as a flat list of layer calls (nested models expanded), run or
  rebuilt with other layers;
- `features`: how each layer type treats the feature axis (per-feature, join, concatenate,
  fully connected, or opaque);
- `groups`: the node groups of a model, found from its graph (`node_groups`);
- `slicing`: one slicing function per layer type with per-feature state.

A new layer type means one entry in `features` (and one slicing function if it holds
per-feature weights), not edits elsewhere.
"""

from keras_spectral.graph.groups import NodeGroup, node_groups
from keras_spectral.graph.model_graph import ModelGraph

__all__ = ["ModelGraph", "NodeGroup", "node_groups"]
