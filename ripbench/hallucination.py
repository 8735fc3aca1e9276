"""Hallucination detection by the variance of the predicted clean sample (x0) trajectory.

Aithal et al., "Understanding Hallucinations in Diffusion Models through Mode Interpolation"
(NeurIPS 2024) observe that a diffusion model "knows" when it leaves the support of its
training data: its prediction of the clean sample, ``x0_hat``, keeps changing over the final
reverse steps. The score is the population variance of ``x0_hat`` over the last ``K`` steps,
per coordinate, averaged over coordinates (the paper's toy code: ``K = 10`` of ``T = 1000``).
Samples with a high score are flagged; the threshold is calibrated to keep a target share of
known in-support samples.

This module knows nothing about models: it works on any ``K x B x ...`` tensor (CPU or GPU)
and on plain score arrays.

Example
-------
>>> import torch
>>> x0 = torch.zeros(10, 3, 2)            # K=10 steps, B=3 samples, 2 coordinates
>>> x0[:, 1] = torch.arange(10.0)[:, None]  # sample 1 keeps moving
>>> trajectory_variance(x0).tolist()
[0.0, 8.25, 0.0]
>>> t = calibrate_threshold([0.1, 0.2, 0.3, 0.4], keep=0.75)
>>> t
0.3
>>> detection_report([0.1, 0.2, 0.9], [False, False, True], t)["detection_rate"]
1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ripbench.errors import ConfigError, InputError

__all__ = [
    "DEFAULT_WINDOW",
    "MIN_WINDOW_STEPS",
    "auroc",
    "calibrate_threshold",
    "detection_report",
    "resolve_window",
    "roc_curve",
    "trajectory_variance",
]

#: Default window: the paper's "last 10 of 1000 steps" expressed as a share of the sampler's steps.
DEFAULT_WINDOW: float = 0.01
#: A fractional window never covers fewer steps than this (a 50-step sampler gets 3 steps, not 0.5).
MIN_WINDOW_STEPS: int = 3

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]


def resolve_window(window: int | float = DEFAULT_WINDOW, num_steps: int = 1000) -> int:
    """Turn a window specification into a number of final denoising steps.

    Args:
        window: an ``int`` means exactly that many final steps (at least 2: the variance of one
            value is always 0); a ``float`` in ``(0, 1]`` means that share of ``num_steps``,
            rounded, but never fewer than :data:`MIN_WINDOW_STEPS` (nor more than ``num_steps``).
        num_steps: number of denoising steps the sampler runs.

    Returns:
        The number of steps, ``2 <= w <= num_steps``.

    Raises:
        ConfigError: if the window or the number of steps is out of range.

    Example:
        >>> resolve_window(0.01, 1000), resolve_window(0.01, 50), resolve_window(5, 50)
        (10, 3, 5)
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 2:
        raise ConfigError(
            f"The sampler must run at least 2 denoising steps to score a trajectory, got {num_steps!r}."
        )
    num_steps = int(num_steps)
    if isinstance(window, bool):
        raise ConfigError(f"The hallucination window must be an int or a float, got {window!r}.")
    if isinstance(window, (int, np.integer)):
        if not 2 <= window <= num_steps:
            raise ConfigError(
                f"The hallucination window of {window} steps must lie between 2 and the "
                f"{num_steps} sampler steps."
            )
        return int(window)
    if isinstance(window, (float, np.floating)):
        if not (math.isfinite(window) and 0.0 < window <= 1.0):
            raise ConfigError(f"A fractional hallucination window must lie in (0, 1], got {window!r}.")
        steps = max(MIN_WINDOW_STEPS, int(round(window * num_steps)))
        return min(steps, num_steps)
    raise ConfigError(f"The hallucination window must be an int or a float, got {type(window).__name__}.")


