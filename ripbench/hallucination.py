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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ripbench.errors import ConfigError, InputError

if TYPE_CHECKING:
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


# --- noise-level band ---------------------------------------------------------------------------------

#: Noise levels closer than this to a band edge count as inside (float round-off of ``t / T``).
_LEVEL_TOL = 1e-6

#: Units of a noise band and of the noise levels models report (see :class:`NoiseBand`).
BAND_UNITS: tuple[str, ...] = ("sigma", "t/T")
#: The unit of a band given without one.
DEFAULT_UNIT: str = "sigma"


def _check_unit(unit: Any) -> str:
    if unit not in BAND_UNITS:
        raise ConfigError(
            f"The unit of a noise band must be one of {list(BAND_UNITS)} ('sigma' = sigma/sqrt(alpha_bar), "
            f"'t/T' = position on the training schedule), got {unit!r}."
        )
    return str(unit)


class NoiseBand(tuple):  # noqa: SLOT001 - a 2-tuple that carries its unit as an attribute
    """A closed band ``[lo, hi]`` of noise levels, in a unit (``"sigma"`` by default).

    Units (:data:`BAND_UNITS`):

    * ``"sigma"``: the noise-to-signal ratio ``sigma/sqrt(alpha_bar) = sqrt((1 - abar_t) / abar_t)``
      of a variance-preserving (DDPM-type) step, ``s / (1 - s)`` of a flow-matching step
      (``x_t = (1 - s) x0 + s eps``). In both cases ``x_t`` rescaled to the data's scale is
      ``x0 + sigma * eps``: sigma is the standard deviation of the noise in units of the data
      (0 = clean image; log-SNR = ``-2 log sigma``). It is computed from each scheduler's own
      ``alphas_cumprod`` or sigmas (:func:`sigma_levels`, :func:`flow_sigma_levels`), so one band
      means the same noise for the bundled DDPM, Stable Diffusion and SD3/Flux.
    * ``"t/T"``: the position of a step on the model's *training* schedule
      (``timestep / num_train_timesteps``; the flow-matching sigma for SD3/Flux), the unit of
      ripbench before bands had units. The same ``t/T`` is a very different noise on different
      schedules; it stays available as an explicit choice (old runs are reproduced exactly).

    A band is a ``(lo, hi)`` tuple with a ``unit`` attribute: ``lo, hi = band`` still works, and
    models receive it as ``x0_band`` and report ``x0_noise_levels`` in ``band.unit``. Two bands
    are equal when their edges and units are; a band equals a plain pair with the same edges.

    >>> band = NoiseBand(0.0, 0.1)
    >>> band, band.contains(0.05), band.contains(0.2)
    (NoiseBand(lo=0.0, hi=0.1, unit='sigma'), True, False)
    >>> lo, hi = NoiseBand(0.0, 0.2, "t/T"); (lo, hi), NoiseBand(0.0, 0.2, "t/T").label()
    ((0.0, 0.2), 't/T in [0, 0.2]')
    """

    unit: str

    def __new__(cls, lo: float, hi: float, unit: str = DEFAULT_UNIT) -> NoiseBand:
        self = super().__new__(cls, (float(lo), float(hi)))
        object.__setattr__(self, "unit", _check_unit(unit))
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a NoiseBand is immutable")

    def __getnewargs__(self) -> tuple[float, float, str]:  # pickling and copying keep the unit
        return (self[0], self[1], self.unit)

    def __reduce__(self) -> tuple[Any, ...]:
        return (NoiseBand, (self[0], self[1], self.unit))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NoiseBand):
            return tuple.__eq__(self, other) and self.unit == other.unit
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"NoiseBand(lo={self[0]!r}, hi={self[1]!r}, unit={self.unit!r})"

    @property
    def lo(self) -> float:
        """Lower edge (least noise)."""
        return self[0]

    @property
    def hi(self) -> float:
        """Upper edge (most noise)."""
        return self[1]

    def contains(self, level: float) -> bool:
        """Whether the noise level ``level`` (in this band's unit) lies in the band (edges included)."""
        return in_band(level, self)

    def label(self) -> str:
        """Short text form, e.g. ``"sigma in [0, 0.554]"`` (3 significant digits)."""
        return f"{self.unit} in [{self[0]:.3g}, {self[1]:.3g}]"


