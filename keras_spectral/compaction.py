"""Physically remove pruned nodes: `compact(model)` returns a narrower, equivalent model."""

import keras
import numpy as np
from keras import ops

from keras_spectral import eigenvectors as eigenvector_modes
from keras_spectral.cloning import clone_layer, compiled_like
from keras_spectral.graph import ModelGraph
from keras_spectral.graph.groups import InnerGroup, node_entries
from keras_spectral.graph.rules import rule_for
from keras_spectral.graph.rules.weights import numpy
from keras_spectral.layers import SpectralDense
from keras_spectral.spectral_layers import is_spectral
from keras_spectral.validation import check_bool


def _bias(layer):
    rule = rule_for(layer)
    bias = rule.bias(layer)
    return numpy(bias) if bias is not None else np.zeros(rule.width(layer))


def _feature_count(graph, call):
    return int(graph.tensors[call.inputs[0]].shape[rule_for(call.layer).feature_axis(call.layer)])


def _removed_features(graph, groups):
    """`{id(layer): boolean array over its input features, True = removed}` for every
    reader and sliced per-feature layer of the compacted groups, and
    `{id(layer): boolean array over its outputs}` for their producers."""
    removed_in, removed_out = {}, {}
    inputs = {id(call.layer): call for call in graph.calls}
    for group, dead in groups:
        if isinstance(group, InnerGroup):  # the layer's rule slices its inner nodes
            continue
        for producer, rows in group.produced:
            flags = removed_out.setdefault(id(producer), np.zeros(rule_for(producer).width(producer), dtype=bool))
            flags[node_entries(rows, dead)] = True
        passes = [(layer, rows) for layer, rows in group.passes if rule_for(layer).slices(inputs[id(layer)])]
        for layer, rows in group.consumers + passes:
            n = _feature_count(graph, inputs[id(layer)])
            flags = removed_in.setdefault(id(layer), np.zeros(n, dtype=bool))
            flags[node_entries(rows, dead)] = True
    return removed_in, removed_out


def _keep_one_per_producer(group, dead):
    """`dead`, except that a producer holding only removed nodes (part of a group, as a
    branch of a concatenation added to a wider stream) keeps its first one: a layer
    cannot have no outputs. The kept node stays masked, so the outputs do not change."""
    dead = dead.copy()
    for _, rows in group.produced:
        held = np.flatnonzero((rows >= 0).any(axis=1))
        if len(held) and dead[held].all():
            dead[held[0]] = False
    return dead


# Sizes given to a model's dimensions of unknown size when it is probed (two, so that a
# value depending on the input size shows), larger ones if a model needs them (valid
# convolutions), and the probe values tried (ones, then zeros: log(x) of zeros is -inf).
PROBE_SIZES = ((16, 23), (64, 71))
PROBE_VALUES = (1.0, 0.0)


def _reader_inputs(graph, removed_in):
    """The value each removed feature has where a fully connected layer reads it, with
    the model run on constant probes: removed nodes output constants (their producers'
    `activation(bias)`, through per-feature layers), so a run gives them all. Returns
    `{id(layer): (positions, features) array}`: one row per position of a spatial input,
    and per probe size where the model has dimensions of unknown size."""
    readers = [c for c in graph.calls if rule_for(c.layer).produces(c.layer) and id(c.layer) in removed_in]
    if not readers:
        return {}
    inputs = [graph.tensors[key] for key in graph.inputs]
    variable = any(d is None for t in inputs for d in t.shape[1:])
    failure = None
    for sizes in PROBE_SIZES if variable else ((1,),):
        for value in PROBE_VALUES:
            try:
                runs = [graph.run([ops.full([1] + [size if d is None else d for d in t.shape[1:]], value, dtype=t.dtype)
                                   for t in inputs])
                        for size in sizes]
            except Exception as error:  # noqa: BLE001 - a probe size the model cannot take: try larger
                failure = error
                break
            result = {}
            for call in readers:
                axis = rule_for(call.layer).feature_axis(call.layer)
                parts = [np.moveaxis(numpy(run[call.inputs[0]]), axis, -1) for run in runs]
                result[id(call.layer)] = np.concatenate([x.reshape(-1, x.shape[-1]) for x in parts])
            gone = [result[id(c.layer)][:, removed_in[id(c.layer)]] for c in readers]
            if all(np.isfinite(g).all() for g in gone):
                return result
            failure = None
    if failure is not None:
        raise ValueError(
            f"compact() runs model '{graph.model.name}' on constant probe inputs (sizes {PROBE_SIZES} where its "
            f"input size is unknown) to read the removed nodes' constant values, and the model failed on them: "
            f"{failure}. Give the model a fixed input size."
        ) from failure
    raise ValueError(
        f"The removed nodes of model '{graph.model.name}' have no finite value on constant probe inputs "
        f"(ones, zeros): the model computes something undefined there before them (e.g. log or division of "
        "its input), so compact() cannot fold them into the readers' biases. Convert the readers with "
        "keras_spectral.spectralize so that they mask the removed nodes themselves."
    )


