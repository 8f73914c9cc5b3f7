"""Every `keras.applications` model through the pruning pipeline: built without downloads
(`weights=None`, small inputs, 10 classes, logits), given random non-trivial weights
(biases, BatchNorm statistics, layer scales, unequal eigenvalues), converted, half of
every prunable group removed, compacted and collapsed; the outputs compared with the
masked model's, and the share of conv/dense output channels in prunable groups counted.
Shared by `benchmarks/zoo.py` (the whole zoo, results file and page) and the suite's
zoo test (a representative set on every backend)."""

import re
import time

import keras
import numpy as np
from keras import ops

import keras_spectral as ks
from keras_spectral.graph import rules

# The smallest square input each family's constructor accepts (others take 32).
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71, "NASNetLarge": 64, "NASNetMobile": 64}

# The suite's representative set (the list).
REPRESENTATIVE = ("ResNet50", "MobileNetV2", "MobileNetV3Small", "EfficientNetB0", "ConvNeXtTiny", "Xception",
                  "NASNetMobile", "DenseNet121", "InceptionResNetV2")


def constructors():
    """The names of every model constructor of the installed `keras.applications`."""
    return sorted(n for n in dir(keras.applications)
                  if n[:1].isupper() and callable(getattr(keras.applications, n)))


def build(name, size=None):
    """`keras.applications.<name>` without weights, `size`² RGB inputs, 10 logits."""
    size = size or max(32, MIN_SIZE.get(name, 32))
    constructor = getattr(keras.applications, name)
    return constructor(weights=None, input_shape=(size, size, 3), classes=10, classifier_activation=None)


def randomize(model, seed=0):
    """Give the model non-trivial state in place: random biases, BatchNorm statistics and
    scales, layer scales, and unequal eigenvalues (λ_in ~ U(0.5, 1.5), λ_out ~ U(±0.25))."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        for variable in layer.weights:
            name = variable.path.split("/")[-1]
            shape = tuple(variable.shape)
            if name == "bias" or name == "beta" or name == "moving_mean":
                value = rng.normal(0.0, 0.05, shape)
            elif name in ("gamma", "moving_variance"):
                value = rng.uniform(0.5, 1.5, shape)
            elif name == "eigenvalues_in":
                value = rng.uniform(0.5, 1.5, shape)
            elif name == "eigenvalues_out":
                value = rng.uniform(-0.25, 0.25, shape)
            else:
                continue
            variable.assign(value.astype(variable.dtype))


def _normalized(reason):
    """A reason without the layers' names, to count reasons across groups."""
    return re.sub(r"'[^']*'", "", reason).replace("  ", " ").strip()


def coverage(model):
    """`(prunable channels, counted channels, {reason: channels})` over the output
    channels of the model's producers (Dense, convolutions), the classifier (groups that
    reach a model output) aside."""
    prunable, total, blocked = 0, 0, {}
    for group in ks.node_groups(model):
        if any("is a model output" in r for r in group.reasons):
            continue
        channels = sum(rules.rule_for(p).width(p) for p in group.producers)
        total += channels
        if group.prunable:
            prunable += channels
        else:
            reason = _normalized(group.reasons[0] if group.reasons else group.reason)
            blocked[reason] = blocked.get(reason, 0) + channels
    return prunable, total, blocked


def _relative(a, b):
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-12))


def run(name, size=None, fraction=0.5, seed=0, dtype="float32"):
    """One model through the pipeline (layers of `dtype`); returns a dict of what was
    found and measured."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        return _run(name, size, fraction, seed)
    finally:
        keras.config.set_dtype_policy(policy)


def _run(name, size, fraction, seed):
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = build(name, size)
    randomize(model, seed)
    spectral = ks.spectralize(model)
    randomize(spectral, seed + 1)
    prunable, total, blocked = coverage(spectral)
    record = {"size": int(model.input_shape[1]), "prunable_channels": prunable, "channels": total,
              "share": prunable / max(total, 1), "blocked": blocked,
              "groups": len(ks.node_groups(spectral)),
              "parameters": int(model.count_params()), "multiply_adds": ks.multiply_adds(model)}
    if prunable:
        ks.prune_nodes(spectral, fraction=fraction, score="sum")
        x = np.random.default_rng(seed).normal(size=(2, *model.input_shape[1:])).astype(keras.config.floatx())
        x = x.astype(model.compute_dtype)
        masked = ops.convert_to_numpy(spectral(x, training=False))
        small = ks.compact(spectral)
        compacted = ops.convert_to_numpy(small(x, training=False))
        served = ks.collapse(small)
        collapsed = ops.convert_to_numpy(served(x, training=False))
        record.update(
            compact_error=_relative(masked, compacted), collapse_error=_relative(masked, collapsed),
            parameters_after=int(served.count_params()), multiply_adds_after=ks.multiply_adds(served),
        )
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record
