"""Rules of `keras.ops` operations recorded in functional graphs (`x + 3.0`,
`inputs + block(x)`, `ops.pad`, `x[:, 1:]`, `ops.split`, ...).

- Elementwise operations (arithmetic, activations, casts) act feature by feature when
  their other arguments are scalars or per-feature constants (shape `(C,)` or
  `(1, …, 1, C)`, sliced by `compact`), and couple their tensor arguments like `Add`.
- Padding and slicing of the positions act channel by channel; reshapes that only add or
  remove axes of size 1 keep the features.
- Slicing (`x[..., a:b]`) and splitting (`ops.split`) the feature axis select features;
  `ops.concatenate` on it joins them. `compact` makes such calls anew with `ops.take` of
  the kept features.
- Any other operation is opaque, and the reason names it.

Per-feature constants and selections of features are read with the features last
(channels-last); on channels-first tensors they are opaque.
"""

import numpy as np
from keras import ops, tree
from keras.src.ops import core as core_ops
from keras.src.ops import nn as nn_ops
from keras.src.ops import numpy as numpy_ops

from keras_spectral.graph.rules.base import (
    COUPLE, OPAQUE, PER_FEATURE, RELAY, Join, Rule, broadcast_compatible, describe, input_rank, register_rule,
)
from keras_spectral.graph.rules.spatial import UnitAxesRule, unit_axes_moved

UNARY = (
    "Absolute", "Negative", "Exp", "Expm1", "Log", "Log1p", "Sqrt", "Square", "Tanh", "Sin", "Cos", "Sign",
    "Floor", "Ceil", "Round", "Trunc", "Clip", "Reciprocal", "NanToNum", "Cbrt", "Fabs",
    "Relu", "Relu6", "Sigmoid", "HardSigmoid", "Silu", "HardSilu", "Gelu", "Elu", "Selu", "LeakyRelu",
    "Softplus", "Softsign", "Celu", "LogSigmoid", "HardTanh", "SoftShrink", "HardShrink", "TanhShrink",
    "Squareplus", "SparsePlus", "SparseSigmoid", "Threshold", "Cast",
)
BINARY = ("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Power", "Maximum", "Minimum", "FloorDivide", "Mod")


def _is_keras_tensor(x):
    return type(x).__name__ == "KerasTensor"


def _constants(call):
    """The call's arguments that are not graph tensors."""
    return [x for x in tree.flatten((call.node.arguments.args, call.node.arguments.kwargs))
            if not _is_keras_tensor(x)]


def _size(x):
    shape = getattr(x, "shape", None)
    return 1 if shape is None else int(np.prod(shape))


def _per_feature(x, features):
    """Whether the constant `x` holds one value per feature (shape `(C,)` or `(1, …, C)`)."""
    shape = tuple(getattr(x, "shape", ()))
    return bool(shape) and shape[-1] == features and _size(x) == features


def _features(call, graph):
    return graph.tensors[call.inputs[0]].shape[-1] if call.inputs else None


class ElementwiseOpRule(Rule):
    """An elementwise operation: per feature with scalar or per-feature constant
    arguments; tensor arguments are coupled (broadcast over positions allowed)."""

    def flow(self, call, graph, first):
        arrays = [x for x in _constants(call) if _size(x) > 1]
        features = _features(call, graph)
        odd = [x for x in arrays if not _per_feature(x, features) or (first and input_rank(call, graph) > 2)]
        if odd:
            return OPAQUE, (f"reaches {describe(call.layer)}, an elementwise operation with a constant of "
                            f"shape {tuple(odd[0].shape)} (only scalars and per-feature constants on the last "
                            "axis keep the features apart)")
        if len(call.inputs) <= 1:
            return PER_FEATURE, None
        if arrays:
            return OPAQUE, f"reaches {describe(call.layer)}, which combines tensors and a per-feature constant"
        shapes = [tuple(graph.tensors[key].shape[1:]) for key in call.inputs]
        if not broadcast_compatible(shapes):
            return OPAQUE, f"reaches {describe(call.layer)}, which combines inputs of shapes {shapes}"
        return COUPLE, None

    def slices(self, call):
        return any(_size(x) > 1 for x in _constants(call))

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        """The operation called with its per-feature constants cut to the kept features."""

        def call(*args, **kwargs):
            def cut(x):
                if not _is_keras_tensor(x) and _size(x) > 1:
                    return np.take(np.asarray(x), keep_in, axis=-1)
                return x

            return layer(*tree.map_structure(cut, args), **tree.map_structure(cut, kwargs))

        return call


class PadRule(Rule):
    """`ops.pad` of the positions only (the feature axis and the batch unpadded)."""

    def flow(self, call, graph, first):
        widths = np.asarray(call.node.arguments.args[1] if len(call.node.arguments.args) > 1
                            else call.node.arguments.kwargs.get("pad_width"))
        rank = input_rank(call, graph)
        widths = np.broadcast_to(widths, (rank, 2))
        feature_axis = 1 if first and rank > 2 else rank - 1
        if widths[0].any() or widths[feature_axis].any():
            return OPAQUE, f"reaches {describe(call.layer)}, which pads the batch or feature axis"
        return PER_FEATURE, None


