"""keras_hub transformer blocks whose attention heads and feed-forward units can be removed.

Needs keras_hub (`pip install "keras-spectral[hub]"`). `spectralize` puts a spectral class
in place of each keras_hub block it knows (same outputs, same class by `isinstance`):

| keras_hub | spectral | collapsed, once pruned |
|---|---|---|
| `TransformerEncoder` | `SpectralTransformerEncoder` | `TransformerEncoder` / `PrunedTransformerEncoder` |
| `TransformerDecoder` | `SpectralTransformerDecoder` | `TransformerDecoder` / `PrunedTransformerDecoder` |
| `GemmaDecoderBlock` | `SpectralGemmaDecoderBlock` | `GemmaDecoderBlock` |
| `ViTEncoder` (all of a ViT's blocks) | `SpectralViTEncoder` | `ViTEncoder` / `PrunedViTEncoder` |

A spectral block's self-attention holds one eigenvalue and mask per head
(`SpectralMultiHeadAttention`, `SpectralCachedMultiHeadAttention`, `SpectralGemmaAttention`)
and its feed-forward layers are `SpectralDense` (one eigenvalue and mask per unit). The
pruning tools see two node groups in each block, `<block>/heads` and `<block>/units` (a
removed unit's row of the output layer is masked, so it adds nothing); `compact` makes a
block of the same class with fewer heads and units, and `collapse` keras_hub's class again.

Where keras_hub's config cannot hold the pruned sizes (its encoder and decoder derive a
head's size from `hidden_dim // num_heads`; a `ViTEncoder` gives every block the same
sizes), `collapse` returns the `Pruned*` class: keras_hub's class with the arguments that
can (`key_dim`, `cross_attention_heads`, `block_sizes`), registered for saving. The
residual stream passes the spectral encoder and decoder blocks (without cross-attention):
their normalizations are masked ones and `stream_mask` zeroes a removed hidden feature of
their output. Gemma's and ViT's blocks keep their hidden features.

Example:

>>> backbone = keras_hub.models.BertBackbone(...)  # doctest: +SKIP
>>> model = ks.spectralize(backbone)  # doctest: +SKIP
>>> ks.prune_nodes(model, fraction=0.5, score="l2")  # doctest: +SKIP
>>> small = ks.collapse(ks.compact(model))  # keras_hub TransformerEncoder layers  # doctest: +SKIP
"""

import keras
import numpy as np
from keras import ops
from keras_hub.layers import CachedMultiHeadAttention, TransformerDecoder, TransformerEncoder
from keras_hub.src.models.gemma.gemma_attention import CachedGemmaAttention
from keras_hub.src.models.gemma.gemma_decoder_block import GemmaDecoderBlock
from keras_hub.src.models.vit.vit_layers import ViTEncoder, ViTEncoderBlock, ViTPatchingAndEmbedding

from keras_spectral.attention import SpectralMultiHeadAttention
from keras_spectral.layers import SpectralDense
from keras_spectral.normalization import MaskedLayerNormalization

FEED_FORWARD = ("_feedforward_intermediate_dense", "_feedforward_output_dense")
NORMALIZATIONS = ("_self_attention_layer_norm", "_feedforward_layer_norm")  # of the stream a block masks


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralCachedMultiHeadAttention(SpectralMultiHeadAttention, CachedMultiHeadAttention):
    """keras_hub's `CachedMultiHeadAttention` (decoding with a key/value cache) with one
    eigenvalue and mask per head, as `SpectralMultiHeadAttention`."""

    def to_layer(self):
        """The plain `CachedMultiHeadAttention` with the same outputs."""
        return _retyped(super().to_layer(), CachedMultiHeadAttention)


def _retyped(plain, cls):
    """`plain` (a built MultiHeadAttention) as a layer of `cls`, with its weights."""
    new = cls.from_config(plain.get_config())
    new.build(**plain.get_build_config()["shapes_dict"])
    _assign(new, _weights(plain))
    return new


