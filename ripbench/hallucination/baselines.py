"""Does a hallucination score see more than the amount of content? Every score of a results table against
the content baselines (controls with no model in them, e.g. the number of foreground pixels in the
repainted region), on held-out trajectories: :func:`baseline_comparison` (paired AUROC differences,
the content-matched AUROC, the residual AUROC after removing the foreground area), phrased by
:func:`comparison_sentence` and :func:`matched_sentence`; :func:`content_evidence` runs it for every
detector of a table.

Every choice (the best baseline, the residual fit) is made on the calibration trajectories
(:func:`ripbench.hallucination.stats.calibration_split`), every number reported on the others; every
interval resamples whole trajectories, the same resamples for all scores (paired).

Example
-------
>>> s = np.array([5.0, 3.0, 2.0, 0.0]); y = np.array([True, False, True, False])
>>> fast_auroc(s, y), verdict(0.02, 0.1)
(0.75, 'beats')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..analysis import observed, trajectory_uid
from ..stats import resample_ci
from .shapes_truth import REGION_COUNTS
from .stats import (
    CALIBRATION_SHARE,
    ScoreSpec,
    calibration_split,
    generation_truth,
    ground_truth,
    score_specs,
)

__all__ = ["AREA_OFFSET", "SCORE_FLOOR", "baseline_comparison", "comparison_sentence", "content_evidence",
           "fast_auroc", "matched_auroc", "matched_sentence", "residual_fit", "verdict"]


def fast_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC by ranks (Mann-Whitney U, ties count one half), as :func:`ripbench.hallucination.auroc` but
    cheap enough for bootstrap loops; NaN without both classes.

    >>> fast_auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    0.75
    """
    from scipy.stats import rankdata

    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _pair_counts(s: np.ndarray, y: np.ndarray, strata: np.ndarray) -> tuple[float, float]:
    """``(wins, pairs)`` over (positive, negative) pairs in the same stratum; a win is the positive
    scoring higher, a tie counts one half."""
    from scipy.stats import rankdata

    wins = pairs = 0.0
    for value in np.unique(strata):
        inside = strata == value
        pos, neg = int((y & inside).sum()), int((~y & inside).sum())
        if pos and neg:
            ranks = rankdata(s[inside])
            wins += ranks[y[inside]].sum() - pos * (pos + 1) / 2
            pairs += pos * neg
    return wins, pairs


def matched_auroc(scores: np.ndarray, labels: np.ndarray, strata: np.ndarray) -> tuple[float, int]:
    """AUROC pooled within strata: only (hallucinated, in-support) pairs in the same stratum count.
    Returns ``(auroc, pairs)``; NaN when no stratum holds both classes.

    >>> s = np.array([5.0, 3.0, 2.0, 0.0]); y = np.array([True, False, True, False])
    >>> fast_auroc(s, y), matched_auroc(s, y, np.array([2, 2, 1, 1])), matched_auroc(s, y, np.array([2, 1, 2, 1]))
    (0.75, (1.0, 2), (nan, 0))
    """
    wins, pairs = _pair_counts(np.asarray(scores, float), np.asarray(labels, bool), np.asarray(strata))
    return (float(wins / pairs) if pairs else math.nan), int(pairs)


#: Added to an area before the log of :func:`residual_fit` (an emptied region has no foreground).
AREA_OFFSET = 1.0
#: Scores are floored here before the log of :func:`residual_fit` (a score of exactly 0 has no log).
SCORE_FLOOR = 1e-12


