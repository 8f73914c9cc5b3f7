"""What pruning removed: per node group, its layers, its width and its cost, before and
after, with the model's totals (`pruning_report`)."""

import numpy as np

from keras_spectral.graph import ModelGraph, PrunedCost, node_groups
from keras_spectral.graph.groups import InnerGroup
from keras_spectral.graph.rules import rule_for

OTHER = "(other layers)"


def pruning_report(model, original=None):
    """A `PruningReport` of `model`.

    - `pruning_report(model)`: a model with removed (masked) nodes: before = the model as
      it is, after = what `compact(model)` leaves (removed nodes gone).
    - `pruning_report(small, original=model)`: two models, e.g. before and after
      `compact` / `collapse`: node groups are matched by name (their first producer's).

    Each group's row holds its layers (producers, then readers), its width (nodes) and
    the parameters and multiply-adds of the layers that make its nodes (producers and
    per-feature layers such as BatchNormalization), before and after; the layers of no
    listed group form one more row, so the rows add up to the totals. Costs are counted
    as `model_cost` counts them (parameters of the served model).

    Example:

    >>> report = pruning_report(model)  # doctest: +SKIP
    >>> report.summary()  # a table, like model.summary()  # doctest: +SKIP
    >>> report.totals["multiply_adds"]  # (before, after)  # doctest: +SKIP
    """
    if original is None:
        graph = ModelGraph(model)
        groups = [g for g in node_groups(graph) if g.prunable]
        costs = PrunedCost(graph, groups)
        before, after = _attributed(costs, groups, None), _attributed(costs, groups, [~g.active() for g in groups])
        widths = {g.name: (g.size, int(g.active().sum())) for g in groups}
        return PruningReport(model.name, _rows(groups, widths, before, after))
    old_graph, new_graph = ModelGraph(original), ModelGraph(model)
    old_groups, new_groups = node_groups(old_graph), node_groups(new_graph)
    by_name = {g.name: g for g in new_groups}
    shared = [g for g in old_groups if g.name in by_name and g.prunable]
    before = _attributed(PrunedCost(old_graph, shared), shared, None)
    matched = [by_name[g.name] for g in shared]
    after = _attributed(PrunedCost(new_graph, matched), matched, None)
    widths = {g.name: (g.size, by_name[g.name].size) for g in shared}
    return PruningReport(model.name, _rows(shared, widths, before, after))


def _attributed(costs, groups, removed):
    """`{group name or OTHER: [parameters, multiply_adds]}`: each call's cost given to the
    group it produces or passes; a layer holding several inner groups (a keras_hub block's
    heads and units) shares its cost among them (`_shares`)."""
    owner, inner = {}, {}
    for i, group in enumerate(groups):
        for layer in group.producers + [layer for layer, _ in group.passes]:
            owner.setdefault(id(layer), group.name)
        if isinstance(group, InnerGroup):
            inner.setdefault(id(group.layer), []).append(i)
    totals = {}
    for call, macs, params in costs.per_call(removed):
        held = inner.get(id(call.layer), [])
        parts = (_shares(call, costs.graph, groups, held, removed, params, macs) if len(held) > 1
                 else {owner.get(id(call.layer), OTHER): (params, macs)})
        for name, (part_params, part_macs) in parts.items():
            entry = totals.setdefault(name, [0.0, 0.0])
            entry[0] += part_params
            entry[1] += part_macs
    return totals


def _shares(call, graph, groups, held, removed, params, macs):
    """`{name: (parameters, multiply_adds)}` of one call of a layer holding the inner groups
    `groups[i]` for `i` in `held`: each group gets the part of the cost that goes with its
    nodes (the cost less the cost without them), OTHER the rest (normalizations)."""
    kept = {f"kept_{groups[i].kind}": 1.0 if removed is None else 1.0 - float(np.mean(removed[i])) for i in held}
    rule = rule_for(call.layer)
    full = rule.cost(call, graph, 1.0, 1.0, **kept)
    counted = 1.0 if params else 0.0  # a shared layer's parameters count at its first call
    parts, rest = {}, list(full)
    for i in held:
        without = rule.cost(call, graph, 1.0, 1.0, **{**kept, f"kept_{groups[i].kind}": 0.0})
        share = [f - w for f, w in zip(full, without)]
        parts[groups[i].name] = (share[1] * counted, share[0])
        rest = [r - s for r, s in zip(rest, share)]
    parts[OTHER] = (rest[1] * counted, rest[0])
    return parts


def _rows(groups, widths, before, after):
    rows = []
    for group in groups:
        layers = list(dict.fromkeys([p.name for p in group.producers] + [c.name for c, _ in group.consumers]))
        rows.append(_row(group.name, layers, widths[group.name], before, after, group.name))
    rows.append(_row(OTHER, [], (None, None), before, after, OTHER))
    return rows


def _row(name, layers, width, before, after, key):
    b, a = before.get(key, [0.0, 0.0]), after.get(key, [0.0, 0.0])
    return {
        "group": name,
        "layers": layers,
        "width": width,
        "parameters": (int(round(b[0])), int(round(a[0]))),
        "multiply_adds": (int(round(b[1])), int(round(a[1]))),
    }


class PruningReport:
    """What pruning removed, as data and as a table.

    Attributes:
        rows: One dict per node group (and one for the other layers): `group`, `layers`
            (producers, then readers), `width`, `parameters` and `multiply_adds`, each a
            `(before, after)` pair (`width` is `(None, None)` for the other layers).
        totals: `{"parameters": (before, after), "multiply_adds": (before, after)}`.
    """

    def __init__(self, name, rows):
        self.name = name
        self.rows = rows
        self.totals = {
            key: tuple(int(sum(row[key][i] for row in rows)) for i in (0, 1)) for key in ("parameters", "multiply_adds")
        }

    def as_dict(self):
        """The report as plain data (JSON-ready)."""
        return {"model": self.name, "rows": self.rows, "totals": self.totals}

    def summary(self, print_fn=None, max_layers=3):
        """Print the report as a table (`print_fn`: default `print`)."""
        (print_fn or print)(self._table(max_layers))

    def _table(self, max_layers):
        def pair(values, ratio=True):
            b, a = values
            if b is None:
                return ""
            share = f" ({a / b:.0%})" if ratio and b else ""
            return f"{b:,} → {a:,}{share}"

        lines = [(row["group"], _layers(row["layers"], max_layers), pair(row["width"], False), pair(row["parameters"]),
                  pair(row["multiply_adds"])) for row in self.rows]
        lines.append(("Total", "", "", pair(self.totals["parameters"]), pair(self.totals["multiply_adds"])))
        header = ("Node group", "Layers", "Width", "Parameters", "Multiply-adds")
        sizes = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
        rule = "━" * (sum(sizes) + 3 * (len(sizes) - 1))
        fmt = "   ".join(f"{{:<{n}}}" for n in sizes)
        out = [f'Pruning report: "{self.name}"', rule, fmt.format(*header), rule]
        out += [fmt.format(*line) for line in lines[:-1]] + [rule, fmt.format(*lines[-1]), rule]
        return "\n".join(out)

    def __str__(self):
        return self._table(3)

    def __repr__(self):
        p, m = self.totals["parameters"], self.totals["multiply_adds"]
        return f"PruningReport({self.name!r}, parameters {p[0]:,} → {p[1]:,}, multiply-adds {m[0]:,} → {m[1]:,})"


def _layers(names, limit):
    shown = ", ".join(names[:limit])
    return shown + (f", … (+{len(names) - limit})" if len(names) > limit else "")