def _replace_sublayer(block, attribute, new):
    """Put `new` at `block.<attribute>`, untracking the layer it replaces (also in a built
    block, whose tracker is locked)."""
    tracker = block._tracker
    locked = tracker.locked
    tracker.unlock()
    tracker.untrack(getattr(block, attribute))
    setattr(block, attribute, new)
    if locked:
        tracker.lock()


def _attentions(block):
    """`(attribute, attention layer)` of the block's attention layers (cross-attention where
    it has one)."""
    names = ("_self_attention_layer", "_cross_attention_layer")
    return [(n, getattr(block, n)) for n in names if getattr(block, n, None) is not None]


class _HeadSized:
    """A keras_hub block whose heads have a size of their own (`key_dim`, default
    `hidden_dim // num_heads` as in keras_hub) and whose cross-attention (decoders) may
    have another number of heads (`cross_attention_heads`, default `num_heads`)."""

    def __init__(self, *args, key_dim=None, cross_attention_heads=None, **kwargs):
        self.key_dim = key_dim  # set first: a decoder given its shapes builds in __init__
        self.cross_attention_heads = cross_attention_heads
        super().__init__(*args, **kwargs)

    def _resize_heads(self):
        """After keras_hub's `build`: attention layers with `key_dim`-sized heads."""
        for attribute, attention in _attentions(self):
            cross = attribute == "_cross_attention_layer"
            heads = (self.cross_attention_heads or self.num_heads) if cross else self.num_heads
            size = self.key_dim or attention._key_dim
            if (heads, size) != (attention._num_heads, attention._key_dim):
                config = {**attention.get_config(), "num_heads": heads, "key_dim": size, "value_dim": size}
                resized = type(attention).from_config(config)
                resized.build(**attention.get_build_config()["shapes_dict"])
                _replace_sublayer(self, attribute, resized)

    def get_config(self):
        return {**super().get_config(), "key_dim": self.key_dim, "cross_attention_heads": self.cross_attention_heads}


@keras.saving.register_keras_serializable(package="keras_spectral")
class PrunedTransformerEncoder(_HeadSized, TransformerEncoder):
    """keras_hub's `TransformerEncoder` whose heads keep their size (`key_dim`) when there
    are fewer of them: what `collapse` makes of a block that lost heads."""

    def build(self, inputs_shape):
        super().build(inputs_shape)
        self._resize_heads()


@keras.saving.register_keras_serializable(package="keras_spectral")
class PrunedTransformerDecoder(_HeadSized, TransformerDecoder):
    """keras_hub's `TransformerDecoder` whose heads keep their size (`key_dim`) and whose
    cross-attention keeps its heads (`cross_attention_heads`): what `collapse` makes of a
    block that lost self-attention heads."""

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        super().build(decoder_sequence_shape, encoder_sequence_shape)
        self._resize_heads()


