"""An out-of-tree ripbench model: fills the mask with the mean colour of the known pixels
plus seeded Gaussian noise.

It shows the whole plug-in contract in a few lines: subclass ``Inpainter``, declare the
options, honour the mask (1 = regenerate) and the per-item seeds, never edit the inputs,
return an ``InpaintResult``; ``ripbench.testing.check_inpainter(MeanFill())`` checks it. Install this
folder (``pip install ./examples/ripbench-example-plugin``) and ``ripbench models`` lists
``mean-fill``; or use it without installing as
``--model ripbench_example_plugin:MeanFill`` with the folder on ``PYTHONPATH``.

A diffusion model would also declare ``returns_x0_trajectory = True`` and accept the keyword
``x0_band`` (a ``(lo, hi)`` :class:`ripbench.hallucination.NoiseBand` with a ``unit``): then it
returns, in ``InpaintResult.x0_trajectory`` (``K x B x ...``) and ``x0_noise_levels`` (``K``
floats in ``x0_band.unit``, with ``x0_noise_unit = x0_band.unit``), its predicted clean image at
each denoising timestep whose noise level (``sigma/sqrt(alpha_bar)`` by default, 0 = clean) lies
in the band, for the hallucination score.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ripbench.models import Inpainter, InpaintResult, ModelOption, model_factory


class MeanFill(Inpainter):
    """Mean colour of the known region + N(0, noise^2) per pixel, seeded per item."""

    name = "mean-fill"
    option_specs = (
        ModelOption("noise", 0.05, "standard deviation of the Gaussian noise added to the fill"),
        ModelOption("device", "cpu", "torch device"),
    )

    def __init__(self, noise: float = 0.05, device: str = "cpu") -> None:
        self.noise = float(noise)
        self._device = torch.device(device)

    @property
    def device(self) -> torch.device:
        return self._device

    def inpaint(self, images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int]) -> InpaintResult:
        keep = 1.0 - masks
        mean = (images * keep).sum(dim=(2, 3), keepdim=True) / keep.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
        noise = torch.stack([
            torch.randn(images.shape[1:], generator=torch.Generator().manual_seed(int(s)))
            for s in seeds
        ]).to(images.device, images.dtype)
        fill = (mean + self.noise * noise).clamp(0.0, 1.0)
        return InpaintResult(images=images * keep + fill * masks)

    def identity(self) -> dict:
        return {**super().identity(), "noise": self.noise}


@model_factory  # declared a factory: `--model ripbench_example_plugin:make_mean_fill` may name it too
def make_mean_fill(**options: float) -> MeanFill:
    """Factory used by the entry point."""
    return MeanFill(**options)


make_mean_fill.option_specs = MeanFill.option_specs  # type: ignore[attr-defined]
