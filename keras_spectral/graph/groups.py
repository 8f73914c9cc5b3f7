"""Node groups: the sets of hidden nodes that can be removed together, read from a graph.

A group is the output features (units, or channels) of one fully connected layer (Dense,
SpectralDense, or a convolution), or of several whose features are combined elementwise
(Add / Multiply / ..., e.g. a gated FFN or the residual stream of a ResNet: a coupled
group, removed together). Its node `i` is feature `i` of the producers' outputs. The
features travel through per-feature layers (activations, BatchNormalization, pooling,
padding, ...), feature-axis concatenations (with offsets) and Flatten (a channel becomes
the features of its positions) to the layers that read them; the group is removable
only if every reader is a fully connected layer. Features that reach anything else
(LayerNormalization, attention, Reshape, a residual stream fed by a non-prunable source,
a model output) make the group not removable, and `NodeGroup.reasons` says why.

Removing a node masks it where spectral layers (`SpectralDense`, `SpectralConv*`) hold
masks: in every producer when all producers are spectral (the node then outputs the
constant `activation(bias)`, which `compact` folds into the readers' biases), otherwise
in every reader when all readers are spectral (its kernel rows vanish). A group of
channels (made by convolutions) is masked in its spectral readers too, since a constant
channel reaching a padded convolution is not constant at the borders and cannot be
folded into a bias; a plain convolution reading it then makes the group not prunable.
"""

import numpy as np
from keras import ops

from keras_spectral.graph import features
from keras_spectral.graph.model_graph import ModelGraph
from keras_spectral.spectral_layers import is_spectral


def _values(variable):
    return np.asarray(ops.convert_to_numpy(variable), dtype="float64")


