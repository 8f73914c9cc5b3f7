"""The pruning rules: one object per layer type, found through one registry that the
package and its users fill alike (the layout of Torch-Pruning's `pruner/function.py`).

A rule says how a layer (or a `keras.ops` operation) treats the features of its input
(`flow`: produce / per-feature / relay / couple / join / opaque), how to slice it
(`slice`), and what it costs (`multiply_adds`). The modules hold the package's rules by
family; `register_rule` adds a user's:

>>> import keras_spectral as ks  # doctest: +SKIP
>>> @ks.register_rule(MyChannelScale)  # doctest: +SKIP
... class MyChannelScaleRule(ks.rules.PerFeature):
...     def slice(self, layer, keep_in, keep_out, input_shape, bias):
...         new = MyChannelScale(units=len(keep_in))
...         new.build(input_shape)
...         new.scale.assign(keras.ops.take(layer.scale, keep_in))
...         return new

After that, `node_groups`, `prune_nodes` and `compact` treat the layer like a built-in one.
"""

from keras_spectral.graph.rules import (  # noqa: F401
    attention, convolution, dense, elementwise, merging, normalization, ops, spatial,
)
from keras_spectral.graph.rules.base import (
    COUPLE, JOIN, OPAQUE, PER_FEATURE, PRODUCE, RELAY, ROLES, Couple, Join, Opaque, PerFeature, Produce, Relay,
    Rule, register_rule, registered, rule_for,
)
from keras_spectral.graph.rules.elementwise import activation_reason

__all__ = [
    "Rule", "Produce", "PerFeature", "Relay", "Couple", "Join", "Opaque",
    "PRODUCE", "PER_FEATURE", "RELAY", "COUPLE", "JOIN", "OPAQUE", "ROLES",
    "register_rule", "rule_for", "registered", "activation_reason",
]
