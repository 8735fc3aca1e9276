"""Record the predicted clean sample ``x0_hat`` of a diffusers pipeline, one per timestep, with its noise level.

diffusers' ``callback_on_step_end`` never sees the noise prediction or ``x0_hat``
(diffusers issue #3579), so :class:`X0Recorder` wraps ``pipeline.scheduler.step``
for the duration of one pipeline call and reads ``x0_hat`` from what each step
computes (:func:`x0_source`):

* DDIM, DDPM, Euler, Euler-ancestral, LMS, Heun, KDPM2 (and other schedulers whose
  output carries it): ``pred_original_sample``;
* LCM: ``denoised``;
* DPM-Solver (multistep and singlestep, every ``algorithm_type``), UniPC, DEIS: from the
  model output, the sample and the scheduler's own ``alpha_t, sigma_t`` at the step
  (``vp_sigmas``);
* PNDM (and any other variance-preserving scheduler): from the model output, the
  sample and ``alphas_cumprod[t]``;
* flow matching (SD3, Flux; Euler and Heun): ``x0 = x_t - sigma_t * v``.

**One x0 per timestep.** Multi-evaluation samplers call the model more than once per
timestep: Heun and DPM-Solver-SDE at the next timestep's noise level from a trial point,
KDPM2 at a midpoint, PNDM's first PLMS step once more at a trial point. Only the
evaluation at the sampler's own state ``x_t`` of the timestep is recorded (the call made
while ``scheduler.state_in_first_order`` is true; for PNDM, not the trial call), so every
sampler records the same quantity: the model's x0 at the point the trajectory passes
through, at the timestep's noise level.

**Noise level.** Every record carries the noise level of its step in the band's unit
(:class:`ripbench.hallucination.NoiseBand`; :func:`noise_level`):

* ``"sigma"`` (default): ``sigma/sqrt(alpha_bar)``. Schedulers with a ``sigmas`` table
  (Euler, Heun, LMS, KDPM2, DPM-Solver, UniPC, DEIS, ...) give the sigma they step from,
  ``sigmas[step_index]`` (Karras and other sigma spacings included); the others (DDIM, DDPM,
  PNDM, LCM, RePaint) ``sqrt((1 - abar_t) / abar_t)`` of their ``alphas_cumprod`` at the
  timestep; flow matching (SD3, Flux; Euler and Heun) ``s / (1 - s)`` of the step's sigma ``s``;
* ``"t/T"``: ``timestep / num_train_timesteps``, the step's position on the training schedule
  (for flow matching the step's sigma), as before bands had units.

Only steps whose level lies in the requested band are kept (``band=None`` keeps all).

Example
-------
>>> recorder = X0Recorder(pipe.scheduler, band=NoiseBand(0.0, 0.3))    # doctest: +SKIP
>>> with recorder:                                            # doctest: +SKIP
...     pipe(...)
>>> x0, levels = recorder.trajectory()  # K x B x C x h x w (noisiest first), K levels   # doctest: +SKIP
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from ..noise_band import NoiseBand, as_band, in_band, sigma_levels

#: How x0 is obtained, per scheduler kind (see :func:`x0_source`).
X0_SOURCES = ("pred_original_sample", "denoised", "vp_sigmas", "alphas_cumprod", "flow_sigma")

_PRED_ORIGINAL_SCHEDULERS = (
    "DDIMScheduler",
    "DDPMScheduler",
    "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler",
    "LMSDiscreteScheduler",
    "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "DPMSolverSDEScheduler",
    "DDIMParallelScheduler",
    "DDPMParallelScheduler",
    "RePaintScheduler",
)
#: Variance-preserving solvers with ``sigmas``, ``step_index`` and ``_sigma_to_alpha_sigma_t``.
_VP_SIGMA_SCHEDULERS = (
    "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler",
    "UniPCMultistepScheduler",
    "DEISMultistepScheduler",
    "SASolverScheduler",
)
_FLOW_SCHEDULERS = ("FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler")


def _names(scheduler: Any) -> set[str]:
    return {cls.__name__ for cls in type(scheduler).__mro__}  # by name: no diffusers import needed


def x0_source(scheduler: Any) -> str | None:
    """Return how ``x0_hat`` is read from ``scheduler`` (one of :data:`X0_SOURCES`), or ``None``.

    >>> from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler
    >>> x0_source(DDIMScheduler()), x0_source(DPMSolverMultistepScheduler()), x0_source(PNDMScheduler())
    ('pred_original_sample', 'vp_sigmas', 'alphas_cumprod')
    """
    names = _names(scheduler)
    if names & set(_PRED_ORIGINAL_SCHEDULERS):
        return "pred_original_sample"
    if "LCMScheduler" in names:
        return "denoised"
    if names & set(_VP_SIGMA_SCHEDULERS):
        return "vp_sigmas"
    if names & set(_FLOW_SCHEDULERS):
        return "flow_sigma"
    if getattr(scheduler, "alphas_cumprod", None) is not None and not hasattr(scheduler, "sigmas"):
        return "alphas_cumprod"
    return None


def _timestep(timestep: Any) -> float:
    return float(timestep.reshape(-1)[0].item() if isinstance(timestep, torch.Tensor) else timestep)


def _step_sigma(scheduler: Any, timestep: Any) -> float | None:
    """``sigmas[step_index]`` of the coming step for schedulers with a sigma table, else ``None``.

    Sets ``step_index`` the way the scheduler's own ``step`` does when it is not set yet (called
    before ``step``, so the value is the one ``step`` uses).
    """
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is None or not hasattr(scheduler, "_init_step_index") or not hasattr(scheduler, "step_index"):
        return None
    if scheduler.step_index is None:
        scheduler._init_step_index(timestep)
    return float(torch.as_tensor(sigmas).reshape(-1)[scheduler.step_index])


def noise_level(scheduler: Any, timestep: Any, unit: str = "sigma") -> float:
    """Noise level of the step at ``timestep`` in ``unit`` (see the module docstring).

    Call it before the scheduler's ``step`` of that timestep (the recorder does).

    >>> from diffusers import DDIMScheduler
    >>> noise_level(DDIMScheduler(), 250, "t/T"), round(noise_level(DDIMScheduler(), 250), 4)
    (0.25, 0.958)
    """
    t = _timestep(timestep)
    total = float(scheduler.config.num_train_timesteps)
    if unit == "t/T":
        return t / total
    if unit != "sigma":
        raise ValueError(f"unknown noise-level unit {unit!r}")
    if x0_source(scheduler) == "flow_sigma":
        s = _step_sigma(scheduler, timestep)
        s = t / total if s is None else s
        return s / (1.0 - s) if s < 1.0 else float("inf")
    sigma = _step_sigma(scheduler, timestep)
    if sigma is not None and hasattr(scheduler, "_sigma_to_alpha_sigma_t"):  # DPM-Solver family (VP or flow sigmas)
        alpha_t, sigma_t = (float(v) for v in scheduler._sigma_to_alpha_sigma_t(torch.tensor(sigma, dtype=torch.float64)))
        return sigma_t / alpha_t if alpha_t > 0 else float("inf")
    if sigma is not None:  # Euler-type: the table holds sigma/sqrt(alpha_bar) itself
        return sigma
    abar = scheduler.alphas_cumprod
    index = min(max(int(round(t)), 0), len(abar) - 1)
    return float(sigma_levels(abar[index : index + 1])[0])


def schedule_levels(scheduler: Any, unit: str = "sigma") -> torch.Tensor:
    """Noise level of each training timestep ``t = 0..T-1`` of ``scheduler`` in ``unit``.

    ``sigma``: :func:`~ripbench.hallucination.sigma_levels` of ``alphas_cumprod``, or for flow
    matching ``s / (1 - s)`` with ``s = t / T`` (the unshifted training sigmas); ``t/T``: ``t / T``.

    >>> from diffusers import DDPMScheduler
    >>> [round(v, 4) for v in schedule_levels(DDPMScheduler())[[0, 200]].tolist()]
    [0.01, 0.7236]
    """
    total = int(scheduler.config.num_train_timesteps)
    t = torch.arange(total, dtype=torch.float64)
    if unit == "t/T":
        return t / total
    if x0_source(scheduler) == "flow_sigma":
        s = t / total
        return s / (1 - s)
    return sigma_levels(scheduler.alphas_cumprod)


def is_committed_call(scheduler: Any) -> bool:
    """Whether the coming ``step`` call evaluates the model at the sampler's own state of a timestep.

    False for the extra evaluations of multi-evaluation samplers: the second call of Heun,
    KDPM2, DPM-Solver-SDE and flow-matching Heun (``state_in_first_order`` false), PNDM's
    trial call at its second PLMS step and its Runge-Kutta intermediate calls.
    """
    if hasattr(type(scheduler), "state_in_first_order"):
        return bool(scheduler.state_in_first_order)
    if "PNDMScheduler" in _names(scheduler):
        counter = int(scheduler.counter)
        prk = scheduler.prk_timesteps
        if not scheduler.config.skip_prk_steps and prk is not None and counter < len(prk):
            return counter % 4 == 0
        return not (scheduler.config.skip_prk_steps and counter == 1)
    return True


def x0_from_alphas_cumprod(
    scheduler: Any, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor
) -> torch.Tensor:
    """``x0_hat`` of a variance-preserving step: ``(x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``.

    Handles ``prediction_type`` ``"epsilon"``, ``"v_prediction"`` and ``"sample"``.
    """
    t = int(timestep.item() if isinstance(timestep, torch.Tensor) else timestep)
    abar = scheduler.alphas_cumprod[t].to(device=sample.device, dtype=torch.float32)
    return _x0_vp(scheduler.config.prediction_type, abar.sqrt(), (1 - abar).sqrt(), model_output, sample)


def _x0_vp(
    kind: str, alpha_t: torch.Tensor, sigma_t: torch.Tensor, model_output: torch.Tensor, sample: torch.Tensor
) -> torch.Tensor:
    x_t, out = sample.float(), model_output.float()
    if kind == "epsilon":
        return (x_t - sigma_t * out) / alpha_t
    if kind == "v_prediction":
        return alpha_t * x_t - sigma_t * out
    if kind == "sample":
        return out
    if kind == "flow_prediction":
        return x_t - sigma_t * out
    raise ValueError(f"cannot compute x0 for prediction_type {kind!r}")


class X0Recorder:
    """Context manager that records one x0 prediction per timestep whose noise level is in a band.

    Args:
        scheduler: the pipeline's scheduler (its ``step`` is wrapped while active).
        band: the noise band to keep (a :class:`~ripbench.hallucination.NoiseBand`; a plain
            ``(lo, hi)`` pair is read in sigma units); ``None`` keeps every timestep, with levels
            in ``unit``.
        unit: the unit of the levels when ``band`` is ``None`` (default ``"sigma"``).

    While active, ``scheduler.step`` is replaced by a wrapper (with the original's
    signature, so pipelines still pass ``eta``/``generator`` where accepted). Leaving
    the context restores the original method.
    """

    def __init__(self, scheduler: Any, band: tuple[float, float] | None = None, unit: str = "sigma") -> None:
        self.scheduler = scheduler
        self.band: NoiseBand | None = None if band is None else as_band(band)
        self.unit = unit if self.band is None else self.band.unit
        self.source = x0_source(scheduler)
        if self.source is None:
            raise ValueError(f"cannot record x0 predictions of {type(scheduler).__name__}")
        self.calls = 0
        self._x0: list[torch.Tensor] = []
        self._levels: list[float] = []
        self._previous: Any = None

    def __enter__(self) -> X0Recorder:
        self._previous = self.scheduler.__dict__.get("step")
        original = self.scheduler.step

        @functools.wraps(original)
        def step(
            model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, *args: Any, **kwargs: Any
        ) -> Any:
            return_dict = kwargs.pop("return_dict", True)
            self.calls += 1
            record = is_committed_call(self.scheduler)
            level = noise_level(self.scheduler, timestep, self.unit) if record else 0.0
            record = record and (self.band is None or in_band(level, self.band))
            alpha_sigma = self._alpha_sigma(timestep) if record else None
            out = original(model_output, timestep, sample, *args, return_dict=True, **kwargs)
            if record:
                self._x0.append(self._x0_of(out, model_output, timestep, sample, alpha_sigma).float().clone())
                self._levels.append(level)
            return out if return_dict else out.to_tuple()

        self.scheduler.step = step
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is None:
            self.scheduler.__dict__.pop("step", None)
        else:
            self.scheduler.step = self._previous

    def _alpha_sigma(self, timestep: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(alpha_t, sigma_t)`` of the coming step, read before ``step`` advances ``step_index``."""
        if self.source not in ("vp_sigmas", "flow_sigma"):
            return None
        sched = self.scheduler
        if sched.step_index is None:
            sched._init_step_index(timestep)
        sigma = sched.sigmas[sched.step_index]
        if self.source == "flow_sigma":
            return 1 - sigma, sigma
        return sched._sigma_to_alpha_sigma_t(sigma)

    def _x0_of(
        self,
        out: Any,
        model_output: torch.Tensor,
        timestep: Any,
        sample: torch.Tensor,
        alpha_sigma: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        if self.source == "pred_original_sample":
            return out.pred_original_sample
        if self.source == "denoised":
            return out.denoised
        if alpha_sigma is not None:
            alpha_t, sigma_t = (v.to(sample.device, torch.float32) for v in alpha_sigma)
            kind = "flow_prediction" if self.source == "flow_sigma" else self.scheduler.config.prediction_type
            return _x0_vp(kind, alpha_t, sigma_t, model_output, sample)
        return x0_from_alphas_cumprod(self.scheduler, model_output, timestep, sample)

    def trajectory(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(x0, levels)``: ``K x B x ...`` float32 predictions, noisiest first, and their ``K``
        noise levels in :attr:`unit` (a float64 CPU tensor); ``(None, None)`` when no step was recorded."""
        if not self._x0:
            return None, None
        return torch.stack(self._x0), torch.tensor(self._levels, dtype=torch.float64)