def band_unit(band: Any) -> str:
    """The unit of ``band``: its ``unit`` attribute, or :data:`DEFAULT_UNIT` for a plain ``(lo, hi)`` pair.

    >>> band_unit(NoiseBand(0, 0.2, "t/T")), band_unit((0.0, 0.2))
    ('t/T', 'sigma')
    """
    return _check_unit(getattr(band, "unit", DEFAULT_UNIT))


def as_band(band: Any) -> NoiseBand:
    """``band`` as a :class:`NoiseBand`: a plain ``(lo, hi)`` pair is read in :data:`DEFAULT_UNIT`.

    What models do with the ``x0_band`` they receive (the harness always passes a :class:`NoiseBand`).

    >>> as_band((0.0, 0.5)), as_band(NoiseBand(0, 0.2, "t/T")).unit
    (NoiseBand(lo=0.0, hi=0.5, unit='sigma'), 't/T')
    """
    if isinstance(band, NoiseBand):
        return band
    lo, hi = band
    return NoiseBand(lo, hi, band_unit(band))


def in_band(level: float, band: tuple[float, float]) -> bool:
    """Whether noise level ``level`` lies in ``band = (lo, hi)``, edges included.

    The level must be in the band's unit (``band.unit``); a helper for models that record x0
    only inside the requested band.

    >>> in_band(0.1, (0.0, 0.1)), in_band(0.3, (0.0, 0.1))
    (True, False)
    """
    lo, hi = band
    return lo - _LEVEL_TOL <= float(level) <= hi + _LEVEL_TOL


# --- noise levels of a schedule -------------------------------------------------------------------------


def sigma_levels(alphas_cumprod: Any) -> torch.Tensor:
    """Noise level ``sigma/sqrt(alpha_bar) = sqrt((1 - abar) / abar)`` of each training timestep.

    Args:
        alphas_cumprod: a variance-preserving scheduler's ``alphas_cumprod`` (``T`` values, ``t = 0..T-1``).

    Returns:
        ``T`` float64 levels, increasing with ``t`` (``inf`` where ``abar = 0``, zero terminal SNR).

    Example:
        >>> abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
        >>> [round(v, 4) for v in sigma_levels(abar)[[0, 200]].tolist()]   # the shapes DDPM's schedule
        [0.01, 0.7236]
    """
    abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach().cpu()
    return ((1.0 - abar) / abar).sqrt()


def flow_sigma_levels(sigmas: Any) -> torch.Tensor:
    """Noise level ``s / (1 - s)`` of flow-matching sigmas ``s`` (``x_t = (1 - s) x0 + s eps``).

    ``x_t / (1 - s) = x0 + s / (1 - s) * eps``: the same quantity as :func:`sigma_levels` for a
    variance-preserving schedule (``inf`` at ``s = 1``, pure noise).

    >>> flow_sigma_levels([0.5, 0.2, 0.0]).tolist()
    [1.0, 0.25, 0.0]
    """
    s = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu()
    return s / (1.0 - s)


def linear_schedule_sigmas(beta_start: float, beta_end: float, num_train_timesteps: int = 1000) -> torch.Tensor:
    """:func:`sigma_levels` of a DDPM schedule with betas linear from ``beta_start`` to ``beta_end``.

    >>> round(linear_schedule_sigmas(0.001, 0.2)[9].item(), 4)     # the paper's toy schedule, t = 9
    0.1384
    """
    betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    return sigma_levels(torch.cumprod(1.0 - betas, dim=0))


#: The authors' toy schedule (Aithal et al. 2024, released code): ``T`` and linear betas.
PAPER_SCHEDULE: dict[str, float] = {"num_train_timesteps": 1000, "beta_start": 0.001, "beta_end": 0.2}
#: Their score window: the x0 predictions of the last 10 reverse steps (``t = 9..0``).
PAPER_WINDOW_STEPS: int = 10


