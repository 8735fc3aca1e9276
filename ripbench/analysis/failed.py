"""The trajectories whose model call failed or whose metric is missing (:func:`failures`).

(The module is not named ``failures`` so that ``ripbench.analysis.failures`` stays the function.)
"""

from __future__ import annotations

import pandas as pd

from .loading import TRAJECTORY_COLUMNS, trajectory_keys


def failures(table: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Trajectories with a failed model call, or with a missing (NaN) ``metric`` value after iteration 0.

    One row per such trajectory: its descriptive columns, ``trajectory_id``, ``problem``
    (``"failed model call"`` / ``"metric missing"``), ``iteration`` (the first failed, or first
    missing, iteration), ``last_good`` (last iteration with a valid output) and ``reason`` (the
    table's ``failure`` column when it has one).

    >>> t = pd.DataFrame({"trajectory_id": ["a", "a", "b", "b"], "iteration": [0, 1, 0, 1],
    ...                   "failed": [False, True, False, False], "mse_orig": [0, 0.1, 0, 0.2]})
    >>> failures(t, "mse_orig")[["trajectory_id", "problem", "iteration", "last_good"]].to_dict("records")
    [{'trajectory_id': 'a', 'problem': 'failed model call', 'iteration': 1, 'last_good': 0}]
    """
    keys = trajectory_keys(table)
    info_cols = [c for c in TRAJECTORY_COLUMNS if c in table.columns and c not in keys]
    failed = table["failed"].astype(bool) if "failed" in table.columns else pd.Series(False, index=table.index)
    missing = pd.Series(False, index=table.index)
    if metric is not None and metric in table.columns:
        missing = (table["iteration"] > 0) & pd.isna(pd.to_numeric(table[metric], errors="coerce")) & ~failed
    rows = []
    for problem, flag in (("failed model call", failed), ("metric missing", missing)):
        if not flag.any():
            continue
        bad = table[flag]
        first = bad.groupby(keys, sort=True)["iteration"].min()
        good = table[~failed].groupby(keys)["iteration"].max()
        frame = first.rename("iteration").to_frame()
        frame["problem"] = problem
        frame["last_good"] = good.reindex(frame.index)
        if "failure" in table.columns:
            frame["reason"] = bad.groupby(keys)["failure"].first().reindex(frame.index)
        if info_cols:
            frame = table.groupby(keys, sort=True)[info_cols].first().join(frame, how="inner")
        rows.append(frame.reset_index())
    columns = [*keys, *info_cols, "problem", "iteration", "last_good", "reason"]
    if not rows:
        return pd.DataFrame(columns=columns)
    out = pd.concat(rows, ignore_index=True)
    out["last_good"] = out["last_good"].astype("Int64")
    return out[[c for c in columns if c in out.columns]]
