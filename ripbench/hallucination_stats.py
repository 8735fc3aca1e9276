"""The hallucination section's numbers, from a results table: score per iteration band, ROC with a
confidence interval where ground truth exists, and the calibrated threshold's detection rates.

Ground truth (:func:`ground_truth`) comes from the Simple Shapes labeller when the run has it:
``shapes_label`` (``duplicate`` = hallucination, ``valid`` = in support, other failures such as
``empty``, ``wrong_column`` or ``malformed`` are neither and left out), else ``shapes_reason``
(``duplicate`` in the reason = hallucination, ``ok`` = in support), else ``shapes_valid``.

Outputs of one trajectory are not independent, so every interval here resamples whole
trajectories (a cluster bootstrap, :func:`ripbench.stats.resample_ci`); a share's interval is the
union of that and the Wilson interval (which alone would ignore the clustering, while the
bootstrap alone collapses to a point when no output, or every output, is hallucinated).

Example
-------
>>> t = pd.DataFrame({"trajectory_id": ["a", "a", "b", "b"], "iteration": [1, 2, 1, 2],
...                   "halluc_score": [0.1, 0.9, 0.2, 0.8], "shapes_reason": ["ok", "duplicate", "ok", "ok"]})
>>> ground_truth(t)[0].tolist()
[False, True, False, False]
>>> roc_analysis(t, n_boot=50)["auroc"]
1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .analysis import iter_groups, observed, trajectory_uid
from .hallucination import auroc, calibrate_threshold, roc_curve
from .stats import proportion_ci, resample_ci

__all__ = ["SCORE_COLUMNS", "ground_truth", "iteration_bands", "pooled_share", "roc_analysis", "score_bands",
           "threshold_analysis"]

#: Hallucination score columns, whole image first.
SCORE_COLUMNS = ("halluc_score", "halluc_score_current")


def ground_truth(table: pd.DataFrame) -> tuple[pd.Series | None, str]:
    """Per-row label (``True`` hallucinated, ``False`` in support, ``<NA>`` neither or unknown) and
    where it comes from; ``(None, reason)`` when the table has no ground truth."""
    if "shapes_label" in table.columns:
        label = table["shapes_label"].astype("string")
        y = pd.Series(pd.NA, index=table.index, dtype="boolean")
        y[label == "duplicate"] = True
        y[label == "valid"] = False
        return y, ("Simple Shapes labeller (shapes_label): 'duplicate' = hallucination, 'valid' = in support; "
                   "other failures (empty, wrong column, malformed) are neither and left out")
    if "shapes_reason" in table.columns:
        reason = table["shapes_reason"].astype("string")
        y = pd.Series(pd.NA, index=table.index, dtype="boolean")
        y[reason.str.split("+").apply(lambda parts: isinstance(parts, list) and "duplicate" in parts)] = True
        y[reason == "ok"] = False
        return y, ("Simple Shapes labeller (shapes_reason): a duplicated shape = hallucination, a valid image = in "
                   "support; other failures (empty, wrong shape, malformed) are neither and left out")
    if "shapes_valid" in table.columns:
        valid = table["shapes_valid"].astype("boolean")
        return ~valid, "Simple Shapes labeller (shapes_valid): any invalid image counts as a hallucination"
    return None, "the run has no ground truth (only Simple Shapes inputs have a labeller)"


def iteration_bands(last: int, count: int = 4) -> list[tuple[int, int]]:
    """Split iterations ``1..last`` into at most ``count`` contiguous bands of near-equal length.

    >>> iteration_bands(20), iteration_bands(3)
    ([(1, 5), (6, 10), (11, 15), (16, 20)], [(1, 1), (2, 2), (3, 3)])
    """
    if last < 1:
        return []
    edges = np.linspace(0, last, min(count, last) + 1).round().astype(int)
    return [(int(a) + 1, int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _scored(table: pd.DataFrame, score: str) -> pd.DataFrame:
    data = observed(table)
    data = data[data["iteration"] > 0]
    values = pd.to_numeric(data[score], errors="coerce") if score in data.columns else pd.Series(dtype=float)
    return data[np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))]


def _cluster_ratio(k: np.ndarray, n: np.ndarray) -> Any:
    """``statistic(idx)``: pooled share ``sum k / sum n`` over the chosen trajectories."""
    def statistic(idx: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return k[idx].sum(axis=1) / n[idx].sum(axis=1)
    return statistic


def pooled_share(flags: pd.Series, clusters: pd.Series, *, n_boot: int, ci: float, seed: int) -> dict[str, Any]:
    """Share of ``True`` among ``flags`` (NA ignored) with its interval: the union of the Wilson interval
    and a cluster bootstrap (trajectories resampled). Wilson alone ignores that outputs of one
    trajectory are alike; the bootstrap alone collapses to a point when no (or every) output is flagged."""
    ok = flags.notna()
    grouped = flags[ok].astype(bool).groupby(clusters[ok])
    k, n = grouped.sum().to_numpy(float), grouped.size().to_numpy(float)
    if n.sum() == 0:
        return {"k": 0, "n": 0, "share": math.nan, "lo": math.nan, "hi": math.nan, "trajectories": 0}
    est, lo, hi = resample_ci(_cluster_ratio(k, n), len(n), n_boot=n_boot, ci=ci, seed=seed)
    _, w_lo, w_hi = proportion_ci(int(k.sum()), int(n.sum()), ci)
    return {"k": int(k.sum()), "n": int(n.sum()), "share": float(est), "lo": float(np.fmin(lo, w_lo)),
            "hi": float(np.fmax(hi, w_hi)), "trajectories": len(n)}


def score_bands(
    table: pd.DataFrame,
    score: str = "halluc_score",
    by: Sequence[str] = ("model",),
    *,
    bands: int = 4,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Distribution of ``score`` per group and iteration band, with the hallucination rate where known.

    Columns: ``*by, band`` (text ``"a-b"``), ``first``, ``last``, ``outputs`` (scored outputs),
    ``trajectories``, ``q1``, ``median``, ``q3``, ``mean`` with ``mean_lo``/``mean_hi`` (cluster
    bootstrap); with ground truth also ``labelled``, ``hallucinated``, ``halluc_rate`` with
    ``halluc_rate_lo``/``_hi``.
    """
    data = _scored(table, score)
    if data.empty:
        return pd.DataFrame(columns=[*by, "band", "first", "last", "outputs", "trajectories", "median"])
    labels, _ = ground_truth(data)
    rows = []
    for key, part in iter_groups(data, by):
        for first, last in iteration_bands(int(table["iteration"].max()), bands):
            chunk = part[(part["iteration"] >= first) & (part["iteration"] <= last)]
            if chunk.empty:
                continue
            values = pd.to_numeric(chunk[score], errors="coerce").to_numpy(float)
            clusters = trajectory_uid(chunk)
            per = pd.Series(values, index=chunk.index).groupby(clusters)
            sums, counts = per.sum().to_numpy(float), per.size().to_numpy(float)
            mean, lo, hi = resample_ci(_cluster_ratio(sums, counts), len(sums), n_boot=n_boot, ci=ci, seed=seed)
            q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
            record = {**dict(zip(by, key)), "band": f"{first}-{last}" if first != last else str(first),
                      "first": first, "last": last, "outputs": len(values), "trajectories": len(sums),
                      "q1": q1, "median": median, "q3": q3, "mean": float(mean), "mean_lo": float(lo),
                      "mean_hi": float(hi)}
            if labels is not None:
                share = pooled_share(labels.loc[chunk.index], clusters, n_boot=n_boot, ci=ci, seed=seed)
                record.update(labelled=share["n"], hallucinated=share["k"], halluc_rate=share["share"],
                              halluc_rate_lo=share["lo"], halluc_rate_hi=share["hi"])
            rows.append(record)
    return pd.DataFrame(rows)