def _region_mask(
    region: torch.Tensor, batch: int, spatial: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """Binarise ``region`` at 0.5 and bring it to ``B x 1 x h x w`` at the trajectory's resolution.

    Resizing rule: area interpolation, then every cell with a non-zero share of the region
    counts (a latent cell that the region touches at all belongs to it).
    """
    if region.ndim == 3:
        region = region.unsqueeze(1)
    if region.ndim != 4 or region.shape[1] != 1:
        raise InputError(f"The region must be B x 1 x h x w or B x h x w, got shape {tuple(region.shape)}.")
    if region.shape[0] not in (1, batch):
        raise InputError(f"The region has {region.shape[0]} items but the trajectory has {batch}.")
    mask = (region.to(device=device, dtype=torch.float32) > 0.5).float()
    if tuple(mask.shape[-2:]) != spatial:
        mask = (F.interpolate(mask, size=spatial, mode="area") > 0).float()
    return mask.expand(batch, -1, -1, -1)


def trajectory_variance(
    x0: torch.Tensor, window: int | None = None, region: torch.Tensor | None = None
) -> torch.Tensor:
    """Hallucination score of each sample: variance of its x0 predictions over the last steps.

    Args:
        x0: ``K x B x ...`` predicted clean samples of the last ``K`` steps, oldest first
            (e.g. ``K x B x C x h x w`` for images, ``K x B x D`` for points, ``K x B`` for scalars).
        window: use only the last ``window`` steps (``2 <= window <= K``); ``None`` uses all ``K``.
        region: optional ``B x 1 x h x w`` or ``B x h x w`` mask (1 = scored; a batch of 1
            broadcasts); restricts the mean to those pixels, broadcast over channels. Needs a
            ``K x B x C x H x W`` (or ``K x B x H x W``) trajectory. A region of another size (an image
            mask for a latent trajectory at 1/8 resolution) is resized: area interpolation, and a
            cell counts when any part of it lies in the region.

    Returns:
        ``B`` scores (float32, or float64 for a float64 input) on ``x0``'s device: the population
        variance (divisor ``window``) over the steps per coordinate, averaged over the
        coordinates. A sample whose region is empty scores NaN.

    Raises:
        InputError: for a malformed trajectory or region. ConfigError: for a window out of range.

    Example:
        >>> x0 = torch.stack([torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)])  # K=2
        >>> trajectory_variance(x0).tolist()
        [0.25, 0.25]
    """
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2:
        raise InputError("The x0 trajectory must be a tensor of shape K x B x ... (at least 2 dimensions).")
    steps, batch = x0.shape[0], x0.shape[1]
    if steps < 2:
        raise InputError(f"The x0 trajectory needs at least 2 steps to have a variance, got {steps}.")
    if window is not None:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or not 2 <= window <= steps:
            raise ConfigError(
                f"The window must be an int between 2 and the trajectory's {steps} steps, got {window!r}."
            )
        x0 = x0[steps - int(window) :]
    if not x0.is_floating_point() or x0.dtype in (torch.float16, torch.bfloat16):
        x0 = x0.float()
    var = x0.var(dim=0, unbiased=False)  # B x ...
    if region is None:
        return var.reshape(batch, -1).mean(dim=1)
    if var.ndim == 3:  # B x H x W: a single channel
        var = var.unsqueeze(1)
    if var.ndim != 4:
        raise InputError(
            f"A region needs a K x B x C x H x W or K x B x H x W trajectory, got shape {tuple(x0.shape)}."
        )
    mask = _region_mask(region, batch, (var.shape[-2], var.shape[-1]), var.device).to(var.dtype)
    total = (var * mask).sum(dim=(1, 2, 3))
    count = mask.sum(dim=(1, 2, 3)) * var.shape[1]
    nan = torch.full_like(total, float("nan"))
    return torch.where(count > 0, total / count.clamp_min(1), nan)


def _as_1d(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _as_labels(labels: ArrayLike | Sequence[bool], n: int) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels).reshape(-1)
    if arr.shape[0] != n:
        raise InputError(f"Got {n} scores but {arr.shape[0]} labels.")
    if not np.isin(arr, (0, 1)).all():
        raise InputError("Labels must be booleans or 0/1 (1 = hallucination).")
    return arr.astype(bool)


def calibrate_threshold(in_support_scores: ArrayLike, keep: float = 0.96) -> float:
    """Threshold that keeps the share ``keep`` of known in-support samples (score <= threshold kept).

    The threshold is the ``ceil(keep * n)``-th smallest score, so at least ``keep`` of the
    calibration samples are kept (exactly ``keep`` when ``keep * n`` is whole and scores are distinct).
    NaN scores (empty regions) are ignored.

    Raises:
        ConfigError: if ``keep`` is not in ``(0, 1]``. InputError: if no finite score is given.

    Example:
        >>> calibrate_threshold(range(1, 101), keep=0.96)
        96.0
    """
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0.0 < keep <= 1.0:
        raise ConfigError(f"The share of in-support samples to keep must lie in (0, 1], got {keep!r}.")
    scores = _as_1d(in_support_scores)
    scores = scores[~np.isnan(scores)]
    if scores.size == 0:
        raise InputError("Cannot calibrate a hallucination threshold without any in-support score.")
    rank = max(1, math.ceil(keep * scores.size - 1e-9))
    return float(np.partition(scores, rank - 1)[rank - 1])


def detection_report(scores: ArrayLike, is_hallucination: ArrayLike, threshold: float) -> dict[str, Any]:
    """How well the rule "remove when score > threshold" separates hallucinations from the rest.

    Returns a dict with ``threshold``, counts (``n``, ``n_hallucinated``, ``n_in_support``,
    ``n_removed``, ``hallucinated_removed``, ``in_support_kept``), ``detection_rate`` (share of
    hallucinations removed), ``retention`` (share of in-support samples kept),
    ``hallucination_rate_before`` and ``hallucination_rate_after`` (among kept samples). A rate
    whose denominator is zero is NaN.

    Raises:
        InputError: if scores contain NaN or the labels do not match the scores.

    Example:
        >>> r = detection_report([0.1, 0.5, 2.0, 3.0], [0, 0, 1, 0], threshold=1.0)
        >>> r["detection_rate"], r["retention"]
        (1.0, 0.6666666666666666)
    """
    s = _as_1d(scores)
    if np.isnan(s).any():
        raise InputError("Hallucination scores contain NaN (empty regions?); drop them before the report.")
    y = _as_labels(is_hallucination, s.size)
    removed = s > threshold
    n_h, n_in = int(y.sum()), int((~y).sum())
    h_removed = int((removed & y).sum())
    in_kept = int((~removed & ~y).sum())
    n_kept = int((~removed).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {
        "threshold": float(threshold),
        "n": int(s.size),
        "n_hallucinated": n_h,
        "n_in_support": n_in,
        "n_removed": int(removed.sum()),
        "hallucinated_removed": h_removed,
        "in_support_kept": in_kept,
        "detection_rate": ratio(h_removed, n_h),
        "retention": ratio(in_kept, n_in),
        "hallucination_rate_before": ratio(n_h, int(s.size)),
        "hallucination_rate_after": ratio(n_kept - in_kept, n_kept),
    }


def roc_curve(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of ``scores`` for detecting ``labels`` (1 = hallucination, higher score = more suspect).

    :func:`sklearn.metrics.roc_curve` with ``drop_intermediate=False``: every distinct score is
    one threshold (ties form one point).

    Returns:
        ``(fpr, tpr, thresholds)``: ``thresholds`` descending, the first ``+inf`` (nothing
        flagged, the point (0, 0)); point ``i`` flags the samples with ``score >= thresholds[i]``.

    Raises:
        InputError: for NaN scores, mismatched labels, or labels of a single class.

    Example:
        >>> fpr, tpr, thr = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    from sklearn.metrics import roc_curve as sk_roc_curve

    s, y = _checked_roc_input(scores, labels)
    fpr, tpr, thresholds = sk_roc_curve(y, s, drop_intermediate=False)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    thresholds[0] = np.inf  # older scikit-learn versions use max(score) + 1
    return np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64), thresholds


def _checked_roc_input(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = _as_1d(scores)
    if np.isnan(s).any():
        raise InputError("Cannot compute a ROC curve with NaN scores.")
    y = _as_labels(labels, s.size)
    if y.all() or not y.any():
        raise InputError("A ROC curve needs both hallucinated and in-support samples.")
    return s, y


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve (:func:`sklearn.metrics.roc_auc_score`): the probability that a random
    hallucination scores higher than a random in-support sample, ties counting one half.

    Example:
        >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    from sklearn.metrics import roc_auc_score

    s, y = _checked_roc_input(scores, labels)
    return float(roc_auc_score(y, s))
