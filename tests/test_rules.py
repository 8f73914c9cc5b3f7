"""The pruning rules (keras_spectral/graph/rules): keras.ops operations in graphs,
depthwise, grouped and separable convolutions, squeeze-excite gates, node-level coupling
of concatenations, user-registered rules, and multiply-add counts."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_spectral as ks
from keras_spectral import SpectralSeparableConv2D, collapse, compact, node_groups, prune_nodes, spectralize
from keras_spectral.graph import rules


def randomized(model, seed=0):
    """`spectralize(model)` with unequal eigenvalues and random biases."""
    rng = np.random.default_rng(seed)
    spectral = spectralize(model)
    for layer in spectral.layers:
        for v in layer.weights:
            name = v.path.split("/")[-1]
            if name in ("eigenvalues_in", "gamma", "moving_variance"):
                v.assign(rng.uniform(0.5, 1.5, tuple(v.shape)).astype(v.dtype))
            elif name in ("eigenvalues_out", "bias", "beta", "moving_mean"):
                v.assign(rng.normal(0, 0.2, tuple(v.shape)).astype(v.dtype))
    return spectral


def assert_compacts_exactly(model, fraction=0.5, x=None):
    """Prune, compact and collapse `model` in a copy; outputs equal the masked model's."""
    x = np.random.default_rng(1).normal(size=(3, *model.input_shape[1:])).astype("float32") if x is None else x
    prune_nodes(model, fraction=fraction)
    masked = ops.convert_to_numpy(model(x))
    small = compact(model)
    served = collapse(small)
    scale = np.abs(masked).max()
    for other in (small, served):
        np.testing.assert_allclose(ops.convert_to_numpy(other(x)), masked, atol=1e-5 * scale, rtol=0)
    assert small.count_params() < model.count_params()
    return small


def by_name(model):
    return {g.name: g for g in node_groups(model)}


# --- keras.ops operations in graphs ---------------------------------------------------


def test_scalar_arithmetic_and_tensor_sums_in_graphs():
    """MobileNetV3's hard swish (`x + 3.0`, `* (1 / 6)`) and ConvNeXt's `inputs + block(x)`."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    stem = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    gate = keras.layers.ReLU(6.0)(stem + 3.0) * (1.0 / 6.0)
    x = keras.layers.Multiply()([stem, gate])
    block = keras.layers.Conv2D(8, 1, name="block")(keras.layers.Conv2D(5, 1, name="inner")(x))
    x = x + block
    outputs = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    model = randomized(keras.Model(inputs, outputs))  # spectralize copies the operations
    groups = by_name(model)
    assert [p.name for p in groups["stem"].producers] == ["stem", "block"] and groups["stem"].prunable
    assert groups["inner"].prunable
    assert_compacts_exactly(model)


@pytest.mark.parametrize(
    "operation, reason",
    [
        (lambda x: x[:, 0], "adds, removes or gathers axes"),
        (lambda x: x * np.ones((6, 1, 1), dtype="float32"), "a constant of shape (6, 1, 1)"),
        (lambda x: ops.reshape(x, (-1, 6, 6, 2, 4)), "not only adding or removing axes of size 1"),
        (lambda x: ops.softmax(x), "reaches Softmax"),
    ],
)
def test_operations_that_mix_or_pin_features_are_named(operation, reason):
    inputs = keras.Input((6, 6, 3))
    x = operation(keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs))
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    group = by_name(spectralize(keras.Model(inputs, outputs)))["conv"]
    assert not group.prunable and reason in group.reason


def test_spatial_padding_and_slicing_operations_pass_channels():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))[:, 1:, :-1, :]
    x = ops.expand_dims(keras.layers.GlobalAveragePooling2D()(x), 1)
    outputs = keras.layers.Dense(2, name="head")(ops.squeeze(x, 1))
    model = randomized(keras.Model(inputs, outputs))
    assert by_name(model)["conv"].prunable
    assert_compacts_exactly(model)


def test_per_feature_constants_and_feature_selections_are_sliced():
    """`x * scale` with one scale per channel, `x[..., 2:]`, `ops.split` and
    `ops.concatenate` of the channels."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = x * np.linspace(0.5, 2.0, 8).astype("float32") + np.arange(8, dtype="float32")
    a, b = ops.split(x, 2, axis=-1)
    x = ops.concatenate([b, a, x[..., 2:]], axis=-1)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    model = randomized(keras.Model(inputs, outputs))
    group = by_name(model)["conv"]
    assert group.prunable
    assert group.consumers[0][1].tolist() == [[4, -1], [5, -1], [6, 8], [7, 9], [0, 10], [1, 11], [2, 12], [3, 13]]
    assert_compacts_exactly(model)


