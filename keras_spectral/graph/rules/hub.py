"""Rules of keras_hub's transformer blocks (`TransformerEncoder`, `TransformerDecoder`,
`GemmaDecoderBlock`, and their spectral and pruned classes in `keras_spectral.hub`),
registered once keras_hub is imported.

A block holds two node groups inside (`InnerGroup`s): its self-attention heads and its
feed-forward units. The residual stream passes a spectral `TransformerEncoder` or
`TransformerDecoder` (without cross-attention) as a per-feature layer (`StreamBlockRule`);
Gemma's and ViT's blocks are opaque to it.
"""

import numpy as np

from keras_spectral import hub
from keras_spectral.graph.rules.attention import AttentionRule
from keras_spectral.graph.rules.base import OPAQUE, PER_FEATURE, Opaque, describe, register_rule, rule_for
from keras_spectral.graph.rules.weights import numpy

_ATTENTION = AttentionRule()


class TransformerBlockRule(Opaque):
    """A keras_hub encoder or decoder block (`MultiHeadAttention`-based): heads and
    feed-forward units inside.

    Args:
        attention: The attribute of the block's self-attention.
        up: The attributes of the feed-forward layers that make the units.
        down: The attribute of the feed-forward layer that reads them (its input mask
            removes a unit).
    """

    def __init__(self, attention="_self_attention_layer", up=("_feedforward_intermediate_dense",),
                 down="_feedforward_output_dense"):
        super().__init__("its hidden features (the residual stream) are not prunable yet; its heads and "
                         "feed-forward units are")
        self.attention, self.up, self.down = attention, tuple(up), down
        self.masks = {"heads": f"{attention}.head_mask", "units": f"{down}.eigenvalues_in_mask"}

    def feature_axis(self, layer):
        return -1


    def _parts(self, layer):
        return (hub.attribute(layer, self.attention), [hub.attribute(layer, a) for a in self.up],
                hub.attribute(layer, self.down))

    def inner(self, layer):
        _, up, _ = self._parts(layer)
        return {"heads": self.heads(layer), "units": int(up[0].kernel.shape[-1])}

    def heads(self, layer):
        return hub.attribute(layer, self.attention)._num_heads

    def holds_masks(self, layer):
        return isinstance(layer, hub._SpectralBlock)

    def inner_scores(self, layer, score, kind):
        """Heads: `head_scores`. Units: `|λ_out|` of the layers that make them (`"out"`),
        `|λ_in|` of the one that reads them (`"in"`), their sum or product; `"l1"` / `"l2"`:
        the norm of the unit's incoming weights (its columns of the layers that make it)."""
        if kind == "heads":
            return self.head_scores(layer, score)
        _, up, down = self._parts(layer)
        if score in ("l1", "l2"):
            kernels = np.concatenate([numpy(rule_for(d).kernel(d)) for d in up], axis=0)
            return np.abs(kernels).sum(axis=0) if score == "l1" else np.sqrt(np.square(kernels).sum(axis=0))
        out = sum(np.abs(numpy(d.eigenvalues_out)) for d in up)
        into = np.abs(numpy(down.eigenvalues_in * down.eigenvalues_in_mask))
        return {"out": out, "in": into, "sum": out + into, "product": out * into}[score]

    def head_scores(self, layer, score):
        return _ATTENTION.inner_scores(hub.attribute(layer, self.attention), score)

    def config(self, layer, heads, units):
        """The config of the block with `heads` (kept indices) and `units` units."""
        attention = getattr(layer, self.attention)
        config = {**layer.get_config(), "num_heads": len(heads), "intermediate_dim": units,
                  "key_dim": attention._key_dim}
        cross = getattr(layer, "_cross_attention_layer", None)
        if cross is not None:
            config["cross_attention_heads"] = cross._num_heads
        return config

    def sliced_attention(self, layer, heads, hidden=None):
        attention = hub.attribute(layer, self.attention)
        if hidden is None:
            hidden = np.arange(int(attention._output_dense.kernel.shape[-1]))
        shape = tuple(attention.get_build_config()["shapes_dict"]["query_shape"])
        bias = attention._output_dense.bias
        bias = None if bias is None else numpy(bias)[hidden]
        return hub._weights(_ATTENTION.slice(attention, hidden, hidden, shape[:-1] + (len(hidden),), bias,
                                             keep_heads=heads))

    def slice(self, layer, keep_in, keep_out, input_shape, bias, keep_heads=None, keep_units=None):
        """A block of the same class with the heads `keep_heads` and units `keep_units`."""
        heads, units = self.kept(layer, keep_heads, keep_units)
        new = hub.build_like(type(layer).from_config(self.config(layer, heads, len(units))), layer)
        sliced = self.sliced_parts(layer, heads, units)
        for attribute, source in hub._sublayers(layer):
            hub._assign(getattr(new, attribute), sliced.get(attribute) or hub._weights(source))
        return new

    def kept(self, layer, keep_heads, keep_units):
        """The heads and units kept (all where None)."""
        sizes = self.inner(layer)
        return tuple(np.arange(sizes[kind]) if keep is None else np.asarray(keep)
                     for kind, keep in (("heads", keep_heads), ("units", keep_units)))

    def sliced_parts(self, layer, heads, units, hidden=None):
        """`{attribute: weights}` of the block's attention and feed-forward layers keeping
        `heads`, `units` and the hidden features `hidden` (all where None)."""
        _, up, down = self._parts(layer)
        hidden = np.arange(int(up[0].kernel.shape[0])) if hidden is None else np.asarray(hidden)
        shape = (None, None, len(hidden))
        sliced = {self.attention: self.sliced_attention(layer, heads, hidden),
                  self.down: hub._weights(rule_for(down).slice(down, units, hidden, shape[:-1] + (len(units),),
                                                               _bias(down, hidden)))}
        for attribute, dense in zip(self.up, up):
            sliced[attribute] = hub._weights(rule_for(dense).slice(dense, hidden, units, shape, _bias(dense, units)))
        return sliced

    def attention_cost(self, attention, call, graph, kept_heads, kept_in=1.0):
        """`(multiply_adds, parameters)` per sample of a self-attention on the block's input
        (the fraction `kept_in` of the hidden features kept)."""
        return _ATTENTION.cost(_Call(attention, call.inputs[:1]), graph, kept_in, kept_in, kept_heads)

    def cost(self, call, graph, kept_in, kept_out, kept_heads=1.0, kept_units=1.0):
        """`(multiply_adds, parameters)` per sample, as served: the self-attention's (with the
        fraction `kept_heads` of heads) and the feed-forward network's (scaled by
        `kept_units`), plus the other sublayers' (normalizations; a decoder's
        cross-attention, counted with the decoder's own length); the hidden features scale
        with `kept_in` (1 where the block keeps its stream)."""
        layer = call.layer
        tokens = int(np.prod([d or 1 for d in graph.tensors[call.inputs[0]].shape[1:-1]]))
        macs, params = self.attention_cost(hub.attribute(layer, self.attention), call, graph, kept_heads, kept_in)
        cross = getattr(layer, "_cross_attention_layer", None)
        if cross is not None:
            m, p = self.attention_cost(cross, call, graph, 1.0)
            macs, params = macs + m, params + p
        _, up, _ = self._parts(layer)
        units = int(up[0].kernel.shape[-1]) * kept_units
        hidden = int(up[0].kernel.shape[0]) * kept_in
        return (macs + tokens * (len(up) + 1) * hidden * units,
                params + self._other_parameters(layer, units, kept_in))

    def multiply_adds(self, call, graph):
        return self.cost(call, graph, 1.0, 1.0)[0]

    def parameters(self, layer):
        attentions = [hub.attribute(layer, self.attention)] + [a for a in [getattr(layer, "_cross_attention_layer", None)]
                                                         if a is not None]
        return (sum(self.attention_parameters(a) for a in attentions)
                + self._other_parameters(layer, self.inner(layer)["units"]))

    def attention_parameters(self, attention):
        return _ATTENTION.parameters(attention)

    def _other_parameters(self, layer, units, kept_in=1.0):
        """Parameters of the feed-forward network with `units` units (as served), and of
        the sublayers that are neither attention nor feed-forward (normalizations), with
        the fraction `kept_in` of the hidden features."""
        _, up, down = self._parts(layer)
        hidden = int(up[0].kernel.shape[0]) * kept_in
        biases = sum(units for d in up if d.bias is not None) + (hidden if down.bias is not None else 0)
        feed_forward = (len(up) + 1) * hidden * units + biases
        skip = {self.attention, self.down, "_cross_attention_layer", *self.up}
        others = [s for n, s in hub._sublayers(layer) if n not in skip]
        norms = sum(int(np.prod(w.shape)) for s in others for w in s.weights if "mask" not in w.path)
        return feed_forward + norms * kept_in