def _folded_bias(layer, bias, gone_in, read):
    """`bias` plus the contribution of the removed input features that `layer` still
    reads (they are constant); refused where that contribution is not one number per
    output (a channel whose value varies over positions, e.g. after padding)."""
    ignored = numpy(layer.eigenvalues_in_mask) == 0 if is_spectral(layer) else np.zeros(gone_in.size, bool)
    folded = gone_in & ~ignored
    if not folded.any():
        return bias
    values = read[:, folded]
    rule = rule_for(layer)
    if rule.spatial or not rule.folds or not np.allclose(values, values[:1], rtol=1e-6, atol=1e-7):
        if np.all(values == 0):
            return bias
        raise ValueError(
            f"Layer '{layer.name}' reads removed features whose value is not one constant per "
            "feature: it changes with the position or with the input size (a removed channel "
            "reaching a convolution, or passing padding), so compact() cannot fold it into the "
            "layer's bias exactly. Remove nodes with keras_spectral.prune_nodes or NodeGroup.remove, "
            f"which mask the spectral layers that read them; convert '{layer.name}' with "
            "keras_spectral.spectralize if it is not spectral; or give the model a fixed input size."
        )
    kernel = numpy(rule.kernel(layer))
    return bias + values[0] @ kernel[folded]


def compact(model, eigenvectors=None, drop_inputs=False):
    """A smaller model without the removed hidden nodes, with the same outputs.

    Nodes removed by `keras_spectral.pruning` (or by setting masks) disappear from every
    layer of their node group (`keras_spectral.graph.node_groups`): each layer is sliced
    by its rule (`keras_spectral.graph.rules`): fully connected layers and convolutions
    of every kind get narrower (fewer units, filters or input channels), depthwise
    convolutions, BatchNormalization, PReLU and layer scales keep the kept channels'
    weights, concatenations shrink, and the other layers (and `keras.ops` operations)
    are copied as they are. A node silenced in its producing layer outputs
    the constant `activation(bias)` (through the per-feature layers after it); that
    constant's contribution is folded into the readers' biases, so the outputs equal the
    masked model's (up to float rounding). A removed channel is masked in the spectral
    convolutions that read it, so nothing needs folding there; a constant that would have
    to be folded into a convolution (masks set by hand on the producer only) is refused.
    The model's inputs and outputs keep their shapes.

    Args:
        model: A built Sequential or functional model with spectral layers (SpectralDense,
            SpectralConv*; nested models are expanded into one graph).
        eigenvectors: Eigenvector mode for the SpectralDense layers of the compact model
            (for example `"trainable"` to retrain the small network in full); `None`
            keeps each layer's mode (spectral convolutions keep theirs). Decomposed
            modes are refactored exactly from the kept block of φ, with dense bases.
        drop_inputs: If True, input features removed from the first layer (its
            `eigenvalues_in_mask`, e.g. by `keras_spectral.relevance.remove_inputs`) are
            dropped too: the compact model takes only the kept features, in the order
            of `keras_spectral.relevance.kept_inputs(model)` (slice your data with it).
            Its outputs on `x[..., kept]` equal the masked model's on `x`. Needs a
            single model input read only by SpectralDense layers.

    Returns:
        A new model of the same graph: a `keras.Sequential` for a flat Sequential input,
        else a functional `keras.Model` (nested models expanded), compiled like the input
        model where it was compiled (fresh optimizer state). The input model is not
        modified.

    Example:

    >>> prune_nodes(model, fraction=0.9)  # doctest: +SKIP
    >>> small = compact(model)  # doctest: +SKIP
    """
    if eigenvectors is not None and eigenvectors not in eigenvector_modes.MODES:
        raise ValueError(
            "Received an invalid value for `eigenvectors`, expected None or one of "
            f"{eigenvector_modes.MODES}. Received: eigenvectors={eigenvectors!r}"
        )
    check_bool("drop_inputs", drop_inputs)
    from keras_spectral.pruning import removable_groups

    graph = ModelGraph(model)
    groups = []
    for group in removable_groups(model):
        group.check_masks()
        dead = ~group.active()
        if dead.all():
            raise ValueError(
                f"Node group '{group.name}' has no nodes left (all {group.size} are "
                "removed), so compact() cannot build it; keep at least one node per group "
                "(e.g. prune with a smaller `fraction`)."
            )
        if dead.any():
            groups.append((group, _keep_one_per_producer(group, dead)))
    for group, _ in groups:
        for layer in group.producers + [c for c, _ in group.consumers]:
            if getattr(layer, "kernel_sparsity", None):
                raise ValueError(
                    f"Layer '{layer.name}' has kernel_sparsity={layer.kernel_sparsity}: its "
                    "percentile mask depends on the whole kernel, so removing nodes would "
                    "change it. compact() handles node pruning without kernel_sparsity."
                )
    removed_in, removed_out = _removed_features(graph, groups)
    kept_inner = {}  # id(layer) -> {"keep_<kind>": the inner nodes kept}
    for group, dead in groups:
        if isinstance(group, InnerGroup):
            kept_inner.setdefault(id(group.layer), {})[f"keep_{group.kind}"] = np.flatnonzero(~dead)
    input_shapes = None
    if drop_inputs:
        input_shapes = _drop_inputs(model, graph, removed_in)
    read_values = _reader_inputs(graph, removed_in)

    replacements = {}
    for call in graph.calls:
        layer = call.layer
        if id(layer) in replacements:
            continue
        shape = list(graph.tensors[call.inputs[0]].shape) if call.inputs else None
        gone_in = removed_in.get(id(layer))
        gone_out = removed_out.get(id(layer))
        rule = rule_for(layer)
        change_mode = isinstance(layer, SpectralDense) and eigenvectors
        inner = kept_inner.get(id(layer), {})
        if gone_in is None and gone_out is None and not change_mode and not inner:
            replacements[id(layer)] = None  # copied as it is, weights set after the rebuild
            continue
        axis = rule.feature_axis(layer)
        n_in = shape[axis]
        keep_in = np.flatnonzero(~gone_in) if gone_in is not None else np.arange(n_in)
        shape[axis] = len(keep_in)
        if rule.produces(layer):
            keep_out = np.flatnonzero(~gone_out) if gone_out is not None else np.arange(rule.width(layer))
            bias = _bias(layer)
            if gone_in is not None and id(layer) in read_values:
                bias = _folded_bias(layer, bias, gone_in, read_values[id(layer)])
            use_bias = rule.bias(layer) is not None or bool(np.any(bias != 0))
            arguments = (keep_in, keep_out, shape, bias[keep_out] if use_bias else None)
        else:
            arguments = (keep_in, keep_in, shape, None)
        replacements[id(layer)] = _sliced(rule, layer, arguments + ((eigenvectors,) if change_mode else ()), **inner)

    copies = []

    def layer_for(layer):
        new = replacements[id(layer)]
        if new is None and not isinstance(layer, keras.layers.Layer):
            return layer  # a keras.ops operation: stateless, called again as it is
        if new is None:
            new = clone_layer(layer)
            replacements[id(layer)] = new
            copies.append((layer, new))
        return new

    name = f"{model.name}_compact"
    if isinstance(model, keras.Sequential) and len(graph.calls) == len(model.layers):
        # A flat Sequential stays one (same layer indices as the input model).
        shape = (input_shapes or [graph.tensors[graph.inputs[0]].shape])[0]
        small = keras.Sequential([keras.Input(tuple(shape)[1:])] + [layer_for(l) for l in model.layers], name=name)
    else:
        small = graph.rebuild(layer_for, name=name, input_shapes=input_shapes)
    for layer, new in copies:
        if layer.weights:
            new.set_weights(layer.get_weights())
    return compiled_like(small, model)


