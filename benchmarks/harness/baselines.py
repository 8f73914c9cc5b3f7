"""Conventional baselines for the sparsity experiments, built like the spectral networks.

- `prune_dense_nodes_by_incoming_l1`: the papers' node-pruning baseline for `Dense`
  networks (Buffoni et al., 2022): rank each hidden node by the L1 norm of its incoming
  weights and zero the weakest nodes' incoming columns.
- `NodeRemoval`: the conventional structured-pruning baseline for any node group of
  `keras_spectral.node_groups` (Dense nodes, convolution channels): on a schedule, remove
  the nodes of lowest score (incoming L1 norm, BatchNorm's |γ|, ...) and hold them at zero.
- `LowRankDense` and `ScaledFrozenDense`: the equal-budget cousins of two spectral modes
  for the grid (`reproduce.py budget`): a plain trained low-rank kernel `A B` (the
  `lowrank` mode without eigenvalues) and a frozen random kernel with trained per-row and
  per-column scales, `diag(a) φᵀ diag(b)` (the two eigenvalue sets' multiplicative
  cousin: a product where the spectral kernel has the difference `λ_in − λ_out`).
- `tfmot_magnitude_pruned_mlp`: tensorflow-model-optimization's `prune_low_magnitude` with
  a `PolynomialDecay` schedule. tfmot 0.8.1 does not accept Keras 3 models, so this
  baseline is built with `tf_keras` (Keras 2) on TensorFlow, and needs the TensorFlow
  backend's packages.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_spectral.pruning import _sync_jax_state
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


def _numpy(variable):
    return np.asarray(ops.convert_to_numpy(variable), dtype="float32")


def batch_norms(group):
    """`(layer, features)` of the BatchNormalization layers a node group passes."""
    return [(layer, rows[:, 0]) for layer, rows in group.passes if isinstance(layer, keras.layers.BatchNormalization)]


class NodeRemoval(keras.callbacks.Callback):
    """Conventional structured pruning during `fit`: at each step the `schedule`
    (a `keras_spectral.schedules` schedule) prunes, remove each group's nodes of lowest
    `score(group)` (one number per node) down to its sparsity. Removed nodes are held at
    zero after every step: the producers' kernel columns (a convolution's whole filter)
    and biases, and the γ and β of BatchNormalization layers they pass, so the node is 0
    after the activation (ReLU, tanh, ...): removed for good. `removed`: a boolean array
    per group."""

    def __init__(self, groups, schedule, score):
        super().__init__()
        self.groups, self.schedule, self.score = groups, schedule, score
        self.removed = [np.zeros(g.size, dtype=bool) for g in groups]
        self._norms = [batch_norms(g) for g in groups]  # read once: _apply runs every step

    def _apply(self):
        for group, removed, norms in zip(self.groups, self.removed, self._norms):
            keep = (~removed).astype("float32")
            for producer in group.producers:
                producer.kernel.assign(_numpy(producer.kernel) * keep)
                if producer.use_bias:
                    producer.bias.assign(_numpy(producer.bias) * keep)
            for bn, features in norms:
                mask = np.ones(bn.gamma.shape[0], dtype="float32")
                mask[features[removed]] = 0.0
                bn.gamma.assign(_numpy(bn.gamma) * mask)
                bn.beta.assign(_numpy(bn.beta) * mask)

    def on_train_begin(self, logs=None):
        self.step = 0  # a fresh optimizer (on JAX its counter is not synced during fit)

    def on_train_batch_begin(self, batch, logs=None):
        step = self.step
        self.step += 1
        if not self.schedule.should_prune(step):
            return
        _sync_jax_state(self.model)
        for g, group in enumerate(self.groups):
            target = int(math.floor(self.schedule.sparsity_at(step) * group.size + 1e-9))
            scores = np.where(self.removed[g], -np.inf, self.score(group))
            self.removed[g][np.argsort(scores, kind="stable")[:target]] = True
        self._apply()

    def on_train_batch_end(self, batch, logs=None):
        if any(r.any() for r in self.removed):
            _sync_jax_state(self.model)
            self._apply()


class LowRankDense(keras.layers.Layer):
    """A dense layer whose kernel is `A B` (`(n_in, rank)`, `(rank, units)`), both
    trained: the `lowrank` SpectralDense mode without its eigenvalues. The factors start
    as the `lowrank` mode's do: the best rank-`rank` approximation of a Glorot-variance
    draw, rescaled to the draw's Frobenius norm and split evenly between A and B.
    Trainable parameters `rank · (n_in + units) + units`; multiply-adds per sample
    `rank · (n_in + units)` (applied factored)."""

    def __init__(self, units, rank, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.rank = units, rank
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        n_in = input_shape[-1]
        rank = min(self.rank, n_in, self.units)
        draw = keras.initializers.VarianceScaling(1.0, "fan_avg", "untruncated_normal")((n_in, self.units))
        u, s, vt = np.linalg.svd(np.asarray(ops.convert_to_numpy(draw), dtype="float64"), full_matrices=False)
        s = s * np.sqrt(np.sum(s**2) / np.sum(s[:rank] ** 2))
        root = np.sqrt(s[:rank])
        self.factor_in = self.add_weight(
            name="factor_in", shape=(n_in, rank), initializer=keras.initializers.Constant(u[:, :rank] * root))
        self.factor_out = self.add_weight(
            name="factor_out", shape=(rank, self.units), initializer=keras.initializers.Constant(root[:, None] * vt[:rank]))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, x):
        return self.activation(ops.matmul(ops.matmul(x, self.factor_in), self.factor_out) + self.bias)

    def multiply_adds(self):
        """Per sample, factored."""
        return int(self.factor_in.shape[1] * (self.factor_in.shape[0] + self.units))


class ScaledFrozenDense(keras.layers.Layer):
    """A dense layer whose kernel is `diag(a) φᵀ diag(b)`: φᵀ `(n_in, units)` frozen
    random (unit normal, as the frozen spectral mode's), `a` (one per input) and `b` (one
    per output) trained. Trainable parameters `n_in + 2 · units`, as the two eigenvalue
    sets'. `a` and `b` start uniform in ±`scale_limit` (0.25), so the kernel starts at
    about the two sets' scale (|a b| ≈ 0.016 against |λ_in − λ_out| ≈ 0.013); not tuned."""

    def __init__(self, units, activation=None, scale_limit=0.25, **kwargs):
        super().__init__(**kwargs)
        self.units, self.scale_limit = units, scale_limit
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        n_in = input_shape[-1]
        scales = keras.initializers.RandomUniform(-self.scale_limit, self.scale_limit)
        self.eigenvectors = self.add_weight(
            name="eigenvectors", shape=(n_in, self.units), initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False)
        self.scale_in = self.add_weight(name="scale_in", shape=(n_in,), initializer=scales)
        self.scale_out = self.add_weight(name="scale_out", shape=(self.units,), initializer=scales)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, x):
        return self.activation(ops.matmul(x * self.scale_in, self.eigenvectors) * self.scale_out + self.bias)

    def multiply_adds(self):
        """Per sample (one dense matmul; the scales are elementwise)."""
        return int(self.eigenvectors.shape[0] * self.units)


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