def roc_analysis(table: pd.DataFrame, score: str = "halluc_score", *, n_boot: int = 1000, ci: float = 0.95,
                 seed: int = 0) -> dict[str, Any]:
    """ROC curve and AUROC of ``score`` against the ground truth, over all scored, labelled outputs.

    Returns ``status`` (``"ok"`` or why there is no curve), ``source`` (of the ground truth),
    counts (``outputs``, ``hallucinated``, ``in_support``, ``left_out``: labelled neither,
    ``trajectories``), ``fpr``/``tpr`` (:func:`ripbench.hallucination.roc_curve`), ``auroc``
    (:func:`ripbench.hallucination.auroc`) and ``auroc_lo``/``auroc_hi`` (cluster bootstrap;
    resamples with a single class are left out).
    """
    data = _scored(table, score)
    labels, source = ground_truth(data)
    out: dict[str, Any] = {"score": score, "source": source, "outputs": 0, "hallucinated": 0, "in_support": 0,
                           "left_out": 0, "trajectories": 0, "auroc": math.nan, "auroc_lo": math.nan,
                           "auroc_hi": math.nan, "fpr": np.array([]), "tpr": np.array([])}
    if labels is None:
        return {**out, "status": source}
    known = labels.notna()
    chosen = data[known]
    y = labels[known].astype(bool).to_numpy()
    s = pd.to_numeric(chosen[score], errors="coerce").to_numpy(float)
    clusters = trajectory_uid(chosen).to_numpy()
    out.update(outputs=int(len(y)), hallucinated=int(y.sum()), in_support=int((~y).sum()),
               left_out=int((~known).sum()), trajectories=int(len(set(clusters))))
    if y.all() or not y.any():
        return {**out, "status": f"needs both hallucinated and in-support outputs (got {int(y.sum())} and "
                                 f"{int((~y).sum())})"}
    fpr, tpr, _ = roc_curve(s, y)
    out.update(fpr=fpr, tpr=tpr, auroc=auroc(s, y))
    ids, inverse = np.unique(clusters, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(ids))]

    def statistic(idx: np.ndarray) -> np.ndarray:
        values = np.full(len(idx), np.nan)
        for r, pick in enumerate(idx):
            rows = np.concatenate([members[i] for i in pick])
            if 0 < y[rows].sum() < len(rows):
                values[r] = auroc(s[rows], y[rows])
        return values

    _, lo, hi = resample_ci(statistic, len(ids), n_boot=n_boot, ci=ci, seed=seed)
    return {**out, "auroc_lo": float(lo), "auroc_hi": float(hi), "status": "ok"}