def residual_fit(scores: np.ndarray, area: np.ndarray, fit_rows: np.ndarray) -> dict[str, Any]:
    """Least-squares line ``log(score) = a + b log(area + 1)`` on ``fit_rows`` only (e.g. the valid
    generations of the calibration trajectories), and every row's residual.

    Returns ``intercept``, ``slope``, ``n_fit`` and ``residual`` (array like ``scores``; NaN where a
    value is missing); ``slope`` is NaN (and residuals NaN) with fewer than 3 fit rows or a constant area.

    >>> area = np.array([10.0, 20, 40, 80]); fit = residual_fit(2 * (area + 1), area, np.array([1, 1, 1, 0], bool))
    >>> round(fit["slope"], 6), bool(np.allclose(fit["residual"], 0.0)), fit["n_fit"]
    (1.0, True, 3)
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.log(np.maximum(np.asarray(scores, float), SCORE_FLOOR))
        x = np.log(np.asarray(area, float) + AREA_OFFSET)
    ok = np.asarray(fit_rows, bool) & np.isfinite(z) & np.isfinite(x)
    out: dict[str, Any] = {"intercept": math.nan, "slope": math.nan, "n_fit": int(ok.sum()),
                           "residual": np.full(len(z), np.nan)}
    if ok.sum() < 3 or np.ptp(x[ok]) == 0:
        return out
    slope, intercept = np.polyfit(x[ok], z[ok], 1)
    return {**out, "intercept": float(intercept), "slope": float(slope), "residual": z - (intercept + slope * x)}


def verdict(lo: float, hi: float) -> str:
    """``"beats"`` (interval of AUROC(score) - AUROC(baseline) above 0), ``"loses to"`` (below 0),
    ``"matches"`` (includes 0) or ``"cannot be told from"`` (no interval).

    >>> verdict(0.02, 0.1), verdict(-0.05, 0.03), verdict(-0.2, -0.01), verdict(float("nan"), 0.1)
    ('beats', 'matches', 'loses to', 'cannot be told from')
    """
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "cannot be told from"
    return "beats" if lo > 0 else "loses to" if hi < 0 else "matches"


def _cluster_members(clusters: np.ndarray) -> list[np.ndarray]:
    _, inverse = np.unique(clusters, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.cumsum(np.bincount(inverse))[:-1])


def _resampled(members: list[np.ndarray], one: Any, width: int) -> Any:
    """``statistic(idx)`` for :func:`ripbench.stats.resample_ci`: ``one(rows)`` (a vector of ``width``) on
    the rows of the chosen clusters (a cluster chosen twice counts twice)."""
    def statistic(idx: np.ndarray) -> np.ndarray:
        out = np.full((len(idx), width), np.nan)
        for r, pick in enumerate(idx):
            out[r] = one(np.concatenate([members[i] for i in pick]))
        return out
    return statistic


def _interval(est: Any, lo: Any, hi: Any, i: int) -> dict[str, float]:
    return {"value": float(est[i]), "lo": float(lo[i]), "hi": float(hi[i])}


def baseline_comparison(
    rows: pd.DataFrame,
    score: str,
    baselines: Sequence[str],
    labels: pd.Series,
    *,
    calibration: np.ndarray | None = None,
    strata: pd.Series | None = None,
    area: str | None = None,
    clusters: pd.Series | None = None,
    share: float = CALIBRATION_SHARE,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Does ``score`` see more than the amount of content? ``score`` against each content baseline.

    Args:
        rows: one row per output (generation) with the ``score`` and ``baselines`` columns.
        labels: per row ``True`` (hallucinated), ``False`` (in support) or NA (left out).
        calibration: per row, whether its trajectory calibrates (default :func:`calibration_split`
            with ``share``, ``seed``). Every choice is made there: the best baseline (highest AUROC
            on calibration rows; the first listed when calibration lacks a class) and the
            residual fit. All numbers reported are on the other, held-out, trajectories.
        strata: per row, the amount of content the match is exact on (the number of shapes in the
            repainted region); gives the content-matched AUROC (pairs in the same stratum only).
        area: column of the foreground area, for the residual AUROC: ``log score`` regressed on
            ``log(area + 1)`` over the in-support calibration rows (:func:`residual_fit`), the
            held-out residuals ranked.
        clusters: per row, its trajectory (default :func:`ripbench.analysis.trajectory_uid`); every
            interval resamples whole trajectories, the same resamples for all scores (paired).

    Only rows where ``score`` and every baseline have a value and the label is known are used, so
    every AUROC is on the same outputs. Returns a dict: ``score``, ``baselines``, counts
    (``duplicates``, ``valid``, ``trajectories``, ``dropped``: labelled rows without all values) for the
    held-out rows and for calibration (``calibration_duplicates``, ``calibration_valid``,
    ``calibration_trajectories``); ``auroc``: column -> ``{value, lo, hi}``; ``difference``: baseline ->
    ``{value, lo, hi}`` of AUROC(score) - AUROC(baseline); ``best_baseline`` and ``best_reason``;
    ``verdict`` (:func:`verdict` of the difference to the best baseline); ``matched``: column ->
    ``{value, lo, hi}`` with ``matched_pairs`` and ``strata`` (stratum -> pairs); ``residual``:
    ``{value, lo, hi, slope, intercept, n_fit}`` or ``None``; ``status`` ``"ok"`` or why not.
    """
    columns = [score, *[b for b in baselines if b != score]]
    values = np.column_stack([pd.to_numeric(rows[c], errors="coerce").to_numpy(float) for c in columns])
    known = labels.reindex(rows.index).notna().to_numpy()
    complete = known & np.isfinite(values).all(axis=1)
    if calibration is None:
        calibration = calibration_split(clusters if clusters is not None else trajectory_uid(rows), seed, share)
    calibration = np.asarray(calibration, bool)
    cluster_ids = (clusters if clusters is not None else trajectory_uid(rows)).astype(str).to_numpy()
    y_all = labels.reindex(rows.index).fillna(False).astype(bool).to_numpy()
    out: dict[str, Any] = {"score": score, "baselines": columns[1:], "dropped": int((known & ~complete).sum()),
                           "auroc": {}, "difference": {}, "matched": {}, "residual": None, "best_baseline": None,
                           "best_reason": "", "verdict": "cannot be told from", "matched_pairs": 0, "strata": {}}
    cal, held = complete & calibration, complete & ~calibration
    out.update(duplicates=int(y_all[held].sum()), valid=int((~y_all[held]).sum()),
               trajectories=len(set(cluster_ids[held])), calibration_duplicates=int(y_all[cal].sum()),
               calibration_valid=int((~y_all[cal]).sum()), calibration_trajectories=len(set(cluster_ids[cal])))
    # the best baseline, chosen on calibration only
    if len(columns) > 1:
        cal_auc = [fast_auroc(values[cal, j], y_all[cal]) for j in range(1, len(columns))]
        if np.isfinite(cal_auc).any():
            best = int(np.nanargmax(cal_auc)) + 1
            out["best_reason"] = (f"highest AUROC on the calibration trajectories ({out['calibration_duplicates']} "
                                  f"hallucinated, {out['calibration_valid']} in support)")
        else:
            best = 1
            out["best_reason"] = ("the first baseline listed: the calibration trajectories hold "
                                  f"{out['calibration_duplicates']} hallucinated and {out['calibration_valid']} "
                                  "in-support outputs, too few to choose on")
        out["best_baseline"] = columns[best]
    if not (held.any() and out["duplicates"] and out["valid"]):
        out["status"] = (f"needs hallucinated and in-support outputs in the held-out trajectories (got "
                         f"{out['duplicates']} and {out['valid']})")
        return out
    v, y, members = values[held], y_all[held], _cluster_members(cluster_ids[held])
    m = len(columns)

    def one(idx: np.ndarray) -> np.ndarray:
        aucs = [fast_auroc(v[idx, j], y[idx]) for j in range(m)]
        return np.array(aucs + [aucs[0] - a for a in aucs[1:]])

    est, lo, hi = resample_ci(_resampled(members, one, 2 * m - 1), len(members), n_boot=n_boot, ci=ci, seed=seed)
    out["auroc"] = {c: _interval(est, lo, hi, j) for j, c in enumerate(columns)}
    out["difference"] = {c: _interval(est, lo, hi, m + j - 1) for j, c in enumerate(columns) if j}
    if out["best_baseline"] is not None:
        d = out["difference"][out["best_baseline"]]
        out["verdict"] = verdict(d["lo"], d["hi"])
    if strata is not None:
        k = pd.to_numeric(strata.reindex(rows.index), errors="coerce").to_numpy(float)[held]
        ok = np.isfinite(k)

        def matched(idx: np.ndarray) -> np.ndarray:
            idx = idx[ok[idx]]
            return np.array([matched_auroc(v[idx, j], y[idx], k[idx])[0] for j in range(m)])

        est, lo, hi = resample_ci(_resampled(members, matched, m), len(members), n_boot=n_boot, ci=ci, seed=seed)
        out["matched"] = {c: _interval(est, lo, hi, j) for j, c in enumerate(columns)}
        out["matched_pairs"] = matched_auroc(v[ok, 0], y[ok], k[ok])[1]
        out["strata"] = {int(s): matched_auroc(v[ok & (k == s), 0], y[ok & (k == s)], k[ok & (k == s)])[1]
                         for s in np.unique(k[ok])}
    if area is not None and area in rows.columns:
        a = pd.to_numeric(rows[area], errors="coerce").to_numpy(float)
        fit = residual_fit(values[:, 0], a, cal & ~y_all)
        r = fit.pop("residual")[held]
        fitted = a[cal & ~y_all & np.isfinite(a)]
        a_dup = a[held][y & np.isfinite(a[held])]
        # a residual is an extrapolation for hallucinations whose area the fit never saw
        fit["outside_fit"] = int(((a_dup < fitted.min()) | (a_dup > fitted.max())).sum()) if fitted.size else int(
            a_dup.size)
        fit["hallucinated"] = int(a_dup.size)
        finite = np.isfinite(r)

        def residual(idx: np.ndarray) -> np.ndarray:
            idx = idx[finite[idx]]
            return np.array([fast_auroc(r[idx], y[idx])])

        if np.isfinite(fit["slope"]):
            est, lo, hi = resample_ci(_resampled(members, residual, 1), len(members), n_boot=n_boot, ci=ci, seed=seed)
            out["residual"] = {**_interval(est, lo, hi, 0), **fit, "area": area}
        else:
            out["residual"] = {"value": math.nan, "lo": math.nan, "hi": math.nan, **fit, "area": area}
    out["status"] = "ok"
    return out


