"""Population distances between two sets of image features: FD, KID, CMMD, precision and recall.

Numpy only (no torch): they are computed by the analysis from the features a run stored
(:meth:`ripbench.store.RunStore.load_features`), never by rerunning a network.

* :func:`frechet_distance` - Fréchet distance between Gaussians fitted to the two sets
  (FID's formula, Heusel et al. 2017; on DINOv2 features FD-DINOv2, Stein et al. 2023). Computed
  without a matrix square root of a possibly singular product: ``tr sqrt(S1 S2)`` is the nuclear
  norm of ``Xc Yc^T / (n - 1)`` (centred features) when there are fewer images than dimensions,
  else of ``S1^½ S2^½``. FD is **biased at small n** (it grows as n shrinks, Chong & Forsyth 2020);
  with fewer images than feature dimensions its covariances are singular: compare FD only at equal n.
* :func:`kid` - kernel inception distance (Bińkowski et al. 2018): the unbiased MMD² with the
  cubic polynomial kernel ``k(x, y) = (x·y / d + 1)^3``, averaged over random subsets (as clean-fid
  and torch-fidelity: 100 subsets of at most 1000). Unbiased at any n; for paired sets (an image's
  original and its iterate) the cross term leaves out each image's own pair (``paired=True``).
* :func:`cmmd` - CMMD (Jayasumana et al. 2024): MMD² with a Gaussian RBF kernel on unit-normalised
  CLIP embeddings, bandwidth ``sigma = 10``, scaled by 1000, the (biased) estimator of the
  released code (google-research/cmmd, ``distance.py``).
* :func:`precision_recall` - improved precision and recall (Kynkäänniemi et al. 2019): k-NN balls
  (k = 3) around each set's points.
* :func:`paired_bootstrap` - an estimate with a percentile bootstrap interval over images; the
  two sets are resampled with the same indices (image i's original goes with image i's iterate);
  :func:`population_bootstrap` gives the same numbers for FD, KID and CMMD from kernel matrices
  built once.

Example
-------
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(200, 8)); y = rng.normal(size=(200, 8)) + 1.0
>>> round(frechet_distance(x, x), 9), frechet_distance(x, y) > 7
(0.0, True)
>>> abs(kid(x, rng.normal(size=(200, 8)))) < 0.05, cmmd(x, x)
(True, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["CMMD_SCALE", "CMMD_SIGMA", "GRAM_BOOTSTRAP_MAX", "KID_SUBSETS", "KID_SUBSET_SIZE", "POPULATION_METRICS",
           "PR_K", "cmmd", "frechet_distance", "kid", "paired_bootstrap", "population_bootstrap", "precision_recall"]

#: CMMD's Gaussian kernel bandwidth and scale (google-research/cmmd distance.py: _SIGMA, _SCALE).
CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0
#: KID's subsets (clean-fid / torch-fidelity defaults).
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
#: Neighbours of the k-NN balls of precision and recall (Kynkäänniemi et al. 2019).
PR_K = 3

#: Each population metric: label, features it uses, direction (all: higher = further from the originals).
POPULATION_METRICS: dict[str, dict[str, str]] = {
    "fd_dinov2": {"label": "FD-DINOv2", "features": "dinov2", "direction": "lower is better"},
    "kid_dinov2": {"label": "KID (DINOv2)", "features": "dinov2", "direction": "lower is better"},
    "cmmd_clip": {"label": "CMMD (CLIP)", "features": "clip", "direction": "lower is better"},
    "precision_dinov2": {"label": "precision (DINOv2, k=3)", "features": "dinov2", "direction": "higher is better"},
    "recall_dinov2": {"label": "recall (DINOv2, k=3)", "features": "dinov2", "direction": "higher is better"},
}


def _as64(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"features must be an n x d array, got shape {a.shape}")
    return a


def _nuclear(m: np.ndarray) -> float:
    return float(np.linalg.svd(m, compute_uv=False).sum())


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(x: Any, y: Any) -> float:
    """Fréchet distance ``|mu_x - mu_y|² + tr(S_x + S_y - 2 (S_x S_y)^½)`` (covariances with ``n - 1``).

    Needs at least 2 features per set; returns NaN otherwise.
    """
    x, y = _as64(x), _as64(y)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return float("nan")
    xc, yc = x - x.mean(0), y - y.mean(0)
    diff = x.mean(0) - y.mean(0)
    trace = (np.square(xc).sum() / (n - 1)) + (np.square(yc).sum() / (m - 1))
    if min(n, m) <= x.shape[1]:  # eig(S_x S_y) = sv(Xc Yc^T)² / ((n-1)(m-1)): an n x m problem
        cross = _nuclear(xc @ yc.T) / np.sqrt((n - 1) * (m - 1))
    else:
        cross = _nuclear(_sqrt_psd(xc.T @ xc / (n - 1)) @ _sqrt_psd(yc.T @ yc / (m - 1)))
    return float(diff @ diff + trace - 2.0 * cross)


def _mmd_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray, paired: bool = False) -> float:
    m = kxx.shape[0]
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    if paired:  # each image's own pair (x_i, y_i) left out of the cross term: Gretton et al. 2012, eq. 3
        return float(within - 2.0 * (kxy.sum() - np.trace(kxy)) / (m * (m - 1)))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kid(x: Any, y: Any, *, paired: bool = False, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
        seed: int = 0) -> float:
    """Kernel inception distance: mean over ``subsets`` random subsets (same size for both sets, at most
    ``subset_size``) of the unbiased MMD² with ``k(a, b) = (a·b / d + 1)^3``. NaN with fewer than 2 per set.

    ``paired=False`` is clean-fid's estimator (independent sets: the cross term averages every pair).
    ``paired=True`` is for sets whose row ``i`` belong together (an image's original and its iterate): the
    cross term leaves out the ``m`` own pairs, the U-statistic of Gretton et al. (2012, eq. 3); without that,
    an iterate close to its own original pulls the estimate below zero. Paired subsets keep rows together.

    When both sets have at most ``subset_size`` features and the same number, every subset is the whole
    set and the value is the unbiased MMD² of the sets (no randomness).
    """
    x, y = _as64(x), _as64(y)
    if paired and len(x) != len(y):
        raise ValueError(f"paired sets must have the same number of rows, got {len(x)} and {len(y)}")
    d = x.shape[1]
    m = min(len(x), len(y), subset_size)
    if m < 2:
        return float("nan")
    kxx, kyy, kxy = ((a @ b.T / d + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    if m == len(x) == len(y):
        return _mmd_unbiased(kxx, kyy, kxy, paired)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        i = rng.choice(len(x), m, replace=False)
        j = i if paired else rng.choice(len(y), m, replace=False)
        values.append(_mmd_unbiased(kxx[np.ix_(i, i)], kyy[np.ix_(j, j)], kxy[np.ix_(i, j)], paired))
    return float(np.mean(values))


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def _rbf(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.exp(-sq / (2.0 * sigma * sigma))


def cmmd(x: Any, y: Any, *, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE, normalise: bool = True) -> float:
    """CMMD: ``scale * (mean k(x, x') + mean k(y, y') - 2 mean k(x, y))`` with ``k = exp(-|a - b|² / (2 sigma²))``
    over all pairs (diagonals included, as google-research/cmmd), on unit-normalised embeddings."""
    x, y = _as64(x), _as64(y)
    if len(x) < 1 or len(y) < 1:
        return float("nan")
    if normalise:
        x, y = _unit(x), _unit(y)
    return float(scale * (_rbf(x, x, sigma).mean() + _rbf(y, y, sigma).mean() - 2.0 * _rbf(x, y, sigma).mean()))


def _knn_radii(a: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(np.maximum((a * a).sum(1)[:, None] + (a * a).sum(1)[None, :] - 2.0 * a @ a.T, 0.0))
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def precision_recall(real: Any, fake: Any, *, k: int = PR_K) -> tuple[float, float]:
    """``(precision, recall)``: the share of ``fake`` inside some real point's k-NN ball, and of ``real`` inside
    some fake point's (Kynkäänniemi et al. 2019). NaN with ``k`` or fewer points in a set."""
    real, fake = _as64(real), _as64(fake)
    if len(real) <= k or len(fake) <= k:
        return float("nan"), float("nan")
    r_real, r_fake = _knn_radii(real, k), _knn_radii(fake, k)
    cross = np.sqrt(np.maximum((real * real).sum(1)[:, None] + (fake * fake).sum(1)[None, :]
                               - 2.0 * real @ fake.T, 0.0))  # real x fake
    precision = float((cross <= r_real[:, None]).any(axis=0).mean())
    recall = float((cross <= r_fake[None, :]).any(axis=1).mean())
    return precision, recall


def paired_bootstrap(statistic: Callable[[np.ndarray, np.ndarray], float], x: Any, y: Any, *, n_boot: int = 200,
                     ci: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(estimate, lo, hi)``: ``statistic(x, y)`` and its bootstrap interval, resampling images (row ``i`` of
    ``x`` and of ``y`` together): the percentile interval shifted by the bootstrap's estimate of bias (see
    :func:`_interval`). NaN interval with fewer than 3 images.
    """
    x, y = _as64(x), _as64(y)
    if len(x) != len(y):
        raise ValueError(f"paired sets must have the same number of rows, got {len(x)} and {len(y)}")
    estimate = float(statistic(x, y))
    n = len(x)
    if n < 3 or n_boot < 1:
        return estimate, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        values.append(statistic(x[idx], y[idx]))
    return (estimate, *_interval(estimate, np.asarray(values, dtype=float), ci))


def _interval(estimate: float, boot: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval of the resampled values, shifted by the bootstrap's estimate of bias.

    A resample repeats images, and every distance here sees repeated images as a smaller, tighter set
    (FD and CMMD grow, KID's unbiasedness is lost): the resampled values sit above the estimate, often
    by more than their spread. The shift by ``mean(resampled) - estimate`` keeps the spread and removes
    that offset.
    """
    if not np.isfinite(boot).any() or not np.isfinite(estimate):
        return float("nan"), float("nan")
    alpha = (1.0 - ci) / 2.0
    bias = float(np.nanmean(boot)) - estimate
    return float(np.nanquantile(boot, alpha)) - bias, float(np.nanquantile(boot, 1.0 - alpha)) - bias


def _indexed(m: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``m[idx_b][:, idx_b]`` for each row ``idx_b`` of ``idx`` (``B x n x n``)."""
    return m[idx[:, :, None], idx[:, None, :]]


def _fd_from_grams(gxx: np.ndarray, gyy: np.ndarray, gxy: np.ndarray) -> np.ndarray:
    """FD of each resample from its ``B x n x n`` Gram matrices (``tr sqrt(S_x S_y)`` = nuclear norm of the
    doubly centred cross Gram matrix over ``n - 1``)."""
    n = gxx.shape[-1]

    def centred(g: np.ndarray) -> np.ndarray:
        return g - g.mean(1, keepdims=True) - g.mean(2, keepdims=True) + g.mean((1, 2), keepdims=True)

    mean_sq = gxx.mean((1, 2)) + gyy.mean((1, 2)) - 2.0 * gxy.mean((1, 2))
    trace = (np.trace(centred(gxx), axis1=1, axis2=2) + np.trace(centred(gyy), axis1=1, axis2=2)) / (n - 1)
    cross = np.linalg.svd(centred(gxy), compute_uv=False).sum(-1) / (n - 1)
    return mean_sq + trace - 2.0 * cross


def _mmd_resampled(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray, paired: bool, unbiased: bool) -> np.ndarray:
    """MMD² of each resample from its ``B x n x n`` kernel matrices."""
    n = kxx.shape[-1]
    if not unbiased:
        return kxx.mean((1, 2)) + kyy.mean((1, 2)) - 2.0 * kxy.mean((1, 2))
    off = n * (n - 1)
    within = (kxx.sum((1, 2)) - np.trace(kxx, axis1=1, axis2=2) + kyy.sum((1, 2))
              - np.trace(kyy, axis1=1, axis2=2)) / off
    if paired:
        return within - 2.0 * (kxy.sum((1, 2)) - np.trace(kxy, axis1=1, axis2=2)) / off
    return within - 2.0 * kxy.sum((1, 2)) / (n * n)


#: Largest set for the Gram-matrix bootstrap (beyond it, :func:`paired_bootstrap` recomputes per resample).
GRAM_BOOTSTRAP_MAX = 1500


def population_bootstrap(metric: str, x: Any, y: Any, *, n_boot: int = 200, ci: float = 0.95,
                         seed: int = 0) -> tuple[float, float, float]:
    """:func:`paired_bootstrap` of ``"fd"``, ``"kid"`` (paired) or ``"cmmd"``, the same resamples, computed from
    kernel / Gram matrices built once (each resample only indexes them): the same numbers, much faster.

    KID's subsets apply only above :data:`KID_SUBSET_SIZE` images; there, and above
    :data:`GRAM_BOOTSTRAP_MAX`, this falls back to :func:`paired_bootstrap`.

    FD and CMMD (a biased MMD², a squared norm) are never negative, so their interval is cut at 0 (the
    bias shift of :func:`_interval` can move it below); the unbiased KID can be negative and is not cut.
    """
    x, y = _as64(x), _as64(y)
    generic = {"fd": frechet_distance, "kid": lambda a, b: kid(a, b, paired=True), "cmmd": cmmd}
    if metric not in generic:
        raise ValueError(f"unknown population metric {metric!r}; allowed: {', '.join(generic)}")
    n = len(x)
    if len(y) != n:
        raise ValueError(f"paired sets must have the same number of rows, got {n} and {len(y)}")
    if n > GRAM_BOOTSTRAP_MAX or (metric == "kid" and n > KID_SUBSET_SIZE):
        return _floored(metric, paired_bootstrap(generic[metric], x, y, n_boot=n_boot, ci=ci, seed=seed))
    estimate = float(generic[metric](x, y))
    if n < 3 or n_boot < 1:
        return estimate, float("nan"), float("nan")
    if metric == "fd":
        mats = (x @ x.T, y @ y.T, x @ y.T)
    elif metric == "kid":
        d = x.shape[1]
        mats = tuple((a @ b.T / d + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    else:
        xu, yu = _unit(x), _unit(y)
        mats = (_rbf(xu, xu, CMMD_SIGMA), _rbf(yu, yu, CMMD_SIGMA), _rbf(xu, yu, CMMD_SIGMA))
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, n, n) for _ in range(n_boot)])  # the draws of paired_bootstrap
    chunk = max(1, 4_000_000 // (n * n))
    values = []
    for start in range(0, n_boot, chunk):
        pxx, pyy, pxy = (_indexed(m, idx[start : start + chunk]) for m in mats)
        if metric == "fd":
            values.append(_fd_from_grams(pxx, pyy, pxy))
        elif metric == "kid":
            values.append(_mmd_resampled(pxx, pyy, pxy, paired=True, unbiased=True))
        else:
            values.append(CMMD_SCALE * _mmd_resampled(pxx, pyy, pxy, paired=False, unbiased=False))
    return _floored(metric, (estimate, *_interval(estimate, np.concatenate(values), ci)))


def _floored(metric: str, result: tuple[float, float, float]) -> tuple[float, float, float]:
    """``(estimate, lo, hi)`` with the interval cut at 0 for the metrics that cannot be negative (FD, CMMD)."""
    estimate, lo, hi = result
    if metric in ("fd", "cmmd"):
        lo, hi = (max(v, 0.0) if np.isfinite(v) else v for v in (lo, hi))
    return estimate, lo, hi
