"""Small statistics shared by the reproductions: Wilson intervals and bootstrap intervals of AUROC.

Every rate a reproduction reports carries its ``n`` and a 95% interval from here.

Example
-------
>>> [round(v, 3) for v in wilson_interval(48, 50)]
[0.865, 0.989]
>>> lo, hi = auroc_interval([0.1, 0.2, 0.3, 0.8, 0.9], [0, 0, 0, 1, 1], n_boot=200, seed=0)
>>> lo <= 1.0 <= hi
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["auroc_interval", "wilson_interval"]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of the proportion ``successes / n`` (``(nan, nan)`` when ``n == 0``).

    Example:
        >>> wilson_interval(0, 0)
        (nan, nan)
    """
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _auroc_many(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC (ties count half) of one score vector under each row of bootstrap ``weights`` (B x N)."""
    order = np.argsort(scores, kind="stable")
    s, y, w = scores[order], labels[order], weights[:, order]
    # ranks with ties: group equal scores
    _, start, counts = np.unique(s, return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(start)), counts)
    wp, wn = w * y, w * ~y
    neg_per_group = np.zeros((w.shape[0], len(start)))
    pos_per_group = np.zeros((w.shape[0], len(start)))
    np.add.at(neg_per_group.T, group, wn.T)
    np.add.at(pos_per_group.T, group, wp.T)
    neg_below = np.cumsum(neg_per_group, axis=1) - neg_per_group
    pairs = (pos_per_group * (neg_below + 0.5 * neg_per_group)).sum(axis=1)
    total = wp.sum(axis=1) * wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pairs / total


def auroc_interval(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[bool] | np.ndarray,
    *,
    groups: Sequence[object] | np.ndarray | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC of ``scores`` for the positives in ``labels``.

    Without ``groups`` items are resampled with replacement, positives and negatives separately
    (every replicate has both). With ``groups`` (e.g. trajectory ids: items of one group are
    correlated) whole groups are resampled; replicates that lack a class are dropped.
    ``(nan, nan)`` when either class is empty.

    Example:
        >>> lo, hi = auroc_interval([0.1, 0.6, 0.3, 0.8, 0.2, 0.9], [0, 1, 0, 1, 0, 1],
        ...                         groups=["a", "a", "b", "b", "c", "c"], n_boot=100)
        >>> 0.0 <= lo <= hi <= 1.0
        True
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    if y.all() or not y.any():
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    weights = np.zeros((n_boot, y.size))
    if groups is None:
        for cls in (True, False):
            idx = np.nonzero(y == cls)[0]
            draws = rng.integers(0, idx.size, size=(n_boot, idx.size))
            np.add.at(weights, (np.arange(n_boot)[:, None], idx[draws]), 1.0)
    else:
        _, member = np.unique(np.asarray(groups), return_inverse=True)
        n_groups = int(member.max()) + 1
        drawn = np.zeros((n_boot, n_groups))
        np.add.at(drawn, (np.arange(n_boot)[:, None], rng.integers(0, n_groups, size=(n_boot, n_groups))), 1.0)
        weights = drawn[:, member]
    values = _auroc_many(s, y, weights)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    alpha = (1 - ci) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return (float(lo), float(hi))
