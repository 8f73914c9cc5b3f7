"""A phase in which a spectral model's eigenvalues learn which nodes matter, before nodes
are removed (`learn_importance`).

Right after `spectralize` every eigenvalue is the same (`λ_in = 1`, `λ_out = 0`, a head's
`λ_h = 1`), so an eigenvalue score cannot rank nodes yet. This phase trains the eigenvalues
alone (the eigenvectors φ, biases and every other weight held) with an L1 penalty on the
eigenvalues that read nodes: each layer's `λ_in` and each attention head's `λ_h`. It is the
mechanism of the input-relevance paper (Chicchi et al., Commun. Phys. 2026, arXiv
2406.01183), which drives the eigenvalues of unneeded inputs to zero, applied to hidden
nodes: a node whose readers can do without it sees their `λ_in` shrink, and `score="in"`
then ranks it low.

A BatchNormalization right after a producer divides each channel by its spread. While the
producer's `λ_in` are equal (as after conversion), its `λ_out_j` only scales channel j's
weights (by `λ_in − λ_out_j`), which that normalization cancels: `λ_out` then does not rank
channels. Rank by the readers' eigenvalues after this phase (`score="in"`), which a
normalization before them does not cancel.
"""

import keras

from keras_spectral.validation import check_non_negative, check_positive_int

EIGENVALUES = ("eigenvalues_in", "eigenvalues_out", "head_eigenvalues")
READERS = ("eigenvalues_in", "head_eigenvalues")  # the eigenvalues the penalty drives down


def _name(variable):
    return variable.path.split("/")[-1]


def _optimizer(optimizer):
    if optimizer is None:
        return None
    try:
        return keras.optimizers.get(optimizer)
    except ValueError as error:
        raise ValueError(
            f"Received an invalid value for `optimizer`, expected a Keras optimizer or its name. "
            f"Received: optimizer={optimizer!r}"
        ) from error


def learn_importance(model, x=None, y=None, *, penalty=1e-3, epochs=2, optimizer=None, **fit_kwargs):
    """Train only the eigenvalues of the compiled spectral `model` for `epochs`, with an L1
    penalty `penalty · Σ |λ|` on the readers' eigenvalues (`λ_in`, heads' `λ_h`), so that
    eigenvalue scores rank nodes (see the module's docstring). Then remove nodes with
    `prune_nodes(..., score="in")` or `EigenvaluePruning(..., score="in")`.

    The model is trained in place, like `fit`. Afterwards every weight is trainable again
    as before and the model is compiled as before, with a fresh optimizer.

    Args:
        model: A compiled model with spectral layers (`spectralize`).
        x, y: Training data, as for `model.fit`.
        penalty: The L1 weight (a non-negative float; 0 trains the eigenvalues without it).
            The default, 1e-3, was the best of 1e-4, 1e-3 and 1e-2 on validation data
            for a ResNet-8 on CIFAR-10 (docs/converged_pruning.md); too large, and the
            eigenvalues of needed nodes shrink too: check it on your validation data.
        epochs: The phase's length (a positive integer; the study used 2).
        optimizer: The phase's optimizer (an instance or a name, as for `compile`);
            default: a fresh one configured like the model's. Eigenvalues are few and
            act as scales, so a larger learning rate than the model's often suits the
            phase (the converged-ResNet study used Adam 1e-2).
        **fit_kwargs: Passed to `model.fit` (`batch_size`, `validation_data`,
            `callbacks`, `verbose`, ...).

    Returns:
        The `History` of the phase.

    Example:

    >>> model = ks.spectralize(trained)  # doctest: +SKIP
    >>> model.compile("adam", "sparse_categorical_crossentropy")  # doctest: +SKIP
    >>> ks.learn_importance(model, x, y, penalty=1e-3, epochs=2,
    ...                     optimizer=keras.optimizers.Adam(1e-2))  # doctest: +SKIP
    >>> ks.prune_nodes(model, fraction=0.5, score="in")  # doctest: +SKIP
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model. Received: model={model!r}")
    check_non_negative("penalty", penalty)
    check_positive_int("epochs", epochs)
    if not getattr(model, "compiled", False):
        raise ValueError(f"Model '{model.name}' is not compiled: compile it (a loss and an optimizer) first.")
    trainable = model.trainable_weights
    eigenvalues = [v for v in trainable if _name(v) in EIGENVALUES]
    if not eigenvalues:
        raise ValueError(
            f"Model '{model.name}' has no trainable eigenvalues: convert it first with keras_spectral.spectralize "
            "(and keep its eigenvalues trainable)."
        )
    held = [v for v in trainable if _name(v) not in EIGENVALUES]
    phase_optimizer = _optimizer(optimizer)
    penalized = [v for v in eigenvalues if _name(v) in READERS]
    regularizers = [v.regularizer for v in penalized]
    config = model.get_compile_config()
    phase_config = dict(config)
    if phase_optimizer is not None:
        phase_config["optimizer"] = keras.optimizers.serialize(phase_optimizer)
    try:
        for v in held:
            v.trainable = False
        for v in penalized:
            v.regularizer = keras.regularizers.L1(float(penalty))
        model.compile_from_config(phase_config)
        return model.fit(x, y, epochs=epochs, **fit_kwargs)
    finally:
        for v in held:
            v.trainable = True
        for v, regularizer in zip(penalized, regularizers):
            v.regularizer = regularizer
        model.compile_from_config(config)
