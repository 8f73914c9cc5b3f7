"""keras_hub blocks (#32): the blocks of BertBackbone, GPT2Backbone, GemmaBackbone and
ViTBackbone built from small configs (no presets), and of models built from keras_hub's
`TransformerEncoder` / `TransformerDecoder`, lose heads and feed-forward units exactly, on
all backends; `collapse` gives keras_hub's classes back. Skipped without keras_hub."""

import keras
import numpy as np
import pytest
from keras import ops

keras_hub = pytest.importorskip("keras_hub")

import keras_spectral as ks  # noqa: E402
from keras_spectral import hub  # noqa: E402

SMALL = dict(vocabulary_size=50, num_layers=2, num_heads=4, hidden_dim=16, intermediate_dim=32, max_sequence_length=8)


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def output(model, x):
    """The model's (sequence) output as a numpy array."""
    y = model(x)
    return numpy(y["sequence_output"] if isinstance(y, dict) else y)


def tokens(model, batch=3, seq=8, seed=0):
    rng = np.random.default_rng(seed)
    x = {"token_ids": rng.integers(0, 50, (batch, seq)).astype("int32"),
         "segment_ids": rng.integers(0, 2, (batch, seq)).astype("int32"),
         "padding_mask": np.ones((batch, seq), "int32")}
    names = [t.name for t in model.inputs]
    return {k: v for k, v in x.items() if k in names} if len(names) > 1 else x["token_ids"]


def randomized(model, seed=0):
    """`spectralize(model)` with unequal eigenvalues and non-trivial biases."""
    rng = np.random.default_rng(seed)
    spectral = ks.spectralize(model)
    for v in spectral.weights:
        name = v.path.split("/")[-1]
        if name in ("eigenvalues_in", "head_eigenvalues"):
            v.assign(rng.uniform(0.5, 1.5, tuple(v.shape)).astype(v.dtype))
        elif name in ("eigenvalues_out", "bias") and "output_dense" not in v.path:
            v.assign(rng.normal(0, 0.2, tuple(v.shape)).astype(v.dtype))
    return spectral


def backbone(name):
    keras.utils.set_random_seed(0)
    if name == "bert":
        return keras_hub.models.BertBackbone(**SMALL)
    if name == "gpt2":
        return keras_hub.models.GPT2Backbone(**SMALL)
    # Grouped-query attention (4 query heads reading 2 key/value heads), Gemma 2's norms.
    return keras_hub.models.GemmaBackbone(
        vocabulary_size=50, num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=16,
        intermediate_dim=32, head_dim=8, use_post_ffw_norm=True, use_post_attention_norm=True)


# Per backbone: keras_hub's block class, and a served block's sizes after half of every
# block's heads (Gemma: key/value heads, each with its query heads) and units went.
BLOCKS = {
    "bert": (keras_hub.layers.TransformerEncoder, lambda b: (b.num_heads, b.intermediate_dim, b.key_dim), (2, 16, 4)),
    "gpt2": (keras_hub.layers.TransformerDecoder, lambda b: (b.num_heads, b.intermediate_dim, b.key_dim), (2, 16, 4)),
    "gemma": (hub.GemmaDecoderBlock, lambda b: (b.num_query_heads, b.num_key_value_heads, b.intermediate_dim),
              (2, 1, 16)),
}


def by_name(model):
    return {g.name: g for g in ks.node_groups(model)}


def block_groups(model):
    return {g.name: g for g in ks.node_groups(model) if "/" in g.name}