def _key_entries(call, graph):
    """The key of an `x[key]` call as one entry per axis, or None where it adds, removes or
    gathers axes (integers, None, tensors)."""
    key = call.node.arguments.args[1] if len(call.node.arguments.args) > 1 else None
    rank = input_rank(call, graph)
    entries = list(key) if isinstance(key, tuple) else [key]
    if any(e is None or isinstance(e, (int, np.integer)) or _is_keras_tensor(e) or
           not (isinstance(e, slice) or e is Ellipsis) for e in entries) or sum(e is Ellipsis for e in entries) > 1:
        return None
    if Ellipsis in entries:
        at = entries.index(Ellipsis)
        entries = entries[:at] + [slice(None)] * (rank - len(entries) + 1) + entries[at + 1:]
    return entries + [slice(None)] * (rank - len(entries))


class GetItemRule(Rule):
    """`x[...]`: per feature when the key slices positions only; a slice of the last
    (feature) axis selects features."""

    def flow(self, call, graph, first):
        entries = _key_entries(call, graph)
        rank = input_rank(call, graph)
        feature_axis = 1 if first and rank > 2 else rank - 1
        if entries is None or entries[0] != slice(None):
            return OPAQUE, f"reaches {describe(call.layer)}, an indexing that adds, removes or gathers axes"
        if entries[feature_axis] == slice(None):
            return PER_FEATURE, None
        if feature_axis != rank - 1:
            return OPAQUE, f"reaches {describe(call.layer)}, which slices channels-first features"
        return RELAY, np.arange(_features(call, graph))[entries[-1]]

    def slices(self, call):
        key = call.node.arguments.args[1] if len(call.node.arguments.args) > 1 else None
        last = key[-1] if isinstance(key, tuple) else key
        return isinstance(last, slice) and last != slice(None)

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        """`x[positions]`, then `ops.take` of the kept selected features."""

        def call(x, key):
            entries = list(key) if isinstance(key, tuple) else [key]
            selected = np.arange(_original(layer))[entries[-1]]
            entries[-1] = slice(None)
            positions = np.flatnonzero(np.isin(keep_in, selected))
            order = np.argsort([list(selected).index(f) for f in np.asarray(keep_in)[positions]], kind="stable")
            return ops.take(x[tuple(entries)], positions[order], axis=-1)

        return call


def _original(operation):
    """The feature count an operation's first call read (its input's last axis)."""
    return operation._inbound_nodes[0].arguments.keras_tensors[0].shape[-1]


def _split_parts(operation, features):
    """The feature indices of each output of `ops.split` over `features` features."""
    sections = operation.indices_or_sections
    cuts = (np.arange(1, sections) * (features // sections) if isinstance(sections, (int, np.integer))
            else np.asarray(sections))
    return np.split(np.arange(features), cuts)


class SplitRule(Rule):
    """`ops.split` of the last (feature) axis: each output selects features; other axes
    move positions (per feature)."""

    def flow(self, call, graph, first):
        rank, features = input_rank(call, graph), _features(call, graph)
        axis = call.layer.axis % rank
        if axis == 0:
            return OPAQUE, f"reaches {describe(call.layer)}, which splits the batch"
        if axis == rank - 1:
            return RELAY, _split_parts(call.layer, features)
        if first and rank > 2 and axis == 1:
            return OPAQUE, f"reaches {describe(call.layer)}, which splits channels-first features"
        return RELAY, [np.arange(features)] * len(call.outputs)

    def slices(self, call):
        rank = len(call.node.arguments.keras_tensors[0].shape)
        return call.layer.axis % rank == rank - 1

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        """One `ops.take` of the kept features per part."""
        parts = _split_parts(layer, _original(layer))

        def call(x):
            return [ops.take(x, np.flatnonzero(np.isin(keep_in, part)), axis=-1) for part in parts]

        return call


class ReshapeOpRule(UnitAxesRule):
    """`ops.reshape` to a shape whose feature entry is -1 (the call is made again as it
    is, so it must not fix the feature count)."""

    def flow(self, call, graph, first):
        ok, detail = unit_axes_moved(call, graph, first)
        target = list(call.layer.newshape)
        if ok and (len(target) < 2 or target[1 if detail else -1] != -1):
            return OPAQUE, f"reaches {describe(call.layer)}: its target shape fixes the number of features (use -1 there)"
        return super().flow(call, graph, first)


def _operation(name):
    for module in (numpy_ops, nn_ops, core_ops):
        if isinstance(getattr(module, name, None), type):
            return getattr(module, name)
    return None


for _name in UNARY + BINARY:
    if _operation(_name) is not None:
        register_rule(_operation(_name), ElementwiseOpRule())
for _name, _rule in (("Pad", PadRule()), ("GetItem", GetItemRule()), ("Split", SplitRule()),
                     ("Concatenate", Join()), ("Reshape", ReshapeOpRule()),
                     ("ExpandDims", UnitAxesRule()), ("Squeeze", UnitAxesRule())):
    if _operation(_name) is not None:
        register_rule(_operation(_name), _rule)
