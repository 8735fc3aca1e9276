"""Statistics on a results table (pure functions of the tidy per-iteration table)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Metrics shown in summaries when present, in this order.
SUMMARY_METRICS = ("lpips_orig", "ssim_orig", "psnr_orig", "halluc_score")


def summary_table(
    table: pd.DataFrame,
    by: Sequence[str] = ("model", "mask_label"),
    metrics: Sequence[str] = SUMMARY_METRICS,
) -> pd.DataFrame:
    """One row per group: trajectories, failures, and each metric's mean at the last iteration.

    >>> t = pd.DataFrame({"model": ["m"] * 4, "mask_label": ["g"] * 4, "trajectory_id": ["a", "a", "b", "b"],
    ...                   "iteration": [0, 1, 0, 1], "lpips_orig": [0, 0.25, 0, 0.75], "failed": [False] * 4})
    >>> summary_table(t)[["model", "trajectories", "lpips_orig@1"]].to_dict("records")
    [{'model': 'm', 'trajectories': 2, 'lpips_orig@1': 0.5}]
    """
    by = list(by)
    last = table["iteration"].max()
    final = table[table["iteration"] == last].replace([np.inf, -np.inf], np.nan)
    present = [m for m in metrics if m in table.columns and table[m].notna().any()]
    out = table.groupby(by).agg(trajectories=("trajectory_id", "nunique")).reset_index()
    if "failed" in table.columns:
        fails = table[table["failed"]].groupby(by)["trajectory_id"].nunique().rename("failed")
        out = out.merge(fails, on=by, how="left").fillna({"failed": 0})
        out["failed"] = out["failed"].astype(int)
    if present:
        means = final.groupby(by)[present].mean().add_suffix(f"@{last}").reset_index()
        out = out.merge(means, on=by, how="left")
    return out