@pytest.mark.parametrize("score", ["l2", "sum", "random"])
@pytest.mark.parametrize("name", ["bert", "gpt2", "gemma"])
def test_backbones_lose_heads_and_units_exactly(name, score, tmp_path):
    model = backbone(name)
    x = tokens(model)
    spectral = ks.spectralize(model)
    np.testing.assert_allclose(output(spectral, x), output(model, x), atol=1e-5)
    spectral = randomized(model)
    groups = block_groups(spectral)
    prefix = "decoder_block" if name == "gemma" else "transformer_layer"
    assert sorted(groups) == [f"{prefix}_{i}/{kind}" for i in range(2) for kind in ("heads", "units")]
    units = groups[f"{prefix}_0/units"].size
    assert all(g.prunable for g in groups.values())
    if name == "bert":  # the stream passes the blocks, but it is the backbone's output
        assert "is a model output" in by_name(spectral)["segment_embedding"].reason
    before = output(spectral, x)
    ks.prune_nodes(spectral, fraction=0.5, score=score, ignored_layers=[
        g.name for g in ks.node_groups(spectral) if g.prunable and g.name not in groups])
    masked = output(spectral, x)
    assert np.abs(masked - before).max() > 1e-3  # the masks act
    small = ks.compact(spectral)
    served = ks.collapse(small)
    scale = np.abs(masked).max()
    for other in (small, served):
        np.testing.assert_allclose(output(other, x), masked, atol=1e-4 * scale, rtol=0)
    plain, sizes, expected = BLOCKS[name]
    blocks = [layer for layer in served.layers if isinstance(layer, plain)]
    assert len(blocks) == 2 and not any(isinstance(b, hub._SpectralBlock) for b in blocks)
    assert [sizes(b) for b in blocks] == [expected] * 2
    assert served.count_params() < model.count_params()
    for kept, path in ((served, "served.keras"), (spectral, "spectral.keras")):
        kept.save(tmp_path / path)
        np.testing.assert_allclose(output(keras.saving.load_model(tmp_path / path), x), output(kept, x), atol=1e-6)
    report = ks.pruning_report(small, original=spectral)
    assert report.totals["parameters"][1] == served.count_params()
    rows = {row["group"]: row for row in report.rows}
    assert rows[f"{prefix}_0/units"]["width"] == (units, units // 2)


def test_units_alone_give_keras_hubs_own_classes_back():
    model = backbone("bert")
    spectral = randomized(model)
    units = [name for name in block_groups(spectral) if name.endswith("/units")]
    ks.prune_nodes(spectral, fraction={name: 0.25 for name in units}, score="l1")
    served = ks.collapse(ks.compact(spectral))
    blocks = [layer for layer in served.layers if "transformer_layer" in layer.name]
    assert [type(b) for b in blocks] == [keras_hub.layers.TransformerEncoder] * 2
    assert [b.intermediate_dim for b in blocks] == [24, 24]


def classifier(cross=False):
    """keras.io's text classifier with keras_hub layers: token and position embedding, a
    TransformerEncoder (or a TransformerDecoder with cross-attention), pooling, Dense."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), dtype="int32")
    h = keras_hub.layers.TokenAndPositionEmbedding(50, 8, 16)(inputs)
    if cross:
        memory = keras.layers.Dense(16, name="memory")(h)
        h = keras_hub.layers.TransformerDecoder(32, 4, name="block")(h, memory)
    else:
        h = keras_hub.layers.TransformerEncoder(32, 4, name="block")(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(h))


@pytest.mark.parametrize("cross", [False, True])
def test_blocks_in_a_classifier_fit_prune_and_compact(cross):
    model = classifier(cross)
    spectral = ks.spectralize(model)
    groups = {g.name: g for g in ks.node_groups(spectral)}
    assert groups["block/heads"].prunable and groups["block/units"].prunable
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 50, (64, 8)).astype("int32"), rng.integers(0, 2, 64)
    spectral.compile("adam", "sparse_categorical_crossentropy")
    spectral.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[ks.EigenvaluePruning(
        ks.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=6), score="sum",
        ignored_layers=[g.name for g in groups.values() if "/" not in g.name])])
    assert ks.node_sparsity(spectral)["block/heads"] == 0.5
    masked = numpy(spectral(x[:4]))
    served = ks.collapse(ks.compact(spectral))
    np.testing.assert_allclose(numpy(served(x[:4])), masked, atol=1e-5)
    block = served.get_layer("block")
    assert block.num_heads == 2 and block.intermediate_dim == 16
    if cross:
        assert block._cross_attention_layer._num_heads == 4  # cross-attention keeps its heads


def test_taylor_scores_blocks():
    model = classifier()
    spectral = ks.spectralize(model)
    rng = np.random.default_rng(0)
    data = (rng.integers(0, 50, (32, 8)).astype("int32"), rng.integers(0, 2, 32))
    spectral.compile("adam", "sparse_categorical_crossentropy")
    ks.prune_nodes(spectral, fraction={"block/heads": 0.5, "block/units": 0.5}, score="taylor", data=data)
    assert ks.node_sparsity(spectral)["block/units"] == 0.5
    masked = numpy(spectral(data[0][:4]))
    np.testing.assert_allclose(numpy(ks.compact(spectral)(data[0][:4])), masked, atol=1e-5)


def test_plain_blocks_say_how_to_prune_them():
    groups = {g.name: g for g in ks.node_groups(classifier())}
    assert "convert it with keras_spectral.spectralize" in groups["block/heads"].reason


def vit():
    keras.utils.set_random_seed(0)
    return keras_hub.models.ViTBackbone(image_shape=(16, 16, 3), patch_size=4, num_layers=2, num_heads=4,
                                        hidden_dim=16, mlp_dim=32)


def test_vit_backbone_blocks_lose_heads_and_units_exactly(tmp_path):
    """ViTBackbone's ViTEncoder holds every block: two groups per block; blocks pruned
    unevenly collapse to `PrunedViTEncoder`, evenly (units only) to keras_hub's class."""
    model = vit()
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(numpy(ks.spectralize(model)(x)), numpy(model(x)), atol=1e-5)
    spectral = randomized(model)
    groups = block_groups(spectral)
    names = [f"vit_encoder/transformer_block_{i}/{kind}" for i in (1, 2) for kind in ("heads", "units")]
    assert sorted(groups) == names and all(g.prunable for g in groups.values())
    ks.prune_nodes(spectral, fraction={names[0]: 0.5, names[3]: 0.25}, score="l2")
    masked = numpy(spectral(x))
    small = ks.compact(spectral)
    served = ks.collapse(small)
    for other in (small, served):
        np.testing.assert_allclose(numpy(other(x)), masked, atol=1e-4 * np.abs(masked).max(), rtol=0)
    encoder = served.get_layer("vit_encoder")
    assert type(encoder) is hub.PrunedViTEncoder and encoder.block_sizes == [[2, 32], [4, 24]]
    # keras_hub's ViTPatchingAndEmbedding config does not round-trip; spectralize puts a
    # copy whose config does in its place, so the pruned ViT saves and loads.
    assert isinstance(served.get_layer("vit_patching_and_embedding"), hub.SavableViTPatchingAndEmbedding)
    for kept, path in ((served, "served.keras"), (spectral, "spectral.keras")):
        kept.save(tmp_path / path)
        np.testing.assert_allclose(numpy(keras.saving.load_model(tmp_path / path)(x)), numpy(kept(x)), atol=1e-6)
    even = randomized(model)
    ks.prune_nodes(even, fraction={names[1]: 0.5, names[3]: 0.5}, score="sum")
    encoder = ks.collapse(ks.compact(even)).get_layer("vit_encoder")
    assert type(encoder) is hub.ViTEncoder and (encoder.num_heads, encoder.mlp_dim) == (4, 16)


def stream_classifier(normalize_first=True):
    """Two keras_hub encoder blocks on a stream a Dense layer makes (pre-LN or post-LN)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), dtype="int32")
    h = keras.layers.Dense(16, name="stream")(keras.layers.Embedding(50, 16)(inputs))
    for name in ("block", "block2"):
        h = keras_hub.layers.TransformerEncoder(32, 4, normalize_first=normalize_first, name=name)(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(h))


@pytest.mark.parametrize("normalize_first", [True, False])
def test_the_stream_through_encoder_blocks_prunes_exactly(normalize_first, tmp_path):
    model = stream_classifier(normalize_first)
    x = np.random.default_rng(0).integers(0, 50, (4, 8)).astype("int32")
    spectral = randomized(model)
    assert by_name(spectral)["stream"].prunable  # it passes both blocks
    ks.prune_nodes(spectral, fraction={"stream": 0.25, "block/heads": 0.5, "block2/units": 0.5}, score="l2")
    masked = numpy(spectral(x))
    small = ks.compact(spectral)
    served = ks.collapse(small)
    for other in (small, served):
        np.testing.assert_allclose(numpy(other(x)), masked, atol=1e-4 * np.abs(masked).max(), rtol=0)
    blocks = [served.get_layer(name) for name in ("block", "block2")]
    assert [(b.num_heads, b.intermediate_dim, b._self_attention_layer_norm.gamma.shape[0]) for b in blocks] == [
        (2, 32, 12), (4, 16, 12)]
    served.save(tmp_path / "served.keras")
    np.testing.assert_allclose(numpy(keras.saving.load_model(tmp_path / "served.keras")(x)), numpy(served(x)),
                               atol=1e-6)
    assert ks.pruning_report(small, original=spectral).totals["parameters"][1] == served.count_params()


def test_a_decoder_with_cross_attention_keeps_its_stream():
    groups = {g.name: g for g in ks.node_groups(ks.spectralize(classifier(cross=True)))}
    assert "a decoder with cross-attention keeps its hidden features" in groups["memory"].reason
