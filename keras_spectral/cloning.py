"""Copies of layers and models that do not depend on rebuilding initializers from config.

`keras.layers.Layer.from_config(layer.get_config())` fails for a layer made with a
callable initializer, regularizer or constraint (a lambda, a local function), which the
config cannot hold. `clone_layer` builds the copy without them and then gives it the
original objects, so any layer that could be built can be copied.
"""

import inspect

import keras

_OBJECT_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def clone_layer(layer, cls=None, **overrides):
    """An unbuilt copy of `layer` (of class `cls`, default its own) with its config,
    updated by `overrides`; initializers, regularizers and constraints are the
    original objects, not rebuilt from config. Weights are not copied."""
    objects = {}
    try:
        config = layer.get_config()
        config.update(overrides)
        for key in list(config):
            if key.endswith(_OBJECT_SUFFIXES) and key not in overrides and hasattr(layer, key):
                objects[key] = getattr(layer, key)
                del config[key]
        clone = _from_config(cls or layer.__class__, config)
    except Exception as error:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) cannot be copied: {str(error).strip()} "
            f"(a copy is made from its config, so {type(layer).__name__}.get_config() must return "
            "every argument of its __init__, and from_config() must accept it)"
        ) from error
    for key, value in objects.items():
        setattr(clone, key, value)
    return clone


def _from_config(cls, config):
    """`cls.from_config(config)`; where that fails, retried with only the arguments that
    `cls`'s constructor takes (a layer whose `get_config` also returns derived values, as
    keras_hub's `ViTPatchingAndEmbedding` does with `num_patches`). The first failure is
    raised if the retry fails too."""
    try:
        return cls.from_config(config)
    except Exception:
        accepted = _constructor_arguments(cls)
        kept = {key: value for key, value in config.items() if key in accepted}
        if len(kept) == len(config):
            raise
        try:
            return cls.from_config(kept)
        except Exception:
            pass
        raise


def _constructor_arguments(cls):
    """The keyword arguments `cls(...)` takes: its `__init__`'s, and its bases' where an
    `__init__` passes `**kwargs` on."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters) or klass is keras.layers.Layer:
            break
    return names - {"self"}


def replace_layers(model, replace):
    """A copy of `model` (Sequential, functional, nested models included) in which each
    layer is `replace(layer)` where that returns a layer, else a copy with the same
    weights. The input model is not modified."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model. Received: model={model!r}")
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built; call it on data (or build it) first.")
    copies = []

    def clone(layer):
        if not isinstance(layer, keras.layers.Layer):
            return layer  # a keras.ops operation in the graph (`x + 3.0`): stateless
        new = replace(layer)
        if new is not None:
            return new
        new = clone_layer(layer)
        copies.append((layer, new))
        return new

    from keras_spectral.graph.model_graph import functional_of  # the graph package imports this module

    if functional_of(model) is None:
        raise ValueError(
            f"Model '{model.name}' ({type(model).__name__}) could not be rebuilt: it is a subclassed model, which has no "
            "graph of layers to rebuild: expected a keras.Sequential or a functional keras.Model "
            "(built with keras.Model(inputs, outputs))."
        )
    result = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for layer, new in copies:
        if layer.weights:
            new.set_weights(layer.get_weights())
    return compiled_like(result, model)


def compiled_like(new, model):
    """`new`, compiled as `model` was if it was (same loss, metrics and optimizer
    configuration, fresh optimizer state; as `keras.models.clone_model` users do)."""
    if getattr(model, "compiled", False) and not getattr(new, "compiled", False):
        new.compile_from_config(model.get_compile_config())
    return new