def _auc_text(d: dict[str, float] | None) -> str:
    if not d or not np.isfinite(d.get("value", math.nan)):
        return "n/a"
    if np.isfinite(d["lo"]) and np.isfinite(d["hi"]):
        return f"{d['value']:.2f} [{d['lo']:.2f}, {d['hi']:.2f}]"
    return f"{d['value']:.2f} (no interval)"


def _diff_text(d: dict[str, float] | None) -> str:
    if not d or not np.isfinite(d.get("value", math.nan)):
        return "n/a"
    if np.isfinite(d["lo"]) and np.isfinite(d["hi"]):
        return f"{d['value']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}]"
    return f"{d['value']:+.2f} (no interval)"


def comparison_sentence(result: dict[str, Any], labels: dict[str, str] | None = None, ci: float = 0.95) -> str:
    """One plain sentence from :func:`baseline_comparison`: the score beats, matches or loses to the best
    content baseline, with both AUROCs, the paired difference and the counts (two decimals, from the data)."""
    name = (labels or {}).get(result["score"], result["score"])
    if result.get("best_baseline") is None:
        return f"{name}: no content baseline to compare with (the run has no baseline column)."
    base = (labels or {}).get(result["best_baseline"], result["best_baseline"])
    if result.get("status") != "ok":
        return f"{name} cannot be compared with the content baseline {base}: {result.get('status')}."
    diff = result["difference"][result["best_baseline"]]
    word = result["verdict"]
    why = {"beats": "the interval of the difference lies above 0", "matches": "the interval of the difference "
           "includes 0", "loses to": "the interval of the difference lies below 0",
           "cannot be told from": "too few trajectories for an interval"}[word]
    return (f"{name} {word} the content baseline {base} (a control with no model in it): held-out AUROC "
            f"{_auc_text(result['auroc'][result['score']])} vs {_auc_text(result['auroc'][result['best_baseline']])}, "
            f"difference {_diff_text(diff)} ({ci:.0%} CI; {why}; {result['duplicates']} hallucinated vs "
            f"{result['valid']} in-support outputs of {result['trajectories']} held-out trajectories; baseline chosen "
            f"by {result['best_reason']})." + _other_baselines(result, word, labels))


