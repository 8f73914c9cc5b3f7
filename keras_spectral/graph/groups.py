"""Node groups: the sets of hidden nodes that can be removed together, read from a graph.

A group is the output features of one fully connected layer (Dense or SpectralDense), or
of several whose features are combined elementwise (Add / Multiply / ..., e.g. a gated
FFN: a coupled group, removed together). Its node `i` is feature `i` of the producers'
outputs. The features travel through per-feature layers and feature-axis concatenations
(with offsets) to the layers that read them; the group is prunable only if every reader
is a fully connected layer. Features that reach anything else (LayerNormalization,
attention, Flatten, a residual stream fed by a non-prunable source, a model output) make
the group not prunable, and `NodeGroup.reasons` says why.

Removing a node masks it where a SpectralDense holds masks: in every producer when all
producers are SpectralDense (the node then outputs the constant `activation(bias)`,
which `compact` folds into the readers' biases), otherwise in every reader when all
readers are SpectralDense (its kernel row vanishes).
"""

import numpy as np
from keras import ops

from keras_spectral.graph import features
from keras_spectral.graph.model_graph import ModelGraph
from keras_spectral.layers import SpectralDense


def _values(variable):
    return np.asarray(ops.convert_to_numpy(variable), dtype="float64")


class NodeGroup:
    """One group of hidden nodes.

    Attributes:
        name: The first producer's name (the group's name in `node_sparsity` and logs).
        size: Number of nodes.
        producers: The fully connected layers whose output features are the nodes.
        consumers: `(layer, offset)` pairs: fully connected layers that read the nodes as
            their input features `offset ... offset + size - 1`.
        passes: `(layer, offset)` pairs: per-feature layers the nodes pass through, at
            that offset of the layer's features.
        reasons: Why the group's nodes cannot be removed from the graph (empty if they
            can: the group is `removable`). A removable group is `prunable` when a
            SpectralDense layer holds its masks (`mask_holders`).
    """

    def __init__(self, producers, size):
        self.producers = producers
        self.size = size
        self.consumers = []
        self.passes = []
        self.reasons = []

    @property
    def name(self):
        return self.producers[0].name

    @property
    def removable(self):
        """Whether the graph lets its nodes go: they reach only fully connected layers."""
        return not self.reasons

    @property
    def prunable(self):
        """Removable, with masks held by SpectralDense layers."""
        return self.removable and self.mask_holders is not None

    @property
    def reason(self):
        """Why the group is not prunable, in one sentence, or None when it is."""
        reasons = list(self.reasons)
        if not reasons and self.mask_holders is None:
            reasons.append(
                "no SpectralDense layer holds its masks (its producers and readers are Dense; "
                "convert them with keras_spectral.spectralize)"
            )
        return "; ".join(reasons) if reasons else None

    @property
    def mask_holders(self):
        """`"producers"`, `"consumers"` or None: where removed nodes are masked."""
        if all(isinstance(p, SpectralDense) for p in self.producers):
            return "producers"
        if self.consumers and all(isinstance(c, SpectralDense) for c, _ in self.consumers):
            return "consumers"
        return None

    @property
    def layers(self):
        """Every layer of the group: producers, consumers, then per-feature layers."""
        return list(self.producers) + [c for c, _ in self.consumers] + [p for p, _ in self.passes]

    def active(self):
        """Boolean array: which nodes are still present (not masked on either side)."""
        alive = np.ones(self.size, dtype=bool)
        for producer in self.producers:
            if isinstance(producer, SpectralDense):
                alive &= _values(producer.eigenvalues_out_mask) != 0
        for consumer, offset in self.consumers:
            if isinstance(consumer, SpectralDense):
                alive &= _values(consumer.eigenvalues_in_mask)[offset : offset + self.size] != 0
        return alive

    def remove(self, nodes):
        """Mask the given node indices (and zero their eigenvalues) where the masks live."""
        nodes = np.asarray(nodes, dtype=int)
        if not len(nodes):
            return
        if self.mask_holders == "producers":
            targets = [(p.eigenvalues_out_mask, p.eigenvalues_out, nodes) for p in self.producers]
        elif self.mask_holders == "consumers":
            targets = [(c.eigenvalues_in_mask, c.eigenvalues_in, nodes + offset) for c, offset in self.consumers]
        else:
            raise ValueError(f"Node group '{self.name}' has no SpectralDense layer to hold its masks.")
        for mask, eigenvalues, index in targets:
            keep = np.ones(mask.shape[0], dtype="float32")
            keep[index] = 0.0
            mask.assign(ops.cast(_values(mask) * keep, mask.dtype))
            eigenvalues.assign(ops.cast(_values(eigenvalues) * keep, eigenvalues.dtype))

    def __repr__(self):
        consumers = [f"{c.name}@{offset}" for c, offset in self.consumers]
        state = "prunable" if self.prunable else f"not prunable: {self.reason}"
        return (
            f"NodeGroup({self.name!r}, size={self.size}, producers={[p.name for p in self.producers]}, "
            f"consumers={consumers}, {state})"
        )


