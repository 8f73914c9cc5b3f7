"""Node groups: the sets of hidden nodes that can be removed together, read from a graph.

A group is the output features (units, or channels) of one fully connected layer (Dense,
SpectralDense, or a convolution of any kind), or of several whose features are combined
elementwise (Add / Multiply / ..., e.g. a gated FFN, a squeeze-excite gate or the
residual stream of a ResNet: a coupled group, removed together). Usually node `i` is
feature `i` of every producer; features are followed node by node, so a concatenation of
narrow producers added to a wide one is one group whose nodes each producer holds in part.
What each layer does to the features is its rule's (`keras_spectral.graph.rules`): the
features travel through per-feature layers (activations, BatchNormalization, pooling,
padding, depthwise convolutions, ...), feature-axis concatenations (with offsets) and
relays (Flatten: a channel becomes the features of its positions) to the layers that read
them; the group is removable only if every reader is a fully connected layer. Features
that reach anything else (LayerNormalization, attention, a residual stream fed by a
non-prunable source, a model output) make the group not removable, and
`NodeGroup.reasons` says why.

Removing a node masks it where spectral layers (`SpectralDense`, `SpectralConv*`) hold
masks: in every producer when all producers are spectral (the node then outputs the
constant `activation(bias)`, which `compact` folds into the readers' biases), otherwise
in every reader when all readers are spectral (its kernel rows vanish). A group of
channels (made by convolutions) is masked in its spectral readers too, since a constant
channel reaching a padded convolution is not constant at the borders and cannot be
folded into a bias; a plain convolution reading it then makes the group not prunable.
"""

import re

import numpy as np
from keras import ops

from keras_spectral.graph import rules
from keras_spectral.graph.model_graph import ModelGraph
from keras_spectral.spectral_layers import is_spectral


def _values(variable):
    return np.asarray(ops.convert_to_numpy(variable), dtype="float64")


def mask_variable(layer, side):
    """The mask a `mask_targets` entry sets: a spectral layer's `eigenvalues_in_mask` /
    `eigenvalues_out_mask` (`side` "in" / "out"), or one the layer's rule names (`masks`:
    "feature" of a masked normalization, "heads" of an attention layer)."""
    if side in ("in", "out"):
        return getattr(layer, f"eigenvalues_{side}_mask")
    target = layer
    for name in rules.rule_for(layer).mask_path(layer, side).split("."):  # into sublayers: "mha.head_mask"
        target = target[int(name)] if name.isdigit() else getattr(target, name)  # "blocks.0": a list entry
    return target


def node_entries(rows, nodes):
    """The features (mask entries) of `nodes` in a `(size, k)` rows array (-1: none)."""
    entries = np.asarray(rows)[nodes].ravel()
    return entries[entries >= 0]


def node_sums(values, rows):
    """Per node: the sum of `values` over its entries in `rows` (-1 entries count 0)."""
    held = rows >= 0
    return np.where(held, values[np.where(held, rows, 0)], 0.0).sum(axis=1)


