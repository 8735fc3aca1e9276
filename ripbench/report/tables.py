"""The report's tables for people: few columns, each value with its interval, rows in the figures' order.

Each function takes computed statistics (:mod:`ripbench.analysis`, :mod:`ripbench.compare`,
:mod:`ripbench.hallucination.stats`) and returns a frame of text cells, which
:mod:`ripbench.report.html` and :mod:`ripbench.report.markdown` write out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import analysis, compare, plots
from ..formatting import auroc_cell, fmt_p, interval_text, pct
from ..metrics.registry import column_label, spec_for_column

__all__ = ["MAX_LISTED_FAILURES", "PICKS", "band_table", "display_summary", "evidence_table", "failure_table",
           "hallucination_notes", "in_reading_order", "logrank_table", "metrics_table", "region_table",
           "summary_notes", "trajectory_picks", "typical_trajectories"]

#: At most this many failed trajectories are listed in the page (all are in failures.csv).
MAX_LISTED_FAILURES = 40


#: The trajectories :func:`trajectory_picks` chooses per group, in display order.
PICKS = ("typical", "best", "worst")


def trajectory_picks(table: pd.DataFrame, metric: str, by: Sequence[str]) -> list[tuple[tuple[Any, ...], dict[str, str]]]:
    """Per group (in the figures' order), the ids of three trajectories by their final ``metric`` value:
    ``typical`` (closest to the group's median), ``best`` (least drift) and ``worst`` (most drift), the
    direction read from the metric's spec. A group without values names its first trajectory for all three.

    >>> t = pd.DataFrame({"trajectory_id": ["a", "b", "c"], "iteration": [1, 1, 1], "model": ["m"] * 3,
    ...                   "ssim_orig": [0.9, 0.5, 0.7]})
    >>> trajectory_picks(t, "ssim_orig", ["model"])
    [(('m',), {'typical': 'c', 'best': 'a', 'worst': 'b'})]
    """
    final = analysis.observed(table).sort_values("iteration").groupby("trajectory_id").tail(1).copy()
    final["_v"] = analysis.metric_values(final, metric) * analysis.metric_direction(metric)  # larger = more drift
    chosen = []
    for key in plots.ordered_groups(final, by):
        rows = plots.select(final, by, key)
        if len(rows) == 0:
            continue
        ids, values = rows["trajectory_id"].astype(str).tolist(), rows["_v"].to_numpy()
        if np.isnan(values).all():
            chosen.append((key, dict.fromkeys(PICKS, ids[0])))
            continue
        typical = int(np.nanargmin(np.abs(values - np.nanmedian(values))))
        chosen.append((key, {"typical": ids[typical], "best": ids[int(np.nanargmin(values))],
                             "worst": ids[int(np.nanargmax(values))]}))
    return chosen


def typical_trajectories(table: pd.DataFrame, metric: str, by: Sequence[str], limit: int) -> list[str]:
    """Per group, the trajectory whose final ``metric`` value is closest to the group median."""
    return [picks["typical"] for _, picks in trajectory_picks(table, metric, by)][:limit]


def in_reading_order(frame: pd.DataFrame, table: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Rows of a per-group frame in the figures' order (masks by area, names naturally), attrs kept."""
    order = {key: i for i, key in enumerate(plots.ordered_groups(table, by))}
    keys = frame[list(by)].itertuples(index=False, name=None)
    ranked = frame.assign(_order=[order.get(tuple(k), len(order)) for k in keys])
    out = ranked.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    out.attrs = frame.attrs
    return out

def _column_or_nan(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]``, or NaN for every row when the column is missing (no interval)."""
    return frame[column] if column in frame.columns else pd.Series(np.nan, index=frame.index)


def _iteration(value: float) -> str:
    return "not reached" if math.isinf(value) else ("n/a" if math.isnan(value) else f"{value:.0f}")


def display_summary(summary: pd.DataFrame, by: Sequence[str], rule: analysis.CollapseRule) -> pd.DataFrame:
    """The per-group summary for people: few columns, each value with its interval."""
    m = rule.metric
    final = summary.attrs.get("final", "")
    spec = spec_for_column(m)
    short = spec.label if spec else m
    out = pd.DataFrame({c: summary[c].astype(str) for c in by})
    out["n"] = summary["trajectories"].astype(int)
    if f"{final}_n" in summary.columns and (summary[f"{final}_n"] != summary["trajectories"]).any():
        out[f"n at it. {final.partition('@')[2]}"] = summary[f"{final}_n"].astype(int)  # the mean rests on these
    if "failed" in summary.columns and summary["failed"].any():
        out["failed"] = summary["failed"].astype(int)
    if final in summary.columns:
        out[f"{short} at it. {final.partition('@')[2]}"] = [
            interval_text(v, a, b) for v, a, b in zip(summary[final], _column_or_nan(summary, f"{final}_lo"),
                                            _column_or_nan(summary, f"{final}_hi"))]
    out["slope / it."] = [interval_text(v, a, b) for v, a, b in zip(summary[f"{m}_slope"], summary[f"{m}_slope_lo"],
                                                           summary[f"{m}_slope_hi"])]
    out["AUC / it."] = [interval_text(v, a, b) for v, a, b in zip(summary[f"{m}_auc"], summary[f"{m}_auc_lo"],
                                                         summary[f"{m}_auc_hi"])]
    out["collapsed"] = [f"{int(k)}/{int(n)} [{pct(lo)}, {pct(hi)}]"
                        for k, n, lo, hi in zip(summary["collapsed"], summary["trajectories"],
                                                summary["collapsed_share_lo"], summary["collapsed_share_hi"])]
    out["median collapse it."] = [
        _iteration(v) if math.isinf(v) else f"{_iteration(v)} [{_iteration(a)}, {_iteration(b)}]"
        for v, a, b in zip(summary["median_collapse"], summary["median_collapse_lo"], summary["median_collapse_hi"])]
    out["half-life (R²)"] = [
        (f"{v:.1f} [{a:.1f}, {'inf' if math.isinf(b) else f'{b:.1f}'}] (R² {r2:.2f})" if status == "ok"
         else _short_fit(status))
        for v, a, b, r2, status in zip(summary[f"{m}_half_life"], summary[f"{m}_half_life_lo"],
                                       summary[f"{m}_half_life_hi"], summary[f"{m}_exp_r2"], summary[f"{m}_fit"])]
    if "halluc_slope" in summary.columns:
        out["halluc. score slope"] = [interval_text(v, a, b) for v, a, b in zip(summary["halluc_slope"],
                                                                      summary["halluc_slope_lo"],
                                                                      summary["halluc_slope_hi"])]
    return out


def _short_fit(status: str) -> str:
    """A refused fit's reason, short enough for a table cell."""
    for start, short in (("too few", "too few iterations"), ("no saturation", "no saturation"),
                         ("no fixed", "n/a (no fixed start)")):
        if status.startswith(start):
            return short
    return status.split(" <")[0] + (")" if "(" in status and " <" in status else "")


def metrics_table(table: pd.DataFrame, by: Sequence[str], **kw: Any) -> pd.DataFrame:
    """Every metric's mean distance to the original at the last iteration per group, with its interval;
    column headers are the metrics' labels from their specs (plug-in metrics included)."""
    metrics = [m for m in analysis.summary_metrics(table) if m.endswith("_orig")]
    out: pd.DataFrame | None = None
    for metric in analysis.present_metrics(table, metrics):
        values = analysis.region_summary(table, metric, by, regions=["whole"], **kw)
        frame = values[list(by)].astype(str)
        frame[column_label(metric) or metric] = [interval_text(v, a, b) for v, a, b in
                                                 zip(values["mean"], values["lo"], values["hi"])]
        out = frame if out is None else out.merge(frame, on=list(by), how="outer")
    return out if out is not None else pd.DataFrame()


def hallucination_notes(table: pd.DataFrame) -> list[str]:
    """What the table says about how its scores were made: the noise band, steps per score, and how
    many outputs got no score and why (columns ``halluc_band_lo``/``_hi``, ``halluc_steps``,
    ``halluc_status``, when the run has them)."""
    notes = []
    later = table[table["iteration"] > 0]
    by_model = compare.arm_columns(later)
    if {"halluc_band_lo", "halluc_band_hi"} <= set(later.columns):
        bands = later.dropna(subset=["halluc_band_lo", "halluc_band_hi"]).groupby(by_model)[
            ["halluc_band_lo", "halluc_band_hi"]].first()
        if len(bands):
            notes.append("Scores use the denoising steps whose noise level t/T lies in the band: " + "; ".join(
                f"{' / '.join(map(str, key if isinstance(key, tuple) else (key,)))} [{lo:g}, {hi:g}]"
                for key, (lo, hi) in bands.iterrows()) + ".")
    if "halluc_steps" in later.columns:
        steps = pd.to_numeric(later["halluc_steps"], errors="coerce").dropna()
        if len(steps):
            low, high = int(steps.min()), int(steps.max())
            notes.append(f"Steps per score: {low}" + (f" to {high}." if high != low else "."))
    if "halluc_status" in later.columns:
        counts = later["halluc_status"].dropna().astype(str).value_counts()
        unscored = {k: int(v) for k, v in counts.items() if k != "ok"}
        if unscored:
            notes.append(f"{sum(unscored.values())} of {int(counts.sum())} outputs have no score: " + ", ".join(
                f"{k} {v}" for k, v in unscored.items()) + " (see README.md in the run folder).")
    return notes


def summary_notes(summary: pd.DataFrame, rule: analysis.CollapseRule, ci: float) -> list[str]:
    """What the columns of :func:`display_summary` mean (labels from the metric specs)."""
    notes = [f"n: trajectories (image x mask x seed) in the group. Brackets: {ci:.0%} confidence intervals.",
             f"{column_label(rule.metric) or rule.metric}: mean at the last iteration; slope / it.: change per "
             "iteration; AUC / it.: average level over the run.",
             f"collapsed: trajectories that reached {rule.describe()}, with the Wilson interval of the share; median "
             "collapse it.: Kaplan-Meier median with its interval ('not reached': fewer than half collapsed).",
             "half-life: iterations to half of the level the drift approaches, from an exponential fit to the mean "
             "drift; where the fit is refused the reason is given."]
    if "halluc_slope" in summary.columns:
        notes.append("halluc. score slope: trend of the hallucination score per iteration.")
    return notes


def region_table(regions: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    order = [r for r in analysis.REGION_MEANINGS if r in set(regions["region"])]
    rows = []
    for key, part in regions.groupby(list(by), sort=False) if by else [((), regions)]:
        key = key if isinstance(key, tuple) else (key,)
        cells = {r["region"]: r for _, r in part.iterrows()}
        row = dict(zip(by, map(str, key)))
        for region in order:
            r = cells.get(region)
            row[region] = "n/a" if r is None or r["n"] == 0 else f"{interval_text(r['mean'], r['lo'], r['hi'])} n={int(r['n'])}"
        rows.append(row)
    return pd.DataFrame(rows)


def band_table(bands: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    out = pd.DataFrame({c: bands[c].astype(str) for c in by})
    out["iterations"] = bands["band"].astype(str)
    out["outputs"] = bands["outputs"].astype(int)
    out["median [q1, q3]"] = [interval_text(m, a, b) for m, a, b in zip(bands["median"], bands["q1"], bands["q3"])]
    out["mean [CI]"] = [interval_text(v, a, b) for v, a, b in zip(bands["mean"], bands["mean_lo"], bands["mean_hi"])]
    if "halluc_rate" in bands.columns:
        out["hallucinated"] = [f"{int(k)}/{int(n)}" for k, n in zip(bands["hallucinated"], bands["labelled"])]
        out["rate [CI]"] = [f"{pct(v)} [{pct(a)}, {pct(b)}]"
                            for v, a, b in zip(bands["halluc_rate"], bands["halluc_rate_lo"], bands["halluc_rate_hi"])]
    return out


def logrank_table(tests: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in tests.columns if c not in ("a", "b", "n_a", "n_b", "collapsed_a", "collapsed_b", "statistic",
                                                  "pvalue", "p_holm")]
    out = pd.DataFrame({c: tests[c].astype(str) for c in keys})
    out["a"], out["b"] = tests["a"], tests["b"]
    out["collapsed a"] = [f"{int(k)}/{int(n)}" for k, n in zip(tests["collapsed_a"], tests["n_a"])]
    out["collapsed b"] = [f"{int(k)}/{int(n)}" for k, n in zip(tests["collapsed_b"], tests["n_b"])]
    out["log-rank p"] = [fmt_p(p) for p in tests["pvalue"]]
    out["p (Holm)"] = [fmt_p(p) for p in tests["p_holm"]]
    return out


def failure_table(found: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("run", "model", "image_id", "mask_label", "seed", "problem", "iteration", "last_good",
                        "reason") if c in found.columns]
    return found[cols].head(MAX_LISTED_FAILURES).astype(str).replace({"<NA>": "", "nan": "", "None": ""})


def evidence_table(evidence: Sequence[dict[str, Any]], labels: dict[str, str]) -> pd.DataFrame:
    """Held-out AUROC of each score and each content baseline, the paired difference to the best baseline
    and the content-matched AUROC, with intervals and n (AUROC with two decimals)."""
    rows = []
    for r in evidence:
        best = r.get("best_baseline")
        for column in [r["score"], *r["baselines"]]:
            if column != r["score"] and column != best:
                continue
            is_score = column == r["score"]
            rows.append({
                "score": labels.get(column, column) if is_score else f"{labels.get(column, column)} (control of "
                f"{labels.get(r['score'], r['score'])})",
                "kind": "detector" if is_score else "best content baseline (no model)",
                "AUROC [CI]": auroc_cell(r["auroc"].get(column)),
                "minus best baseline [CI]": auroc_cell(r["difference"].get(best), signed=True) if is_score and best else "",
                "content-matched AUROC [CI]": auroc_cell(r["matched"].get(column)) if r.get("matched") else "n/a",
                "n": f"{r['duplicates']} / {r['valid']} ({r['trajectories']} traj.)",
                "verdict": r["verdict"] if is_score else ""})
    return pd.DataFrame(rows)
