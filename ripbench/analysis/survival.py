"""When trajectories collapse: events, Kaplan-Meier survival, median collapse, log-rank tests.

* :func:`collapse_events` - per trajectory, the first iteration past the :class:`CollapseRule`
  threshold, else its last observed iteration (censored; a failed trajectory is censored at its
  last good iteration);
* :func:`survival_curves`, :func:`median_collapse` - Kaplan-Meier via :func:`scipy.stats.ecdf` on
  :class:`scipy.stats.CensoredData` (:func:`kaplan_meier`);
* :func:`logrank_tests` - :func:`scipy.stats.logrank` between groups.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..stats import proportion_ci
from .curves import CollapseRule, collapse_rule
from .loading import TRAJECTORY_COLUMNS, iter_groups, metric_values, observed, trajectory_keys, with_keys


def collapse_events(table: pd.DataFrame, rule: CollapseRule | str | float | None = None,
                    psnr_cap: float | None = None) -> pd.DataFrame:
    """One row per trajectory: when it collapsed, or until when it was seen not to.

    Columns: the trajectory key and descriptive columns (``run``, ``model``, ``image_id``, ...),
    ``collapsed`` (bool), ``iteration`` (first crossing, else last observed iteration =
    censoring time), ``failed`` (the model failed; rows from the failure on are ignored).

    >>> t = pd.DataFrame({"trajectory_id": ["a"] * 3, "iteration": [0, 1, 2], "lpips_orig": [0, .6, .7]})
    >>> collapse_events(t, 0.5)[["collapsed", "iteration"]].to_dict("records")
    [{'collapsed': True, 'iteration': 1}]
    """
    rule = collapse_rule(table, rule)
    keys = trajectory_keys(table)
    info_cols = [c for c in TRAJECTORY_COLUMNS if c in table.columns and c not in keys]
    info = table.groupby(keys, sort=True)[info_cols].first() if info_cols else None
    data = observed(table)
    hit = rule.crossed(metric_values(data, rule.metric, psnr_cap))
    first = data[hit].groupby(keys)["iteration"].min()
    last = data.groupby(keys)["iteration"].max()
    events = pd.DataFrame(index=table.groupby(keys, sort=True).size().index)
    events["collapsed"] = events.index.isin(first.index)
    events["iteration"] = first.reindex(events.index).fillna(last.reindex(events.index)).fillna(0).astype(int)
    if "failed" in table.columns:
        events["failed"] = table.groupby(keys)["failed"].any().reindex(events.index).astype(bool)
    else:
        events["failed"] = False
    if info is not None:
        events = info.join(events)
    return events.reset_index()


def kaplan_meier(times: np.ndarray, collapsed: np.ndarray, grid: np.ndarray,
                 ci: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kaplan-Meier survival on ``grid`` with its pointwise interval (:func:`scipy.stats.ecdf`).

    ``times``: event or censoring iteration per trajectory; ``collapsed``: event (True) or
    right-censored (False). A trajectory censored at ``t`` counts as at risk at ``t``. The
    interval is Greenwood's, on the log-log scale; where it is undefined (survival 0 or 1) it
    is the estimate itself.

    >>> s, lo, hi = kaplan_meier(np.array([2, 3, 5, 6]), np.array([True, False, True, False]), np.arange(7))
    >>> s.tolist()
    [1.0, 1.0, 0.75, 0.75, 0.75, 0.375, 0.375]
    """
    from scipy.stats import CensoredData, ecdf

    times = np.asarray(times, dtype=float)
    collapsed = np.asarray(collapsed, dtype=bool)
    if times.size == 0:
        nan = np.full(len(grid), np.nan)
        return nan, nan.copy(), nan.copy()
    result = ecdf(CensoredData(uncensored=times[collapsed], right=times[~collapsed]))
    survival = result.sf.evaluate(grid)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined where survival is 0 or 1
        band = result.sf.confidence_interval(confidence_level=ci, method="log-log")
        lo, hi = band.low.evaluate(grid), band.high.evaluate(grid)
    lo = np.where(np.isfinite(lo), lo, survival)
    hi = np.where(np.isfinite(hi), hi, survival)
    return survival, np.minimum(lo, survival), np.maximum(hi, survival)


def _first_at_or_below(curve: np.ndarray, grid: np.ndarray, level: float = 0.5) -> float:
    below = np.flatnonzero(curve <= level)
    return float(grid[below[0]]) if below.size else math.inf


def _event_groups(table: pd.DataFrame, rule: CollapseRule | str | float | None, by: Sequence[str],
                  psnr_cap: float | None) -> Iterator[tuple[tuple[Any, ...], pd.DataFrame]]:
    events = collapse_events(table, rule, psnr_cap)
    yield from iter_groups(events, by)