class NodeGroup:
    """One group of hidden nodes.

    Attributes:
        name: The first producer's name (the group's name in `node_sparsity` and logs).
        size: Number of nodes.
        producers: The fully connected layers whose output features are the nodes.
        consumers: `(layer, rows)` pairs: fully connected layers that read the nodes;
            `rows` is a `(size, k)` int array, row `i` the input features of the layer
            that hold node `i` (k = 1, or the positions of a channel read after Flatten).
        passes: `(layer, rows)` pairs: per-feature layers the nodes pass through, at
            those features of the layer's input.
        reasons: Why the group's nodes cannot be removed from the graph (empty if they
            can: the group is `removable`). A removable group is `prunable` when spectral
            layers hold its masks (`mask_holders`).
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
    def channels(self):
        """Whether the nodes are channels made by convolutions."""
        return any(isinstance(p, features.CONVOLUTION_LAYERS) for p in self.producers)

    @property
    def removable(self):
        """Whether the graph lets its nodes go: they reach only fully connected layers."""
        return not self.reasons

    @property
    def prunable(self):
        """Removable, with masks held by spectral layers."""
        return self.removable and self.mask_holders is not None

    @property
    def reason(self):
        """Why the group is not prunable, in one sentence, or None when it is."""
        reasons = list(self.reasons)
        if not reasons and self.mask_holders is None:
            reasons.append(
                "no spectral layer holds its masks (its producers and readers are Dense or Conv "
                "layers; convert them with keras_spectral.spectralize)"
            )
        return "; ".join(reasons) if reasons else None

    @property
    def mask_holders(self):
        """`"producers"`, `"consumers"` or None: where removed nodes are masked (a group of
        channels masked in its producers is masked in its spectral readers too)."""
        if all(is_spectral(p) for p in self.producers):
            return "producers"
        if self.consumers and all(is_spectral(c) for c, _ in self.consumers):
            return "consumers"
        return None

    def fold_reasons(self):
        """Why removed channels could not be compacted exactly: a plain convolution that
        would read a producer-masked channel's constant."""
        if not (self.channels and all(is_spectral(p) for p in self.producers)):
            return []
        return [
            f"'{c.name}' ({type(c).__name__}) reads the channels spatially but holds no masks, and a "
            "removed channel's constant cannot be folded into its bias exactly (padding); convert it "
            "with keras_spectral.spectralize"
            for c, _ in self.consumers
            if not is_spectral(c) and isinstance(c, features.CONVOLUTION_LAYERS)
        ]

    def _targets(self):
        """`(layer, side, rows)`: the masks that removing a node sets (`rows[i]`: the mask
        entries of node `i`)."""
        nodes = np.arange(self.size)[:, None]
        holders = self.mask_holders
        if holders is None:
            raise ValueError(f"Node group '{self.name}' has no spectral layer to hold its masks.")
        targets = []
        if holders == "producers":
            targets += [(p, "out", nodes) for p in self.producers]
        if holders == "consumers" or self.channels:
            targets += [(c, "in", rows) for c, rows in self.consumers if is_spectral(c)]
        return targets

    @property
    def layers(self):
        """Every layer of the group: producers, consumers, then per-feature layers."""
        return list(self.producers) + [c for c, _ in self.consumers] + [p for p, _ in self.passes]

    def active(self):
        """Boolean array: which nodes are still present (not masked on either side; a node
        read at several features is present while any of them is)."""
        alive = np.ones(self.size, dtype=bool)
        for producer in self.producers:
            if is_spectral(producer):
                alive &= _values(producer.eigenvalues_out_mask) != 0
        for consumer, rows in self.consumers:
            if is_spectral(consumer):
                alive &= (_values(consumer.eigenvalues_in_mask)[rows] != 0).any(axis=1)
        return alive

    def remove(self, nodes):
        """Mask the given node indices (and zero their eigenvalues) where the masks live."""
        nodes = np.asarray(nodes, dtype=int)
        if not len(nodes):
            return
        for layer, side, rows in self._targets():
            mask, eigenvalues = getattr(layer, f"eigenvalues_{side}_mask"), getattr(layer, f"eigenvalues_{side}")
            keep = np.ones(mask.shape[0], dtype="float32")
            keep[rows[nodes].ravel()] = 0.0
            mask.assign(ops.cast(_values(mask) * keep, mask.dtype))
            eigenvalues.assign(ops.cast(_values(eigenvalues) * keep, eigenvalues.dtype))

    def __repr__(self):
        consumers = [f"{c.name}@{int(rows[0, 0])}" for c, rows in self.consumers]
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
    readers = []  # (source, kind, layer, rows)
    counts = graph.call_counts()
    layouts = {}  # tensor key -> _Layout

    def layout(key):
        if key not in layouts:
            layouts[key] = _Layout.empty(graph.tensors[key].shape)
        return layouts[key]

    def note(source, reason):
        if reason not in reasons[source]:
            reasons[source].append(reason)

    def refuse(key, reason):
        for source in layout(key).sources():
            note(source, reason)

    def read(key, kind, layer):
        for source in layout(key).sources():
            rows = layout(key).rows(source, sizes[source])
            if rows is None:
                note(source, f"reaches '{layer.name}' with its nodes repeated unevenly")
            else:
                readers.append((source, kind, layer, rows))

    for call in graph.calls:
        layer = call.layer
        first = layout(call.inputs[0]).first if call.inputs else False
        role, why = features.role(call, graph, first)
        shared = counts[id(layer)] > 1
        out = call.outputs[0]
        if role == features.FULLY_CONNECTED:
            read(call.inputs[0], "consumer", layer)
            if shared:
                refuse(call.inputs[0], f"is read by '{layer.name}', a layer called more than once")
            source = sets.add()
            producers.append(layer)
            sizes.append(features.width(layer))
            reasons.append([])
            if shared:
                reasons[source].append(f"'{layer.name}' is called more than once (a shared layer)")
            activation = features.activation_reason(layer)
            if activation:
                reasons[source].append(f"'{layer.name}': {activation}")
            layouts[out] = _Layout.of_source(source, sizes[source], features.output_first(call, graph, first))
        elif role == features.PER_FEATURE:
            read(call.inputs[0], "pass", layer)
            if shared and layer.weights:
                refuse(call.inputs[0], f"passes '{layer.name}', a layer with weights called more than once")
            layouts[out] = layout(call.inputs[0]).moved(features.output_first(call, graph, first))
        elif role == features.FLATTEN:
            layouts[out] = layout(call.inputs[0]).taken(features.flatten_channels(call, graph, first))
        elif role == features.JOIN:
            inputs = [layout(key) for key in call.inputs]
            known = {parts.first for parts in inputs if parts.first is not None}
            if len({parts.owners.shape for parts in inputs}) != 1 or len(known) > 1:
                for key in call.inputs:
                    refuse(key, f"is combined by {type(layer).__name__} '{layer.name}' with features laid out differently")
                continue
            owners = np.stack([parts.owners for parts in inputs])
            nodes = np.stack([parts.nodes for parts in inputs])
            merged_owners, merged_nodes = np.full(owners.shape[1], -1), np.zeros(owners.shape[1], dtype=int)
            for position in range(owners.shape[1]):
                present = [i for i in range(len(inputs)) if owners[i, position] >= 0]
                if not present:
                    continue
                head = owners[present[0], position]
                for i in present[1:]:
                    sets.union(owners[i, position], head)
                    if nodes[i, position] != nodes[present[0], position] or sizes[owners[i, position]] != sizes[head]:
                        note(head, f"is combined by {type(layer).__name__} '{layer.name}' with other "
                             "nodes than their own counterparts")
                if len(present) < len(inputs):
                    note(head, f"is combined by {type(layer).__name__} '{layer.name}' with features of a "
                         "non-prunable source (e.g. a residual stream)")
                merged_owners[position], merged_nodes[position] = head, nodes[present[0], position]
            layouts[out] = _Layout(merged_owners, merged_nodes, known.pop() if known else None)
        elif role == features.CONCATENATE:
            layouts[out] = _Layout.joined([layout(key) for key in call.inputs])
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
    for source, kind, layer, rows in readers:
        group = by_root[sets.find(source)]
        target = group.consumers if kind == "consumer" else group.passes
        if not any(other is layer and np.array_equal(known, rows) for other, known in target):
            target.append((layer, rows))
    for group in groups:
        group.reasons.extend(r for r in group.fold_reasons() if r not in group.reasons)
    return groups


