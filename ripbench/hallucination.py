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

Inside the RIP loop the steps are chosen by **noise level**, not by position: every recorded x0
carries the noise level of its step, by default ``sigma/sqrt(alpha_bar)`` computed from the
model's own schedule (0 = clean; ``s/(1-s)`` for flow matching; see :class:`NoiseBand` for the
units), and the score uses the steps whose level lies in a fixed low-noise band
(default :data:`DEFAULT_BAND`; the authors' window is :data:`PAPER_BAND`). The same band then
means the same amount of noise whatever the sampler, its number of steps and the training
schedule, so scores of one model are comparable across samplers and step counts.

>>> levels = torch.tensor([0.9, 0.5, 0.2, 0.03])     # sigma levels of a 4-step sampler, oldest first
>>> x0 = torch.tensor([0.0, 1.0, 2.0, 4.0])[:, None].expand(4, 2)  # K=4 steps, B=2 samples
>>> scores, steps = band_variance(x0, levels, DEFAULT_BAND)
>>> [round(v, 4) for v in scores.tolist()], steps     # variance of 1, 2, 4 (the 3 in-band steps)
([1.5556, 1.5556], 3)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, Union

import numpy as np

from ripbench.errors import ConfigError, InputError
from ripbench.noise_band import (  # the band code lives there (torch-free); importable here too
    _LEVEL_TOL,
    BAND_NAMES,
    BAND_UNITS,
    DEFAULT_BAND,
    DEFAULT_UNIT,
    DEFAULT_WIDENING,
    LEGACY_DEFAULT_BAND,
    MIN_BAND_STEPS,
    PAPER_BAND,
    PAPER_SCHEDULE,
    PAPER_WINDOW_STEPS,
    NoiseBand,
    as_band,
    band_unit,
    flow_sigma_levels,
    in_band,
    linear_schedule_sigmas,
    named_band,
    paper_band,
    paper_window_levels,
    parse_band,
    sigma_levels,
)

if TYPE_CHECKING:  # torch is imported by the functions that score trajectories, not by the evaluation
    import torch

    from ripbench.models.base import InpaintResult

__all__ = [
    "BAND_NAMES",
    "BAND_UNITS",
    "HALLUC_STATUSES",
    "DEFAULT_BAND",
    "DEFAULT_UNIT",
    "DEFAULT_WIDENING",
    "LEGACY_DEFAULT_BAND",
    "DEFAULT_WINDOW",
    "MIN_BAND_STEPS",
    "MIN_WINDOW_STEPS",
    "PAPER_BAND",
    "PAPER_SCHEDULE",
    "PAPER_WINDOW_STEPS",
    "NoiseBand",
    "ScoreWindow",
    "as_band",
    "auroc",
    "band_unit",
    "band_variance",
    "calibrate_threshold",
    "detection_report",
    "flow_sigma_levels",
    "hallucination_columns",
    "in_band",
    "linear_schedule_sigmas",
    "named_band",
    "paper_band",
    "paper_window_levels",
    "parse_band",
    "resolve_window",
    "roc_curve",
    "sigma_levels",
    "trajectory_variance",
]

#: Step-count window of a full ``T``-step sampler (the toy reproduction): the paper's "last 10 of 1000".
DEFAULT_WINDOW: float = 0.01
#: A fractional step-count window never covers fewer steps than this.
MIN_WINDOW_STEPS: int = 3

ArrayLike = Union["torch.Tensor", np.ndarray, Sequence[float]]


def _is_tensor(values: Any) -> TypeGuard[torch.Tensor]:
    """Whether ``values`` is a torch tensor (without importing torch: a tensor means torch is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(values, torch.Tensor)


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
    import torch
    import torch.nn.functional as F

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
        >>> import torch
        >>> x0 = torch.stack([torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)])  # K=2
        >>> trajectory_variance(x0).tolist()
        [0.25, 0.25]
    """
    import torch

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


def _levels(noise_levels: Any, steps: int) -> torch.Tensor:
    import torch

    levels = torch.as_tensor(noise_levels, dtype=torch.float64).detach().cpu().reshape(-1)
    if levels.numel() != steps:
        raise InputError(
            f"The x0 trajectory has {steps} steps but {levels.numel()} noise levels (one level per step is needed)."
        )
    return levels


def band_variance(
    x0: torch.Tensor,
    noise_levels: Any,
    band: tuple[float, float] = DEFAULT_BAND,
    region: torch.Tensor | None = None,
    min_steps: int = MIN_BAND_STEPS,
) -> tuple[torch.Tensor, int]:
    """Hallucination score over the steps whose noise level lies in ``band``.

    Args:
        x0: ``K x B x ...`` recorded x0 predictions (any order).
        noise_levels: ``K`` noise levels, one per step of ``x0``, in the band's unit.
        band: ``(lo, hi)`` (a :class:`NoiseBand` or a plain pair); steps with
            ``lo <= level <= hi`` are used. Only the numbers are compared: the caller makes
            sure the levels are in the band's unit (:func:`hallucination_columns` checks it).
        region: optional region mask, as in :func:`trajectory_variance`.
        min_steps: fewest in-band steps that give a score.

    Returns:
        ``(scores, n)``: ``n`` is the number of steps in the band; ``scores`` holds the ``B``
        :func:`trajectory_variance` scores over those steps, or NaN when ``n < min_steps``.

    Raises:
        InputError: when the number of noise levels differs from the number of steps.

    Example:
        >>> import torch
        >>> x0 = torch.stack([torch.full((2, 3), float(k)) for k in (0, 1, 2, 4)])
        >>> [round(v, 4) for v in band_variance(x0, [0.5, 0.2, 0.05, 0.0], (0.0, 0.2))[0].tolist()]  # 1, 2, 4
        [1.5556, 1.5556]
        >>> band_variance(x0, [0.5, 0.4, 0.3, 0.0], (0.0, 0.2))   # one step in the band: no score
        (tensor([nan, nan]), 1)
    """
    import torch

    if not isinstance(x0, torch.Tensor) or x0.ndim < 2:
        raise InputError("The x0 trajectory must be a tensor of shape K x B x ... (at least 2 dimensions).")
    levels = _levels(noise_levels, x0.shape[0])
    lo, hi = band
    keep = (levels >= lo - _LEVEL_TOL) & (levels <= hi + _LEVEL_TOL)
    n = int(keep.sum())
    if n < max(2, int(min_steps)):
        dtype = x0.dtype if x0.dtype == torch.float64 else torch.float32
        return torch.full((x0.shape[1],), float("nan"), dtype=dtype, device=x0.device), n
    index = torch.nonzero(keep).reshape(-1).to(x0.device)
    return trajectory_variance(x0.index_select(0, index), region=region), n


@dataclass(frozen=True)
class ScoreWindow:
    """Where the harness scores hallucinations: a noise band (with its unit) and the fewest steps it must hold.

    Attributes:
        band: the noise band (see :class:`NoiseBand`); models receive it, unit included, as ``x0_band``.
        min_steps: a row whose model step count in the band is below this gets no score
            (``halluc_status = "too-few-steps"``), never a score from a single point.

    Example:
        >>> ScoreWindow.from_spec(0.2, unit="t/T")
        ScoreWindow(band=NoiseBand(lo=0.0, hi=0.2, unit='t/T'), min_steps=3)
    """

    band: NoiseBand = DEFAULT_BAND
    min_steps: int = MIN_BAND_STEPS

    @classmethod
    def from_spec(cls, window: Any = None, min_steps: int | None = None, unit: str | None = None) -> ScoreWindow:
        """Validate a band specification (see :func:`parse_band`; ``unit`` as there) and a minimum
        step count (>= 2, default :data:`MIN_BAND_STEPS`)."""
        if min_steps is None:
            min_steps = MIN_BAND_STEPS
        if isinstance(min_steps, bool) or not isinstance(min_steps, (int, np.integer)) or min_steps < 2:
            raise ConfigError(f"hallucination.min_steps must be an integer >= 2, got {min_steps!r}.")
        return cls(parse_band(window, unit), int(min_steps))

    def columns(self, result: InpaintResult, masks: torch.Tensor) -> dict[str, torch.Tensor | list[str]]:
        """The hallucination columns of one batch; see :func:`hallucination_columns`."""
        return hallucination_columns(result, masks, self)


#: ``halluc_status`` values.
HALLUC_STATUSES = ("ok", "too-few-steps", "no-trajectory")


def _result_unit(result: InpaintResult, band: NoiseBand) -> None:
    """Refuse noise levels that are not in the band's unit (one line saying what to do)."""
    unit = getattr(result, "x0_noise_unit", None)
    if unit is None:
        if band.unit == "t/T":  # the contract before units: levels were t/T
            return
        raise InputError(
            f"The model returned x0_noise_levels without x0_noise_unit, but the band is in {band.unit!r} units: "
            "a model written for the old t/T contract must either report levels in x0_band.unit and set "
            "InpaintResult.x0_noise_unit, or be run with hallucination.unit: t/T."
        )
    if unit != band.unit:
        raise InputError(
            f"The model reported x0_noise_levels in {unit!r} units but was asked for the band {band.label()}: "
            "levels must be in x0_band.unit."
        )


def hallucination_columns(
    result: InpaintResult, masks: torch.Tensor, window: ScoreWindow | None = None
) -> dict[str, torch.Tensor | list[str]]:
    """Turn a model's output for one batch into the hallucination columns of the results table.

    Args:
        result: what the model returned (an :class:`~ripbench.models.base.InpaintResult`):
            ``x0_trajectory`` (``K x B x C x h x w``), ``x0_noise_levels`` (``K`` values in the
            band's unit) and ``x0_noise_unit`` (that unit; may be missing only for a ``t/T`` band,
            the contract of models written before units).
        masks: ``B x 1 x H x W`` masks of this iteration (1 = repainted).
        window: band and minimum step count (default :class:`ScoreWindow()`).

    Returns:
        ``B``-long columns; tensors stay on the trajectory's device:

        * ``halluc_score``: x0 variance over the in-band steps, whole image (NaN when no score);
        * ``halluc_score_current``: the same inside this iteration's mask;
        * ``halluc_steps``: number of recorded steps in the band (float; 0 without a trajectory);
        * ``halluc_band_lo``, ``halluc_band_hi``: the band; ``halluc_band_unit`` (a list of str): its unit;
        * ``halluc_status`` (a list of str): ``"ok"``, ``"too-few-steps"`` (fewer than
          ``window.min_steps`` steps in the band) or ``"no-trajectory"`` (the model returned none).

    Raises:
        InputError: a trajectory without noise levels, with a different number of them, or with
            levels in another unit than the band's.

    Example:
        >>> import torch
        >>> from ripbench.models.base import InpaintResult
        >>> out = InpaintResult(images=torch.zeros(1, 3, 4, 4), x0_trajectory=torch.rand(3, 1, 1, 4, 4),
        ...                     x0_noise_levels=[0.2, 0.05, 0.0], x0_noise_unit="sigma")
        >>> cols = hallucination_columns(out, torch.ones(1, 1, 4, 4))
        >>> cols["halluc_steps"].tolist(), cols["halluc_status"], cols["halluc_band_unit"]
        ([3.0], ['ok'], ['sigma'])
    """
    import torch

    window = window or ScoreWindow()
    band = as_band(window.band)
    batch = masks.shape[0]
    device = masks.device
    traj = result.x0_trajectory
    lo, hi = band
    units = [band.unit] * batch

    def full(value: float, where: torch.device) -> torch.Tensor:
        return torch.full((batch,), value, dtype=torch.float32, device=where)

    if traj is None:
        nan = full(float("nan"), device)
        return {
            "halluc_score": nan,
            "halluc_score_current": nan.clone(),
            "halluc_steps": full(0.0, device),
            "halluc_band_lo": full(lo, device),
            "halluc_band_hi": full(hi, device),
            "halluc_band_unit": units,
            "halluc_status": ["no-trajectory"] * batch,
        }
    levels = getattr(result, "x0_noise_levels", None)
    if levels is None:
        raise InputError(
            "The model returned an x0_trajectory without x0_noise_levels: give the noise level of each recorded "
            f"step in the band's unit ({band.unit!r}; 0 = clean) so the score can pick the steps in the band."
        )
    _result_unit(result, band)
    if traj.ndim < 2 or traj.shape[1] != batch:
        raise InputError(f"The x0 trajectory must be K x {batch} x ..., got shape {tuple(traj.shape)}.")
    score, n = band_variance(traj, levels, band, min_steps=window.min_steps)
    current, _ = band_variance(traj, levels, band, region=masks, min_steps=window.min_steps)
    status = "ok" if n >= window.min_steps else "too-few-steps"
    return {
        "halluc_score": score.float(),
        "halluc_score_current": current.float(),
        "halluc_steps": full(float(n), score.device),
        "halluc_band_lo": full(lo, score.device),
        "halluc_band_hi": full(hi, score.device),
        "halluc_band_unit": units,
        "halluc_status": [status] * batch,
    }


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