class NodeGroup:
    """One group of hidden nodes.

    Attributes:
        name: The first producer's name (the group's name in `node_sparsity` and logs).
        size: Number of nodes.
        produced: `(layer, rows)` pairs: the fully connected layers (Dense, convolutions)
            whose output features are the nodes; `rows` is a `(size, k)` int array, row
            `i` the output features of the layer that are node `i` (-1: the layer does
            not make that node, as when a concatenation of narrower producers is added
            to a wider one). Usually `rows[i] == [i]`.
        producers: The layers of `produced`.
        consumers: `(layer, rows)` pairs: fully connected layers that read the nodes;
            `rows[i]` the input features of the layer that hold node `i` (k = 1, or the
            positions of a channel read after Flatten; -1 where it does not read it).
        passes: `(layer, rows)` pairs: per-feature layers the nodes pass through, at
            those features of the layer's input.
        reasons: Why the group's nodes cannot be removed from the graph (empty if they
            can: the group is `removable`). A removable group is `prunable` when spectral
            layers hold its masks (`mask_holders`).
    """

    def __init__(self, size):
        self.size = size
        self.produced = []
        self.consumers = []
        self.passes = []
        self.reasons = []

    @property
    def producers(self):
        return [layer for layer, _ in self.produced]

    @property
    def name(self):
        return self.producers[0].name

    @property
    def channels(self):
        """Whether the nodes are channels made by convolutions."""
        return any(rules.rule_for(p).spatial for p in self.producers)

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
        return "; ".join(_one_clause_per_cause(reasons)) if reasons else None

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
            if not is_spectral(c) and getattr(rules.rule_for(c), "spatial", False)
        ]

    def mask_targets(self):
        """`(layer, side, rows)`: the masks that removing a node sets (`rows[i]`: the mask
        entries of node `i`; `side`: "out" or "in" of a spectral layer, "feature" of a
        per-feature layer's own mask, see `mask_variable`)."""
        holders = self.mask_holders
        if holders is None:
            raise ValueError(f"Node group '{self.name}' has no spectral layer to hold its masks.")
        targets = []
        if holders == "producers":
            targets += [(p, "out", rows) for p, rows in self.produced]
        if holders == "consumers" or self.channels:
            targets += [(c, "in", rows) for c, rows in self.consumers if is_spectral(c)]
        else:  # readers that cannot fold a removed input's constant into a bias mask it
            targets += [(c, "in", rows) for c, rows in self.consumers
                        if is_spectral(c) and not getattr(rules.rule_for(c), "folds", True)]
        # Per-feature layers with masks of their own (masked normalizations; a transformer
        # block's several, "feature…"): always set.
        targets += [(layer, kind, rows) for layer, rows in self.passes
                    for kind in rules.rule_for(layer).masks if kind.startswith("feature")]
        return targets

    @property
    def layers(self):
        """Every layer of the group: producers, consumers, then per-feature layers."""
        return list(self.producers) + [c for c, _ in self.consumers] + [p for p, _ in self.passes]

    def _holders(self):
        """`(layer, side, rows)` for every producer (`"out"`) and reader (`"in"`)."""
        return [(p, "out", rows) for p, rows in self.produced] + [(c, "in", rows) for c, rows in self.consumers]

    @staticmethod
    def _present(layer, side, rows):
        """Per node: `(held, unmasked)`: whether `layer` holds the node, and whether any of
        its entries is unmasked there (always, for a layer without masks)."""
        held = (rows >= 0).any(axis=1)
        if not is_spectral(layer):
            return held, held
        return held, node_sums(_values(getattr(layer, f"eigenvalues_{side}_mask")) != 0, rows) > 0

    def active(self):
        """Boolean array: which nodes are still present (not masked on either side; a node
        read at several features is present while any of them is)."""
        alive = np.ones(self.size, dtype=bool)
        for layer, side, rows in self._holders():
            held, unmasked = self._present(layer, side, rows)
            alive &= unmasked | ~held
        return alive

    def _masked_side(self, side):
        """Per node: whether every layer on `side` that holds it masks it, and one does."""
        masked, held_any = np.ones(self.size, dtype=bool), np.zeros(self.size, dtype=bool)
        for layer, layer_side, rows in self._holders():
            if layer_side == side:
                held, unmasked = self._present(layer, side, rows)
                held_any |= held
                masked &= ~(held & unmasked)
        return masked & held_any

    def check_masks(self):
        """Refuse nodes masked in some layers but neither in every producer nor in every
        reader (masks set by hand on one reader of several): whether they are removed is
        ambiguous."""
        unclear = ~self.active() & ~self._masked_side("out") & ~self._masked_side("in")
        if unclear.any():
            node = int(np.flatnonzero(unclear)[0])
            masked, kept = [], []
            for layer, side, rows in self._holders():
                held, unmasked = self._present(layer, side, rows)
                if held[node]:
                    (kept if unmasked[node] else masked).append(f"'{layer.name}'")
            raise ValueError(
                f"Node group '{self.name}': node {node} (of {int(unclear.sum())} such) is masked in "
                f"{', '.join(masked)} but still produced or read by {', '.join(kept)}, so whether it is removed "
                "is ambiguous. Remove nodes with NodeGroup.remove or keras_spectral.prune_nodes (they mask "
                "every layer that holds the node), or set the masks of all its producers or all its readers."
            )

    def remove(self, nodes):
        """Mask the given nodes (and zero their eigenvalues) where the masks live.

        Args:
            nodes: Node indices in `[0, size)`, or a boolean mask of `size` entries.
        """
        nodes = self._node_indices(nodes)
        if not len(nodes):
            return
        for layer, side, rows in self.mask_targets():
            mask = mask_variable(layer, side)
            keep = np.ones(mask.shape[0], dtype="float32")
            keep[node_entries(rows, nodes)] = 0.0
            mask.assign(ops.cast(_values(mask) * keep, mask.dtype))
            if side in ("in", "out"):  # a spectral layer: its eigenvalues go too
                eigenvalues = getattr(layer, f"eigenvalues_{side}")
                eigenvalues.assign(ops.cast(_values(eigenvalues) * keep, eigenvalues.dtype))

    def _node_indices(self, nodes):
        given = np.asarray(nodes)
        if given.dtype == bool:
            if given.shape != (self.size,):
                raise ValueError(
                    f"Received an invalid value for `nodes` of node group '{self.name}', expected a boolean "
                    f"mask of {self.size} entries (one per node) or node indices. Received: a boolean array "
                    f"of shape {given.shape}"
                )
            return np.flatnonzero(given)
        given = given.ravel()
        if given.size and (not np.issubdtype(given.dtype, np.integer) or given.min() < 0 or given.max() >= self.size):
            raise ValueError(
                f"Received an invalid value for `nodes` of node group '{self.name}', expected node indices in "
                f"[0, {self.size}) or a boolean mask of {self.size} entries. Received: nodes={nodes!r}"
            )
        return given.astype(int)

    def __repr__(self):
        consumers = [f"{c.name}@{int(rows[0, 0])}" for c, rows in self.consumers]
        state = "prunable" if self.prunable else f"not prunable: {self.reason}"
        return (
            f"NodeGroup({self.name!r}, size={self.size}, producers={[p.name for p in self.producers]}, "
            f"consumers={consumers}, {state})"
        )