class StreamBlockRule(TransformerBlockRule):
    """keras_hub's `TransformerEncoder` and `TransformerDecoder`: heads and units inside,
    and, once spectral (without cross-attention), per-feature on the hidden features (the
    residual stream): a removed feature is masked in both normalizations (it leaves their
    statistics), in the attention's and the feed-forward network's inputs, and in the
    block's output (`stream_mask`), and `compact` slices every sublayer."""

    stream_masks = {  # a removed feature: out of the statistics, not read (a post-LN block reads its input), 0 out
        "feature": "stream_mask", "feature_attention_norm": "_self_attention_layer_norm.feature_mask",
        "feature_ffn_norm": "_feedforward_layer_norm.feature_mask",
        "feature_attention_in": "_self_attention_layer.eigenvalues_in_mask",
        "feature_ffn_in": "_feedforward_intermediate_dense.eigenvalues_in_mask"}

    def __init__(self):
        super().__init__()
        self.masks = {**self.masks, **self.stream_masks}

    def streams(self, layer):
        """Whether the block's hidden features can be removed (else, why not)."""
        if not isinstance(layer, (hub.SpectralTransformerEncoder, hub.SpectralTransformerDecoder)):
            return "convert it with keras_spectral.spectralize (its heads and units are prunable then too)"
        if getattr(layer, "_cross_attention_layer", None) is not None:
            return "a decoder with cross-attention keeps its hidden features (its heads and units are prunable)"
        return None

    def flow(self, call, graph, first):
        why = self.streams(call.layer)
        return (PER_FEATURE, None) if why is None else (OPAQUE, f"reaches {describe(call.layer)}: {why}")

    def slice(self, layer, keep_in, keep_out, input_shape, bias, keep_heads=None, keep_units=None):
        """A block of the same class with the hidden features `keep_in`, the heads
        `keep_heads` and the units `keep_units`."""
        heads, units = self.kept(layer, keep_heads, keep_units)
        hidden = np.asarray(keep_in)
        config = self.config(layer, heads, len(units))
        shape = (None, None, len(hidden))
        if config.get("decoder_sequence_shape") is not None:  # a decoder given its shape builds in __init__
            config["decoder_sequence_shape"] = tuple(config["decoder_sequence_shape"][:-1]) + (len(hidden),)
        new = type(layer).from_config(config)
        if not new.built:
            new.build(*([shape] + ([None] if isinstance(layer, hub.TransformerDecoder) else [])))
        sliced = self.sliced_parts(layer, heads, units, hidden)
        for attribute in hub.NORMALIZATIONS:
            norm = getattr(layer, attribute)
            sliced[attribute] = hub._weights(rule_for(norm).slice(norm, hidden, hidden, shape, None))
        for attribute, source in hub._sublayers(layer):
            hub._assign(getattr(new, attribute), sliced.get(attribute) or hub._weights(source))
        new.stream_mask.assign(numpy(layer.stream_mask)[hidden])
        return new


