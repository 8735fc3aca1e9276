"""Record the predicted clean sample ``x0_hat`` of the last denoising steps of a diffusers pipeline.

diffusers' ``callback_on_step_end`` never sees the noise prediction or ``x0_hat``
(diffusers issue #3579), so :class:`X0Recorder` wraps ``pipeline.scheduler.step``
for the duration of one pipeline call and reads ``x0_hat`` from what each step
computes:

* DDIM, DDPM, Euler, Euler-ancestral, LMS, Heun, KDPM2 (and other schedulers whose
  output carries it): ``pred_original_sample``;
* LCM: ``denoised``;
* DPM-Solver++ and UniPC (data-prediction mode): ``scheduler.model_outputs[-1]``, the
  converted model output, after the step;
* PNDM (and any other variance-preserving scheduler): computed from the model output,
  the sample and ``alphas_cumprod[t]``;
* flow-matching Euler (SD3, Flux): ``sample - sigma_t * v``.

Only the last ``K`` predictions are kept, in a preallocated ring buffer on the
pipeline's device (memory ``K x B x C x h x w`` whatever the number of steps).

Example
-------
>>> recorder = X0Recorder(pipe.scheduler, keep=10)          # doctest: +SKIP
>>> with recorder:                                            # doctest: +SKIP
...     pipe(...)
>>> recorder.trajectory().shape  # K x B x C x h x w, oldest first   # doctest: +SKIP
"""

from __future__ import annotations

import functools
from typing import Any

import torch

#: How x0 is obtained, per scheduler kind (see :func:`x0_source`).
X0_SOURCES = ("pred_original_sample", "denoised", "model_outputs", "alphas_cumprod", "flow_sigma")

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
    "EDMEulerScheduler",
    "RePaintScheduler",
)


def x0_source(scheduler: Any) -> str | None:
    """Return how ``x0_hat`` is read from ``scheduler`` (one of :data:`X0_SOURCES`), or ``None``.

    >>> from diffusers import DDIMScheduler, PNDMScheduler
    >>> x0_source(DDIMScheduler()), x0_source(PNDMScheduler())
    ('pred_original_sample', 'alphas_cumprod')
    """
    names = {cls.__name__ for cls in type(scheduler).__mro__}  # by name: no diffusers import needed
    if names & set(_PRED_ORIGINAL_SCHEDULERS):
        return "pred_original_sample"
    if "LCMScheduler" in names:
        return "denoised"
    if "DPMSolverMultistepScheduler" in names:
        # "dpmsolver++" variants convert the model output to x0; plain "dpmsolver" keeps epsilon.
        if scheduler.config.algorithm_type in ("dpmsolver++", "sde-dpmsolver++"):
            return "model_outputs"
        return "alphas_cumprod"
    if "UniPCMultistepScheduler" in names:
        return "model_outputs" if scheduler.config.predict_x0 else "alphas_cumprod"
    if "FlowMatchEulerDiscreteScheduler" in names:
        return "flow_sigma"
    if getattr(scheduler, "alphas_cumprod", None) is not None and not hasattr(scheduler, "sigmas"):
        return "alphas_cumprod"
    return None


def x0_from_alphas_cumprod(
    scheduler: Any, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor
) -> torch.Tensor:
    """``x0_hat`` of a variance-preserving step: ``(x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``.

    Handles ``prediction_type`` ``"epsilon"``, ``"v_prediction"`` and ``"sample"``.
    """
    t = int(timestep.item() if isinstance(timestep, torch.Tensor) else timestep)
    abar = scheduler.alphas_cumprod[t].to(device=sample.device, dtype=torch.float32)
    x_t = sample.float()
    out = model_output.float()
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return (x_t - (1 - abar).sqrt() * out) / abar.sqrt()
    if kind == "v_prediction":
        return abar.sqrt() * x_t - (1 - abar).sqrt() * out
    if kind == "sample":
        return out
    raise ValueError(f"cannot compute x0 for prediction_type {kind!r}")


class X0Recorder:
    """Context manager that keeps the last ``keep`` x0 predictions of a scheduler.

    While active, ``scheduler.step`` is replaced by a wrapper (with the original's
    signature, so pipelines still pass ``eta``/``generator`` where accepted). Leaving
    the context restores the original method.
    """

    def __init__(self, scheduler: Any, keep: int) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.scheduler = scheduler
        self.keep = keep
        self.source = x0_source(scheduler)
        if self.source is None:
            raise ValueError(f"cannot record x0 predictions of {type(scheduler).__name__}")
        self.count = 0
        self._buffer: torch.Tensor | None = None
        self._previous: Any = None

    def __enter__(self) -> X0Recorder:
        self._previous = self.scheduler.__dict__.get("step")
        original = self.scheduler.step

        @functools.wraps(original)
        def step(
            model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, *args: Any, **kwargs: Any
        ) -> Any:
            return_dict = kwargs.pop("return_dict", True)
            sigma = None
            if self.source == "flow_sigma":
                if self.scheduler.step_index is None:
                    self.scheduler._init_step_index(timestep)
                sigma = self.scheduler.sigmas[self.scheduler.step_index]
            out = original(model_output, timestep, sample, *args, return_dict=True, **kwargs)
            self._record(self._x0(out, model_output, timestep, sample, sigma))
            return out if return_dict else out.to_tuple()

        self.scheduler.step = step
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is None:
            self.scheduler.__dict__.pop("step", None)
        else:
            self.scheduler.step = self._previous

    def _x0(
        self, out: Any, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, sigma: Any
    ) -> torch.Tensor:
        if self.source == "pred_original_sample":
            return out.pred_original_sample
        if self.source == "denoised":
            return out.denoised
        if self.source == "model_outputs":
            return self.scheduler.model_outputs[-1]
        if self.source == "flow_sigma":
            return sample.float() - sigma.to(sample.device, torch.float32) * model_output.float()
        return x0_from_alphas_cumprod(self.scheduler, model_output, timestep, sample)

    def _record(self, x0: torch.Tensor) -> None:
        if self._buffer is None:
            self._buffer = torch.empty((self.keep, *x0.shape), dtype=torch.float32, device=x0.device)
        self._buffer[self.count % self.keep].copy_(x0)
        self.count += 1

    def trajectory(self) -> torch.Tensor | None:
        """The recorded predictions, ``K x B x C x h x w`` float32, oldest first (``None`` if none)."""
        if self._buffer is None:
            return None
        kept = min(self.count, self.keep)
        order = [(self.count - kept + i) % self.keep for i in range(kept)]
        if order == list(range(self.keep)):
            return self._buffer
        return self._buffer[torch.tensor(order, device=self._buffer.device)]