_NAME = re.compile(r"'[^']*'")


def _one_clause_per_cause(reasons, shown=3):
    """The reasons with those that differ only in the layer named merged into one clause
    naming the layers: "reaches LayerNormalization 'a', 'b' and 3 more: why"."""
    merged = {}
    for reason in reasons:
        merged.setdefault(_NAME.sub("'…'", reason, count=1), []).append(reason)
    clauses = []
    for same in merged.values():
        names = [m.group(0) for m in (_NAME.search(r) for r in same) if m]
        if len(same) == 1 or len(names) != len(same):
            clauses.append(same[0])
            continue
        listed = ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
        clauses.append(_NAME.sub(lambda _: listed, same[0], count=1))
    return clauses


class InnerGroup(NodeGroup):
    """Nodes held inside one layer and coupled with nothing else: the heads of an
    attention layer, the feed-forward units of a transformer block (one group per kind
    its rule's `inner(layer)` names). Prunable when the layer holds their masks
    (`SpectralMultiHeadAttention`, the spectral keras_hub blocks) and is called once;
    removed whole by its rule's slice.

    Attributes beyond `NodeGroup`'s: `layer`, the layer that holds the nodes (also its
    only producer); `kind`, which of its inner node sets (`"heads"`, `"units"`, ...).
    """

    def __init__(self, layer, kind="heads", shared=False):
        super().__init__(rules.rule_for(layer).inner(layer)[kind])
        self.layer, self.kind = layer, kind
        if shared:
            self.reasons.append(f"'{layer.name}' is called more than once (a shared layer)")

    @property
    def name(self):
        return f"{self.layer.name}/{self.kind}"

    @property
    def producers(self):
        return [self.layer]

    @property
    def channels(self):
        return False

    @property
    def mask_holders(self):
        return "producers" if rules.rule_for(self.layer).holds_masks(self.layer) else None

    @property
    def reason(self):
        reasons = list(self.reasons)
        if not reasons and self.mask_holders is None:
            reasons.append(f"'{self.layer.name}' holds no mask of its {self.kind}: convert it with keras_spectral.spectralize")
        return "; ".join(reasons) if reasons else None

    def fold_reasons(self):
        return []

    def mask_targets(self):
        if self.mask_holders is None:
            raise ValueError(f"Node group '{self.name}' has no mask of its {self.kind} to set.")
        return [(self.layer, self.kind, rules.rule_for(self.layer).inner_rows(self.layer, self.kind))]

    def active(self):
        if self.mask_holders is None:
            return np.ones(self.size, dtype=bool)
        rows = rules.rule_for(self.layer).inner_rows(self.layer, self.kind)
        return _values(mask_variable(self.layer, self.kind))[rows[:, 0]] != 0

    def check_masks(self):
        return None

    def scores(self, score):
        """The nodes' `score` (weight and spectral criteria), from the layer's rule."""
        return rules.rule_for(self.layer).inner_scores(self.layer, score, self.kind)

    def __repr__(self):
        state = "prunable" if self.prunable else f"not prunable: {self.reason}"
        return f"InnerGroup({self.name!r}, size={self.size}, {state})"


class _UnionFind:
    def __init__(self):
        self.parent = []

    def add(self, count=1):
        """`count` new singletons; returns the first one's index."""
        first = len(self.parent)
        self.parent.extend(range(first, first + count))
        return first

    def find(self, i):
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i, j):
        self.parent[self.find(i)] = self.find(j)


