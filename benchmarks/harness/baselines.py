"""Conventional baselines for the sparsity experiments, built like the spectral networks.

- `prune_dense_nodes_by_incoming_l1`: the papers' node-pruning baseline for `Dense`
  networks (Buffoni et al., 2022): rank each hidden node by the L1 norm of its incoming
  weights and zero the weakest nodes' incoming columns.
- `tfmot_magnitude_pruned_mlp`: tensorflow-model-optimization's `prune_low_magnitude` with
  a `PolynomialDecay` schedule. tfmot 0.8.1 does not accept Keras 3 models, so this
  baseline is built with `tf_keras` (Keras 2) on TensorFlow, and needs the TensorFlow
  backend's packages.
"""

import keras
import numpy as np
from keras import ops

from keras_spectral.validation import check_fraction


def prune_dense_nodes_by_incoming_l1(model, fraction):
    """Zero, in place, the incoming weights of the `fraction` of each hidden Dense layer's
    nodes with the smallest incoming L1 norm (the node then outputs `activation(bias)`).
    Returns `{layer name: fraction removed}`."""
    check_fraction("fraction", fraction)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if len(dense) < 2:
        raise ValueError(f"Model '{model.name}' has no hidden Dense layer to prune.")
    report = {}
    for layer in dense[:-1]:
        kernel = np.asarray(ops.convert_to_numpy(layer.kernel))
        strength = np.abs(kernel).sum(axis=0)
        removed = np.argsort(strength, kind="stable")[: int(np.floor(fraction * layer.units + 1e-9))]
        kernel[:, removed] = 0.0
        layer.kernel.assign(kernel)
        report[layer.name] = len(removed) / layer.units
    return report


def tfmot_magnitude_pruned_mlp(
    input_dim, hidden, classes, final_sparsity, end_step, activation="tanh", begin_step=0, frequency=100
):
    """A `tf_keras` MLP wrapped in `prune_low_magnitude` (weights of every Dense layer).

    Returns `(model, callbacks)`; train with `model.fit(..., callbacks=callbacks)` and
    remove the wrappers with `tfmot.sparsity.keras.strip_pruning(model)`.
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras

    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=final_sparsity,
        begin_step=begin_step,
        end_step=end_step,
        frequency=frequency,
    )
    layers = [tf_keras.Input((input_dim,))]
    layers += [tf_keras.layers.Dense(width, activation=activation) for width in hidden]
    layers.append(tf_keras.layers.Dense(classes, activation="softmax"))
    model = tfmot.sparsity.keras.prune_low_magnitude(
        tf_keras.Sequential(layers), pruning_schedule=schedule
    )
    return model, [tfmot.sparsity.keras.UpdatePruningStep()]


def weight_sparsity(weights):
    """Fraction of exactly-zero entries in a list of kernels (NumPy arrays)."""
    total = sum(w.size for w in weights)
    return sum(int(np.sum(w == 0)) for w in weights) / total