# --- depthwise, grouped and separable convolutions -------------------------------------


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_convolutions_pass_each_channel(multiplier):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((7, 7, 3))
    x = keras.layers.Conv2D(6, 1, name="expand")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=multiplier, name="dw")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(4, 1, name="project")(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    model = randomized(keras.Model(inputs, outputs))
    group = by_name(model)["expand"]
    assert group.prunable and [c.name for c, _ in group.consumers] == ["project"]
    assert group.consumers[0][1].shape == (6, multiplier)
    small = assert_compacts_exactly(model)
    assert small.get_layer("dw").kernel.shape == (3, 3, 3, multiplier)


def test_depthwise_grouped_convolution_passes_channels_and_other_groups_do_not():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((7, 7, 3))
    x = keras.layers.Conv2D(8, 1, name="expand")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", groups=8, name="depthwise")(x)  # ConvNeXt's
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 1)(x)))
    model = randomized(keras.Model(inputs, outputs))
    assert by_name(model)["expand"].prunable
    small = assert_compacts_exactly(model)
    assert small.get_layer("depthwise").groups == 4


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_grouped_convolutions_lose_the_same_positions_in_every_group(data_format):
    if data_format == "channels_first" and keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow's CPU grouped convolutions are channels-last only")
    keras.utils.set_random_seed(0)
    shape = (7, 7, 3) if data_format == "channels_last" else (3, 7, 7)
    conv = dict(padding="same", data_format=data_format)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(8, 3, name="a", **conv)(inputs)
    x = keras.layers.Conv2D(6, 3, groups=2, activation="relu", name="grouped", **conv)(x)
    x = keras.layers.Conv2D(4, 1, name="b", **conv)(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D(data_format=data_format)(x))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    spectral = spectralize(model)
    assert spectral.get_layer("grouped").groups == 2
    np.testing.assert_allclose(ops.convert_to_numpy(spectral(x)), ops.convert_to_numpy(model(x)), atol=1e-5)
    spectral = randomized(model)
    groups = by_name(spectral)
    assert groups["a"].size == 4 and groups["a"].consumers[0][1].tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert groups["grouped"].size == 3 and groups["grouped"].produced[0][1].tolist() == [[0, 3], [1, 4], [2, 5]]
    small = assert_compacts_exactly(spectral, x=x)
    grouped = small.get_layer("grouped")
    assert grouped.groups == 2 and grouped.filters == 4 and grouped.kernel.shape == (3, 3, 2, 4)


def test_separable_convolutions_convert_exactly_and_prune():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((9, 9, 3))
    x = keras.layers.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, activation="relu", name="sep_a")(inputs)
    x = keras.layers.SeparableConv2D(6, 3, strides=2, name="sep_b")(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 3)).astype("float32")
    spectral = spectralize(model)
    assert isinstance(spectral.get_layer("sep_a"), SpectralSeparableConv2D)
    np.testing.assert_allclose(ops.convert_to_numpy(spectral(x)), ops.convert_to_numpy(model(x)), atol=1e-5)
    plain = collapse(spectral)
    assert type(plain.get_layer("sep_a")) is keras.layers.SeparableConv2D
    np.testing.assert_allclose(ops.convert_to_numpy(plain(x)), ops.convert_to_numpy(model(x)), atol=1e-5)
    spectral = randomized(model)
    assert by_name(spectral)["sep_a"].prunable
    small = assert_compacts_exactly(spectral)
    assert small.get_layer("sep_b").depthwise_kernel.shape == (3, 3, 4, 1)


def test_spectral_separable_convolution_round_trips_and_trains_eigenvalues_only(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        SpectralSeparableConv2D(4, 3, depth_multiplier=2, padding="same", name="sep"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2),
    ])
    layer = model.get_layer("sep")
    assert {w.path.split("/")[-1] for w in layer.trainable_weights} == {"eigenvalues_in", "eigenvalues_out", "bias"}
    assert SpectralSeparableConv2D.from_config(layer.get_config()).get_config() == layer.get_config()
    path = str(tmp_path / "sep.keras")
    model.save(path)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(keras.saving.load_model(path)(x)),
                               ops.convert_to_numpy(model(x)), atol=1e-6)
    with pytest.raises(ValueError, match="depth_multiplier"):
        SpectralSeparableConv2D(4, 3, depth_multiplier=0)


# --- squeeze-excite and node-level coupling --------------------------------------------


def test_squeeze_excite_gate_couples_the_gate_with_the_map():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="expand")(inputs)
    se = keras.layers.Reshape((1, 1, 8))(keras.layers.GlobalAveragePooling2D()(x))
    se = keras.layers.Conv2D(2, 1, activation="relu", name="se_reduce")(se)
    se = keras.layers.Conv2D(8, 1, activation="sigmoid", name="se_expand")(se)
    x = keras.layers.Multiply()([x, se])
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 1, name="project")(x)))
    model = randomized(keras.Model(inputs, outputs))
    group = by_name(model)["expand"]
    assert [p.name for p in group.producers] == ["expand", "se_expand"] and group.prunable
    assert sorted(c.name for c, _ in group.consumers) == ["project", "se_reduce"]
    assert_compacts_exactly(model)


