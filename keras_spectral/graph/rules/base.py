"""The rule object of a layer type, and the registry that finds it for a layer.

A rule answers, for one call of a layer (or of a `keras.ops` operation) in a graph, what
it does to the features of its input (`flow`), how to make a narrower copy of the layer
(`slice`), and what it costs (`multiply_adds`). The package's own rules and users' rules
live in the same registry (`register_rule`); `rule_for(layer)` walks the layer class's
bases and returns the nearest registered rule, or `Opaque()` for a class nobody knows.

A tensor's features are its last axis, or axis 1 for a channels-first spatial tensor
(`first=True`; `first=None` where no node group's features are laid out, e.g. a model
input). The roles a rule's `flow` gives:

- `PRODUCE`: reads the input's features as the rows of a kernel and makes new ones
  (Dense, convolutions): the producer of a node group, and a reader of the groups it reads.
- `PER_FEATURE`: output feature `i` depends only on input feature `i` (activations,
  BatchNormalization, pooling, a depthwise convolution, elementwise arithmetic with a
  scalar, ...).
- `RELAY`: each output feature is one input feature, given by an index array (Flatten:
  a channel becomes its positions; a depthwise convolution with `depth_multiplier` m:
  channel `i` becomes outputs `i·m … i·m+m−1`).
- `COUPLE`: elementwise combination of several inputs (Add, Multiply, a squeeze-excite
  gate broadcast over positions): feature `i` of every input is feature `i` of the
  output, so their producers form one coupled group.
- `JOIN`: the inputs' features side by side (Concatenate on the feature axis).
- `OPAQUE`, with a reason: features that reach it cannot be removed.
"""

import keras
import numpy as np

from keras_spectral import extensions

PRODUCE = "produce"
PER_FEATURE = "per_feature"
RELAY = "relay"
COUPLE = "couple"
JOIN = "join"
OPAQUE = "opaque"
ROLES = (PRODUCE, PER_FEATURE, RELAY, COUPLE, JOIN, OPAQUE)


def describe(layer):
    """`Class 'name'`, how messages name a layer or operation."""
    return f"{type(layer).__name__} '{getattr(layer, 'name', '?')}'"


def input_rank(call, graph):
    return len(graph.tensors[call.inputs[0]].shape) if call.inputs else 0


def data_format_first(layer):
    """Whether `layer` takes its channels on axis 1 (`data_format="channels_first"`)."""
    return getattr(layer, "data_format", "channels_last") == "channels_first"


