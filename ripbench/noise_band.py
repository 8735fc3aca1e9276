"""Noise bands: which denoising steps the hallucination score uses, by noise level (torch-free).

A model that reports its x0 trajectory receives the band as ``x0_band`` (a :class:`NoiseBand`)
and records the steps whose noise level lies in it (:func:`in_band`), with levels computed from
its own schedule (:func:`sigma_levels`, :func:`flow_sigma_levels`). The config reads bands with
:func:`parse_band`. This module imports neither torch nor anything heavy at import time, so that
validating a config or analysing a results table does not pay for a torch import; the functions
that return tensors (:func:`sigma_levels`, :func:`flow_sigma_levels`,
:func:`linear_schedule_sigmas`, :func:`paper_window_levels`) import torch when called.

Every name here is also importable from :mod:`ripbench.hallucination`, where the score itself
(:func:`~ripbench.hallucination.band_variance`) lives.

>>> parse_band("default"), DEFAULT_BAND.contains(0.3)
(NoiseBand(lo=0.0, hi=0.5537500628849693, unit='sigma'), True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ripbench.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "BAND_NAMES",
    "BAND_UNITS",
    "DEFAULT_BAND",
    "DEFAULT_UNIT",
    "DEFAULT_WIDENING",
    "LEGACY_DEFAULT_BAND",
    "MIN_BAND_STEPS",
    "PAPER_BAND",
    "PAPER_SCHEDULE",
    "PAPER_WINDOW_STEPS",
    "NoiseBand",
    "as_band",
    "band_unit",
    "flow_sigma_levels",
    "in_band",
    "linear_schedule_sigmas",
    "named_band",
    "paper_band",
    "paper_window_levels",
    "parse_band",
    "sigma_levels",
]

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
        >>> import torch
        >>> abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
        >>> [round(v, 4) for v in sigma_levels(abar)[[0, 200]].tolist()]   # the shapes DDPM's schedule
        [0.01, 0.7236]
    """
    import torch

    abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach().cpu()
    return ((1.0 - abar) / abar).sqrt()


def flow_sigma_levels(sigmas: Any) -> torch.Tensor:
    """Noise level ``s / (1 - s)`` of flow-matching sigmas ``s`` (``x_t = (1 - s) x0 + s eps``).

    ``x_t / (1 - s) = x0 + s / (1 - s) * eps``: the same quantity as :func:`sigma_levels` for a
    variance-preserving schedule (``inf`` at ``s = 1``, pure noise).

    >>> flow_sigma_levels([0.5, 0.2, 0.0]).tolist()
    [1.0, 0.25, 0.0]
    """
    import torch

    s = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu()
    return s / (1.0 - s)


def linear_schedule_sigmas(beta_start: float, beta_end: float, num_train_timesteps: int = 1000) -> torch.Tensor:
    """:func:`sigma_levels` of a DDPM schedule with betas linear from ``beta_start`` to ``beta_end``.

    >>> round(linear_schedule_sigmas(0.001, 0.2)[9].item(), 4)     # the paper's toy schedule, t = 9
    0.1384
    """
    import torch

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
    import torch

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
    return NoiseBand(0.0, _paper_window_edge(unit), unit)


def _paper_window_edge(unit: str) -> float:
    """The last of :func:`paper_window_levels` (``t = 9``), computed in plain Python floats.

    The same float64 operations in the same order as :func:`linear_schedule_sigmas` for the
    first steps (``beta_t = beta_start + t * step``, the running product of ``1 - beta``, then
    ``sqrt((1 - abar) / abar)``), so no torch import is needed to know the default band;
    ``tests/test_hallucination.py`` checks that the two agree exactly.
    """
    total = int(PAPER_SCHEDULE["num_train_timesteps"])
    last = PAPER_WINDOW_STEPS - 1
    if _check_unit(unit) == "t/T":
        return last / total
    start, end = PAPER_SCHEDULE["beta_start"], PAPER_SCHEDULE["beta_end"]
    step = (end - start) / (total - 1)
    abar = 1.0
    for t in range(last + 1):
        abar *= 1.0 - (start + step * t)
    return math.sqrt((1.0 - abar) / abar)


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