def _other_baselines(result: dict[str, Any], word: str, labels: dict[str, str] | None) -> str:
    """A clause naming the held-out baselines that the verdict against the best (calibration-chosen) one does not
    cover: a score that "beats" one baseline must also have every other difference interval above 0 to beat them all."""
    if word != "beats":
        return ""
    weaker = [(b, d) for b, d in result["difference"].items()
              if b != result["best_baseline"] and not (np.isfinite(d.get("lo", math.nan)) and d["lo"] > 0)]
    if not weaker:
        return " It beats every other baseline as well (every paired interval lies above 0)."
    names = "; ".join(f"{(labels or {}).get(b, b)} {_diff_text(d)}" for b, d in weaker)
    return f" It does not beat every baseline on the held-out trajectories: {names}."


def matched_sentence(result: dict[str, Any], labels: dict[str, str] | None = None, what: str = "shapes") -> str:
    """The content-matched and residual AUROCs of :func:`baseline_comparison` in one sentence ('' if neither)."""
    name = (labels or {}).get(result["score"], result["score"])
    parts = []
    if result.get("matched"):
        pairs = result["matched_pairs"]
        if pairs:
            strata = ", ".join(f"{k}: {v}" for k, v in result["strata"].items() if v)
            rule = f" (counting {REGION_COUNTS[result['region_rule']]})" if result.get("region_rule") in REGION_COUNTS \
                else ""
            parts.append(f"against in-support outputs with the same number of {what} in the repainted region{rule} its "
                         f"AUROC is {_auc_text(result['matched'][result['score']])} ({pairs} pairs; pairs per number of "
                         f"{what}: {strata})")
        else:
            parts.append(f"no hallucinated and in-support outputs share a number of {what} in the repainted region, "
                         "so no content-matched AUROC exists (the amount of content alone separates them)")
    res = result.get("residual")
    if res is not None:
        if np.isfinite(res.get("slope", math.nan)):
            text = (f"after removing the foreground area (log score on log area, slope {res['slope']:.2f}, fitted "
                    f"on {res['n_fit']} in-support calibration outputs) the held-out AUROC is {_auc_text(res)}")
            if res.get("outside_fit"):
                text += (f", but {res['outside_fit']} of the {res['hallucinated']} hallucinated outputs have a "
                         "foreground area outside the range the fit saw, so for them the residual is an "
                         "extrapolation and this AUROC says little")
            parts.append(text)
        else:
            parts.append(f"no residual AUROC ({res['n_fit']} in-support calibration outputs, too few or constant area)")
    return f"{name}: " + "; ".join(parts) + "." if parts else ""


