"""Image-similarity metrics for recursive inpainting: specs, registry, built-ins, regions, suite.

* :mod:`~ripbench.metrics.spec` — :class:`MetricSpec` (a metric's facts: direction, range,
  identity value, minimum size, label, regions) and :class:`Metric` (its batched computation);
* :mod:`~ripbench.metrics.registry` — built-ins and plug-ins (entry-point group ``ripbench.metrics``);
* :mod:`~ripbench.metrics.regions` — the regions (``current``, ``outside``, ``ever``, ``never``) and
  how every metric is averaged in them;
* built-ins: their specs as plain data in :mod:`~ripbench.metrics.catalog` (no torch), their
  computations in LPIPS (:mod:`~ripbench.metrics.lpips_metric`), SSIM (:mod:`~ripbench.metrics.ssim`),
  PSNR and MSE (:mod:`~ripbench.metrics.pixel`), imported when a metric is built;
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

import sys
import types
from typing import Any

# Torch-free: the specs, the registry and the built-ins' facts (what a config or an analysis needs).
from ripbench.metrics.registry import (
    ENTRY_POINT_GROUP,
    METRIC_NAMES,
    available_metrics,
    column_name,
    get_metric_spec,
    metric_columns,
    register_metric,
    spec_for_column,
    validate_metric_names,
)
from ripbench.metrics.spec import REGIONS, Metric, MetricSpec

# The computations import torch (and LPIPS the lpips package): imported on first use of a name.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("FEATURE_FILES", "LPIPS_NETS", "WEIGHTS_ENV_VAR", "LpipsMetric", "WeightsSource",
                     "clear_lpips_cache", "load_lpips", "lpips_distance", "lpips_provenance", "resolve_weights"),
                    "ripbench.metrics.lpips_metric"),
    "mse": "ripbench.metrics.pixel",
    "psnr": "ripbench.metrics.pixel",
    "region_masks": "ripbench.metrics.regions",
    "SSIM_SETTINGS": "ripbench.metrics.ssim",
    "ssim_map": "ripbench.metrics.ssim",
    "DriftTracker": "ripbench.metrics.suite",
    "MetricSuite": "ripbench.metrics.suite",
}


def __getattr__(name: str) -> Any:
    """Import the computing modules on first use, so that ``import ripbench.metrics`` needs no torch."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ripbench.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "ssim"})


class _MetricsPackage(types.ModuleType):
    """``ripbench.metrics.ssim`` is the function :func:`ripbench.metrics.ssim.ssim` (as it always was), even
    after the submodule of the same name is imported: the import system's binding of the submodule to
    the package attribute is ignored (``importlib.import_module("ripbench.metrics.ssim")`` gives the module)."""

    @property
    def ssim(self) -> Any:
        from ripbench.metrics.ssim import ssim

        return ssim

    @ssim.setter
    def ssim(self, value: Any) -> None:
        pass


sys.modules[__name__].__class__ = _MetricsPackage


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
