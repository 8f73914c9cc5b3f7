"""Read a model as a chain of fully connected layers (what pruning and compaction handle).

Supported: Sequential and single-input, single-output functional models in which each
layer feeds the next, made of `SpectralDense`, `keras.layers.Dense` and `Dropout` layers
(Dropout is the identity at inference). Anything else is a `ValueError` naming the layer.
"""

import keras

from keras_spectral.layers import SpectralDense

FULLY_CONNECTED = (SpectralDense, keras.layers.Dense)
PASS_THROUGH = (keras.layers.Dropout,)


def layer_chain(model):
    """The model's layers in order (input layers excluded), checked to form a chain."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model. Received: model={model!r}")
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built; call it on data or build it first.")
    if isinstance(model, keras.Sequential):
        layers = list(model.layers)
    elif _is_functional(model):
        layers = _functional_chain(model)
    else:
        raise ValueError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed model, which is "
            "not supported here: expected a keras.Sequential or a functional keras.Model "
            "(built with keras.Model(inputs, outputs)) forming a chain of SpectralDense, "
            "Dense and Dropout layers."
        )
    for layer in layers:
        if not isinstance(layer, FULLY_CONNECTED + PASS_THROUGH):
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) is not supported here: "
                "expected a chain of SpectralDense, Dense and Dropout layers."
            )
    if not any(isinstance(layer, SpectralDense) for layer in layers):
        raise ValueError(f"Model '{model.name}' has no SpectralDense layer.")
    return layers


def _is_functional(model):
    """Whether `model` is a functional model (its graph of layers can be read)."""
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # pragma: no cover - a Keras without this private path
        return hasattr(model, "_operations") and hasattr(model, "_inputs_struct")
    return isinstance(model, Functional)


def _functional_chain(model):
    config = model.get_config()
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"Model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; only single-input, single-output chains are supported."
        )
    chain, previous = [], None
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer":
            previous = entry["name"]
            continue
        sources = _inbound_names(entry)
        if sources != [previous]:
            raise ValueError(
                f"Layer '{entry['name']}' takes its input from {sources}, not from the "
                f"previous layer '{previous}': only chains of layers are supported."
            )
        chain.append(model.get_layer(entry["name"]))
        previous = entry["name"]
    return chain


def _inbound_names(entry):
    """Names of the layers whose outputs a layer's config says it consumes."""

    def histories(obj):
        if isinstance(obj, dict):
            if "keras_history" in obj:
                yield obj["keras_history"][0]
            for value in obj.values():
                yield from histories(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                yield from histories(value)

    return list(histories(entry.get("inbound_nodes", [])))


def hidden_layers(layers):
    """`(producer, consumer)` pairs of fully connected layers around each hidden layer of
    nodes (Dropout between them skipped)."""
    dense = [layer for layer in layers if isinstance(layer, FULLY_CONNECTED)]
    return list(zip(dense[:-1], dense[1:]))
