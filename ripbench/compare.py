"""Paired comparisons between models on matched trajectories.

Keyed randomness (:mod:`ripbench.run.keys`) gives every model the same masks and the same noise
for the same (image, mask policy, seed), so two models' trajectories of one image, mask and
seed form a *pair*: the only thing that differs is the model. Pairs remove the image-to-image
and mask-to-mask variation from the comparison. Across runs, trajectories are paired only
when the runs drew their masks the same way (same image size, fit and random-key version;
see ``table.attrs["pairing"]`` from :func:`ripbench.analysis.load_runs`).

For each pair of arms (models, or run / model for several runs), within each mask, two
per-trajectory measures of the metric are compared:

* ``final`` - the metric at the last iteration all compared trajectories have;
* ``auc`` - the area under the metric's curve over iterations 0..last, divided by the span
  (the time-averaged value, :func:`ripbench.analysis.trajectory_auc`).

:func:`paired_comparisons` reports the mean paired difference ``b - a`` with a percentile
bootstrap interval (:func:`scipy.stats.bootstrap`), the matched-pairs rank-biserial correlation
with its interval, the Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`) and Holm's
adjustment over every row of the table. :func:`to_latex` and :func:`display_table` turn the
result into a table a paper can cite.

Example
-------
>>> from ripbench.analysis import load_runs           # doctest: +SKIP
>>> paired_comparisons(load_runs("results/quick", "results/quick-telea"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from . import analysis
from .metrics.registry import spec_for_column
from .stats import fmt_interval, fmt_p, holm, nanmean_rows, resample_ci

__all__ = ["MATCH_COLUMNS", "MEASURES", "display_table", "paired_comparisons", "to_latex"]

#: The columns that make two trajectories a pair (with the run's pairing class for several runs).
MATCH_COLUMNS = ("image_id", "mask_label", "seed")
#: Per-trajectory measures compared, with their description.
MEASURES = {"final": "value at the last iteration", "auc": "area under the curve / iterations"}


def arm_columns(table: pd.DataFrame) -> list[str]:
    """What a compared arm is: ``model``, or ``run`` and ``model`` for a table of several runs."""
    return ["run", "model"] if "run" in table.columns and table["run"].nunique() > 1 else ["model"]


def _per_trajectory(table: pd.DataFrame, metric: str, arms: Sequence[str], psnr_cap: float | None) -> pd.DataFrame:
    data = analysis.observed(table)
    last = int(table["iteration"].max())
    t = np.arange(last + 1, dtype=float)
    keys = analysis.trajectory_keys(data)
    info = data.groupby(keys, sort=True)[[c for c in (*arms, *MATCH_COLUMNS) if c not in keys]].first()
    y = analysis.trajectory_matrix(data, metric, t, psnr_cap)
    frame = info.assign(final=y[:, -1], auc=analysis.trajectory_auc(y, t)).reset_index()
    frame.loc[frame["final"].isna(), "auc"] = np.nan  # a curve that stops early is not comparable
    pairing = table.attrs.get("pairing") or {}
    frame["_class"] = frame["run"].map(pairing).fillna(0).astype(int) if "run" in frame.columns else 0
    frame["_arm"] = frame[arms].astype(str).agg(" / ".join, axis=1)
    return frame


def _matched(per: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """The matched trajectories of arms ``a`` and ``b``: one row per (class, image, mask, seed) with
    ``final_a``, ``final_b``, ``auc_a``, ``auc_b``."""
    left = per[per["_arm"] == a].set_index(["_class", *MATCH_COLUMNS])[list(MEASURES)]
    right = per[per["_arm"] == b].set_index(["_class", *MATCH_COLUMNS])[list(MEASURES)]
    return left.merge(right, how="inner", left_index=True, right_index=True, suffixes=("_a", "_b"))


def _rank_biserial(d: np.ndarray) -> Any:
    """``statistic(idx)``: matched-pairs rank-biserial correlation (zero differences dropped)."""
    from scipy.stats import rankdata

    def statistic(idx: np.ndarray) -> np.ndarray:
        dd = d[idx]
        ranks = rankdata(np.where(dd == 0, np.nan, np.abs(dd)), axis=1, nan_policy="omit")
        ranks = np.nan_to_num(ranks)
        positive, negative = (ranks * (dd > 0)).sum(axis=1), (ranks * (dd < 0)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (positive - negative) / (positive + negative)
    return statistic


def _wilcoxon(d: np.ndarray) -> tuple[float, float]:
    from scipy.stats import wilcoxon

    if len(d) == 0:
        return math.nan, math.nan
    if np.all(d == 0):
        return 0.0, 1.0  # identical on every pair: no evidence of a difference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "exact p-value not possible with ties/zeros": scipy switches method
        result = wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def paired_comparisons(
    table: pd.DataFrame,
    metric: str | None = None,
    *,
    by: Sequence[str] = ("mask_label",),
    arms: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    psnr_cap: float | None = None,
) -> pd.DataFrame:
    """Every pair of arms compared on their matched trajectories, per ``by`` group and measure.

    ``metric`` defaults to the collapse rule's metric (LPIPS to the original, else SSIM, ...).
    Columns: ``*by``, ``a``, ``b`` (arm labels), ``measure`` (``final`` / ``auc``), ``n`` (pairs),
    ``mean_a``, ``mean_b``, ``diff`` (mean of ``b - a`` in the metric's units) with ``diff_lo``,
    ``diff_hi``; ``worse`` (the arm further from the original on average, read from the metric's
    direction; ``"neither"`` for a zero difference); ``r_rb`` (rank-biserial correlation of
    ``b - a``, -1..1) with ``r_rb_lo``, ``r_rb_hi``; ``wilcoxon`` (statistic), ``p``, ``p_holm``
    (Holm over all rows), ``zero`` (pairs with no difference, which Wilcoxon leaves out) and
    ``min_p`` (the smallest two-sided p that ``n`` pairs can give: below 0.05 needs 6 pairs).
    Pairs where either trajectory lacks the last iteration (a failed model call) are left out.
    ``result.attrs``: ``metric``, ``iteration`` (the last one), ``ci``.
    """
    metric = metric or analysis.collapse_rule(table).metric
    arms = list(arms or arm_columns(table))
    direction = analysis.metric_direction(metric)
    per = _per_trajectory(table, metric, arms, psnr_cap)
    rows = []
    for key, group in analysis.iter_groups(per, by):
        labels = sorted(group["_arm"].unique(), key=analysis_order(table, arms))
        for a, b in combinations(labels, 2):
            joined = _matched(group, a, b)
            if joined.empty:
                continue
            for measure in MEASURES:
                both = joined[[f"{measure}_a", f"{measure}_b"]].dropna()
                va, vb = both[f"{measure}_a"].to_numpy(float), both[f"{measure}_b"].to_numpy(float)
                d = vb - va
                if len(d) == 0:
                    continue
                diff, diff_lo, diff_hi = resample_ci(nanmean_rows(d[:, None]), len(d), n_boot=n_boot,
                                                     ci=ci, seed=seed)
                r_rb, r_lo, r_hi = resample_ci(_rank_biserial(d), len(d), n_boot=n_boot, ci=ci, seed=seed)
                stat, p = _wilcoxon(d)
                mean_diff = float(diff[0])
                worse = "neither" if mean_diff == 0 else (b if mean_diff * direction > 0 else a)
                rows.append({**dict(zip(by, key)), "a": a, "b": b, "measure": measure, "n": len(d),
                             "mean_a": float(va.mean()), "mean_b": float(vb.mean()), "diff": mean_diff,
                             "diff_lo": float(diff_lo[0]), "diff_hi": float(diff_hi[0]), "worse": worse,
                             "r_rb": float(r_rb), "r_rb_lo": float(r_lo), "r_rb_hi": float(r_hi),
                             "wilcoxon": stat, "p": p, "zero": int(np.sum(d == 0)),
                             "min_p": min(1.0, 2.0 / 2 ** int(np.sum(d != 0))) if np.any(d != 0) else 1.0})
    columns = [*by, "a", "b", "measure", "n", "mean_a", "mean_b", "diff", "diff_lo", "diff_hi", "worse", "r_rb",
               "r_rb_lo", "r_rb_hi", "wilcoxon", "p", "p_holm", "zero", "min_p"]
    out = pd.DataFrame(rows, columns=[c for c in columns if c != "p_holm"])
    out.insert(out.columns.get_loc("p") + 1, "p_holm", holm(out["p"].to_numpy(float)) if len(out) else [])
    out.attrs = {"metric": metric, "iteration": int(table["iteration"].max()), "ci": ci}
    return out[columns]


def analysis_order(table: pd.DataFrame, arms: Sequence[str]) -> Any:
    """Sort key for arm labels: the order in which the arms first appear in the table."""
    first = table[list(arms)].astype(str).agg(" / ".join, axis=1).drop_duplicates().tolist()
    return lambda label: first.index(label) if label in first else len(first)


def _num(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) != 0 and abs(value) < 10 ** -digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def _interval(value: float, lo: float, hi: float, digits: int) -> str:
    v, a, b = fmt_interval(value, lo, hi, digits)
    return f"{v} [{a}, {b}]"


def display_table(comparisons: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Readable version of :func:`paired_comparisons`: intervals in brackets, p-values rounded."""
    keys = [c for c in comparisons.columns if c not in ("a", "b") and c in ("mask_label", "category", "run")]
    level = f"{comparisons.attrs.get('ci', 0.95):.0%}"
    out = pd.DataFrame({**{k: comparisons[k].astype(str) for k in keys},
                        "a": comparisons["a"], "b": comparisons["b"], "measure": comparisons["measure"],
                        "n pairs": comparisons["n"].astype(int),
                        "mean a": [_num(v, digits) for v in comparisons["mean_a"]],
                        "mean b": [_num(v, digits) for v in comparisons["mean_b"]],
                        f"b - a [{level} CI]": [_interval(d, lo, hi, digits) for d, lo, hi in
                                           zip(comparisons["diff"], comparisons["diff_lo"], comparisons["diff_hi"])],
                        f"r_rb [{level} CI]": [_interval(r, lo, hi, 2) for r, lo, hi in
                                          zip(comparisons["r_rb"], comparisons["r_rb_lo"], comparisons["r_rb_hi"])],
                        "p": [fmt_p(v) for v in comparisons["p"]], "p (Holm)": [fmt_p(v) for v in comparisons["p_holm"]]})
    return out


def _tex(text: Any) -> str:
    """Escape LaTeX's special characters in plain text."""
    table = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
             "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(table.get(ch, ch) for ch in str(text))


def to_latex(comparisons: pd.DataFrame, caption: str | None = None, label: str = "tab:ripbench-paired") -> str:
    """A ``booktabs`` table of :func:`paired_comparisons` (needs ``\\usepackage{booktabs}``).

    >>> frame = pd.DataFrame([{"mask_label": "grid-16", "a": "m_1", "b": "m2", "measure": "final", "n": 6,
    ...     "mean_a": 0.1, "mean_b": 0.2, "diff": 0.1, "diff_lo": 0.05, "diff_hi": 0.15, "r_rb": 1.0, "r_rb_lo": 1.0,
    ...     "r_rb_hi": 1.0, "p": 0.03125, "p_holm": 0.0625}])
    >>> print(to_latex(frame, caption="c").splitlines()[7])
    grid-16 & m\\_1 & m2 & final & 6 & 0.100 & 0.200 & 0.100 [0.050, 0.150] & 1.0 [1.0, 1.0] & 0.031 & 0.062 \\\\
    """
    shown = display_table(comparisons)
    metric = comparisons.attrs.get("metric", "")
    spec = spec_for_column(metric) if metric else None
    what = f"{spec.label} to the original ({spec.direction_word})" if spec else metric
    if caption is None:
        caption = _tex(f"Paired comparison of {what}: mean difference b - a over matched trajectories (same image, "
                       f"mask and seed) with {comparisons.attrs.get('ci', 0.95):.0%} percentile bootstrap CI, "
                       "matched-pairs rank-biserial correlation "
                       "r_rb, two-sided Wilcoxon signed-rank p and Holm-adjusted p.")
    else:
        caption = _tex(caption)
    columns = "l" * (len(shown.columns) - 7) + "r" * 7
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{" + columns + "}", r"\toprule",
             " & ".join(_tex(c) for c in shown.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(v) for v in row) + r" \\" for row in shown.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"
