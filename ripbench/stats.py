"""Small statistical building blocks on top of scipy, shared by the analysis and the report.

* :func:`resample_ci` - percentile bootstrap interval of any statistic of a set of units
  (trajectories, pairs), via :func:`scipy.stats.bootstrap`; the units are resampled as a whole,
  so a statistic of whole curves (a mean curve, a fitted rate) keeps each curve together;
* :func:`proportion_ci` - Wilson score interval of a share (:func:`scipy.stats.binomtest`);
* :func:`holm` - Holm's step-down adjustment of p-values for multiple comparisons;

The number formatters that used to live here (:func:`fmt`, :func:`fmt_interval`, :func:`decimals_for`,
:func:`pct`, :func:`fmt_p`) are in :mod:`ripbench.formatting` and importable here too.

Every interval here is two-sided at ``ci`` (default 95%) and reproducible for a given ``seed``.

Example
-------
>>> values = np.array([0.1, 0.2, 0.3, 0.4])
>>> est, lo, hi = resample_ci(lambda idx: values[idx].mean(axis=-1), len(values), n_boot=200, seed=0)
>>> round(float(est), 2), bool(lo <= est <= hi)
(0.25, True)
>>> [round(x, 3) for x in proportion_ci(3, 10)]
[0.3, 0.108, 0.603]
>>> holm([0.01, 0.04, 0.03]).round(2).tolist()
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .formatting import decimals_for, fmt, fmt_interval, fmt_p, pct  # their home is ripbench.formatting

__all__ = ["decimals_for", "fmt", "fmt_interval", "fmt_p", "holm", "nanmean_rows", "pct", "proportion_ci",
           "resample_ci"]


def _rng_keyword() -> str:
    """scipy >= 1.15 calls the generator argument ``rng``; older versions ``random_state``."""
    from scipy.stats import bootstrap

    return "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"


def resample_ci(
    statistic: Callable[[np.ndarray], Any],
    n: int,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate and percentile bootstrap interval of ``statistic`` over ``n`` units.

    Args:
        statistic: ``statistic(idx)`` gets an integer array ``R x m`` (``R`` resamples, each ``m``
            unit indices into ``0..n-1``) and returns an array ``R`` or ``R x ...`` (one value, or
            one vector, per resample). NaN results (a resample without any usable unit) are
            left out of the interval.
        n: number of units; ``n < 2`` gives NaN interval ends.
        n_boot: resamples (:func:`scipy.stats.bootstrap`, ``method="percentile"``).
        ci: confidence level.
        seed: seed of the resampling generator.

    Returns:
        ``(estimate, lo, hi)``, each of the statistic's shape (a 0-d array for a scalar statistic).

    >>> y = np.array([[0.0, 1.0], [0.0, 3.0]])  # two curves of two points
    >>> est, lo, hi = resample_ci(lambda idx: y[idx].mean(axis=-2), 2, n_boot=100)
    >>> est.tolist(), lo.tolist(), hi.tolist()
    ([0.0, 2.0], [0.0, 1.0], [0.0, 3.0])
    """
    from scipy.stats import bootstrap

    estimate = np.asarray(statistic(np.arange(n)[None, :]), dtype=float)[0]
    nan = np.full_like(estimate, np.nan)
    if n < 2 or n_boot < 1:
        return estimate, nan, nan.copy()

    def vectorised(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.asarray(idx, dtype=int)
        batch = idx.shape[:-1]
        out = np.asarray(statistic(idx.reshape(-1, idx.shape[-1])), dtype=float)
        out = out.reshape(*batch, *out.shape[1:])
        # scipy wants the statistic's own dimensions first and the resamples last
        return np.moveaxis(out, list(range(len(batch))), list(range(out.ndim - len(batch), out.ndim)))

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples: handled below
        result = bootstrap((np.arange(n),), vectorised, n_resamples=n_boot, vectorized=True, paired=False,
                           confidence_level=ci, method="percentile", **{_rng_keyword(): np.random.default_rng(seed)})
        boot = np.asarray(result.bootstrap_distribution, dtype=float)
        alpha = (1.0 - ci) / 2.0
        lo = np.nanquantile(boot, alpha, axis=-1)
        hi = np.nanquantile(boot, 1.0 - alpha, axis=-1)
    return estimate, np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)


def proportion_ci(k: int, n: int, ci: float = 0.95) -> tuple[float, float, float]:
    """Share ``k / n`` with its Wilson score interval; ``(nan, nan, nan)`` when ``n == 0``.

    >>> [round(x, 3) for x in proportion_ci(0, 8)]
    [0.0, 0.0, 0.324]
    """
    from scipy.stats import binomtest

    if n <= 0:
        return math.nan, math.nan, math.nan
    interval = binomtest(int(k), int(n)).proportion_ci(confidence_level=ci, method="wilson")
    return k / n, float(interval.low), float(interval.high)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (family-wise error control); NaN entries stay NaN and are not counted.

    The i-th smallest of m p-values is multiplied by ``m - i``, then made non-decreasing and capped at 1
    (scipy has no Holm step-down; :func:`scipy.stats.false_discovery_control` controls the FDR instead).

    >>> holm([0.04, np.nan, 0.001]).tolist()
    [0.04, nan, 0.002]
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="mergesort")]
    scaled = p[order] * (ok.size - np.arange(ok.size))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def nanmean_rows(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``statistic(idx)`` for :func:`resample_ci`: the NaN-aware mean of the chosen rows of ``values``."""
    def statistic(idx: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(values[idx], axis=1)
    return statistic
