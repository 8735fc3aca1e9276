"""Image-similarity metrics for recursive inpainting: specs, registry, built-ins, regions, suite.

* :mod:`~ripbench.metrics.spec` — :class:`MetricSpec` (a metric's facts: direction, range,
  identity value, minimum size, label, regions) and :class:`Metric` (its batched computation);
* :mod:`~ripbench.metrics.registry` — built-ins and plug-ins (entry-point group ``ripbench.metrics``);
* :mod:`~ripbench.metrics.regions` — the regions (``current``, ``outside``, ``ever``, ``never``) and
  how every metric is averaged in them;
* built-ins: LPIPS (:mod:`~ripbench.metrics.lpips_metric`), SSIM (:mod:`~ripbench.metrics.ssim`),
  PSNR and MSE (:mod:`~ripbench.metrics.pixel`);
* :mod:`~ripbench.metrics.suite` — what the run loop calls every iteration.

All functions take ``B x 3 x H x W`` float images in ``[0, 1]`` (and optionally a
``B x 1 x H x W`` {0, 1} mask) on any device and return ``B``-length float32 tensors on
that device.

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
from ripbench.metrics.regions import REGIONS, region_masks
from ripbench.metrics.registry import (
    ENTRY_POINT_GROUP,
    available_metrics,
    column_name,
    get_metric_spec,
    metric_columns,
    register_metric,
    spec_for_column,
)
from ripbench.metrics.spec import Metric, MetricSpec
from ripbench.metrics.ssim import SSIM_SETTINGS, ssim, ssim_map
from ripbench.metrics.suite import METRIC_NAMES, DriftTracker, MetricSuite, validate_metric_names

__all__ = [
    "ENTRY_POINT_GROUP",
    "FEATURE_FILES",
    "LPIPS_NETS",
    "METRIC_NAMES",
    "REGIONS",
    "SSIM_SETTINGS",
    "WEIGHTS_ENV_VAR",
    "DriftTracker",
    "LpipsMetric",
    "Metric",
    "MetricSpec",
    "MetricSuite",
    "WeightsSource",
    "available_metrics",
    "clear_lpips_cache",
    "column_name",
    "get_metric_spec",
    "load_lpips",
    "lpips_distance",
    "lpips_provenance",
    "metric_columns",
    "mse",
    "psnr",
    "region_masks",
    "register_metric",
    "resolve_weights",
    "spec_for_column",
    "ssim",
    "ssim_map",
    "validate_metric_names",
]
