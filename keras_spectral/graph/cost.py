"""What a model costs, read from its graph with the layers' rules."""

from keras_spectral.graph.model_graph import ModelGraph
from keras_spectral.graph.rules import rule_for


def multiply_adds(model):
    """Multiply-adds of one sample through `model` (Sequential or functional, nested
    models expanded): the sum of each layer call's rule (`Rule.multiply_adds`: Dense,
    convolutions of every kind; other layers count 0). Spatial sizes the model leaves
    unknown count as 1: build the model with its input size to count a real image.

    Example:

    >>> multiply_adds(keras.applications.ResNet50(weights=None))  # doctest: +SKIP
    3868706816
    """
    graph = model if isinstance(model, ModelGraph) else ModelGraph(model)
    return int(sum(rule_for(call.layer).multiply_adds(call, graph) for call in graph.calls))
