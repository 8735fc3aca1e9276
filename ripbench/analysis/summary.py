"""One row per group: :func:`group_summary` (the one summary: the report's tables and the short
table ``ripbench run`` prints are both views of it, see :func:`brief_summary`), and
:func:`format_summary` for display.

The number formatters at the end are this module's own: they differ from
:func:`ripbench.formatting.fmt` (``"not reached"`` for an infinite median collapse, whole
iterations, ``g`` format below 0.001).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import ResultsError
from ..metrics.registry import spec_for_column
from .curves import CollapseRule, collapse_rule, drift_stats
from .loading import metric_values, observed, present_metrics, trajectory_uid
from .regions import region_summary
from .survival import median_collapse


def summary_metrics(table: pd.DataFrame) -> list[str]:
    """Columns shown in summaries: every metric's whole-image distance to the original (from its
    spec, in table order, plug-ins included), then the hallucination score when present.

    >>> summary_metrics(pd.DataFrame(columns=["mse_orig", "mse_prev", "lpips_orig_never", "halluc_score"]))
    ['mse_orig', 'halluc_score']
    """
    found = [c for c in table.columns if c.endswith("_orig") and spec_for_column(c) is not None]
    return found + [c for c in ("halluc_score",) if c in table.columns]


# -- summaries ------------------------------------------------------------------------------------

def clip_iterations(at: Sequence[int], last: int) -> list[int]:
    """The iterations of ``at`` that exist (<= ``last``), plus ``last`` itself.

    >>> clip_iterations((10, 50, 100), 20)
    [10, 20]
    """
    return sorted({int(i) for i in at if 0 < i <= last} | {int(last)})


def group_summary(
    table: pd.DataFrame,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    metrics: Sequence[str] | None = None,
    at: Sequence[int] = (10, 50, 100),
    rule: CollapseRule | str | float | bool | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    psnr_cap: float | None = None,
) -> pd.DataFrame:
    """Everything per group in one row.

    Columns: ``*by``, ``trajectories``, ``failed``; ``<metric>@<i>`` (mean at iteration
    ``i`` of :func:`clip_iterations`, for each of ``metrics`` present, default
    :func:`summary_metrics`), with a bootstrap interval (``_lo``, ``_hi``) for the rule's metric
    at the last iteration and the number of trajectories that mean rests on (``_n``: those
    observed there); for the rule's metric ``<m>_slope``/``_lo``/``_hi``,
    ``<m>_auc``/``_lo``/``_hi``, ``<m>_exp_k``, ``<m>_exp_r2``, ``<m>_half_life``/``_lo``/``_hi``
    and ``<m>_fit`` (see :func:`drift_stats`); ``collapsed``, ``collapsed_share`` (Wilson
    interval), ``median_collapse`` and its interval (see :func:`median_collapse`);
    ``halluc_slope`` (``_lo``, ``_hi``; trend of the hallucination score per iteration) when the
    table has hallucination scores. ``table.attrs`` of the result: ``rule`` (text, ``None``
    without one), ``iterations`` (the ``at`` used) and ``final`` (the ``<m>@<last>`` column of the
    rule's metric).

    ``rule=False``, or a table with no metric a collapse rule can use (a run of plug-in metrics
    without a ``collapse_threshold``): no collapse, slope or fit columns; the interval and ``_n``
    are then those of the first metric present. ``n_boot=0``: no bootstrap (intervals are NaN).

    >>> t = pd.DataFrame({"model": "m", "mask_label": "g", "trajectory_id": ["a", "a", "b", "b"],
    ...                   "iteration": [0, 1, 0, 1], "lpips_orig": [0, 0.25, 0, 0.75]})
    >>> group_summary(t, at=(), n_boot=0)[["trajectories", "failed", "lpips_orig@1", "lpips_orig@1_n"]].to_dict("records")
    [{'trajectories': 2, 'failed': 0, 'lpips_orig@1': 0.5, 'lpips_orig@1_n': 2}]
    """
    by = list(by)
    present = present_metrics(table, summary_metrics(table) if metrics is None else metrics)
    chosen_rule: CollapseRule | None = None
    if rule is not False:
        try:
            chosen_rule = collapse_rule(table, None if rule is True else rule)
        except ResultsError:
            if rule is not None:
                raise
    data = observed(table)
    uid = trajectory_uid(table)
    out = uid.groupby([table[c] for c in by], sort=True, dropna=False).nunique().rename("trajectories").reset_index()
    bad = table["failed"].astype(bool) if "failed" in table.columns else pd.Series(False, index=table.index)
    fails = uid[bad].groupby([table.loc[bad, c] for c in by]).nunique().rename("failed").reset_index()
    out = out.merge(fails, on=by, how="left").fillna({"failed": 0}) if len(fails) else out.assign(failed=0)
    out["failed"] = out["failed"].astype(int)
    last = int(table["iteration"].max())
    iterations = clip_iterations(at, last)
    stats_kw: dict[str, Any] = {"n_boot": n_boot, "ci": ci, "seed": seed, "psnr_cap": psnr_cap}
    if present:
        chosen = data[data["iteration"].isin(iterations)]
        rows = chosen[[*by, "iteration"]].copy()
        for m in present:
            rows[m] = metric_values(chosen, m, psnr_cap)
        wide = rows.groupby([*by, "iteration"], dropna=False)[present].mean().unstack("iteration")
        wide.columns = [f"{m}@{i}" for m, i in wide.columns]
        order = [f"{m}@{i}" for m in present for i in iterations if f"{m}@{i}" in wide.columns]
        out = out.merge(wide[order].reset_index(), on=by, how="left")
    key = chosen_rule.metric if chosen_rule is not None else (present[0] if present else None)
    if key is None:
        out.attrs = {"rule": None, "iterations": iterations, "final": ""}
        return out
    final = f"{key}@{last}"
    band = region_summary(table, key, by, iteration=last, regions=["whole"], n_boot=n_boot, ci=ci, seed=seed,
                          psnr_cap=psnr_cap)
    band = band[[*by, "lo", "hi", "n"]].rename(columns={"lo": f"{final}_lo", "hi": f"{final}_hi",
                                                        "n": f"{final}_n"})
    if final in out.columns:
        out = out.merge(band, on=by, how="left")
        out[f"{final}_n"] = out[f"{final}_n"].fillna(0).astype(int)
        cols = list(out.columns)
        extras = [f"{final}_lo", f"{final}_hi", f"{final}_n"]
        for extra in extras:
            cols.remove(extra)
        at_final = cols.index(final) + 1
        out = out[cols[:at_final] + extras + cols[at_final:]]
    if chosen_rule is None:
        out.attrs = {"rule": None, "iterations": iterations, "final": final}
        return out
    rule = chosen_rule
    drift = drift_stats(table, rule.metric, by, **stats_kw).drop(columns=["trajectories", "exp_a"])
    drift = drift.rename(columns={c: f"{rule.metric}_{c}" for c in drift.columns if c not in by})
    out = out.merge(drift, on=by, how="left")
    med = median_collapse(table, rule, by, ci=ci, psnr_cap=psnr_cap).drop(columns="trajectories")
    out = out.merge(med, on=by, how="left")
    if present_metrics(table, ["halluc_score"]):
        hall = drift_stats(table, "halluc_score", by, **stats_kw)[[*by, "slope", "slope_lo", "slope_hi"]]
        out = out.merge(hall.rename(columns={"slope": "halluc_slope", "slope_lo": "halluc_slope_lo",
                                             "slope_hi": "halluc_slope_hi"}), on=by, how="left")
    out.attrs = {"rule": rule.describe(), "iterations": iterations, "final": final}
    return out


def brief_summary(table: pd.DataFrame, by: Sequence[str] = ("model", "mask_label")) -> pd.DataFrame:
    """The short table ``ripbench run`` prints: a view of :func:`group_summary` without bootstrap.

    Per group: trajectories, failed ones, each metric's mean at the last iteration and the number
    of trajectories the key metric's mean rests on (``n@<last>``: those observed there).

    >>> t = pd.DataFrame({"model": "m", "mask_label": "g", "trajectory_id": ["a", "a", "b", "b"],
    ...                   "iteration": [0, 1, 0, 1], "lpips_orig": [0, 0.25, 0, 0.75]})
    >>> brief_summary(t).to_dict("records")
    [{'model': 'm', 'mask_label': 'g', 'trajectories': 2, 'failed': 0, 'lpips_orig@1': 0.5, 'n@1': 2}]
    """
    summary = group_summary(table, by, at=(), n_boot=0)
    last = int(table["iteration"].max())
    final = summary.attrs["final"]
    means = [c for c in summary.columns if c.endswith(f"@{last}")]
    out = summary[[*by, "trajectories", "failed", *means]].copy()
    if final:
        out[f"n@{last}"] = summary[f"{final}_n"]
    return out


def format_summary(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Display version of :func:`group_summary`: intervals merged into ``value [lo, hi]`` strings.

    A median collapse iteration of ``inf`` (fewer than half collapsed) reads ``not reached``.
    """
    out = pd.DataFrame(index=summary.index)
    skip: set[str] = set()
    for col in summary.columns:
        if col in skip:
            continue
        lo, hi = f"{col}_lo", f"{col}_hi"
        values = summary[col]
        if lo in summary.columns and hi in summary.columns:
            skip.update((lo, hi))
            out[col] = [_fmt(v, digits, col) if _same_inf(v, a, b) or (_isnan(a) and _isnan(b))
                        else f"{_fmt(v, digits, col)} [{_fmt(a, digits, col)}, {_fmt(b, digits, col)}]"
                        for v, a, b in zip(values, summary[lo], summary[hi])]
        elif pd.api.types.is_float_dtype(values):
            out[col] = [_fmt(v, digits, col) for v in values]
        else:
            out[col] = values.astype(str)
    return out


def _isnan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _same_inf(*values: Any) -> bool:
    return all(isinstance(v, float) and math.isinf(v) for v in values)


def _fmt(value: Any, digits: int, column: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "not reached" if "collapse" in column else ("inf" if value > 0 else "-inf")
    if column.startswith("median_collapse") or column == "collapsed":
        return f"{value:.0f}"
    if column.endswith("half_life"):
        return f"{value:.1f}"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