def survival_curves(
    table: pd.DataFrame,
    rule: CollapseRule | str | float | None = None,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    ci: float = 0.95,
    psnr_cap: float | None = None,
) -> pd.DataFrame:
    """Kaplan-Meier share of trajectories not yet collapsed after each iteration, per group.

    A trajectory that never crosses the threshold is censored at its last observed
    iteration (the end of the run, or its last good iteration before a model failure): it
    counts as at risk up to and including that iteration and then leaves the risk set.

    Columns: ``*by, iteration, at_risk, collapsed`` (events at that iteration), ``survival``,
    ``lo``, ``hi`` (pointwise interval, see :func:`kaplan_meier`).
    """
    rule = collapse_rule(table, rule)
    grid = np.arange(0, int(table["iteration"].max()) + 1)
    out = []
    for key, ev in _event_groups(table, rule, by, psnr_cap):
        times, events = ev["iteration"].to_numpy(), ev["collapsed"].to_numpy(bool)
        surv, lo, hi = kaplan_meier(times, events, grid, ci)
        at_risk = (times[:, None] >= grid[None, :]).sum(axis=0)
        dead = ((times[:, None] == grid[None, :]) & events[:, None]).sum(axis=0)
        frame = pd.DataFrame({"iteration": grid, "at_risk": at_risk, "collapsed": dead,
                              "survival": surv, "lo": lo, "hi": hi})
        out.append(with_keys(by, key, frame))
    return pd.concat(out, ignore_index=True)


def median_collapse(
    table: pd.DataFrame,
    rule: CollapseRule | str | float | None = None,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    ci: float = 0.95,
    psnr_cap: float | None = None,
) -> pd.DataFrame:
    """Median collapse iteration per group (Kaplan-Meier) with its interval, and the share collapsed.

    The median is the first iteration where the survival curve is at or below 0.5; ``inf``
    when fewer than half of the trajectories collapse within the run. Its interval runs from
    where the lower to where the upper pointwise band of :func:`kaplan_meier` reaches 0.5
    (Brookmeyer-Crowley style; ``inf`` when that band never does). Columns: ``*by,
    trajectories, collapsed`` (count), ``collapsed_share`` with its Wilson interval
    (``_lo``, ``_hi``), ``median_collapse``, ``median_collapse_lo``, ``median_collapse_hi``.
    """
    rule = collapse_rule(table, rule)
    grid = np.arange(0, int(table["iteration"].max()) + 1)
    out = []
    for key, ev in _event_groups(table, rule, by, psnr_cap):
        times, events = ev["iteration"].to_numpy(), ev["collapsed"].to_numpy(bool)
        surv, lo, hi = kaplan_meier(times, events, grid, ci)
        share, share_lo, share_hi = proportion_ci(int(events.sum()), len(ev), ci)
        record = {"trajectories": len(ev), "collapsed": int(events.sum()), "collapsed_share": share,
                  "collapsed_share_lo": share_lo, "collapsed_share_hi": share_hi,
                  "median_collapse": _first_at_or_below(surv, grid),
                  "median_collapse_lo": _first_at_or_below(lo, grid),
                  "median_collapse_hi": _first_at_or_below(hi, grid)}
        out.append(with_keys(by, key, pd.DataFrame([record])))
    return pd.concat(out, ignore_index=True)


def logrank_tests(
    table: pd.DataFrame,
    rule: CollapseRule | str | float | None = None,
    by: Sequence[str] = ("mask_label",),
    between: Sequence[str] = ("model",),
    psnr_cap: float | None = None,
) -> pd.DataFrame:
    """Log-rank test (:func:`scipy.stats.logrank`) of time to collapse, for each pair of
    ``between`` groups within each ``by`` group (e.g. each pair of models per mask).

    Columns: ``*by, a, b, n_a, n_b, collapsed_a, collapsed_b, statistic, pvalue``; ``pvalue`` is
    NaN when neither group has a collapse. The test treats the groups as independent samples
    (it ignores that models see the same images and masks; see :mod:`ripbench.compare` for
    paired tests).
    """
    from itertools import combinations

    from scipy.stats import CensoredData, logrank

    rule = collapse_rule(table, rule)
    between = list(between)
    rows = []
    for key, ev in _event_groups(table, rule, by, psnr_cap):
        arms = {arm: part for arm, part in iter_groups(ev, between)}
        for (a, ev_a), (b, ev_b) in combinations(arms.items(), 2):
            data = []
            for part in (ev_a, ev_b):
                times, events = part["iteration"].to_numpy(float), part["collapsed"].to_numpy(bool)
                data.append(CensoredData(uncensored=times[events], right=times[~events]))
            statistic = pvalue = math.nan
            if ev_a["collapsed"].any() or ev_b["collapsed"].any():
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore", RuntimeWarning)
                    result = logrank(*data)
                statistic, pvalue = float(result.statistic), float(result.pvalue)
            rows.append({**dict(zip(by, key)), "a": " / ".join(map(str, a)), "b": " / ".join(map(str, b)),
                         "n_a": len(ev_a), "n_b": len(ev_b), "collapsed_a": int(ev_a["collapsed"].sum()),
                         "collapsed_b": int(ev_b["collapsed"].sum()), "statistic": statistic, "pvalue": pvalue})
    columns = [*by, "a", "b", "n_a", "n_b", "collapsed_a", "collapsed_b", "statistic", "pvalue"]
    return pd.DataFrame(rows, columns=columns)
