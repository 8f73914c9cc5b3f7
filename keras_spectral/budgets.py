"""Pruning to a budget: how many nodes each group loses, and which.

A budget is a fraction removed of the nodes, of the multiply-adds or of the parameters
(`BUDGETS`). Within a group the lowest-scoring nodes go first; how the groups share the
budget is the scope:

- `"layer"`: every group loses the same fraction of its nodes (for a cost budget, the
  smallest such fraction that reaches it);
- `"global"`: the nodes of all groups are ranked together on scores normalized within
  each group (`NORMALIZERS`, as Torch-Pruning's group importance normalizer: `"mean"`
  divides by the group's mean score, so a group of large weights does not protect all of
  its nodes), and removed in that order until the budget is reached.

Limits apply in both: `max_fraction` of a group at most (and never its last node), and
with `round_to` the nodes a group keeps are a multiple of it (or all of them). Costs come
from `keras_spectral.graph.PrunedCost`, so they are those of the compacted model.
"""

import numpy as np

from keras_spectral.validation import check_choice

BUDGETS = ("nodes", "multiply_adds", "parameters")
NORMALIZERS = ("mean", "max", "sum", "standardization", "lamp", None)


class BudgetError(ValueError):
    """Raised when a budget cannot be reached within the limits given."""


def normalized(scores, alive, normalizer):
    """`scores` of one group divided as `normalizer` says, over its nodes still present
    (removed nodes keep -inf): `"mean"`, `"max"`, `"sum"`; `"standardization"`:
    `(s − min) / (max − min)`; `"lamp"`: each score over the sum of the scores not smaller
    (Lee et al. 2021, as in Torch-Pruning); None: as they are."""
    check_choice("normalizer", normalizer, NORMALIZERS)
    out = np.array(scores, dtype="float64")
    present = out[alive]
    if normalizer is None or not len(present):
        return out
    tiny = 1e-12
    if normalizer == "mean":
        present = present / max(present.mean(), tiny)
    elif normalizer == "max":
        present = present / max(present.max(), tiny)
    elif normalizer == "sum":
        present = present / max(present.sum(), tiny)
    elif normalizer == "standardization":
        present = (present - present.min()) / max(present.max() - present.min(), tiny)
    else:  # lamp
        order = np.argsort(-present, kind="stable")
        ranked = present[order] / np.maximum(np.cumsum(present[order]), tiny)
        present = np.empty_like(ranked)
        present[order] = ranked
    out[alive] = present
    return out