def node_groups(model):
    """Every node group of `model` (prunable or not), in the order of their producers.

    Features are followed node by node: elementwise merges (Add, Multiply, a squeeze-excite
    gate) tie the nodes they combine, so a concatenation of narrow producers added to a
    wide one (an Inception-ResNet or NASNet block) forms one group whose nodes each
    producer holds in part. Layers that hold nodes inside (attention heads) add an
    `InnerGroup` each, after the others.

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
    nodes = _UnionFind()  # one entry per node of every source
    producers, bases, reasons = [], [], []  # per source (one per producing call)
    owner = []  # node id -> source
    readers = []  # (kind, layer, node ids of its input features)
    counts = graph.call_counts()
    layouts = {}  # tensor key -> _Layout

    def layout(key):
        if key not in layouts:
            layouts[key] = _Layout.empty(graph.tensors[key].shape)
        return layouts[key]

    def note(source, reason):
        if reason not in reasons[source]:
            reasons[source].append(reason)

    def sources(ids):
        return sorted({owner[i] for i in ids[ids >= 0]})

    def refuse(key, reason):
        for source in sources(layout(key).ids):
            note(source, reason)

    def read(key, kind, layer):
        ids = layout(key).ids
        if (ids >= 0).any():
            readers.append((kind, layer, ids))

    for call in graph.calls:
        layer = call.layer
        known = [layout(key).first for key in call.inputs if layout(key).first is not None]
        first = known[0] if known else (layout(call.inputs[0]).first if call.inputs else False)
        rule = rules.rule_for(layer)
        role, detail = rule.flow(call, graph, first)
        shared = counts[id(layer)] > 1
        out = call.outputs[0] if call.outputs else None
        if role == rules.PRODUCE:
            read(call.inputs[0], "consumer", layer)
            if shared:
                refuse(call.inputs[0], f"is read by '{layer.name}', a layer called more than once")
            source, size = len(producers), rule.width(layer)
            producers.append(layer)
            bases.append(nodes.add(size))
            owner.extend([source] * size)
            reasons.append([])
            if shared:
                reasons[source].append(f"'{layer.name}' is called more than once (a shared layer)")
            activation = rules.activation_reason(layer)
            if activation:
                reasons[source].append(f"'{layer.name}': {activation}")
            tied_in, tied_out = rule.ties(call, graph)
            for tie in tied_in:  # input features removed together (a grouped convolution)
                ids = layout(call.inputs[0]).ids[tie]
                present = ids[ids >= 0]
                if 0 < len(present) < len(tie):
                    for s in sources(present):
                        note(s, f"is read by '{layer.name}', a grouped convolution, beside features of a "
                             "non-prunable source in its other groups")
                for other in present[1:]:
                    nodes.union(other, present[0])
            for tie in tied_out:
                for other in tie[1:]:
                    nodes.union(bases[source] + other, bases[source] + tie[0])
            layouts[out] = _Layout(bases[source] + np.arange(size), rule.output_first(call, graph, first))
        elif role in (rules.PER_FEATURE, rules.RELAY):
            read(call.inputs[0], "pass", layer)
            if shared and getattr(layer, "weights", None):
                refuse(call.inputs[0], f"passes '{layer.name}', a layer with weights called more than once")
            for key in call.inputs[1:]:
                refuse(key, f"is an extra input of {type(layer).__name__} '{layer.name}'")
            moved = rule.output_first(call, graph, first)
            parts = layout(call.inputs[0])
            if role == rules.PER_FEATURE:
                layouts[out] = parts.moved(moved)
            else:  # one index array, or one per output (a split)
                for key, index in zip(call.outputs, detail if isinstance(detail, list) else [detail]):
                    layouts[key] = parts.taken(index, moved)
        elif role == rules.COUPLE:
            inputs = [layout(key) for key in call.inputs]
            known = {parts.first for parts in inputs if parts.first is not None}
            if len({parts.ids.shape for parts in inputs}) != 1 or len(known) > 1:
                for key in call.inputs:
                    refuse(key, f"is combined by {type(layer).__name__} '{layer.name}' with features laid out differently")
                continue
            ids = np.stack([parts.ids for parts in inputs])
            merged = np.full(ids.shape[1], -1)
            for position in range(ids.shape[1]):
                present = ids[:, position][ids[:, position] >= 0]
                if not len(present):
                    continue
                for other in present[1:]:
                    nodes.union(other, present[0])
                if len(present) < len(inputs):
                    for source in sources(present):
                        note(source, f"is combined by {type(layer).__name__} '{layer.name}' with features "
                             "of a non-prunable source (e.g. a residual stream)")
                merged[position] = present[0]
            layouts[out] = _Layout(merged, known.pop() if known else None)
        elif role == rules.JOIN:
            axis = 1 if first and len(graph.tensors[call.inputs[0]].shape) > 2 else -1
            layouts[out] = _Layout.joined([
                layout(key) if (layout(key).ids >= 0).any() else _Layout.empty(graph.tensors[key].shape, axis)
                for key in call.inputs
            ])
        else:
            for key in call.inputs:
                refuse(key, detail)
    for key in graph.outputs:
        refuse(key, "is a model output")
    groups = _collect(nodes, producers, bases, owner, reasons, readers)
    inner = [InnerGroup(call.layer, kind, counts[id(call.layer)] > 1) for call in graph.calls
             for kind in rules.rule_for(call.layer).inner(call.layer)]
    return groups + list({(id(g.layer), g.kind): g for g in inner}.values())


def _collect(nodes, producers, bases, owner, reasons, readers):
    """The groups: sources tied by any node, each group's nodes numbered in the order of
    its producers' output features."""
    total = len(owner)
    owner = np.asarray(owner, dtype=int)
    roots = np.array([nodes.find(i) for i in range(total)], dtype=int)
    linked = _UnionFind()
    linked.add(len(producers))
    for source, root_source in set(zip(owner.tolist(), owner[roots].tolist())):
        linked.union(source, root_source)
    groups, by_top = [], {}
    group_of = np.full(total, -1)  # by node root: the group's index in `groups`
    node_of = np.full(total, -1)  # by node root: the node's index in its group
    ends = list(bases[1:]) + [total]
    for source, producer in enumerate(producers):
        top = linked.find(source)
        if top not in by_top:
            by_top[top] = len(groups)
            groups.append(NodeGroup(0))
        g = by_top[top]
        group = groups[g]
        group.reasons.extend(r for r in reasons[source] if r not in group.reasons)
        for root in roots[bases[source]:ends[source]]:
            if group_of[root] < 0:
                group_of[root], node_of[root] = g, group.size
                group.size += 1
    for source, producer in enumerate(producers):
        g = by_top[linked.find(source)]
        ids = np.arange(bases[source], ends[source])
        groups[g].produced.append((producer, _rows(groups[g].size, g, group_of, node_of, roots, ids)))
    for kind, layer, ids in readers:
        held = ids >= 0
        for g in np.unique(group_of[roots[ids[held]]]):
            group = groups[g]
            rows = _rows(group.size, g, group_of, node_of, roots, ids)
            target = group.consumers if kind == "consumer" else group.passes
            if not any(other is layer and np.array_equal(known, rows) for other, known in target):
                target.append((layer, rows))
    for group in groups:
        group.reasons.extend(r for r in group.fold_reasons() if r not in group.reasons)
    return groups