def paper_window_levels(unit: str = DEFAULT_UNIT) -> torch.Tensor:
    """Noise levels of the authors' window, ``t = 0..9`` on their toy schedule (:data:`PAPER_SCHEDULE`).

    >>> [round(v, 4) for v in paper_window_levels()[[0, -1]].tolist()], paper_window_levels("t/T")[-1].item()
    ([0.0316, 0.1384], 0.009)
    """
    total = int(PAPER_SCHEDULE["num_train_timesteps"])
    t = torch.arange(PAPER_WINDOW_STEPS, dtype=torch.float64)
    if _check_unit(unit) == "t/T":
        return t / total
    sig = linear_schedule_sigmas(PAPER_SCHEDULE["beta_start"], PAPER_SCHEDULE["beta_end"], total)
    return sig[:PAPER_WINDOW_STEPS]


def paper_band(unit: str = DEFAULT_UNIT) -> NoiseBand:
    """The authors' window as a band: ``[0, level(t = 9)]`` on their toy schedule, derived here.

    The window is "the last 10 of 1000 steps": every step from ``t = 9`` to the end of sampling,
    so the band's upper edge is the noise of ``t = 9`` and its lower edge is 0, not the toy
    schedule's ``level(t = 0)``: the final step (the cleanest) always belongs to the window,
    while other schedules end below the toy's ``t = 0`` (Stable Diffusion's ``t = 0`` has less
    noise, the bundled shapes DDPM's much less; ``tests/test_hallucination.py`` checks both).

    >>> paper_band("t/T")
    NoiseBand(lo=0.0, hi=0.009, unit='t/T')
    >>> round(paper_band().hi, 4)
    0.1384
    """
    return NoiseBand(0.0, float(paper_window_levels(unit)[-1]), unit)


#: The authors' window as a band in sigma units (:func:`paper_band`), about ``[0, 0.138]``:
#: 1 step of the rip-paper sampler (SD's scaled-linear schedule, 50 steps) lies in it, 2 of 100.
PAPER_BAND: NoiseBand = paper_band()
#: How much wider (in sigma) the default band's upper edge is than the paper's: two octaves.
DEFAULT_WIDENING: float = 4.0
#: Default band (sigma units): the paper's band with its upper edge widened two octaves,
#: ``[0, 4 * PAPER_BAND.hi]``, about ``[0, 0.554]`` (log-SNR ``4 ln 2 ~ 2.8`` below the paper's edge).
#:
#: Why: it is the narrowest whole-octave widening of the paper's band that meets both needs of a
#: default. (1) The rip-paper sampler (Stable Diffusion 2 inpainting's own DDIM scheduler,
#: scaled-linear betas 0.00085..0.012, 50 steps) must keep :data:`MIN_BAND_STEPS` = 3 steps: the
#: paper's band holds 1 (2 of 100), this one 10, and the SD samplers still keep 4 or more at 25
#: steps; its edge lies between two of the sampler's steps (t = 181 in, t = 201 out), not on one.
#: (2) Scores of one model must not depend on the sampler: with the exact-denoiser tiny SD
#: pipeline, Euler, Heun and DPM-Solver++ at 25 and 50 steps give median scores within a factor
#: 2.5 of each other, while with one octave (half this edge) the medians at 50 steps spread over
#: more than that, because a band of 3-4 steps scores whichever noise levels the sampler's grid
#: happens to put in it. On SD's schedule the band is close to ripbench's old ``t/T`` default
#: ``[0, 0.2]`` (it ends at t = 192); on the shapes DDPM it ends at t = 158 instead of 200, on
#: flow matching at s = 0.356.
#: (Numbers: ``tests/test_hallucination.py::test_band_step_counts`` and
#: ``::test_default_band_edge_sits_between_two_rip_paper_steps``, ``tests/test_detector_scale.py``.)
#: The paper's band stays available (``band: paper``) for samplers with enough steps in it, e.g.
#: the shapes DDPM at 100 steps (4 steps).
#:
#: Relation to the data's scale: sigma is the noise standard deviation in units of the data, so one
#: band means the same signal-to-noise ratio only for data of the same scale. SD latents are scaled
#: by 0.18215 to a standard deviation of about 1, and the toy 2D grid is normalised to 1 per
#: coordinate: for both the default band ends at noise about half the data's spread. The Simple
#: Shapes pixels (``[-1, 1]``, mostly black) have a standard deviation of about 0.3, so the same
#: sigma is about 3x more noise relative to their spread (though a shape's edge is a step of 2).
#: (``tests/test_hallucination.py::test_data_scale``.)
DEFAULT_BAND: NoiseBand = NoiseBand(0.0, DEFAULT_WIDENING * PAPER_BAND.hi, "sigma")
#: The default band of ripbench before bands had units, ``t/T in [0, 0.2]``: what ``"default"``
#: means in the ``t/T`` unit (old configs and runs are reproduced exactly).
LEGACY_DEFAULT_BAND: NoiseBand = NoiseBand(0.0, 0.2, "t/T")
#: Fewest steps a band must hold for a score by default (the variance of one value says nothing,
#: the variance of two is the square of half their difference: unstable across samplers).
MIN_BAND_STEPS: int = 3
#: Named bands (:func:`parse_band`).
BAND_NAMES: tuple[str, ...] = ("default", "paper")


