"""Evaluating a hallucination score on labelled samples: the calibrated threshold (keeps a share of
known in-support samples, as Aithal et al. do), what removing samples above it does, ROC and AUROC.

These work on plain score arrays (or tensors, when torch is already imported); nothing here imports
torch. The results-table versions, with intervals over trajectories, are :mod:`ripbench.hallucination.stats`'s.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeGuard, Union

import numpy as np

from ripbench.defaults import KEEP_SHARE
from ripbench.errors import ConfigError, InputError

if TYPE_CHECKING:
    import torch

__all__ = ["ArrayLike", "auroc", "calibrate_threshold", "detection_report", "roc_curve"]

ArrayLike = Union["torch.Tensor", np.ndarray, Sequence[float]]


def _is_tensor(values: Any) -> TypeGuard[torch.Tensor]:
    """Whether ``values`` is a torch tensor (without importing torch: a tensor means torch is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(values, torch.Tensor)


def _as_1d(values: ArrayLike) -> np.ndarray:
    if _is_tensor(values):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _as_labels(labels: ArrayLike | Sequence[bool], n: int) -> np.ndarray:
    if _is_tensor(labels):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels).reshape(-1)
    if arr.shape[0] != n:
        raise InputError(f"Got {n} scores but {arr.shape[0]} labels.")
    if not np.isin(arr, (0, 1)).all():
        raise InputError("Labels must be booleans or 0/1 (1 = hallucination).")
    return arr.astype(bool)


def calibrate_threshold(in_support_scores: ArrayLike, keep: float = KEEP_SHARE) -> float:
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