class _SpectralBlock:
    """A keras_hub block whose self-attention and feed-forward layers are spectral.

    Class attributes: `attention_attribute`, the attribute of its self-attention;
    `up_attributes`, those of the feed-forward layers that make the units;
    `down_attribute`, that of the one that reads them; `plain_class`, keras_hub's class."""

    attention_attribute = "_self_attention_layer"
    up_attributes = ("_feedforward_intermediate_dense",)
    down_attribute = "_feedforward_output_dense"
    plain_class = pruned_class = None
    masks_stream = True  # masked normalizations and `stream_mask` (its hidden features prune)

    def _make_spectral(self):
        """After `build`: a spectral self-attention and feed-forward network, masked
        normalizations, and `stream_mask`, a mask of the hidden features (a removed one
        leaves the normalizations' statistics and the block outputs 0 there)."""
        attention = self._self_attention_layer
        spectral = (SpectralCachedMultiHeadAttention if isinstance(attention, CachedMultiHeadAttention)
                    else SpectralMultiHeadAttention)
        _replace_sublayer(self, "_self_attention_layer", spectral.from_layer(attention, self_attention=True))
        for attribute in FEED_FORWARD:
            _replace_sublayer(self, attribute, SpectralDense.from_dense(getattr(self, attribute)))
        for attribute in NORMALIZATIONS:
            norm = getattr(self, attribute, None)
            if norm is not None:
                _replace_sublayer(self, attribute, MaskedLayerNormalization.from_layer(norm))
        hidden = int(self._feedforward_output_dense.units)
        self.stream_mask = self.add_weight(name="stream_mask", shape=(hidden,), initializer="ones", trainable=False)

    def _masked_stream(self, result):
        """The block's `result` (its output, or a tuple led by it) with removed hidden
        features at 0."""
        first = result[0] if isinstance(result, tuple) else result
        masked = first * ops.cast(self.stream_mask, first.dtype)
        return (masked,) + tuple(result[1:]) if isinstance(result, tuple) else masked

    def holds_removed_features(self):
        """Whether hidden features are masked (then `collapse` keeps the block: `compact` first)."""
        mask = getattr(self, "stream_mask", None)
        return mask is not None and not np.all(ops.convert_to_numpy(mask))

    @classmethod
    def _spectral_attention_weights(cls, attention):
        return _weights(SpectralMultiHeadAttention.from_layer(attention, self_attention=True))

    @classmethod
    def _spectral_weights(cls, attribute, source):
        """The weights of the spectral twin of the sublayer `source` at `attribute`."""
        if attribute == cls.attention_attribute:
            return cls._spectral_attention_weights(source)
        if attribute in (*cls.up_attributes, cls.down_attribute):
            return _weights(SpectralDense.from_dense(_as_dense(source)))
        if attribute in NORMALIZATIONS and type(source) is keras.layers.LayerNormalization and cls.masks_stream:
            return _weights(MaskedLayerNormalization.from_layer(source))
        return _weights(source)

    def _plain_weights(self, attribute, source):
        """The weights of the plain twin of the spectral sublayer `source` at `attribute`."""
        if attribute == self.attention_attribute:
            return self._plain_attention_weights()
        if attribute in (*self.up_attributes, self.down_attribute):
            return _weights(source.to_dense())
        if isinstance(source, MaskedLayerNormalization):
            return _weights(source.to_layer())
        return _weights(source)

    def _plain_attention_weights(self):
        return _weights(getattr(self, self.attention_attribute).to_layer())

    def _plain_class_and_config(self):
        """keras_hub's class and config where every head's size is `hidden_dim //
        num_heads`, else the `Pruned*` twin's (`pruned_class`)."""
        attention = self._self_attention_layer
        hidden = int(attention._output_dense.kernel.shape[-1])
        config = self.get_config()
        fits = all(a._num_heads == self.num_heads and a._key_dim == hidden // self.num_heads
                   for _, a in _attentions(self))
        if fits:
            config.pop("key_dim")
            config.pop("cross_attention_heads")
            return self.plain_class, config
        return self.pruned_class, {**config, "key_dim": attention._key_dim}

    @classmethod
    def _spectral_config(cls, layer):
        return {"key_dim": None, "cross_attention_heads": None, **layer.get_config()}

    @classmethod
    def from_layer(cls, layer):
        """The spectral block of a built keras_hub block (same outputs)."""
        if not layer.built:
            raise ValueError(f"Layer '{layer.name}' is not built; call the model on data (or build it) first.")
        new = build_like(cls.from_config(cls._spectral_config(layer)), layer)
        for attribute, source in _sublayers(layer):
            _assign(getattr(new, attribute), cls._spectral_weights(attribute, source))
        return new

    def to_layer(self):
        """keras_hub's block with the same outputs (see `_plain_class_and_config`)."""
        cls, config = self._plain_class_and_config()
        plain = build_like(cls.from_config(config), self)
        for attribute, source in _sublayers(self):
            _assign(getattr(plain, attribute), self._plain_weights(attribute, source))
        return plain