class Planner:
    """Which nodes of each group to remove for a budget.

    Args:
        groups: The node groups to prune.
        alive: Per group, a boolean array of the nodes still present.
        scores: Per group, the nodes' scores (removed nodes at -inf).
        max_fraction: At most this fraction of each group removed (its last node never).
        round_to: Nodes kept per group a multiple of this (or the whole group), or None.
        cost: A `PrunedCost` over `groups` followed by `fixed` groups, for cost budgets.
        fixed: Removed-node arrays of further groups the cost counts but the plan keeps.
    """

    def __init__(self, groups, alive, scores, max_fraction=1.0, round_to=None, cost=None, fixed=()):
        self.groups, self.alive, self.scores = groups, alive, scores
        self.sizes = np.array([g.size for g in groups])
        self.orders = [np.argsort(s, kind="stable") for s in scores]  # removed nodes first (-inf)
        self.removed = np.array([int((~a).sum()) for a in alive])
        limit = np.minimum(self.sizes - 1, np.floor(max_fraction * self.sizes + 1e-9).astype(int))
        self.limits = np.maximum(self.removed, limit)
        self.round_to = round_to
        self.cost, self.fixed = cost, list(fixed)
        self._full = cost() if cost is not None else None

    def capped(self, counts):
        """`counts` of nodes to remove per group, within the limits and rounded."""
        counts = np.clip(np.asarray(counts, dtype=int), self.removed, self.limits)
        if self.round_to:
            kept = self.sizes - counts
            kept = np.minimum(self.sizes, -(-kept // self.round_to) * self.round_to)
            counts = np.maximum(self.removed, self.sizes - kept)
        return counts

    def removal(self, counts):
        """Per group, the boolean array of the `counts` lowest-scoring nodes."""
        out = []
        for order, size, n in zip(self.orders, self.sizes, counts):
            flags = np.zeros(size, dtype=bool)
            flags[order[:n]] = True
            out.append(flags)
        return out

    def removed_fraction(self, counts, budget):
        """The fraction of `budget` that removing `counts` nodes per group takes away."""
        if budget == "nodes":
            return float(np.sum(counts) / max(np.sum(self.sizes), 1))
        after = self.cost(self.removal(counts) + self.fixed)
        key = 0 if budget == "multiply_adds" else 1
        return 1.0 - after[key] / max(self._full[key], 1)

    def per_group(self, fractions):
        """Counts for a fraction per group (layer scope with a node budget)."""
        return self.capped([int(np.floor(f * n + 1e-9)) for f, n in zip(fractions, self.sizes)])

    def layer(self, fraction, budget):
        """Counts for the same fraction in every group that reaches `fraction` of `budget`."""
        if budget == "nodes":
            return self.per_group([fraction] * len(self.groups))
        levels = np.unique(np.concatenate([np.arange(n + 1) / n for n in self.sizes]))
        return self._smallest(lambda i: self.per_group([levels[i]] * len(self.groups)), len(levels), fraction, budget)

    def global_(self, fraction, budget, normalizer):
        """Counts when nodes are removed in the order of their normalized scores."""
        ranked = [normalized(s, a, normalizer) for s, a in zip(self.scores, self.alive)]
        sequence = sorted((value, gi, i) for gi, (r, a) in enumerate(zip(ranked, self.alive))
                          for i, value in enumerate(r) if a[i])
        taken = self.removed.copy()
        accepted = []  # group of each accepted node, in order
        for _, gi, _ in sequence:
            if taken[gi] < self.limits[gi]:
                taken[gi] += 1
                accepted.append(gi)
        accepted = np.asarray(accepted, dtype=int)
        # The per-group order must follow the normalized ranking too (ties by index).
        self.orders = [np.argsort(r, kind="stable") for r in ranked]

        def counts(k):
            return self.capped(self.removed + np.bincount(accepted[:k], minlength=len(self.groups)))

        if budget == "nodes":
            target = np.floor(fraction * np.sum(self.sizes) + 1e-9) / max(np.sum(self.sizes), 1)
            return self._smallest(counts, len(accepted) + 1, target, budget)
        return self._smallest(counts, len(accepted) + 1, fraction, budget)

    def _smallest(self, counts_at, n, target, budget):
        """`counts_at(i)` for the smallest `i < n` whose removal reaches `target` (removed
        fractions grow with `i`); raises `BudgetError` if even `i = n - 1` does not."""
        most = counts_at(n - 1)
        reachable = self.removed_fraction(most, budget)
        if reachable < target - 1e-9:
            raise BudgetError(
                f"Removing {target:.3g} of the {budget.replace('_', '-')} cannot be reached: at most "
                f"{reachable:.3g} can be removed from the {len(self.groups)} node group(s) pruned within their "
                "limits (max_fraction, round_to, one node kept per group, ignored_layers and the groups the "
                "score can rank); nothing was changed."
            )
        low, high = 0, n - 1
        while low < high:
            middle = (low + high) // 2
            if self.removed_fraction(counts_at(middle), budget) >= target - 1e-9:
                high = middle
            else:
                low = middle + 1
        return counts_at(low)

    def plan(self, counts):
        """Per group, the indices of the nodes still present that `counts` removes."""
        return [np.flatnonzero(flags & a) for flags, a in zip(self.removal(counts), self.alive)]
