"""Importance criteria: one score per node of a node group (higher = more important).

A node's spectral knobs are `|λ_out|` in the layers that produce it and `|λ_in|` (its
rows) in the layers that read it; summed over a coupled group's producers and readers
(and, for a channel read after Flatten, over its positions). Spectral layers are
`SpectralDense` and the spectral convolutions, whose nodes are channels:

- `"in"`: `Σ |λ_in|` of the reading spectral layers. In `w = φᵀ ⊙ (λ_in − λ_out)`
  the node's whole outgoing row scales with `λ_in` on top of the part shared by all rows.
- `"out"`: `Σ |λ_out|` of the producing spectral layers (the criterion of Buffoni
  et al., 2022, whose layers train `λ_out` alone).
- `"sum"`: `"out" + "in"`, both knobs of the node (the best spectral score for networks
  trained in reciprocal space).
- `"product"`: `"out" · "in"`.
- `"l1"` (default): the L1 norm of the node's incoming weights (its kernel columns in the
  producers; a convolution's whole filter: L1-norm filter pruning, Li et al. 2017; a
  separable convolution's pointwise kernel), the classic magnitude criterion, for
  comparison; works with plain producers too.
- `"l2"`: the L2 norm of the node's incoming weights over all its producers (the group
  norm of DepGraph, Fang et al. 2023, on the producing side).
- `"bn"`: `Σ |γ|` of the BatchNormalization layers the node passes (network slimming,
  Liu et al. 2017); for groups that pass a BatchNormalization with a scale.
- `"taylor"`: the first-order Taylor estimate of the loss change when the node is
  removed, `|Σ ∂L/∂m|` over the node's masks `m` in every layer that holds them
  (Molchanov et al. 2017, 2019: for a producer's mask it equals `|Σ_j w_ji ∂L/∂w_ji|` over
  the node's incoming weights), with the gradients of the mean loss summed over the
  batches of `data`; it needs `data` (and the model's compiled loss, or `loss`).
- Attention heads (`InnerGroup`s of a `SpectralMultiHeadAttention`): every spectral score
  is `|λ_h|`, the head's eigenvalue; `"l1"` / `"l2"` the norm of the head's query, key and
  value columns and output rows; `"taylor"` through the head's mask.
- `"random"`: uniform random scores from NumPy's global generator (seeded by
  `keras.utils.set_random_seed`): the control every pruning comparison needs.

The default was chosen by experiment: on converged ResNets pruned to 2× and 4× fewer
multiply-adds (`benchmarks/converged_pruning.py`; `docs/converged_pruning.md`) the
eigenvalue route after a learned-importance phase trailed L1-norm filter pruning, as it
did on a ViT and tied it on MLPs; among the spectral scores `"sum"` ranks best on networks
trained in reciprocal space (`benchmarks/sparsity.py nodes`; `docs/sparsity.md`).
"""

import keras
import numpy as np
from keras import ops

from keras_spectral.graph.groups import InnerGroup, mask_variable, node_sums
from keras_spectral.graph.rules import rule_for
from keras_spectral.spectral_layers import is_spectral

SCORES = ("in", "out", "sum", "product", "l1", "l2", "bn", "taylor", "random")
WEIGHT_SCORES = ("l1", "l2", "taylor", "random")  # scores that need no spectral producer or reader
SPECTRAL_SCORES = ("in", "out", "sum", "product")


class NonFiniteScoresError(ValueError):
    """Raised when nodes would be ranked by NaN or infinite scores (a diverged run)."""


def _values(variable):
    return np.asarray(ops.convert_to_numpy(variable), dtype="float64")


def _needs(score):
    """(reads the producers' λ_out, reads the readers' λ_in) for a spectral score."""
    return score in ("out", "sum", "product"), score in ("in", "sum", "product")