def _sliced(rule, layer, arguments, **inner):
    """`rule.slice(layer, *arguments, **inner)`, its failures named (`inner`: the inner
    nodes kept, e.g. `keep_heads`)."""
    try:
        new = rule.slice(layer, *arguments, **inner)
    except Exception as error:
        kept = ", ".join(f"{len(v)} {k[5:]}" for k, v in inner.items()) or (
            f"{len(arguments[0])} input and {len(arguments[1])} output features")
        raise ValueError(
            f"The pruning rule {rule!r} could not slice layer '{layer.name}' ({type(layer).__name__}) to "
            f"{kept}: {error}"
        ) from error
    if new is not None and not callable(new):
        raise TypeError(
            f"The pruning rule {rule!r} returned {new!r} for layer '{layer.name}' ({type(layer).__name__}); "
            "expected a new layer (or None to copy the layer as it is)."
        )
    return new


def _drop_inputs(model, graph, removed_in):
    """With `drop_inputs=True`: the new input shapes, and the first layer's removed input
    features recorded in `removed_in`."""
    if len(graph.inputs) != 1:
        raise ValueError(
            f"drop_inputs=True needs a model with one input; model '{model.name}' has {len(graph.inputs)}."
        )
    key = graph.inputs[0]
    readers = graph.consumers(key)
    if not readers or not all(isinstance(c.layer, SpectralDense) for c in readers) or len(readers) > 1:
        names = [f"'{c.layer.name}' ({type(c.layer).__name__})" for c in readers]
        raise ValueError(
            "drop_inputs=True needs the model input to be read by one SpectralDense layer "
            f"(its input mask says which features are kept); model '{model.name}' feeds it to "
            f"{', '.join(names) or 'nothing'}."
        )
    first = readers[0].layer
    keep = numpy(first.eigenvalues_in_mask) != 0
    if not keep.any():
        raise ValueError(f"Layer '{first.name}' has no input features left; nothing to compact.")
    flags = removed_in.setdefault(id(first), np.zeros(keep.size, dtype=bool))
    flags |= ~keep
    shape = list(graph.tensors[key].shape)
    shape[-1] = int(keep.sum())
    return [tuple(shape)]