def _rows(size, g, group_of, node_of, roots, ids):
    """`(size, k)`: the positions of `ids` (a node id per feature, -1 for none) that hold
    each node of group `g`, padded with -1."""
    positions = np.flatnonzero(ids >= 0)
    root = roots[ids[positions]]
    mine = group_of[root] == g
    positions, node = positions[mine], node_of[root[mine]]
    order = np.lexsort((positions, node))
    positions, node = positions[order], node[order]
    counts = np.bincount(node, minlength=size)
    rows = np.full((size, max(1, int(counts.max(initial=0)))), -1, dtype=int)
    column = np.arange(len(positions)) - (np.cumsum(counts) - counts)[node]
    rows[node, column] = positions
    return rows


class _Layout:
    """Which node each feature of a tensor is: `ids[i]` (a node id, -1 for none); `first`:
    the features are axis 1 (channels first), or None where unknown (a tensor no group
    reaches)."""

    def __init__(self, ids, first=None):
        self.ids, self.first = np.asarray(ids, dtype=int), first

    @classmethod
    def empty(cls, shape, axis=-1):
        """No node at any feature of a tensor of `shape`, whose features are on `axis`."""
        n = shape[axis] if len(shape) > 1 and shape[axis] is not None else 0
        return cls(np.full(n, -1))

    @classmethod
    def joined(cls, parts):
        known = [p.first for p in parts if p.first is not None]
        return cls(np.concatenate([p.ids for p in parts]), known[0] if known else None)

    def moved(self, first):
        return _Layout(self.ids, first)

    def taken(self, index, first=False):
        if not len(self.ids):
            return _Layout(np.full(len(index), -1))
        return _Layout(self.ids[index], first)


def prunable_groups(model):
    """The groups of `node_groups(model)` that can be pruned."""
    return [group for group in node_groups(model) if group.prunable]