def named_band(name: str, unit: str = DEFAULT_UNIT) -> NoiseBand:
    """The band called ``name`` (:data:`BAND_NAMES`) in ``unit``.

    ``"default"``: :data:`DEFAULT_BAND` in sigma, :data:`LEGACY_DEFAULT_BAND` in ``t/T``;
    ``"paper"``: :func:`paper_band`.

    >>> named_band("paper", "t/T"), named_band("default", "t/T")
    (NoiseBand(lo=0.0, hi=0.009, unit='t/T'), NoiseBand(lo=0.0, hi=0.2, unit='t/T'))
    """
    unit = _check_unit(unit)
    if name == "paper":
        return paper_band(unit)
    if name == "default":
        return DEFAULT_BAND if unit == "sigma" else LEGACY_DEFAULT_BAND
    raise ConfigError(f"Unknown noise band {name!r}; the named bands are {list(BAND_NAMES)}.")


def parse_band(spec: Any = None, unit: str | None = None) -> NoiseBand:
    """Turn a band specification into a :class:`NoiseBand`.

    Args:
        spec: ``None`` or ``"default"`` (the default band of the unit, see :func:`named_band`);
            ``"paper"`` (:func:`paper_band`); a number ``hi`` (the band ``[0, hi]``); a pair
            ``(lo, hi)`` with ``0 <= lo < hi`` (``hi <= 1`` in ``t/T``; ``hi`` may be ``inf`` in
            sigma); a :class:`NoiseBand` (kept, its unit must agree with ``unit``); or a mapping
            ``{"band": ..., "unit": ...}``.
        unit: the unit of a number or pair (:data:`BAND_UNITS`); ``None`` = the band's own unit, or
            :data:`DEFAULT_UNIT` (``"sigma"``). **A bare number or pair is read in sigma units**:
            a pair written for ripbench before bands had units (``[0, 0.2]`` meant ``t/T``) needs
            ``unit="t/T"`` to mean what it meant then.

    Raises:
        ConfigError: for anything else, with what is expected (an integer above 1, the old
            meaning of a window counted in steps, is refused explicitly).

    Example:
        >>> parse_band(0.1), parse_band([0.02, 0.2], unit="t/T")
        (NoiseBand(lo=0.0, hi=0.1, unit='sigma'), NoiseBand(lo=0.02, hi=0.2, unit='t/T'))
        >>> parse_band("paper") == PAPER_BAND, parse_band({"band": "default", "unit": "t/T"})
        (True, NoiseBand(lo=0.0, hi=0.2, unit='t/T'))
    """
    if isinstance(spec, Mapping):
        extra = set(spec) - {"band", "unit"}
        if extra:
            raise ConfigError(f"A noise band mapping takes the keys 'band' and 'unit', got {sorted(extra)}.")
        if unit is not None and spec.get("unit", unit) != unit:
            raise ConfigError(f"The noise band says unit {spec['unit']!r} but {unit!r} was asked for.")
        return parse_band(spec.get("band"), spec.get("unit", unit))
    if isinstance(spec, NoiseBand):
        if unit is not None and _check_unit(unit) != spec.unit:
            raise ConfigError(f"The noise band {spec.label()} is in {spec.unit!r}, not in {unit!r}.")
        return spec
    unit = _check_unit(DEFAULT_UNIT if unit is None else unit)
    upper = "1" if unit == "t/T" else "inf"
    what = (
        f"The hallucination band is a band of noise levels in {unit!r} units "
        + ("(sigma/sqrt(alpha_bar): noise std relative to the data; 0 = clean image)"
           if unit == "sigma" else "(t/T: position on the training schedule; 0 = clean, 1 = pure noise)")
        + f": a name {list(BAND_NAMES)}, a number hi for [0, hi] or a pair [lo, hi] with 0 <= lo < hi <= {upper}"
        + ("; a bare pair is read in sigma units, add unit: t/T for the old meaning" if unit == "sigma" else "")
    )
    if spec is None:
        return named_band("default", unit)
    if isinstance(spec, str):
        if spec.strip().lower() in BAND_NAMES:
            return named_band(spec.strip().lower(), unit)
        raise ConfigError(f"{what}; got {spec!r}.")
    if isinstance(spec, bool):
        raise ConfigError(f"{what}; got {spec!r}.")
    if isinstance(spec, (int, float, np.integer, np.floating)):
        if isinstance(spec, (int, np.integer)) and spec > 1:
            raise ConfigError(
                f"{what}; got {spec!r}, which looks like a number of steps: a window counted in steps "
                "depends on the sampler and its step count, so it is no longer accepted (write a sigma "
                f"band as a float, e.g. {float(spec)!r}; the default is {DEFAULT_BAND.label()}, the paper's "
                f"last 10 of 1000 steps {PAPER_BAND.label()})."
            )
        spec = (0.0, spec)
    if not isinstance(spec, (Sequence, np.ndarray)) or len(spec) != 2:
        raise ConfigError(f"{what}; got {spec!r}.")
    try:
        lo, hi = (float(v) for v in spec)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}; got {spec!r}.") from None
    if any(isinstance(v, bool) for v in spec) or not math.isfinite(lo) or math.isnan(hi):
        raise ConfigError(f"{what}; got {spec!r}.")
    if not 0.0 <= lo < hi or (unit == "t/T" and hi > 1.0):
        raise ConfigError(f"{what}; got [{lo:g}, {hi:g}].")
    return NoiseBand(lo, hi, unit)


def _levels(noise_levels: Any, steps: int) -> torch.Tensor:
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
        >>> x0 = torch.stack([torch.full((2, 3), float(k)) for k in (0, 1, 2, 4)])
        >>> [round(v, 4) for v in band_variance(x0, [0.5, 0.2, 0.05, 0.0], (0.0, 0.2))[0].tolist()]  # 1, 2, 4
        [1.5556, 1.5556]
        >>> band_variance(x0, [0.5, 0.4, 0.3, 0.0], (0.0, 0.2))   # one step in the band: no score
        (tensor([nan, nan]), 1)
    """
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
        >>> from ripbench.models.base import InpaintResult
        >>> out = InpaintResult(images=torch.zeros(1, 3, 4, 4), x0_trajectory=torch.rand(3, 1, 1, 4, 4),
        ...                     x0_noise_levels=[0.2, 0.05, 0.0], x0_noise_unit="sigma")
        >>> cols = hallucination_columns(out, torch.ones(1, 1, 4, 4))
        >>> cols["halluc_steps"].tolist(), cols["halluc_status"], cols["halluc_band_unit"]
        ([3.0], ['ok'], ['sigma'])
    """
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
