"""The hallucination score that models and the run loop call: the variance of the predicted clean sample
(x0) over the denoising steps in a noise band, and the run table's ``halluc_*`` columns.

Torch is imported by the functions that score trajectories, not by importing this module. The noise
bands themselves (:class:`~ripbench.noise_band.NoiseBand`, :func:`~ripbench.noise_band.parse_band`,
the levels of a schedule) are :mod:`ripbench.noise_band`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ripbench.errors import ConfigError, InputError
from ripbench.noise_band import _LEVEL_TOL, DEFAULT_BAND, MIN_BAND_STEPS, NoiseBand, as_band, parse_band

if TYPE_CHECKING:  # torch is imported by the functions that score trajectories
    import torch

    from ripbench.models.base import InpaintResult

__all__ = ["HALLUC_STATUSES", "ScoreWindow", "band_variance", "hallucination_columns", "region_mask", "trajectory_variance"]


def region_mask(
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
    mask = region_mask(region, batch, (var.shape[-2], var.shape[-1]), var.device).to(var.dtype)
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