def content_evidence(table: pd.DataFrame, specs: Sequence[ScoreSpec] | None = None, *, share: float = CALIBRATION_SHARE,
                     n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> list[dict[str, Any]]:
    """:func:`baseline_comparison` of every detector of ``specs`` (default :func:`score_specs`) against all
    baselines, on the table's ground truth (generation level where possible, :func:`ground_truth`), with
    the number of shapes in the repainted region as strata and the foreground-pixel baseline as area when
    the table has them. Empty when there is no baseline or no ground truth."""
    specs = list(specs) if specs is not None else score_specs(table)
    baselines = [s.column for s in specs if s.is_baseline]
    labels, source = ground_truth(table)
    if not baselines or labels is None:
        return []
    data = observed(table)
    data = data[data["iteration"] > 0]
    generations = generation_truth(table)
    strata = generations["region_shapes"] if generations is not None else None
    area = next((s.column for s in specs if s.is_baseline and s.name == "foreground-pixels"), None)
    out = []
    for spec in specs:
        if spec.is_baseline:
            continue
        result = baseline_comparison(data, spec.column, baselines, labels, strata=strata, area=area, share=share,
                                     n_boot=n_boot, ci=ci, seed=seed)
        result["source"] = source
        result["region_rule"] = generations.attrs.get("region_shapes") if generations is not None else None
        out.append(result)
    return out