class _UnionFind:
    def __init__(self):
        self.parent = []

    def add(self):
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, i):
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i, j):
        self.parent[self.find(i)] = self.find(j)


def node_groups(model):
    """Every node group of `model` (prunable or not), in the order of their producers.

    Args:
        model: A built Sequential or functional model (nested models are expanded), or a
            `keras_spectral.graph.ModelGraph` of one.

    Returns:
        A list of `NodeGroup`; `group.prunable` says whether it can be pruned and
        `group.reason` why not.

    Example:

    >>> for group in node_groups(model):  # doctest: +SKIP
    ...     print(group.name, group.size, group.reason or "prunable")
    """
    graph = model if isinstance(model, ModelGraph) else ModelGraph(model)
    sets = _UnionFind()
    producers, sizes, reasons = [], [], []  # per source (one per producing call)
    readers = []  # (source, kind, layer, offset)
    counts = graph.call_counts()
    layouts = {}  # tensor key -> list of [source or None, length]

    def layout(key):
        if key not in layouts:
            layouts[key] = [[None, graph.tensors[key].shape[-1]]]
        return layouts[key]

    def segments(key):
        offset = 0
        for source, length in layout(key):
            yield source, offset, length
            offset += length or 0

    def refuse(key, reason):
        for source, _, _ in segments(key):
            if source is not None:
                reasons[source].append(reason)

    for call in graph.calls:
        layer = call.layer
        role, why = features.role(call, graph)
        shared = counts[id(layer)] > 1
        if role == features.FULLY_CONNECTED:
            for source, offset, _ in segments(call.inputs[0]):
                if source is not None:
                    readers.append((source, "consumer", layer, offset))
            if shared:
                refuse(call.inputs[0], f"is read by '{layer.name}', a layer called more than once")
            source = sets.add()
            producers.append(layer)
            sizes.append(layer.units)
            reasons.append([])
            if shared:
                reasons[source].append(f"'{layer.name}' is called more than once (a shared layer)")
            activation = features.activation_reason(layer)
            if activation:
                reasons[source].append(f"'{layer.name}': {activation}")
            layouts[call.outputs[0]] = [[source, layer.units]]
        elif role == features.PER_FEATURE:
            for source, offset, _ in segments(call.inputs[0]):
                if source is not None:
                    readers.append((source, "pass", layer, offset))
            if shared and layer.weights:
                refuse(call.inputs[0], f"passes '{layer.name}', a layer with weights called more than once")
            layouts[call.outputs[0]] = [list(s) for s in layout(call.inputs[0])]
        elif role == features.JOIN:
            inputs = [layout(key) for key in call.inputs]
            if len({tuple(length for _, length in parts) for parts in inputs}) != 1:
                for key in call.inputs:
                    refuse(key, f"is combined by {type(layer).__name__} '{layer.name}' with features laid out differently")
                layouts[call.outputs[0]] = [[None, graph.tensors[call.outputs[0]].shape[-1]]]
                continue
            merged = []
            for position in zip(*inputs):
                present = [source for source, _ in position if source is not None]
                for source in present[1:]:
                    sets.union(source, present[0])
                if present and len(present) < len(position):
                    reasons[present[0]].append(
                        f"is combined by {type(layer).__name__} '{layer.name}' with features of a "
                        "non-prunable source (e.g. a residual stream)"
                    )
                merged.append([present[0] if present else None, position[0][1]])
            layouts[call.outputs[0]] = merged
        elif role == features.CONCATENATE:
            layouts[call.outputs[0]] = [list(s) for key in call.inputs for s in layout(key)]
        else:
            for key in call.inputs:
                refuse(key, why)
    for key in graph.outputs:
        refuse(key, "is a model output")

    groups, by_root = [], {}
    for source, producer in enumerate(producers):
        root = sets.find(source)
        if root not in by_root:
            by_root[root] = NodeGroup([], sizes[source])
            groups.append(by_root[root])
        group = by_root[root]
        group.producers.append(producer)
        group.reasons.extend(r for r in reasons[source] if r not in group.reasons)
    for source, kind, layer, offset in readers:
        group = by_root[sets.find(source)]
        target = group.consumers if kind == "consumer" else group.passes
        if (layer, offset) not in target:
            target.append((layer, offset))
    return groups


def prunable_groups(model):
    """The groups of `node_groups(model)` that can be pruned."""
    return [group for group in node_groups(model) if group.prunable]
