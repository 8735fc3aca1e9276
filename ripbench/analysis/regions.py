"""Drift per region: inside the current mask, outside it, ever and never masked (:func:`region_summary`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..stats import nanmean_rows, resample_ci
from .loading import iter_groups, metric_values, observed, present_metrics

#: Regions of the region section, in display order, with what their drift means.
REGION_MEANINGS = {
    "whole": "whole image",
    "current": "inside this iteration's mask (just repainted)",
    "outside": "outside this iteration's mask (to be kept)",
    "ever": "pixels masked at some iteration so far: denoiser drift",
    "never": "pixels never masked so far: VAE / pipeline drift",
}


def region_columns(table: pd.DataFrame, metric: str) -> dict[str, str]:
    """Region name -> column of ``metric`` (a base name such as ``lpips``, or ``lpips_orig``) to the
    original, for the regions the table has values for.

    >>> region_columns(pd.DataFrame({"mse_orig": [0.0], "mse_orig_never": [0.0], "mse_orig_ever": [np.nan]}), "mse")
    {'whole': 'mse_orig', 'never': 'mse_orig_never'}
    """
    base = metric[: -len("_orig")] if metric.endswith("_orig") else metric
    candidates = {region: f"{base}_orig" + ("" if region == "whole" else f"_{region}") for region in REGION_MEANINGS}
    return {region: col for region, col in candidates.items() if present_metrics(table, [col])}


def region_summary(
    table: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    iteration: int | None = None,
    regions: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    psnr_cap: float | None = None,
) -> pd.DataFrame:
    """Mean of ``metric`` to the original per region at one iteration (default: the last), per group.

    ``regions``: a subset of :data:`REGION_MEANINGS` (default: all the table has). Columns:
    ``*by, region, column, n`` (trajectories with a value: a region can be empty, e.g. ``never``
    once every pixel has been repainted), ``mean``, ``lo``, ``hi`` (bootstrap).
    """
    data = observed(table)
    last = int(table["iteration"].max()) if iteration is None else int(iteration)
    at = data[data["iteration"] == last]
    rows = []
    for region, column in region_columns(table, metric).items():
        if regions is not None and region not in regions:
            continue
        for key, part in iter_groups(at, by):
            values = metric_values(part, column, psnr_cap)
            values = values[~np.isnan(values)]
            est, lo, hi = resample_ci(nanmean_rows(values[:, None]), len(values), n_boot=n_boot, ci=ci, seed=seed)
            rows.append({**dict(zip(by, key)), "region": region, "column": column, "n": len(values),
                         "mean": float(est[0]) if len(values) else math.nan, "lo": float(lo[0]) if len(values) else
                         math.nan, "hi": float(hi[0]) if len(values) else math.nan})
    frame = pd.DataFrame(rows, columns=[*by, "region", "column", "n", "mean", "lo", "hi"])
    frame.attrs["iteration"] = last
    return frame