def threshold_analysis(table: pd.DataFrame, score: str = "halluc_score", keep: float = 0.96, *,
                       n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """The calibrated threshold (keeps ``keep`` of the in-support outputs, as in Aithal et al.) and
    what removing outputs above it does, each share with its cluster-bootstrap interval.

    Calibration and evaluation use the same outputs, so the shares are in-sample (optimistic).
    Returns ``status``, ``threshold``, ``keep``, and ``detection`` (hallucinations removed),
    ``retention`` (in-support outputs kept), ``rate_before`` and ``rate_after`` (hallucination
    rate among all, and among kept, outputs), each a dict ``k, n, share, lo, hi, trajectories``.
    """
    data = _scored(table, score)
    labels, source = ground_truth(data)
    out: dict[str, Any] = {"score": score, "keep": keep, "source": source, "threshold": math.nan}
    if labels is None:
        return {**out, "status": source}
    known = labels.notna()
    chosen, y = data[known], labels[known].astype(bool)
    if not (~y).any():
        return {**out, "status": "no in-support output to calibrate on"}
    s = pd.to_numeric(chosen[score], errors="coerce")
    threshold = calibrate_threshold(s[~y].to_numpy(float), keep=keep)
    removed = s > threshold
    clusters = trajectory_uid(chosen)
    kw: dict[str, Any] = {"n_boot": n_boot, "ci": ci, "seed": seed}
    return {**out, "status": "ok", "threshold": threshold,
            "detection": pooled_share(removed.where(y), clusters, **kw),
            "retention": pooled_share((~removed).where(~y), clusters, **kw),
            "rate_before": pooled_share(y.astype("boolean"), clusters, **kw),
            "rate_after": pooled_share(y.astype("boolean").where(~removed), clusters, **kw)}
