"""Transformers (#32): normalized residual streams (LayerNormalization / RMSNormalization
over the features become masked normalizations under `spectralize`, so a pre-LN or post-LN
transformer's stream, and ConvNeXt's, lose features exactly) and attention heads
(`SpectralMultiHeadAttention`), on all backends."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_spectral as ks
from keras_spectral.graph.groups import InnerGroup
from keras_spectral.normalization import MaskedLayerNormalization, MaskedRMSNormalization

from test_rules import assert_compacts_exactly, randomized


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def transformer_mlp(pre_norm=True, norm=keras.layers.LayerNormalization, blocks=2, width=16, seq=6):
    """A token-mixing-free transformer stack: a Dense embedding, blocks of normalization
    and a feed-forward network added to the stream, pooling and a Dense head."""
    keras.utils.set_random_seed(0)
    h = inputs = keras.Input((seq, 8))
    h = keras.layers.Dense(width)(h)
    for _ in range(blocks):
        y = norm()(h) if pre_norm else h
        y = keras.layers.Dense(2 * width, activation="gelu")(y)
        y = keras.layers.Dense(width)(y)
        h = keras.layers.Add()([h, y])
        if not pre_norm:
            h = norm()(h)
    if pre_norm:
        h = norm()(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, keras.layers.Dense(3)(h))


@pytest.mark.parametrize("layer", [keras.layers.LayerNormalization(), keras.layers.LayerNormalization(center=False),
                                   keras.layers.RMSNormalization()])
def test_masked_normalizations_match_the_plain_ones_and_skip_removed_features(layer):
    x = np.random.default_rng(0).normal(1.0, 3.0, size=(4, 5, 8)).astype("float32")
    layer(x)
    for w in layer.weights:
        w.assign(np.random.default_rng(1).normal(size=w.shape).astype("float32"))
    masked_class = MaskedRMSNormalization if isinstance(layer, keras.layers.RMSNormalization) else MaskedLayerNormalization
    masked = masked_class.from_layer(layer)
    np.testing.assert_allclose(numpy(masked(x)), numpy(layer(x)), atol=1e-5)
    keep = np.array([0, 2, 3, 5, 7])
    mask = np.zeros(8, "float32")
    mask[keep] = 1.0
    masked.feature_mask.assign(mask)
    narrow = type(layer).from_config(layer.get_config())
    narrow.build((None, 5, 5))
    for target, source in zip(narrow.weights, layer.weights):
        target.assign(numpy(source)[keep])
    out = numpy(masked(x))
    np.testing.assert_allclose(out[..., keep], numpy(narrow(x[..., keep])), atol=1e-5)
    assert not out[..., [1, 4, 6]].any()
    with pytest.raises(ValueError, match="removed feature"):
        masked.to_layer()
    masked.feature_mask.assign(np.ones(8, "float32"))
    np.testing.assert_allclose(numpy(masked.to_layer()(x)), numpy(layer(x)), atol=1e-5)


def test_masked_normalization_round_trips_through_a_keras_file(tmp_path):
    model = ks.spectralize(transformer_mlp())
    ks.prune_nodes(model, fraction=0.5, score="l2")
    path = str(tmp_path / "stream.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(2).normal(size=(2, 6, 8)).astype("float32")
    np.testing.assert_allclose(numpy(loaded(x)), numpy(model(x)), atol=1e-6)


@pytest.mark.parametrize("pre_norm", [True, False])
@pytest.mark.parametrize("norm", [keras.layers.LayerNormalization, keras.layers.RMSNormalization])
def test_transformer_streams_prune_exactly(pre_norm, norm):
    plain = transformer_mlp(pre_norm, norm)
    spectral = randomized(plain)
    stream = ks.node_groups(spectral)[0]
    assert stream.prunable and stream.size == 16
    assert {type(layer) for layer, _ in stream.passes} >= {MaskedRMSNormalization if norm is keras.layers.RMSNormalization
                                                            else MaskedLayerNormalization}
    small = assert_compacts_exactly(spectral)
    served = ks.collapse(small)
    assert not any(isinstance(layer, (MaskedLayerNormalization, MaskedRMSNormalization)) for layer in served.layers)
    widths = {layer.name: layer.units for layer in served.layers if isinstance(layer, keras.layers.Dense)}
    assert widths[plain.layers[1].name] == 8  # the stream halved


def test_plain_normalizations_block_the_stream_with_one_short_reason():
    plain = transformer_mlp()
    assert ks.node_groups(ks.spectralize(plain))[0].removable
    dense_only = ks.spectralize(plain, layers=lambda layer: isinstance(layer, keras.layers.Dense))
    for model in (plain, dense_only):  # `layers` picks the normalizations too
        blocked = ks.node_groups(model)[0]
        assert not blocked.removable
        assert blocked.reason.count("LayerNormalization") == 1, blocked.reason
        assert "spectralize" in blocked.reason


@pytest.mark.skipif(keras.backend.backend() == "jax",
                    reason="ConvNeXt compiles for half a minute on JAX; its rules run on JAX in the smaller models here")
def test_convnext_stream_is_prunable_and_compacts_exactly():
    model = keras.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3), classes=4)
    spectral = ks.spectralize(model)
    groups = ks.node_groups(spectral)
    share = sum(g.size for g in groups if g.prunable) / sum(g.size for g in groups)
    assert share > 0.999  # all but the classifier's outputs
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    ks.prune_nodes(spectral, fraction=0.5, score="l2")
    masked = numpy(spectral(x))
    small = ks.compact(spectral)
    np.testing.assert_allclose(numpy(small(x)), masked, atol=1e-4 * np.abs(masked).max(), rtol=0)
    assert ks.model_cost(small).parameters < 0.35 * ks.model_cost(model).parameters


# --- attention heads ---------------------------------------------------------------------


def attention_transformer(pre_norm=True, heads=4, width=16, seq=6, text=False):
    """Two blocks of self-attention and a feed-forward network on a Dense-embedded stream
    (pre-LN or post-LN), or the keras.io text classifier's layout (token and position
    embeddings, one post-LN block, pooling, a Dense head) with `text=True`."""
    keras.utils.set_random_seed(0)
    if text:
        inputs = keras.Input((seq,), dtype="int32")
        tokens = keras.layers.Embedding(50, width)(inputs)
        positions = keras.layers.Embedding(seq, width)(keras.ops.arange(seq))
        h = tokens + positions  # as keras.io adds them (broadcast over the batch)
        blocks = 1
    else:
        inputs = keras.Input((seq, 8))
        h = keras.layers.Dense(width)(inputs)
        blocks = 2
    for _ in range(blocks):
        y = keras.layers.LayerNormalization()(h) if pre_norm else h
        y = keras.layers.MultiHeadAttention(heads, 8)(y, y)
        h = keras.layers.Add()([h, keras.layers.Dropout(0.1)(y)])
        h = h if pre_norm else keras.layers.LayerNormalization()(h)
        y = keras.layers.LayerNormalization()(h) if pre_norm else h
        y = keras.layers.Dense(2 * width, activation="relu")(y)
        h = keras.layers.Add()([h, keras.layers.Dense(width)(y)])
        h = h if pre_norm else keras.layers.LayerNormalization()(h)
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.LayerNormalization()(h) if pre_norm else h)
    return keras.Model(inputs, keras.layers.Dense(3)(h))


def _inputs(model, n=3):
    rng = np.random.default_rng(1)
    shape = model.input_shape[1:]
    if model.inputs[0].dtype.startswith("int"):
        return rng.integers(0, 50, size=(n, *shape)).astype("int32")
    return rng.normal(size=(n, *shape)).astype("float32")


def _heads(model):
    return [g for g in ks.node_groups(model) if isinstance(g, InnerGroup)]


@pytest.mark.parametrize("kind", ["pre_norm", "post_norm", "text"])
@pytest.mark.parametrize("score", ["sum", "l2", "taylor"])
def test_attention_heads_prune_and_compact_exactly(kind, score):
    plain = attention_transformer(pre_norm=kind == "pre_norm", text=kind == "text")
    x = _inputs(plain)
    spectral = randomized(plain)
    for v in spectral.weights:
        if v.path.endswith("head_eigenvalues"):
            v.assign(np.random.default_rng(3).uniform(0.5, 1.5, v.shape).astype("float32"))
    heads = _heads(spectral)
    assert heads and all(g.prunable and g.size == 4 for g in heads)
    stream = ks.node_groups(spectral)[0]
    # Self-attention reads and writes the stream like a Dense layer; the text model's
    # stream starts at the embeddings, which hold no masks.
    assert stream.prunable == (kind != "text"), stream.reason
    extra = {}
    if score == "taylor":
        extra = dict(data=(x, np.array([0, 1, 2])), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ks.prune_nodes(spectral, fraction=0.5, score=score, **extra)
    masked = numpy(spectral(x))
    small = ks.compact(spectral)
    served = ks.collapse(small)
    scale = np.abs(masked).max()
    for other in (small, served):
        np.testing.assert_allclose(numpy(other(x)), masked, atol=1e-5 * scale, rtol=0)
    attention = [layer for layer in served.layers if isinstance(layer, keras.layers.MultiHeadAttention)]
    assert attention and all(type(layer) is keras.layers.MultiHeadAttention and layer._num_heads == 2 for layer in attention)
    if kind != "text":  # the stream halved: attention reads and writes 8 features
        assert all(layer._query_dense.kernel.shape[0] == 8 and layer._output_dense.kernel.shape[-1] == 8
                   for layer in attention)
    cost = ks.model_cost(spectral, pruned=True)
    assert cost == (ks.multiply_adds(served), served.count_params())


def test_head_scores_and_conversion():
    plain = attention_transformer()
    x = _inputs(plain)
    spectral = ks.spectralize(plain)
    np.testing.assert_allclose(numpy(spectral(x)), numpy(plain(x)), atol=1e-5)
    attention = [layer for layer in spectral.layers if isinstance(layer, ks.SpectralMultiHeadAttention)][0]
    attention.head_eigenvalues.assign(np.array([0.5, -2.0, 1.0, 0.1], "float32"))
    scores = ks.node_scores(spectral, "sum")
    np.testing.assert_allclose(scores[f"{attention.name}/heads"], [0.5, 2.0, 1.0, 0.1])
    # L1: each head's query, key and value columns and its (scaled) output rows.
    l1 = ks.node_scores(spectral, "l1")[f"{attention.name}/heads"]
    q, k, v = (numpy(d.kernel) for d in (attention._query_dense, attention._key_dense, attention._value_dense))
    o = numpy(attention._output_dense.kernel)
    head = 1
    hand = (np.abs(q[:, head]).sum() + np.abs(k[:, head]).sum() + np.abs(v[:, head]).sum()
            + 2.0 * np.abs(o[head]).sum())
    assert l1[head] == pytest.approx(hand, rel=1e-5)
    # A plain MultiHeadAttention's heads are listed, not prunable, and say why.
    plain_heads = _heads(plain)
    assert plain_heads and not plain_heads[0].prunable and "spectralize" in plain_heads[0].reason


def test_cross_attention_keeps_its_features_and_loses_heads():
    keras.utils.set_random_seed(0)
    a, b = keras.Input((5, 8)), keras.Input((7, 6))
    query = keras.layers.Dense(8)(a)
    context = keras.layers.Dense(6)(b)
    y = keras.layers.MultiHeadAttention(2, 4)(query, context)
    model = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Flatten()(y)))
    spectral = randomized(model)
    groups = {g.name: g for g in ks.node_groups(spectral)}
    assert not groups[spectral.layers[2].name].removable
    assert "cross-attention" in groups[spectral.layers[2].name].reason
    heads = _heads(spectral)[0]
    assert heads.prunable
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(2, 5, 8)).astype("float32"), rng.normal(size=(2, 7, 6)).astype("float32")]
    ks.prune_nodes(spectral, fraction={heads.name: 0.5}, score="l2")
    masked = numpy(spectral(x))
    served = ks.collapse(ks.compact(spectral))
    np.testing.assert_allclose(numpy(served(x)), masked, atol=1e-5 * np.abs(masked).max(), rtol=0)


def test_spectral_attention_saves_and_loads(tmp_path):
    spectral = ks.spectralize(attention_transformer())
    ks.prune_nodes(spectral, fraction=0.5, score="l2")
    path = str(tmp_path / "attention.keras")
    spectral.save(path)
    loaded = keras.saving.load_model(path)
    x = _inputs(spectral)
    np.testing.assert_allclose(numpy(loaded(x)), numpy(spectral(x)), atol=1e-6)
    small = ks.compact(loaded)
    small.save(str(tmp_path / "small.keras"))
    again = keras.saving.load_model(str(tmp_path / "small.keras"))
    np.testing.assert_allclose(numpy(again(x)), numpy(spectral(x)), atol=1e-5)


def test_einsum_dense_on_the_last_axis_is_a_producer_and_others_are_opaque():
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((5, 6))
    x = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 12), bias_axes="d", activation="relu",
                                 name="up")(x)
    x = keras.layers.EinsumDense("...c,cd->...d", output_shape=10, name="mid")(x)
    x = keras.layers.Dense(4, name="down")(x)
    y = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), name="split_heads")(x)
    model = keras.Model(inputs, [x, keras.layers.Flatten()(y)])
    spectral = randomized(model)
    groups = {g.name: g for g in ks.node_groups(spectral)}
    assert groups["mid"].prunable  # masked in its spectral reader
    assert groups["up"].removable and not groups["up"].prunable  # read by a plain EinsumDense: no masks
    assert "equation 'abc,cde->abde'" in groups["down"].reason
    x_in = np.random.default_rng(0).normal(size=(3, 5, 6)).astype("float32")
    ks.prune_nodes(spectral, fraction={"mid": 0.3}, score="l2")
    masked = [numpy(t) for t in spectral(x_in)]
    small = ks.compact(spectral)
    assert small.get_layer("mid").kernel.shape == (12, 7) and small.get_layer("down").kernel.shape == (7, 4)
    for got, want in zip(small(x_in), masked):
        np.testing.assert_allclose(numpy(got), want, atol=1e-5 * np.abs(want).max(), rtol=0)
    assert ks.model_cost(spectral, pruned=True) == (ks.multiply_adds(ks.collapse(small)), ks.collapse(small).count_params())


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="compile time on JAX; the reshape rule is backend-free")
def test_vit_patches_merged_by_reshape_keep_the_stream_prunable():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(16, 4, strides=4, name="patchify")(inputs)  # (4, 4, 16)
    h = keras.layers.Reshape((16, 16))(h)  # 16 patches of 16 features
    y = keras.layers.LayerNormalization()(h)
    h = keras.layers.Add()([h, keras.layers.MultiHeadAttention(4, 4)(y, y)])
    y = keras.layers.LayerNormalization()(h)
    h = keras.layers.Add()([h, keras.layers.Dense(16)(keras.layers.Dense(32, activation="gelu")(y))])
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.LayerNormalization()(h))
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    spectral = randomized(model)
    stream = {g.name: g for g in ks.node_groups(spectral)}["patchify"]
    assert stream.prunable, stream.reason
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    small = assert_compacts_exactly(spectral, x=x)
    assert small.get_layer("patchify").filters == 8


def test_heads_and_feed_forward_prune_during_fit_and_groups_can_be_ignored():
    plain = attention_transformer()
    model = ks.spectralize(plain)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6, 8)).astype("float32"), rng.integers(0, 3, 32)
    stream = ks.node_groups(model)[0].name
    pruning = ks.EigenvaluePruning(ks.PolynomialDecay(0.0, 0.5, begin_epoch=0, end_epoch=1), score="l2",
                                   ignored_layers=[stream])
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[pruning], verbose=0)
    sparsity = ks.node_sparsity(model)
    assert sparsity[stream] == 0.0
    assert all(value == 0.5 for name, value in sparsity.items() if name != stream)
    heads = [g.name for g in _heads(model)]
    only_stream = ks.spectralize(plain)
    ks.prune_nodes(only_stream, fraction=0.25, score="l2", ignored_layers=heads + [
        g.name for g in ks.node_groups(only_stream)[1:3]])
    sparsity = ks.node_sparsity(only_stream)
    assert sparsity[stream] == 0.25 and all(sparsity[name] == 0.0 for name in heads)
    np.testing.assert_allclose(numpy(ks.compact(model)(x)), numpy(model(x)), atol=1e-4)


def test_a_stream_that_starts_at_an_embedding_prunes_exactly(tmp_path):
    keras.utils.set_random_seed(0)
    ids = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(50, 16, name="tokens")(ids)
    y = keras.layers.LayerNormalization()(h)
    h = keras.layers.Add()([h, keras.layers.MultiHeadAttention(4, 8)(y, y)])
    y = keras.layers.LayerNormalization()(h)
    h = keras.layers.Add()([h, keras.layers.Dense(16)(keras.layers.Dense(32, activation="relu")(y))])
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.LayerNormalization()(h))
    plain = keras.Model(ids, keras.layers.Dense(3)(h))
    x = np.random.default_rng(0).integers(0, 50, size=(4, 6)).astype("int32")
    spectral = ks.spectralize(plain)
    np.testing.assert_allclose(numpy(spectral(x)), numpy(plain(x)), atol=1e-5)
    assert isinstance(spectral.get_layer("tokens"), ks.SpectralEmbedding)
    spectral = randomized(plain)
    stream = ks.node_groups(spectral)[0]
    assert stream.name == "tokens" and stream.prunable
    ks.prune_nodes(spectral, fraction=0.5, score="l2")
    masked = numpy(spectral(x))
    small = ks.compact(spectral)
    served = ks.collapse(small)
    for other in (small, served):
        np.testing.assert_allclose(numpy(other(x)), masked, atol=1e-5 * np.abs(masked).max(), rtol=0)
    assert type(served.get_layer("tokens")) is keras.layers.Embedding
    assert served.get_layer("tokens").output_dim == 8
    spectral.save(str(tmp_path / "embedded.keras"))
    np.testing.assert_allclose(numpy(keras.saving.load_model(str(tmp_path / "embedded.keras"))(x)), masked, atol=1e-6)
