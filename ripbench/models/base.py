"""The plug-in interface every inpainting model implements.

A model receives a *batch* of images, masks and per-item seeds and returns the
inpainted images (and, if it is a diffusion model and was asked for it, its
predicted clean image x0 at the denoising steps of a low-noise band, each with the
step's noise level: the "x0 trajectory" that the hallucination detector scores).

Conventions (shared by every model, the harness and the metrics):

* ``images``: float tensor ``B x 3 x H x W`` with values in ``[0, 1]``.
* ``masks``: float tensor ``B x 1 x H x W`` with values in ``{0, 1}``; **1 = regenerate**,
  0 = keep. (Stable Diffusion's convention; RePaint's opposite convention is handled
  inside the model that needs it.)
* ``seeds``: one integer per item. A model must make its output for item ``i`` depend
  only on ``images[i]``, ``masks[i]`` and ``seeds[i]``, never on the other items of
  the batch, so that results do not depend on the batch size.
* noise levels: ``t/T``, the position of a denoising step on the model's training noise
  schedule (0 = clean image, 1 = pure noise); for diffusers schedulers
  ``timestep / num_train_timesteps``, for flow matching the sigma of the step.

A diffusion model sets ``supports_trajectory = True`` and accepts the keyword ``x0_band``;
a model that cannot record x0 needs neither.

Example
-------
>>> import torch
>>> from ripbench.models.base import Inpainter, InpaintResult
>>> class MeanFill(Inpainter):
...     name = "mean-fill"
...     def inpaint(self, images, masks, seeds):
...         mean = images.mean(dim=(2, 3), keepdim=True)
...         return InpaintResult(images=images * (1 - masks) + mean * masks)
>>> model = MeanFill()
>>> out = model.inpaint(torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8), [0, 1])
>>> tuple(out.images.shape)
(2, 3, 8, 8)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError

#: dtype names accepted by models' ``dtype`` option.
_DTYPES = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else as given."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} requested but CUDA is not available on this machine")
    return dev


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"`` -> float16 on CUDA, float32 elsewhere; names like ``"bf16"`` -> torch dtypes."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use 'auto', 'fp16', 'bf16' or 'fp32'")
    return _DTYPES[dtype]


@dataclass
class InpaintResult:
    """What a model returns for one batch.

    Attributes:
        images: ``B x 3 x H x W`` inpainted images in ``[0, 1]``, on the model's device.
        x0_trajectory: optional ``K x B x C x h x w`` tensor: the model's predicted clean
            sample at ``K`` denoising steps, one per scheduler timestep (oldest = noisiest
            first). ``C, h, w`` may be latent dimensions (see ``x0_space``).
        x0_noise_levels: the noise level ``t/T`` of each of the ``K`` steps (a tensor or a
            sequence of floats); required with ``x0_trajectory``.
        x0_space: ``"pixel"`` when the trajectory lives in image space (values
            comparable to ``images``, scaled to ``[-1, 1]`` or ``[0, 1]``), ``"latent"``
            when it lives in a VAE latent space.
        failed: optional ``B`` bool tensor; ``True`` marks an item whose output is
            unusable (NaN, all black, ...). The harness stops that trajectory.
        extras: optional per-item values to store as extra result columns, e.g.
            ``{"nsfw_flagged": [False, True]}``; each value has length ``B``.
    """

    images: torch.Tensor
    x0_trajectory: torch.Tensor | None = None
    x0_noise_levels: torch.Tensor | Sequence[float] | None = None
    x0_space: str = "pixel"
    failed: torch.Tensor | None = None
    extras: dict[str, Sequence[Any]] = field(default_factory=dict)


class Inpainter(ABC):
    """Base class of inpainting models.

    Subclasses set :attr:`name`, implement :meth:`inpaint`, and may override
    :attr:`device`, :attr:`supports_trajectory`, :attr:`num_steps` and :meth:`identity`.
    Register a subclass (or any factory returning one) with
    :func:`ripbench.models.register_inpainter`, the ``ripbench.inpainters`` entry-point
    group, or refer to it as ``"package.module:factory"`` in a config / on the CLI.
    """

    #: Short name used in result tables and file names.
    name: str = "inpainter"
    #: Whether :meth:`inpaint` accepts ``x0_band`` and then returns an ``x0_trajectory`` with
    #: its ``x0_noise_levels``. The harness passes ``x0_band`` only to models that declare this.
    supports_trajectory: bool = False
    #: Number of denoising model calls per :meth:`inpaint` (``None`` for non-iterative
    #: models); informational (manifest), the hallucination score does not use it.
    num_steps: int | None = None

    @property
    def device(self) -> torch.device:
        """Device on which the model wants its inputs (the harness keeps state there)."""
        return torch.device("cpu")

    @abstractmethod
    def inpaint(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        seeds: Sequence[int],
        *,
        x0_band: tuple[float, float] | None = None,
    ) -> InpaintResult:
        """Inpaint a batch.

        Args:
            images: ``B x 3 x H x W`` float tensor in ``[0, 1]`` on :attr:`device`.
            masks: ``B x 1 x H x W`` float tensor in ``{0, 1}`` (1 = regenerate).
            seeds: ``B`` integer seeds, one per item.
            x0_band: ``(lo, hi)`` noise levels ``t/T``: record the predicted clean sample of
                every denoising timestep whose level lies in ``[lo, hi]`` and return them as
                ``x0_trajectory`` with their ``x0_noise_levels`` (``None`` = record nothing).
                One x0 per timestep: the prediction at the sampler's state at that timestep,
                not at the extra evaluations of multi-evaluation samplers (Heun, KDPM2).
                Returning steps outside the band is allowed (they are not scored).
                Only passed to models with :attr:`supports_trajectory`; others may omit it.

        Returns:
            An :class:`InpaintResult` whose ``images`` have the input's shape.
        """

    def identity(self) -> dict[str, Any]:
        """Everything that identifies this model and its output-changing settings.

        Stored in the run manifest. Subclasses extend it with their options, weights
        revision, dtype, etc.
        """
        return {"name": self.name, "class": f"{type(self).__module__}.{type(self).__qualname__}"}

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"<{type(self).__name__} name={self.name!r} device={self.device}>"
