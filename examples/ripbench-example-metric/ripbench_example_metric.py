"""An out-of-tree ripbench metric: mean absolute error (MAE) between two images.

It shows the whole metric contract: one :class:`ripbench.metrics.MetricSpec` holding the
metric's facts (direction, range, identity value, label, regions) and a batched function
on the images' device returning the whole-image values and a per-pixel map (the map's mean
over a region is the metric's value there). Install this folder
(``pip install ./examples/ripbench-example-metric``) and ``ripbench metrics -v`` lists
``mae``; ``--set metrics.names=[mae,ssim]`` adds its columns to a run's table, and the
analysis, figures and report read its label and direction from the spec.
"""

from __future__ import annotations

import torch

from ripbench.metrics import MetricSpec


def mean_abs_error(a: torch.Tensor, b: torch.Tensor, *, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-image MAE per item and the per-pixel absolute error (``B x 3 x H x W``), times ``scale``."""
    error = (a.float() - b.float()).abs() * scale
    return error.flatten(1).mean(dim=1), error


MAE_SPEC = MetricSpec(
    name="mae",
    label="MAE",
    higher_is_better=False,
    range=(0.0, float("inf")),
    identity=0.0,
    compute=mean_abs_error,
    description="mean absolute error over pixels and RGB channels (example plug-in)",
    options={"scale": (1.0, "multiply the error by this factor (e.g. 255 for 8-bit units)")},
)
