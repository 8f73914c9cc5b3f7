"""Gradients of a model's loss with respect to some of its variables (the node masks,
for the first-order Taylor criterion), on the TensorFlow, JAX and PyTorch backends.

The model runs in a `keras.StatelessScope` that maps the chosen variables to tensors the
backend differentiates, so nothing in the model changes (no variable, no metric).
"""

import keras
import numpy as np
from keras import ops

BATCH_SIZE = 128


def batches(data, batch_size=BATCH_SIZE):
    """`(x, y)` batches of `data`: a tuple `(x, y)` of arrays (split into batches of
    `batch_size`), or an iterable of `(x, y)` batches (a `tf.data.Dataset`, a generator,
    a `keras.utils.PyDataset`, a list)."""
    if isinstance(data, tuple) and len(data) == 2 and hasattr(data[0], "shape") and hasattr(data[1], "shape"):
        x, y = data
        if len(x) != len(y) or not len(x):
            raise ValueError(
                "Received an invalid value for `data`, expected `(x, y)` with as many labels as inputs "
                f"(at least one). Received: x of shape {tuple(x.shape)}, y of shape {tuple(y.shape)}"
            )
        for start in range(0, len(x), batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]
        return
    try:
        iterator = iter(data)
    except TypeError:
        raise TypeError(
            "Received an invalid value for `data`, expected a tuple `(x, y)` of arrays or an iterable of "
            f"`(x, y)` batches. Received: data={data!r}"
        ) from None
    for batch in iterator:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(
                "Received an invalid batch in `data`, expected `(x, y)` or `(x, y, sample_weight)`. "
                f"Received: {type(batch).__name__}"
            )
        yield batch[0], batch[1]


def loss_function(model, loss):
    """`f(y, y_pred)`: the mean loss, from `loss` (a Keras loss, its name, or a function)
    or else the loss the model was compiled with."""
    if loss is None:
        loss = getattr(model, "loss", None) if getattr(model, "compiled", False) else None
        if loss is None:
            raise ValueError(
                f"Model '{model.name}' is not compiled with a loss, so its gradients cannot be taken: pass "
                "`loss=` (e.g. loss='sparse_categorical_crossentropy') or compile the model first."
            )
    if isinstance(loss, (dict, list, tuple)):
        raise ValueError(
            "Received an invalid value for `loss`, expected one loss for a single-output model (a Keras "
            f"loss, its name, or a function). Received: loss={loss!r}"
        )
    function = keras.losses.get(loss)
    return lambda y, y_pred: ops.mean(function(y, y_pred))


def loss_gradients(model, variables, data, loss=None):
    """The gradients of the mean loss with respect to `variables` (Keras variables of
    `model`), summed over the batches of `data` (see `batches`), as float64 arrays."""
    function = loss_function(model, loss)
    total = [np.zeros(tuple(v.shape)) for v in variables]
    seen = 0
    for x, y in batches(data):
        grads = _batch_gradients(model, variables, x, y, function)
        total = [t + np.asarray(g, dtype="float64") for t, g in zip(total, grads)]
        seen += 1
    if not seen:
        raise ValueError("Received an invalid value for `data`: it holds no batch.")
    return total


def _batch_gradients(model, variables, x, y, function):
    backend = keras.backend.backend()
    start = [ops.convert_to_numpy(v) for v in variables]

    def loss_at(values):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return function(y, model(x, training=False))

    if backend == "tensorflow":
        import tensorflow as tf

        values = [tf.convert_to_tensor(v) for v in start]
        with tf.GradientTape() as tape:
            tape.watch(values)
            value = loss_at(values)
        return [g.numpy() if g is not None else np.zeros(v.shape) for g, v in zip(tape.gradient(value, values), start)]
    if backend == "jax":
        import jax

        return [np.asarray(g) for g in jax.grad(loss_at)([jax.numpy.asarray(v) for v in start])]
    if backend == "torch":
        import torch

        values = [ops.convert_to_tensor(v).detach().clone().requires_grad_(True) for v in start]
        grads = torch.autograd.grad(loss_at(values), values, allow_unused=True)
        return [g.detach().cpu().numpy() if g is not None else np.zeros(v.shape) for g, v in zip(grads, start)]
    raise NotImplementedError(f"Gradients are not available on the {backend} backend.")