def can_score(group, score):
    """Whether `score` can rank `group`: the layers it reads must be spectral."""
    if score in WEIGHT_SCORES:
        return True
    if isinstance(group, InnerGroup):  # attention heads: their eigenvalues, no BatchNormalization
        return score != "bn" and group.mask_holders is not None
    if score == "bn":
        return bool(_batch_norms(group))
    needs_out, needs_in = _needs(score)
    return (not needs_out or all(is_spectral(p) for p in group.producers)) and (
        not needs_in or (group.consumers and all(is_spectral(c) for c, _ in group.consumers))
    )


def scores(group, score, gradients=None):
    """The `score` of each node of `group`, a float64 array of `group.size`;
    `gradients`: for `"taylor"`, those of `mask_gradients`."""
    if score == "taylor":
        if gradients is None:
            raise ValueError("score='taylor' needs the masks' gradients: pass `data=` (batches of (x, y)).")
        return np.abs(sum(node_sums(gradients[(id(layer), side)], rows) for layer, side, rows in group.mask_targets()))
    if score == "random":
        return np.random.random(group.size)
    if isinstance(group, InnerGroup):
        return group.scores(score)
    if score == "l1":
        return sum(node_sums(_incoming(p, np.abs), rows) for p, rows in group.produced)
    if score == "l2":
        return np.sqrt(sum(node_sums(_incoming(p, np.square), rows) for p, rows in group.produced))
    if score == "bn":
        return sum(node_sums(np.abs(_values(bn.gamma)), rows) for bn, rows in _batch_norms(group))
    needs_out, needs_in = _needs(score)
    lam_out = sum(node_sums(np.abs(_values(p.eigenvalues_out)), rows) for p, rows in group.produced) if needs_out else None
    lam_in = (
        sum(node_sums(np.abs(_values(c.eigenvalues_in)), rows) for c, rows in group.consumers)
        if needs_in
        else None
    )
    if score == "in":
        return lam_in
    if score == "out":
        return lam_out
    return lam_out + lam_in if score == "sum" else lam_out * lam_in


def _incoming(layer, magnitude):
    """`Σ magnitude(w)` over each output feature's incoming weights (kernel column, or
    a convolution's filter)."""
    kernel = magnitude(_values(rule_for(layer).kernel(layer)))
    return kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)


def _batch_norms(group):
    """`(layer, rows)` of the BatchNormalization layers with a scale that the group passes."""
    return [(layer, rows) for layer, rows in group.passes
            if isinstance(layer, keras.layers.BatchNormalization) and getattr(layer, "gamma", None) is not None]


def mask_gradients(model, groups, data, loss=None):
    """`{(id(layer), side): gradient}` of the mean loss with respect to every node mask
    the `groups` remove (`side`: `"in"` or `"out"`), summed over the batches of `data`."""
    from keras_spectral.gradients import loss_gradients

    keys, variables = [], []
    for group in groups:
        for layer, side, _ in group.mask_targets():
            if (id(layer), side) not in keys:
                keys.append((id(layer), side))
                variables.append(mask_variable(layer, side))
    return dict(zip(keys, loss_gradients(model, variables, data, loss)))


def finite_scores(group, score, gradients=None):
    """`scores(group, score)`, checked: a NaN or infinite score of a node still present
    raises `NonFiniteScoresError` naming the group (removed nodes do not count)."""
    values = scores(group, score, gradients)
    bad = ~np.isfinite(values) & group.active()
    if bad.any():
        raise NonFiniteScoresError(
            f"Node group '{group.name}' has {int(bad.sum())} node(s) with non-finite "
            f"{'eigenvalues' if score in SPECTRAL_SCORES else 'weights or gradients'} (NaN or inf; read from {[layer.name for layer in group.layers]} with score="
            f"{score!r}), so its nodes cannot be ranked; nothing was pruned. The training has "
            "probably diverged: lower the learning rate, or stop such runs with "
            "keras.callbacks.TerminateOnNaN."
        )
    return values