class Rule:
    """How one layer type treats features. Subclass one of the role classes below
    (`Produce`, `PerFeature`, `Relay`, `Couple`, `Join`, `Opaque`) and override what
    differs; register it with `register_rule`.

    Methods (each takes the layer, or its `call` in a `ModelGraph`):
        flow(call, graph, first): `(role, detail)`: `detail` is the reason of an
            `OPAQUE` role, the index array of a `RELAY` (a list of them, one per output,
            for a split), else None. `first`: whether the call's first input has its
            features on axis 1.
        produces(layer), ties(call, graph): whether the layer makes new features, and
            which of its input and output features go together (see `ties`).
        output_first(call, graph, first): whether the output's features are on axis 1.
        feature_axis(layer): the axis of the layer's input that its per-feature weights
            index (default: 1 for `data_format="channels_first"`, else -1).
        slice(layer, keep_in, keep_out, input_shape, bias): a new built layer of the
            same class keeping input features `keep_in` and output features `keep_out`
            (index arrays; per-feature layers get the same array twice), for inputs of
            `input_shape`; `bias` (producers only) is the new bias or None. Return None
            for a layer without per-feature state: it is then copied as it is. (For a
            `keras.ops` operation: a function called in its place with the call's
            arguments.)
        slices(call): whether the call needs `slice` (default: the rule defines it).
        masks: `{kind: attribute name}` of masks the layer holds of its own, that removing
            a node sets to 0: `"feature"` for a per-feature layer's mask of its features
            (a masked normalization), an inner kind (`"heads"`, `"units"`) for a layer's
            inner nodes. A dotted name reaches into sublayers (`"_attention.head_mask"`; a
            number indexes a list, `"blocks.0.mha.head_mask"`); `mask_path(layer, kind)`
            gives it where it depends on the layer.
        inner(layer), inner_scores(layer, score, kind), holds_masks(layer), `slice`'s
            `keep_<kind>` and `cost`'s `kept_<kind>`: for a layer that holds node groups
            inside (attention heads, a transformer block's feed-forward units; see
            `keras_spectral.graph.groups.InnerGroup`): `{kind: number of nodes}`, their
            scores by a weight or spectral criterion, whether it holds their masks, the
            indices kept, and the fraction kept.
        multiply_adds(call, graph): multiply-adds of one sample through the call.
        parameters(layer): the layer's parameters as served (all its weights; a producer
            counts its kernel and bias, so a spectral layer counts as the plain layer it
            computes).
        cost(call, graph, kept_in, kept_out): `(multiply_adds, parameters)` of the call once
            only the fractions `kept_in` of its input features and `kept_out` of its output
            features remain (default: both scale with `kept_in`, as for a per-feature layer).
    """

    role = OPAQUE
    masks = {}  # masks the layer holds of its own, by kind ("feature", "heads"): attribute names

    def slices(self, call):
        """Whether `compact` must make this call anew when features are removed (default:
        where the rule overrides `slice`, i.e. the layer holds per-feature state)."""
        return type(self).slice is not Rule.slice

    def flow(self, call, graph, first):
        return self.role, None

    def output_first(self, call, graph, first):
        if call.outputs and len(graph.tensors[call.outputs[0]].shape) <= 2:
            return False
        return first

    def feature_axis(self, layer):
        return 1 if data_format_first(layer) else -1

    def produces(self, layer):
        """Whether `layer` makes new features (a group's producer)."""
        return False

    def inner(self, layer):
        """`{kind: size}` of the node groups the layer holds inside (default: none)."""
        return {}

    def mask_path(self, layer, kind):
        """The attribute path of the layer's `kind` mask (default: `masks[kind]`)."""
        return self.masks[kind]

    def inner_rows(self, layer, kind):
        """`(nodes, k)`: the entries of the `kind` mask that each inner node holds
        (default: one each, node `i` entry `i`)."""
        return np.arange(self.inner(layer)[kind])[:, None]

    def ties(self, call, graph):
        """`(inputs, outputs)`: lists of index arrays of input features, and of output
        features (producers), that must be removed together (a grouped convolution's
        same positions in every group). Default: none."""
        return [], []

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        return None

    def multiply_adds(self, call, graph):
        return 0

    def parameters(self, layer):
        return sum(int(np.prod(w.shape)) for w in getattr(layer, "weights", []))

    def cost(self, call, graph, kept_in, kept_out):
        return self.multiply_adds(call, graph) * kept_in, self.parameters(call.layer) * kept_in

    def __repr__(self):
        return f"{type(self).__name__}()"


class Opaque(Rule):
    """Features that reach the layer cannot be removed; `reason` says why."""

    def __init__(self, reason=None):
        self.reason = reason

    def flow(self, call, graph, first):
        why = f": {self.reason}" if self.reason else ""
        return OPAQUE, f"reaches {describe(call.layer)}{why}"


class PerFeature(Rule):
    """Output feature `i` depends only on input feature `i`. Override `reason` to refuse
    some configurations (return a sentence, or None when the call is per-feature), and
    `slice` if the layer holds per-feature weights."""

    role = PER_FEATURE

    def reason(self, call, graph, first):
        return None

    def flow(self, call, graph, first):
        why = self.reason(call, graph, first)
        return (PER_FEATURE, None) if why is None else (OPAQUE, f"reaches {describe(call.layer)}: {why}")


class Relay(Rule):
    """Each output feature is one input feature: override `index(call, graph, first)`."""

    role = RELAY

    def index(self, call, graph, first):
        raise NotImplementedError

    def flow(self, call, graph, first):
        return RELAY, self.index(call, graph, first)


class Couple(Rule):
    """Elementwise combination of the inputs (broadcast over positions allowed)."""

    role = COUPLE

    def flow(self, call, graph, first):
        shapes = [tuple(graph.tensors[key].shape[1:]) for key in call.inputs]
        if not broadcast_compatible(shapes):
            return OPAQUE, f"reaches {describe(call.layer)}, which combines inputs of shapes {shapes}"
        return COUPLE, None


class Join(Rule):
    """The inputs' features side by side; override `axis(layer)`."""

    role = JOIN

    def axis(self, layer):
        return layer.axis

    def flow(self, call, graph, first):
        rank = input_rank(call, graph)
        feature_axis = 1 if first and rank > 2 else rank - 1
        axis = self.axis(call.layer)
        if axis % rank != feature_axis:
            return OPAQUE, f"reaches {describe(call.layer)}, which joins axis {axis}, not the feature axis"
        return JOIN, None