class GemmaBlockRule(TransformerBlockRule):
    """keras_hub's `GemmaDecoderBlock`: grouped-query attention, whose heads group is its
    key/value heads (a node: a key/value head and the query heads that read it), and a
    gated feed-forward network (`gating_ffw`, `gating_ffw_2` make the units, `ffw_linear`
    reads them)."""

    def __init__(self):
        super().__init__("attention", ("gating_ffw", "gating_ffw_2"), "ffw_linear")

    def heads(self, layer):
        return layer.attention.num_key_value_heads

    def inner_rows(self, layer, kind):
        if kind != "heads":
            return super().inner_rows(layer, kind)
        attention = layer.attention
        return np.arange(attention.num_query_heads).reshape(attention.num_key_value_heads, -1)

    def head_scores(self, layer, score):
        """Per key/value head: the sum over its query heads of `|λ_h|` (spectral scores),
        or the L1 / L2 norm of its weights (its key and value columns, its query heads'
        query columns and output rows, eigenvalues folded in)."""
        attention, rows = layer.attention, self.inner_rows(layer, "heads")
        eigenvalues = numpy(attention.head_eigenvalues) if hasattr(attention, "head_eigenvalues") else None
        if score in ("in", "out", "sum", "product"):
            return np.abs(eigenvalues)[rows].sum(axis=1)
        power = 1 if score == "l1" else 2
        total = lambda kernel, axis: (np.abs(np.moveaxis(kernel, axis, 0)) ** power).reshape(len(kernel), -1).sum(1)  # noqa: E731
        output = numpy(attention.output_dense.kernel) * (1.0 if eigenvalues is None else eigenvalues[:, None, None])
        per_query = total(numpy(attention.query_dense.kernel), 0) + total(output, 0)
        per_group = (total(numpy(attention.key_dense.kernel), 0) + total(numpy(attention.value_dense.kernel), 0)
                     + per_query[rows].sum(axis=1))
        return per_group if power == 1 else np.sqrt(per_group)

    def config(self, layer, heads, units):
        group = layer.attention.num_query_heads // layer.attention.num_key_value_heads
        return {**layer.get_config(), "num_query_heads": len(heads) * group, "num_key_value_heads": len(heads),
                "intermediate_dim": 2 * units}

    def sliced_attention(self, layer, heads, hidden=None):
        attention = layer.attention
        queries = self.inner_rows(layer, "heads")[heads].ravel()
        index = {id(attention.query_dense.kernel): queries, id(attention.output_dense.kernel): queries,
                 id(attention.key_dense.kernel): heads, id(attention.value_dense.kernel): heads,
                 id(attention.head_eigenvalues): queries, id(attention.head_mask): queries}
        return [numpy(w)[index[id(w)]] for w in attention.weights]

    def attention_cost(self, attention, call, graph, kept_heads, kept_in=1.0):
        tokens = int(np.prod([d or 1 for d in graph.tensors[call.inputs[0]].shape[1:-1]]))
        queries, kv = attention.num_query_heads * kept_heads, attention.num_key_value_heads * kept_heads
        hidden, size = attention.hidden_dim, attention.head_dim
        params = (2 * queries + 2 * kv) * hidden * size
        return tokens * params + tokens * tokens * 2 * queries * size, params

    def attention_parameters(self, attention):
        return 2 * (attention.num_query_heads + attention.num_key_value_heads) * attention.hidden_dim * attention.head_dim


