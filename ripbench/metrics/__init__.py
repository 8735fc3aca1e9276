"""Image-similarity metrics for recursive inpainting: LPIPS, SSIM, PSNR, MSE, with region splits.

All functions take ``B x 3 x H x W`` float images in ``[0, 1]`` (and optionally a
``B x 1 x H x W`` {0, 1} mask) on any device and return ``B``-length float32 tensors on
that device. :class:`MetricSuite` is what the harness calls each iteration.

Example
-------
>>> import torch
>>> from ripbench.metrics import MetricSuite, mse, ssim
>>> a = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
>>> mse(a, a).tolist(), ssim(a, a).tolist()
([0.0, 0.0], [1.0, 1.0])
"""

from ripbench.metrics.lpips_metric import (
    FEATURE_FILES,
    LPIPS_NETS,
    WEIGHTS_ENV_VAR,
    LpipsMetric,
    WeightsSource,
    clear_lpips_cache,
    load_lpips,
    lpips_distance,
    lpips_provenance,
    resolve_weights,
)
from ripbench.metrics.pixel import mse, psnr
from ripbench.metrics.ssim import SSIM_SETTINGS, ssim, ssim_map
from ripbench.metrics.suite import METRIC_NAMES, DriftTracker, MetricSuite, validate_metric_names

__all__ = [
    "FEATURE_FILES",
    "LPIPS_NETS",
    "METRIC_NAMES",
    "SSIM_SETTINGS",
    "WEIGHTS_ENV_VAR",
    "DriftTracker",
    "LpipsMetric",
    "MetricSuite",
    "WeightsSource",
    "clear_lpips_cache",
    "load_lpips",
    "lpips_distance",
    "lpips_provenance",
    "mse",
    "psnr",
    "resolve_weights",
    "ssim",
    "ssim_map",
    "validate_metric_names",
]