class _Layout:
    """Which node of which source each feature of a tensor is: `owners[i]` (a source index,
    -1 for none) and `nodes[i]`; `first`: the features are axis 1 (channels first), or
    None where unknown (a tensor no group reaches)."""

    def __init__(self, owners, nodes, first=None):
        self.owners, self.nodes, self.first = owners, nodes, first

    @classmethod
    def empty(cls, shape):
        n = shape[-1] if len(shape) > 1 and shape[-1] is not None else 0
        return cls(np.full(n, -1), np.zeros(n, dtype=int))

    @classmethod
    def of_source(cls, source, size, first):
        return cls(np.full(size, source), np.arange(size), first)

    @classmethod
    def joined(cls, parts):
        known = [p.first for p in parts if p.first is not None]
        return cls(np.concatenate([p.owners for p in parts]), np.concatenate([p.nodes for p in parts]),
                   known[0] if known else None)

    def moved(self, first):
        return _Layout(self.owners, self.nodes, first)

    def taken(self, index):
        if not len(self.owners):
            return _Layout(np.full(len(index), -1), np.zeros(len(index), dtype=int))
        return _Layout(self.owners[index], self.nodes[index], False)


    def sources(self):
        return [int(s) for s in np.unique(self.owners) if s >= 0]

    def rows(self, source, size):
        """`(size, k)` int array: the features holding each node of `source` (k per node),
        or None if the nodes do not appear equally often."""
        positions = np.flatnonzero(self.owners == source)
        counts = np.bincount(self.nodes[positions], minlength=size)
        if len(counts) != size or counts.min() != counts.max():
            return None
        order = np.lexsort((positions, self.nodes[positions]))
        return positions[order].reshape(size, -1)


def prunable_groups(model):
    """The groups of `node_groups(model)` that can be pruned."""
    return [group for group in node_groups(model) if group.prunable]