def _weights(layer):
    """The layer's weights as numpy arrays (copies: JAX may donate a shared buffer)."""
    return [np.array(ops.convert_to_numpy(w)) for w in layer.weights]


def _assign(layer, values):
    """Assign `values` (arrays) to `layer`'s weights, in order."""
    if len(layer.weights) != len(values):
        raise ValueError(f"Layer '{layer.name}' has {len(layer.weights)} weights; received {len(values)} values.")
    for variable, value in zip(layer.weights, values):
        if np.size(value) != np.prod(variable.shape):
            raise ValueError(f"Layer '{layer.name}': weight '{variable.path}' has shape {tuple(variable.shape)}; "
                             f"received a value of shape {np.shape(value)}.")
        variable.assign(np.reshape(value, tuple(variable.shape)))


def _as_dense(layer):
    """A built `keras.layers.Dense` computing what `layer` (a Dense, or an EinsumDense with a
    Dense equation such as `"btd,df->btf"`) computes."""
    if isinstance(layer, keras.layers.Dense):
        return layer
    kernel = ops.convert_to_numpy(layer.kernel)
    bias = getattr(layer, "bias", None)
    dense = keras.layers.Dense(kernel.shape[-1], use_bias=bias is not None, name=layer.name)
    dense.build((None, kernel.shape[0]))
    _assign(dense, [kernel] + ([ops.convert_to_numpy(bias)] if bias is not None else []))
    return dense


def build_like(new, block):
    """Build the block `new` for the inputs of the built block `block`."""
    if not new.built:  # a decoder given its shapes in its config builds in __init__
        new.build_from_config(block.get_build_config())
    return new


SUBLAYERS = ("_self_attention_layer", "_self_attention_layer_norm", "_cross_attention_layer",
             "_cross_attention_layer_norm", "_feedforward_layer_norm", *FEED_FORWARD,
             # ViT's encoder blocks
             "layer_norm_1", "layer_norm_2",
             # Gemma's decoder block
             "pre_attention_norm", "post_attention_norm", "attention", "pre_ffw_norm", "post_ffw_norm",
             "gating_ffw", "gating_ffw_2", "ffw_linear")