class Produce(Rule):
    """Reads the input's features as kernel rows and produces `width(layer)` new ones.

    Attributes:
        spatial: Whether the features are channels read over positions (convolutions):
            a removed channel's constant cannot be folded into a reader's bias.
        folds: Whether a removed input's constant value can be folded into the bias
            through `kernel` rows (False for attention: such readers mask the input).
    """

    role = PRODUCE
    spatial = False
    folds = True  # a removed input's constant can be folded into the bias (`kernel` rows)

    def produces(self, layer):
        return True

    def width(self, layer):
        raise NotImplementedError

    def kernel(self, layer):
        """The kernel as `(..., inputs, outputs)` (for magnitude scores and folding)."""
        return layer.kernel

    def bias(self, layer):
        return getattr(layer, "bias", None) if getattr(layer, "use_bias", False) else None

    def parameters(self, layer):
        return self.kernel_size(layer) + (self.width(layer) if self.bias(layer) is not None else 0)

    def kernel_size(self, layer):
        """Entries of the (direct-space) kernel."""
        return int(np.prod(self.kernel(layer).shape))

    def cost(self, call, graph, kept_in, kept_out):
        """The kernel's cost scales with both fractions, the bias with `kept_out`."""
        layer = call.layer
        bias = self.width(layer) if self.bias(layer) is not None else 0
        return (self.multiply_adds(call, graph) * kept_in * kept_out,
                self.kernel_size(layer) * kept_in * kept_out + bias * kept_out)


def broadcast_compatible(shapes):
    """Whether same-rank shapes broadcast over positions only: the last axes (features)
    equal, any other axis equal or 1."""
    if len({len(s) for s in shapes}) != 1 or not shapes[0]:
        return False
    if len({s[-1] for s in shapes}) != 1:
        return False
    for sizes in zip(*shapes):
        known = {d for d in sizes if d not in (1, None)}
        if len(known) > 1:
            return False
    return True


_RULES = {}


def register_rule(layer_class, rule=None):
    """Tell the pruning tools how `layer_class` (and its subclasses, unless they have a
    rule of their own) treats features. Use as a decorator on a `Rule` subclass, or call
    with a rule instance (or class).

    Args:
        layer_class: A `keras.layers.Layer` subclass, or a `keras.ops` operation class.
        rule: A `Rule` instance or subclass; omitted when used as a decorator.

    Example:

    >>> @register_rule(MyChannelScale)  # doctest: +SKIP
    ... class MyChannelScaleRule(rules.PerFeature):
    ...     def slice(self, layer, keep_in, keep_out, input_shape, bias):
    ...         new = MyChannelScale(units=len(keep_in))
    ...         new.build(input_shape)
    ...         new.scale.assign(keras.ops.take(layer.scale, keep_in))
    ...         return new
    """
    if not isinstance(layer_class, type) or not issubclass(layer_class, keras.Operation):
        raise TypeError(
            "Received an invalid value for `layer_class`, expected a keras.layers.Layer (or "
            f"keras.Operation) subclass. Received: layer_class={layer_class!r}"
        )

    def add(rule):
        instance = rule() if isinstance(rule, type) else rule
        if not isinstance(instance, Rule):
            raise TypeError(
                "Received an invalid value for `rule`, expected a keras_spectral.rules.Rule "
                f"instance or subclass. Received: rule={rule!r}"
            )
        _RULES[layer_class] = instance
        return rule

    return add if rule is None else add(rule)


def rule_for(layer):
    """The rule of `layer`'s class (its nearest registered base), else `Opaque()`. A
    subclass that overrides `call` of its registered base may compute something else, so
    it is opaque until a rule is registered for it."""
    extensions.hub()  # keras_hub's rules, once keras_hub is imported
    for cls in type(layer).__mro__:
        if cls in _RULES:
            if cls is not type(layer) and getattr(type(layer), "call", None) is not getattr(cls, "call", None):
                return Opaque(f"its class overrides call() of {cls.__name__}; register a rule for "
                              f"{type(layer).__name__} (keras_spectral.register_rule)")
            return _RULES[cls]
    return Opaque()


def registered():
    """`{class: rule}` of every registered rule (a copy)."""
    return dict(_RULES)
