"""Pixel metrics: mean squared error and PSNR (data range 1), whole image or per region.

Both follow scikit-image: ``mse`` is ``mean((a - b) ** 2)`` over all channels of the
selected pixels (``skimage.metrics.mean_squared_error``), and ``psnr`` is
``10 * log10(1 / mse)`` (``skimage.metrics.peak_signal_noise_ratio`` with
``data_range=1``).

**Identical images give PSNR = +inf** (as in scikit-image); it is not capped, so the
value stays exact and comparable across runs. Aggregations over trajectories should
use medians, or ``mse``, or drop infinite values explicitly. An empty region gives NaN.

Example
-------
>>> import torch
>>> a = torch.zeros(1, 3, 4, 4)
>>> b = torch.full((1, 3, 4, 4), 0.1)
>>> round(mse(a, b).item(), 6), round(psnr(a, b).item(), 3)
(0.01, 20.0)
>>> psnr(a, a).item()
inf
"""

from __future__ import annotations

import torch

from ripbench.metrics.catalog import MSE_SPEC as MSE_SPEC  # the specs, declared without torch
from ripbench.metrics.catalog import PSNR_SPEC as PSNR_SPEC
from ripbench.metrics.regions import binary_mask, check_images, masked_mean
from ripbench.metrics.spec import Metric, MetricOutput

DATA_RANGE = 1.0


def squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel, per-channel squared difference in float32 (``B x 3 x H x W``)."""
    return torch.sub(a.to(torch.float32), b.to(torch.float32)).square_()


def psnr_from_mse(mse_values: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for data range 1 from MSE values: 0 gives +inf, NaN stays NaN."""
    return 10.0 * torch.log10(DATA_RANGE**2 / mse_values)


def mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per batch item, over the whole image or inside ``mask``.

    Args:
        a, b: ``B x 3 x H x W`` images in ``[0, 1]``.
        mask: optional ``B x 1 x H x W`` {0, 1} region (1 = inside).

    Returns:
        ``B`` float32 tensor (NaN where the region is empty).
    """
    check_images(a, b, mask)
    region = None if mask is None else binary_mask(mask)
    return masked_mean(squared_error(a, b), region)


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio (dB, data range 1) per batch item; +inf for identical images.

    Same arguments as :func:`mse`.
    """
    return psnr_from_mse(mse(a, b, mask))


class MSEMetric(Metric):
    """:func:`mse` as a :class:`~ripbench.metrics.spec.Metric` (per-pixel map: the squared error).

    Local (radius 0) and sharing its map with PSNR: a suite with both computes the squared
    error once, and on the CPU only where a model changed pixels.
    """

    border = 0
    map_key = "squared_error"
    radius = 0
    pixel_identity = 0.0

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def compare(self, a: torch.Tensor, b: torch.Tensor) -> MetricOutput:
        error = squared_error(a, b)
        return self.finish(masked_mean(error, None)), error

    def compare_map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return squared_error(a, b)

    def provenance(self) -> dict[str, object]:
        return {"data_range": DATA_RANGE, "reference": "skimage.metrics.mean_squared_error"}


class PSNRMetric(MSEMetric):
    """:func:`psnr`: whole and region values are the PSNR of the mean squared error there."""

    def finish(self, means: torch.Tensor) -> torch.Tensor:
        return psnr_from_mse(means)

    def provenance(self) -> dict[str, object]:
        return {"data_range": DATA_RANGE, "identical_images": "inf (not capped)",
                "reference": "skimage.metrics.peak_signal_noise_ratio"}