def _sublayers(block):
    """`(attribute, layer)` of a built block's sublayers that hold weights (by attribute:
    on the torch backend a layer's sublayers are not in its `__dict__`)."""
    return [(name, getattr(block, name)) for name in SUBLAYERS
            if isinstance(getattr(block, name, None), keras.layers.Layer) and getattr(block, name).weights]


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralTransformerEncoder(_SpectralBlock, PrunedTransformerEncoder):
    """keras_hub's `TransformerEncoder` whose heads and feed-forward units can be removed
    (see the module's docstring); arguments as keras_hub's, plus `key_dim`."""

    plain_class, pruned_class = TransformerEncoder, PrunedTransformerEncoder

    def build(self, inputs_shape):
        super().build(inputs_shape)
        self._make_spectral()

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None, return_attention_scores=False):
        return self._masked_stream(super().call(
            inputs, padding_mask=padding_mask, attention_mask=attention_mask, training=training,
            return_attention_scores=return_attention_scores))


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralTransformerDecoder(_SpectralBlock, PrunedTransformerDecoder):
    """keras_hub's `TransformerDecoder` whose self-attention heads and feed-forward units
    can be removed (see the module's docstring); arguments as keras_hub's, plus `key_dim`
    and `cross_attention_heads`."""

    plain_class, pruned_class = TransformerDecoder, PrunedTransformerDecoder

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        super().build(decoder_sequence_shape, encoder_sequence_shape)
        self._make_spectral()

    def call(self, decoder_sequence, encoder_sequence=None, decoder_padding_mask=None, decoder_attention_mask=None,
             encoder_padding_mask=None, encoder_attention_mask=None, self_attention_cache=None,
             self_attention_cache_update_index=None, cross_attention_cache=None,
             cross_attention_cache_update_index=None, use_causal_mask=True, training=None):
        return self._masked_stream(super().call(
            decoder_sequence, encoder_sequence=encoder_sequence, decoder_padding_mask=decoder_padding_mask,
            decoder_attention_mask=decoder_attention_mask, encoder_padding_mask=encoder_padding_mask,
            encoder_attention_mask=encoder_attention_mask, self_attention_cache=self_attention_cache,
            self_attention_cache_update_index=self_attention_cache_update_index,
            cross_attention_cache=cross_attention_cache,
            cross_attention_cache_update_index=cross_attention_cache_update_index,
            use_causal_mask=use_causal_mask, training=training))


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralGemmaAttention(CachedGemmaAttention):
    """keras_hub's `CachedGemmaAttention` (grouped-query attention) with one trainable
    eigenvalue and one mask per query head (`head_eigenvalues`, `head_mask`) scaling the
    head's output, as `SpectralMultiHeadAttention` does."""

    def build(self, inputs_shape):
        super().build(inputs_shape)
        self.head_eigenvalues = self.add_weight(
            name="head_eigenvalues", shape=(self.num_query_heads,), initializer="ones", trainable=True)
        self.head_mask = self.add_weight(
            name="head_mask", shape=(self.num_query_heads,), initializer="ones", trainable=False)

    def _compute_attention(self, q, k, v, attention_mask, training=False, cache_update_index=0):
        output = super()._compute_attention(q, k, v, attention_mask, training=training,
                                            cache_update_index=cache_update_index)  # (..., heads, head_dim)
        return output * ops.expand_dims(ops.cast(self.head_eigenvalues * self.head_mask, output.dtype), -1)

    def get_config(self):
        names = ("head_dim", "num_query_heads", "num_key_value_heads", "logit_soft_cap",
                 "use_sliding_window_attention", "sliding_window_size", "query_head_dim_normalize", "dropout")
        return {**super().get_config(), **{name: getattr(self, name) for name in names}}

    def plain_weights(self):
        """The weights of the plain `CachedGemmaAttention` with the same outputs (each head's
        eigenvalue and mask folded into its rows of the output projection)."""
        scale = np.asarray(ops.convert_to_numpy(self.head_eigenvalues * self.head_mask))
        values = []
        for w in self.weights:
            if w is self.head_eigenvalues or w is self.head_mask:
                continue
            value = np.array(ops.convert_to_numpy(w))
            values.append(value * scale[:, None, None] if w is self.output_dense.kernel else value)
        return values


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralGemmaDecoderBlock(_SpectralBlock, GemmaDecoderBlock):
    """keras_hub's `GemmaDecoderBlock` whose heads and feed-forward units can be removed: a
    `SpectralGemmaAttention` and `SpectralDense` gating and output layers (see the
    module's docstring). A node of its heads group is a key/value head with its query
    heads. `collapse` returns keras_hub's `GemmaDecoderBlock` (its config says the head
    size, `head_dim`)."""

    attention_attribute = "attention"
    up_attributes = ("gating_ffw", "gating_ffw_2")
    down_attribute = "ffw_linear"
    plain_class = GemmaDecoderBlock
    masks_stream = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        common = dict(use_bias=False, eigenvectors="trainable", dtype=self.dtype_policy)  # as from_dense makes
        _replace_sublayer(self, "attention", SpectralGemmaAttention(
            head_dim=self.head_dim, num_query_heads=self.num_query_heads,
            num_key_value_heads=self.num_key_value_heads, logit_soft_cap=self.logit_soft_cap,
            use_sliding_window_attention=self.use_sliding_window_attention,
            sliding_window_size=self.sliding_window_size, query_head_dim_normalize=True, dropout=self.dropout,
            dtype=self.dtype_policy, name="attention"))
        for attribute in self.up_attributes:
            _replace_sublayer(self, attribute, SpectralDense(
                self.intermediate_dim // 2, name=getattr(self, attribute).name, **common))
        _replace_sublayer(self, "ffw_linear", SpectralDense(self.hidden_dim, name="ffw_linear", **common))

    @classmethod
    def _spectral_config(cls, layer):
        return layer.get_config()

    @classmethod
    def _spectral_attention_weights(cls, attention):
        heads = np.ones(attention.num_query_heads, dtype="float32")
        return [heads, heads] + _weights(attention)  # a layer lists its own weights before its sublayers'

    def _plain_attention_weights(self):
        return self.attention.plain_weights()

    def _plain_class_and_config(self):
        return GemmaDecoderBlock, self.get_config()


class _SizedViTEncoderBlock(ViTEncoderBlock):
    """keras_hub's `ViTEncoderBlock` whose heads have a size of their own (`key_dim`)."""

    def __init__(self, *args, key_dim=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_dim = key_dim or self.key_dim  # read by ViTEncoderBlock.build


VIT_BLOCK_SUBLAYERS = ("layer_norm_1", "mha", "layer_norm_2", "mlp.dense_1", "mlp.dense_2")


def attribute(obj, path):
    """`obj.<path>` for a dotted path, where a number indexes a list (`"encoder_layers.0.mha"`)."""
    for name in path.split("."):
        obj = obj[int(name)] if name.isdigit() else getattr(obj, name)
    return obj


@keras.saving.register_keras_serializable(package="keras_spectral")
class PrunedViTEncoder(ViTEncoder):
    """keras_hub's `ViTEncoder` whose blocks have sizes of their own: `block_sizes`, one
    `[num_heads, mlp_dim]` per block (default: `num_heads` and `mlp_dim` for every block),
    with heads of size `key_dim` (default `hidden_dim // num_heads`): what `collapse`
    makes of an encoder whose blocks lost different numbers of heads or units."""

    def __init__(self, *args, block_sizes=None, key_dim=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.block_sizes = [[int(h), int(m)] for h, m in block_sizes] if block_sizes else None
        self.key_dim = key_dim

    def build(self, input_shape):
        sizes = self.block_sizes or [[self.num_heads, self.mlp_dim]] * self.num_layers
        self.encoder_layers = []
        for i, (heads, units) in enumerate(sizes):  # as keras_hub's ViTEncoder.build, with the sizes given
            block = _SizedViTEncoderBlock(
                num_heads=heads, hidden_dim=self.hidden_dim, mlp_dim=units, dropout_rate=self.dropout_rate,
                use_mha_bias=self.use_mha_bias, use_mlp_bias=self.use_mlp_bias,
                attention_dropout=self.attention_dropout, layer_norm_epsilon=self.layer_norm_epsilon,
                key_dim=self.key_dim, dtype=self.dtype_policy, name=f"transformer_block_{i + 1}")
            block.build((None, None, self.hidden_dim))
            self.encoder_layers.append(block)
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy, name="dropout")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="ln")
        self.layer_norm.build((None, None, self.hidden_dim))
        self.built = True

    def get_config(self):
        return {**super().get_config(), "block_sizes": self.block_sizes, "key_dim": self.key_dim}


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralViTEncoder(PrunedViTEncoder):
    """keras_hub's `ViTEncoder` whose blocks' heads and MLP units can be removed: each
    block's attention is a `SpectralMultiHeadAttention` and its MLP layers `SpectralDense`
    (node groups `<encoder>/<block>/heads` and `<encoder>/<block>/units`). `collapse`
    returns keras_hub's `ViTEncoder` where every block keeps the same sizes, else
    `PrunedViTEncoder`."""

    def build(self, input_shape):
        super().build(input_shape)
        for block in self.encoder_layers:
            _replace_sublayer(block, "mha", SpectralMultiHeadAttention.from_layer(block.mha))
            for name in ("dense_1", "dense_2"):
                _replace_sublayer(block.mlp, name, SpectralDense.from_dense(getattr(block.mlp, name)))

    def holds_removed_features(self):
        return False  # its hidden features are not prunable

    @classmethod
    def from_layer(cls, layer):
        """The spectral encoder of a built keras_hub `ViTEncoder` (same outputs)."""
        config = {"block_sizes": None, "key_dim": None, **layer.get_config()}
        new = build_like(cls.from_config(config), layer)
        for target, source in zip(new.encoder_layers, layer.encoder_layers):
            for path in VIT_BLOCK_SUBLAYERS:
                part = attribute(source, path)
                if path == "mha":
                    part = SpectralMultiHeadAttention.from_layer(part)
                elif path.startswith("mlp."):
                    part = SpectralDense.from_dense(part)
                _assign(attribute(target, path), _weights(part))
        _assign(new.layer_norm, _weights(layer.layer_norm))
        return new

    def to_layer(self):
        """keras_hub's `ViTEncoder` with the same outputs (`PrunedViTEncoder` where the
        blocks' sizes differ, or the heads' size is not `hidden_dim // num_heads`)."""
        sizes = [[b.mha._num_heads, b.mlp.dense_1.units] for b in self.encoder_layers]
        key_dim = self.encoder_layers[0].mha._key_dim
        config = {k: v for k, v in self.get_config().items() if k not in ("block_sizes", "key_dim")}
        if all(size == sizes[0] for size in sizes) and key_dim == self.hidden_dim // sizes[0][0]:
            cls, config = ViTEncoder, {**config, "num_heads": sizes[0][0], "mlp_dim": sizes[0][1]}
        else:
            cls, config = PrunedViTEncoder, {**config, "block_sizes": sizes, "key_dim": key_dim}
        plain = build_like(cls.from_config(config), self)
        for target, source in zip(plain.encoder_layers, self.encoder_layers):
            for path in VIT_BLOCK_SUBLAYERS:
                part = attribute(source, path)
                part = part.to_layer() if path == "mha" else part.to_dense() if path.startswith("mlp.") else part
                _assign(attribute(target, path), _weights(part))
        _assign(plain.layer_norm, _weights(self.layer_norm))
        return plain


def _patching_config(layer):
    """A `ViTPatchingAndEmbedding`'s config that its constructor takes back."""
    config = ViTPatchingAndEmbedding.get_config(layer)
    for derived in ("num_patches", "num_positions"):
        config.pop(derived, None)
    return {**config, "use_patch_bias": layer.use_patch_bias, "data_format": layer.data_format}


@keras.saving.register_keras_serializable(package="keras_spectral")
class SavableViTPatchingAndEmbedding(ViTPatchingAndEmbedding):
    """keras_hub's `ViTPatchingAndEmbedding` with a config that round-trips (keras_hub's
    returns `num_patches` and `num_positions`, which its constructor does not take, and
    leaves out `use_patch_bias` and `data_format`): `spectralize` puts it in place of
    keras_hub's, with the same weights, so that a pruned ViT saves and loads."""

    def get_config(self):
        return _patching_config(self)

    @classmethod
    def from_layer(cls, layer):
        new = cls.from_config(_patching_config(layer))
        new.build_from_config(layer.get_build_config())
        _assign(new, _weights(layer))
        return new


SPECTRAL_BLOCKS = {TransformerEncoder: SpectralTransformerEncoder, TransformerDecoder: SpectralTransformerDecoder,
                   PrunedTransformerEncoder: SpectralTransformerEncoder,
                   PrunedTransformerDecoder: SpectralTransformerDecoder,
                   GemmaDecoderBlock: SpectralGemmaDecoderBlock,
                   ViTEncoder: SpectralViTEncoder, PrunedViTEncoder: SpectralViTEncoder}
SPECTRAL_CLASSES = tuple(set(SPECTRAL_BLOCKS.values()))  # what `collapse` turns back into keras_hub's classes
CONVERSIONS = {**SPECTRAL_BLOCKS, ViTPatchingAndEmbedding: SavableViTPatchingAndEmbedding}  # what `spectralize` does