def test_concatenated_branches_added_to_a_wider_producer_form_one_group():
    """An Inception-ResNet block: [a (3), b (5)] concatenated, added to c (8)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 5, 2))
    a = keras.layers.Conv2D(3, 1, name="a")(inputs)
    b = keras.layers.Conv2D(5, 1, name="b")(inputs)
    joined = keras.layers.Concatenate()([a, b])
    c = keras.layers.Conv2D(8, 3, padding="same", name="c")(joined)
    x = keras.layers.Add()([joined, c])
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 1, name="d")(x)))
    model = randomized(keras.Model(inputs, outputs))
    group = by_name(model)["a"]
    assert group.size == 8 and [p.name for p in group.producers] == ["a", "b", "c"] and group.prunable
    rows = dict(group.produced)
    assert rows[model.get_layer("a")][:, 0].tolist() == [0, 1, 2, -1, -1, -1, -1, -1]
    assert rows[model.get_layer("b")][:, 0].tolist() == [-1, -1, -1, 0, 1, 2, 3, 4]
    group.remove([0, 1, 2, 4])  # every node of `a`: compact keeps one of them, masked
    small = assert_compacts_exactly(model, fraction=0.0)
    assert small.get_layer("a").filters == 1 and small.get_layer("c").filters == 5


# --- rules for layers the package has never seen ---------------------------------------


class ChannelScale(keras.layers.Layer):
    """A per-channel scale of a user's own."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(self.units,), initializer="ones")

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _scaled_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = ChannelScale(8, name="scale")(keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 1)(x)))
    return keras.Model(inputs, outputs)


def test_a_registered_rule_makes_a_custom_layer_prunable():
    model = randomized(_scaled_model())
    model.get_layer("scale").scale.assign(np.linspace(0.5, 2.0, 8).astype("float32"))
    group = by_name(model)["conv"]
    assert not group.prunable and "reaches ChannelScale 'scale'" in group.reason

    @ks.register_rule(ChannelScale)
    class ChannelScaleRule(ks.rules.PerFeature):
        def slice(self, layer, keep_in, keep_out, input_shape, bias):
            new = ChannelScale(len(keep_in), name=layer.name)
            new.build(input_shape)
            new.scale.assign(ops.take(layer.scale, keep_in))
            return new

    assert isinstance(rules.rule_for(model.get_layer("scale")), ChannelScaleRule)
    assert by_name(model)["conv"].prunable
    small = assert_compacts_exactly(model)
    assert small.get_layer("scale").units == 4


def test_a_rule_that_fails_to_slice_is_named_and_the_model_is_unchanged(unchanged):
    class Scale(ChannelScale):
        pass

    @ks.register_rule(Scale)
    class BrokenRule(ks.rules.PerFeature):
        def slice(self, layer, keep_in, keep_out, input_shape, bias):
            raise RuntimeError("no slicing today")

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = Scale(8, name="scale")(keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 1)(x)))
    model = randomized(keras.Model(inputs, outputs))
    prune_nodes(model, fraction=0.5)
    with unchanged(model), pytest.raises(ValueError, match=r"rule BrokenRule\(\) could not slice layer 'scale' \(Scale\) to 4 input.*no slicing"):
        compact(model)


def test_register_rule_refuses_what_is_not_a_layer_class_or_a_rule():
    with pytest.raises(TypeError, match=r"`layer_class`.*Received: layer_class='Dense'"):
        ks.register_rule("Dense", ks.rules.PerFeature())
    with pytest.raises(TypeError, match=r"`rule`.*Received: rule=<function"):
        ks.register_rule(ChannelScale, lambda layer: None)


class _Factor:
    value = 2.0


class Unconfigurable(keras.layers.Layer):
    """A layer made with an argument its config cannot hold (and no get_config)."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor.value


def test_a_layer_whose_config_does_not_round_trip_is_named_and_nothing_changes(unchanged):
    inputs = keras.Input((4,))
    x = Unconfigurable(_Factor(), name="odd")(keras.layers.Dense(3, name="d")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with unchanged(model), pytest.raises(ValueError, match=r"(?s)^Layer 'odd' \(Unconfigurable\) cannot be copied: .*get_config"):
        spectralize(model)
    assert type(model.get_layer("d")) is keras.layers.Dense


# --- multiply-adds ----------------------------------------------------------------------


def test_multiply_adds_of_each_layer_type():
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, padding="same"),          # 64 positions * 9 taps * 3 * 4
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2),  # 36 * 9 * 4 * 2
        keras.layers.SeparableConv2D(5, 3),                  # 16 * 8 * (9 + 5)
        keras.layers.Flatten(),
        keras.layers.Dense(7),                               # 80 * 7
    ])
    expected = 64 * 9 * 3 * 4 + 36 * 9 * 4 * 2 + 16 * 8 * (9 + 5) + 80 * 7
    assert ks.multiply_adds(model) == expected
    assert ks.multiply_adds(spectralize(model)) == expected