class ViTEncoderRule(Opaque):
    """keras_hub's `ViTEncoder`, which holds every block of a ViT: two node groups per block,
    `<block>/heads` and `<block>/units` (its MLP's hidden units)."""

    block = TransformerBlockRule("mha", ("mlp.dense_1",), "mlp.dense_2")

    def __init__(self):
        super().__init__("its hidden features (the residual stream) are not prunable yet; its blocks' heads and "
                         "MLP units are")

    def _block(self, layer, kind):
        """`(index, block, "heads" | "units")` of an inner kind `"<block>/<part>"`."""
        name, part = kind.rsplit("/", 1)
        index = [b.name for b in layer.encoder_layers].index(name)
        return index, layer.encoder_layers[index], part

    def inner(self, layer):
        return {f"{b.name}/{kind}": size for b in layer.encoder_layers for kind, size in self.block.inner(b).items()}

    def mask_path(self, layer, kind):
        index, _, part = self._block(layer, kind)
        return f"encoder_layers.{index}.{self.block.masks[part]}"

    def holds_masks(self, layer):
        return isinstance(layer, hub.SpectralViTEncoder)

    def inner_scores(self, layer, score, kind):
        _, block, part = self._block(layer, kind)
        return self.block.inner_scores(block, score, part)

    def slice(self, layer, keep_in, keep_out, input_shape, bias, **keep):
        """An encoder of the same class whose blocks keep `keep_<block>/heads` heads and
        `keep_<block>/units` units."""
        kept = [self.block.kept(b, keep.get(f"keep_{b.name}/heads"), keep.get(f"keep_{b.name}/units"))
                for b in layer.encoder_layers]
        config = {**layer.get_config(), "block_sizes": [[len(h), len(u)] for h, u in kept],
                  "key_dim": layer.encoder_layers[0].mha._key_dim}
        new = hub.build_like(type(layer).from_config(config), layer)
        for target, source, (heads, units) in zip(new.encoder_layers, layer.encoder_layers, kept):
            sliced = self.block.sliced_parts(source, heads, units)
            for path in hub.VIT_BLOCK_SUBLAYERS:
                values = sliced.get(path) or hub._weights(hub.attribute(source, path))
                hub._assign(hub.attribute(target, path), values)
        hub._assign(new.layer_norm, hub._weights(layer.layer_norm))
        return new

    def cost(self, call, graph, kept_in, kept_out, **kept):
        """The blocks' costs (`TransformerBlockRule.cost`, each with its fractions of heads
        and units kept) and the final normalization's parameters."""
        macs, params = 0.0, float(sum(int(np.prod(w.shape)) for w in call.layer.layer_norm.weights))
        for block in call.layer.encoder_layers:
            m, p = self.block.cost(_Call(block, call.inputs), graph, 1.0, 1.0,
                                   kept_heads=kept.get(f"kept_{block.name}/heads", 1.0),
                                   kept_units=kept.get(f"kept_{block.name}/units", 1.0))
            macs, params = macs + m, params + p
        return macs, params

    def multiply_adds(self, call, graph):
        return self.cost(call, graph, 1.0, 1.0)[0]

    def parameters(self, layer):
        return (sum(self.block.parameters(b) for b in layer.encoder_layers)
                + sum(int(np.prod(w.shape)) for w in layer.layer_norm.weights))


class _Call:
    """A stand-in for the graph call of a block's inner attention: the layer and the
    block's input tensors (query, then value)."""

    def __init__(self, layer, inputs):
        self.layer, self.inputs = layer, inputs


def _bias(dense, keep):
    bias = getattr(dense, "bias", None)
    return None if bias is None else numpy(bias)[keep]


_STREAM_BLOCK = StreamBlockRule()
for _cls in (hub.TransformerEncoder, hub.TransformerDecoder, hub.PrunedTransformerEncoder, hub.PrunedTransformerDecoder,
             hub.SpectralTransformerEncoder, hub.SpectralTransformerDecoder):
    register_rule(_cls, _STREAM_BLOCK)
for _cls in (hub.GemmaDecoderBlock, hub.SpectralGemmaDecoderBlock):
    register_rule(_cls, GemmaBlockRule())
for _cls in (hub.ViTEncoder, hub.PrunedViTEncoder, hub.SpectralViTEncoder):
    register_rule(_cls, ViTEncoderRule())
