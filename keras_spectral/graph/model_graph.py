"""A Keras model read as a flat list of layer calls, to analyse, run or rebuild.

Sequential and functional models (several inputs and outputs, branches, shared layers)
are read from their graph of nodes; nested Sequential / functional models are expanded
into the calls of their layers, so the graph is the same however the model is nested.
Subclassed models have no graph to read and are refused.
"""

import keras
from keras import tree

try:  # the graph of a functional model is only reachable through Keras' own classes
    from keras.src.models.functional import Functional
except ImportError:  # pragma: no cover - a Keras without this private path
    Functional = None


def functional_of(model):
    """The functional graph behind a Sequential or functional model, else None."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if Functional is not None and isinstance(model, Functional):
        return model
    return None


class Call:
    """One call of a layer: which tensors (by key) it reads and writes."""

    def __init__(self, layer, node, resolve):
        self.layer = layer
        self.node = node
        self._resolve = resolve
        self.inputs = [resolve(t) for t in node.arguments.keras_tensors]
        self.outputs = [id(t) for t in node.outputs]

    def arguments(self, values):
        """The call's positional and keyword arguments, tensors taken from `values`."""

        def fill(x):
            if isinstance(x, keras.KerasTensor):
                return values[self._resolve(x)]
            return x

        return self.node.arguments.convert(fill)

    def __repr__(self):
        return f"Call({self.layer.name!r})"


class ModelGraph:
    """The layer calls of a built Sequential or functional model, in execution order.

    Attributes:
        model: The model read.
        inputs: Keys of the model's input tensors (flat, in Keras' order).
        outputs: Keys of the model's output tensors (flat).
        calls: `Call`s in an order in which each call's inputs are computed first.
        tensors: `{key: KerasTensor}` for every tensor (shapes and dtypes).
    """

    def __init__(self, model):
        if not isinstance(model, keras.Model):
            raise TypeError(f"Expected a keras.Model. Received: model={model!r}")
        if not model.built:
            raise ValueError(f"Model '{model.name}' is not built; call it on data or build it first.")
        functional = functional_of(model)
        if functional is None:
            raise ValueError(
                f"Model '{model.name}' ({type(model).__name__}) is a subclassed model, whose "
                "graph of layers cannot be read: expected a keras.Sequential or a functional "
                "keras.Model (built with keras.Model(inputs, outputs))."
            )
        self.model = model
        self.functional = functional
        self.calls = []
        self.tensors = {}
        self._alias = {}
        self.inputs = [id(t) for t in functional.inputs]
        for t in functional.inputs:
            self.tensors[id(t)] = t
        self._expand(functional)
        self.outputs = [self._resolve(t) for t in functional.outputs]

    def _resolve(self, tensor):
        key = id(tensor)
        while key in self._alias:
            key = self._alias[key]
        return key

    def _expand(self, functional):
        for depth in sorted(functional._nodes_by_depth, reverse=True):
            for node in functional._nodes_by_depth[depth]:
                if not node.operation or node.is_input:
                    continue
                inner = functional_of(node.operation) if isinstance(node.operation, keras.Model) else None
                if inner is not None:
                    outer_inputs = node.arguments.keras_tensors
                    for inner_input, outer in zip(inner.inputs, outer_inputs):
                        self._alias[id(inner_input)] = self._resolve(outer)
                    self._expand(inner)
                    for outer_output, inner_output in zip(node.outputs, tree.flatten(inner.outputs)):
                        self._alias[id(outer_output)] = self._resolve(inner_output)
                    continue
                call = Call(node.operation, node, self._resolve)
                self.calls.append(call)
                for t in node.outputs:
                    self.tensors[id(t)] = t

    @property
    def layers(self):
        """The distinct layers called, in call order."""
        seen, layers = set(), []
        for call in self.calls:
            if id(call.layer) not in seen:
                seen.add(id(call.layer))
                layers.append(call.layer)
        return layers

    def consumers(self, key):
        """The calls that read tensor `key`."""
        return [call for call in self.calls if key in call.inputs]

    def call_counts(self):
        """`{id(layer): number of calls}` (a layer called more than once is shared)."""
        counts = {}
        for call in self.calls:
            counts[id(call.layer)] = counts.get(id(call.layer), 0) + 1
        return counts

    def run(self, inputs, layer_for=None):
        """Run the graph on `inputs` (flat list), each call made by `layer_for(layer)`
        (default: the layer itself). Returns `{key: value}` for every tensor."""
        layer_for = layer_for or (lambda layer: layer)
        values = dict(zip(self.inputs, inputs))
        for call in self.calls:
            args, kwargs = call.arguments(values)
            outputs = layer_for(call.layer)(*args, **kwargs)
            values.update(zip(call.outputs, tree.flatten(outputs)))
        return values

    def new_inputs(self, shapes=None):
        """Fresh `keras.Input`s like the model's (or of the given full `shapes`)."""
        made = []
        for i, key in enumerate(self.inputs):
            t = self.tensors[key]
            shape = tuple(t.shape) if shapes is None else tuple(shapes[i])
            history = getattr(t, "_keras_history", None)
            name = history[0].name if history else None
            made.append(keras.Input(shape=shape[1:], batch_size=shape[0], dtype=t.dtype, name=name))
        return made

    def rebuild(self, layer_for, name=None, input_shapes=None, extra_outputs=()):
        """A new functional model of the same graph, each call made by `layer_for(layer)`
        (inputs of `input_shapes` if given). `extra_outputs` (tensor keys) are appended
        to the outputs as a flat list."""
        inputs = self.new_inputs(input_shapes)
        values = self.run(inputs, layer_for)
        inputs_struct = tree.pack_sequence_as(self.functional._inputs_struct, inputs)
        outputs = tree.pack_sequence_as(self.functional._outputs_struct, [values[k] for k in self.outputs])
        if extra_outputs:
            outputs = tree.flatten(outputs) + [values[k] for k in extra_outputs]
        return keras.Model(inputs_struct, outputs, name=name or self.model.name)
