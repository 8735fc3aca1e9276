"""Statistics on a results table (pure functions of the tidy per-iteration table).

The table is the one :func:`ripbench.store.load_table` returns (columns explained in
``results/README.md``); :func:`load_runs` loads one or several runs into one table. All
statistics work per group of trajectories, grouped by any columns (``model``,
``mask_label``, ``category``, ``run``, ...):

* :func:`bootstrap_curves` - mean of a metric per iteration with a 95% bootstrap band
  (trajectories resampled with replacement, seeded);
* :func:`drift_stats` - drift rate (least-squares slope per iteration), area under the
  drift curve and the rate ``k`` of an exponential approach ``d(t) = a (1 - exp(-k t))``;
* :func:`collapse_events`, :func:`survival_curves`, :func:`median_collapse` - when does a
  trajectory cross the :class:`CollapseRule` threshold (Kaplan-Meier, censored at the
  last observed iteration);
* :func:`group_summary` - one row per group with all of the above.

Conventions: rows of a failed model call (``failed``) are treated as not observed, so a
failed trajectory is censored at its last good iteration. PSNR of identical images is
``+inf``; it is replaced by :data:`PSNR_CAP_DB` so that means, slopes and areas stay finite.

Example
-------
>>> from ripbench.analysis import load_runs, group_summary   # doctest: +SKIP
>>> group_summary(load_runs("results/quick"))                 # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ResultsError
from .metrics.registry import spec_for_column
from .store import load_table


def summary_metrics(table: pd.DataFrame) -> list[str]:
    """Columns shown in summaries: every metric's whole-image distance to the original (from its
    spec, in table order, plug-ins included), then the hallucination score when present.

    >>> summary_metrics(pd.DataFrame(columns=["mse_orig", "mse_prev", "lpips_orig_never", "halluc_score"]))
    ['mse_orig', 'halluc_score']
    """
    found = [c for c in table.columns if c.endswith("_orig") and spec_for_column(c) is not None]
    return found + [c for c in ("halluc_score",) if c in table.columns]

#: +inf PSNR (identical pixels) is replaced by this many dB. One 8-bit step (1/255) in one
#: channel of one pixel of a 1024 x 1024 image is already ~113 dB, so 100 dB marks "no visible
#: difference" without letting a single identical frame dominate a mean or a slope.
PSNR_CAP_DB = 100.0

#: Columns describing a trajectory (constant along it), in display order.
TRAJECTORY_COLUMNS = ("run", "model", "image_id", "category", "mask_policy", "mask_label", "seed")

#: Default collapse thresholds, per metric, with the direction of "worse".
#:
#: LPIPS-alex >= 0.5 is the primary rule. Measured on the 13 built-in sample photos at 128
#: and 256 px: two *unrelated* photos are 0.77 apart on average (10th percentile 0.63-0.70);
#: a 4x down/up-sampled (heavily blurred but recognisable) copy is 0.41-0.45 from its original,
#: Gaussian noise of std 0.1 is 0.34-0.47, std 0.05 0.13-0.22. So 0.5 means "further from the
#: original than a heavy blur, two thirds of the way to an unrelated picture": the content has
#: been replaced, not just degraded. Runs without LPIPS fall back to SSIM <= 0.5 (blur 0.57,
#: noise 0.1 0.45, unrelated photos 0.10), PSNR <= 15 dB (blur 22.9, unrelated 9.2) or
#: MSE >= 0.03 (the same 15 dB).
DEFAULT_THRESHOLDS: dict[str, float] = {"lpips_orig": 0.5, "ssim_orig": 0.5, "psnr_orig": 15.0, "mse_orig": 0.03}

_RULE_RE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|=)\s*([-+0-9.eE]+)\s*$")


def metric_direction(metric: str) -> int:
    """+1 when a larger value means further from the reference, -1 when larger means closer.

    Read from the metric's spec (``higher_is_better``); columns that are not metrics (the
    hallucination score, mask areas) count as "larger = more".

    >>> metric_direction("ssim_orig"), metric_direction("lpips_prev_current"), metric_direction("halluc_score")
    (-1, 1, 1)
    """
    spec = spec_for_column(metric)
    return 1 if spec is None else spec.direction


def metric_values(table: pd.DataFrame, metric: str, psnr_cap: float = PSNR_CAP_DB) -> np.ndarray:
    """Float values of ``metric``: +inf PSNR -> ``psnr_cap``, other infinities -> NaN.

    >>> metric_values(pd.DataFrame({"psnr_orig": [np.inf, 30.0]}), "psnr_orig").tolist()
    [100.0, 30.0]
    """
    if metric not in table.columns:
        available = ", ".join(c for c in table.columns if spec_for_column(c) is not None or c.startswith("halluc"))
        raise ResultsError(f"metric '{metric}' is not in the results table (available: {available or 'none'})")
    values = pd.to_numeric(table[metric], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    spec = spec_for_column(metric)
    if spec is not None and spec.identity == np.inf:  # PSNR of identical pixels
        values = np.where(values == np.inf, psnr_cap, values)
    return np.where(np.isfinite(values), values, np.nan)


def present_metrics(table: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """The metrics of ``metrics`` that the table has with at least one value."""
    return [m for m in metrics if m in table.columns and table[m].notna().any()]


# -- loading -------------------------------------------------------------------------------------

def _run_labels(run_dirs: Sequence[Path], manifests: Sequence[dict[str, Any]]) -> list[str]:
    labels = [str(m.get("name") or d.name) for d, m in zip(run_dirs, manifests)]
    if len(set(labels)) < len(labels):
        labels = [d.name for d in run_dirs]
    if len(set(labels)) < len(labels):
        labels = [f"{label}#{i + 1}" for i, label in enumerate(labels)]
    return labels


def _metric_names(table: pd.DataFrame) -> set[str]:
    return {c[: -len("_orig")] for c in present_metrics(table, [c for c in table.columns if c.endswith("_orig")])}


def _run_signature(table: pd.DataFrame, manifest: dict[str, Any]) -> dict[str, Any]:
    """The settings two runs must share to be compared on one axis."""
    config = manifest.get("config") or {}
    sizes = {m.get("size") or config.get("size") for m in config.get("models") or []} or {config.get("size")}
    lpips = ((manifest.get("metrics") or {}).get("lpips") or {}).get("net")
    return {
        "iterations": config.get("iterations", int(table["iteration"].max())),
        "image size": ", ".join(str(s) for s in sorted(sizes, key=str)),
        "image fit": config.get("fit"),
        "metrics": ", ".join(sorted(_metric_names(table))),
        "LPIPS backbone": lpips,
    }


def check_compatible(signatures: dict[str, dict[str, Any]]) -> None:
    """Raise :class:`~ripbench.errors.ResultsError` naming every setting in which runs differ.

    ``signatures`` maps run label -> settings (see :func:`load_runs`); ``None`` means unknown
    (e.g. a run without manifest) and matches anything.
    """
    differences = []
    fields = next(iter(signatures.values())).keys() if signatures else []
    for field in fields:
        values = {label: sig[field] for label, sig in signatures.items() if sig.get(field) is not None}
        if len(set(values.values())) > 1:
            shown = ", ".join(f"'{label}' {value}" for label, value in values.items())
            differences.append(f"{field} differ ({shown})")
    if differences:
        raise ResultsError("cannot compare these runs: " + "; ".join(differences))


def load_runs(*run_dirs: str | Path | Sequence[str | Path], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Load one or several run folders into one tidy per-iteration table.

    A ``run`` column names the run of each row (the manifest's run name, else the folder
    name). Runs must agree on iterations, image size and fit, the metric set and the LPIPS
    backbone, else :class:`~ripbench.errors.ResultsError` says which settings differ.

    ``table.attrs`` holds ``manifest`` (the first run's), ``manifests`` and ``run_dirs``
    (both keyed by run label).

    >>> table = load_runs("results/quick", "results/quick-sd")     # doctest: +SKIP
    >>> table.groupby(["run", "model", "iteration"])["lpips_orig"].mean()  # doctest: +SKIP
    """
    flat: list[Path] = []
    for item in run_dirs:
        flat.extend(Path(p) for p in ([item] if isinstance(item, (str, Path)) else item))
    if not flat:
        raise ResultsError("no results folder given")
    tables = [load_table(d) for d in flat]
    manifests = [t.attrs.get("manifest") or {} for t in tables]
    if labels is None:
        labels = _run_labels(flat, manifests)
    elif len(labels) != len(flat) or len(set(labels)) != len(labels):
        raise ResultsError(f"need {len(flat)} distinct run labels, got {list(labels)}")
    check_compatible({label: _run_signature(t, m) for label, t, m in zip(labels, tables, manifests)})
    for label, t in zip(labels, tables):
        t.insert(0, "run", label)
        t.attrs = {}
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    table.attrs = {
        "manifest": manifests[0],
        "manifests": dict(zip(labels, manifests)),
        "run_dirs": {label: str(d) for label, d in zip(labels, flat)},
    }
    return table


# -- grouping helpers ----------------------------------------------------------------------------

def trajectory_keys(table: pd.DataFrame) -> list[str]:
    """Columns that identify one trajectory: ``trajectory_id`` (with ``run`` for combined runs)."""
    return ["run", "trajectory_id"] if "run" in table.columns else ["trajectory_id"]


def trajectory_uid(table: pd.DataFrame) -> pd.Series:
    """One string per row naming its trajectory uniquely, also across combined runs."""
    if "run" in table.columns:
        return table["run"].astype(str) + "/" + table["trajectory_id"].astype(str)
    return table["trajectory_id"].astype(str)


def observed(table: pd.DataFrame) -> pd.DataFrame:
    """Rows with a valid model output (drops the rows of failed model calls)."""
    if "failed" not in table.columns:
        return table
    return table[~table["failed"].astype(bool)]


def iter_groups(table: pd.DataFrame, by: Sequence[str]) -> Iterator[tuple[tuple[Any, ...], pd.DataFrame]]:
    """``(key tuple, rows)`` per group, in sorted order; a single group ``()`` when ``by`` is empty."""
    by = list(by)
    missing = [c for c in by if c not in table.columns]
    if missing:
        raise ResultsError(f"cannot group by {missing}: not columns of the results table")
    if not by:
        yield (), table
        return
    for key, rows in table.groupby(by, sort=True, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), rows


def _matrix(rows: pd.DataFrame, metric: str, iterations: np.ndarray, psnr_cap: float) -> np.ndarray:
    """Trajectories x iterations array of ``metric`` (NaN where not observed)."""
    keys = trajectory_keys(rows)
    frame = rows[[*keys, "iteration"]].copy()
    frame["_v"] = metric_values(rows, metric, psnr_cap)
    wide = frame.pivot_table(index=keys, columns="iteration", values="_v", aggfunc="first", dropna=False)
    return wide.reindex(columns=iterations).to_numpy(dtype=float)


def _bootstrap_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot x n`` resampling counts (each row: n draws with replacement)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)


def _percentile_interval(samples: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Order-statistic percentile interval along axis 0 (works with +inf; NaN rows ignored)."""
    alpha = (1.0 - ci) / 2.0
    ordered = np.sort(samples, axis=0)  # NaN sort last
    valid = np.sum(~np.isnan(samples), axis=0)
    lo_idx = np.clip(np.floor(alpha * valid).astype(int), 0, np.maximum(valid - 1, 0))
    hi_idx = np.clip(np.ceil((1.0 - alpha) * valid).astype(int) - 1, 0, np.maximum(valid - 1, 0))
    lo = np.take_along_axis(ordered, lo_idx[None, ...], axis=0)[0]
    hi = np.take_along_axis(ordered, hi_idx[None, ...], axis=0)[0]
    return np.where(valid > 0, lo, np.nan), np.where(valid > 0, hi, np.nan)


def _with_keys(by: Sequence[str], key: tuple[Any, ...], frame: pd.DataFrame) -> pd.DataFrame:
    for col, value in reversed(list(zip(by, key))):
        frame.insert(0, col, value)
    return frame


# -- mean curves -----------------------------------------------------------------------------------

def bootstrap_curves(
    table: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    psnr_cap: float = PSNR_CAP_DB,
) -> pd.DataFrame:
    """Mean of ``metric`` per group and iteration with a bootstrap confidence band.

    Trajectories (not rows) are resampled with replacement ``n_boot`` times with a generator
    seeded by ``seed``; ``lo``/``hi`` are the percentile interval of the resampled means.

    Returns columns ``*by, iteration, mean, lo, hi, n`` (``n``: trajectories observed there).

    >>> t = pd.DataFrame({"trajectory_id": list("aabb"), "iteration": [0, 1, 0, 1], "m": ["x"] * 4,
    ...                   "lpips_orig": [0.0, 0.2, 0.0, 0.4]})
    >>> bootstrap_curves(t, "lpips_orig", by=["m"])[["iteration", "mean", "n"]].to_dict("list")
    {'iteration': [0, 1], 'mean': [0.0, 0.30000000000000004], 'n': [2, 2]}
    """
    data = observed(table)
    out = []
    for key, rows in iter_groups(data, by):
        iterations = np.sort(rows["iteration"].unique())
        y = _matrix(rows, metric, iterations, psnr_cap)
        seen = ~np.isnan(y)
        count = seen.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(y, axis=0) / count
            w = _bootstrap_weights(len(y), n_boot, seed)
            boot = (w @ np.nan_to_num(y)) / (w @ seen)
        lo, hi = _percentile_interval(boot, ci)
        frame = pd.DataFrame({"iteration": iterations, "mean": mean, "lo": lo, "hi": hi, "n": count})
        out.append(_with_keys(by, key, frame))
    columns = [*by, "iteration", "mean", "lo", "hi", "n"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=columns)


# -- drift rate and area -----------------------------------------------------------------------------

def trajectory_slopes(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of ``y`` (trajectories x iterations) vs ``t``, NaN-aware.

    >>> trajectory_slopes(np.array([[0.0, 0.1, 0.2, np.nan]]), np.arange(4.0)).round(6).tolist()
    [0.1]
    """
    seen = ~np.isnan(y)
    n = seen.sum(axis=1)
    tt = np.broadcast_to(t, y.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_mean = np.where(seen, tt, 0).sum(axis=1) / n
        y_mean = np.nansum(y, axis=1) / n
        dt = np.where(seen, tt - t_mean[:, None], 0.0)
        dy = np.where(seen, y - y_mean[:, None], 0.0)
        slope = (dt * dy).sum(axis=1) / (dt * dt).sum(axis=1)
    return np.where(n >= 2, slope, np.nan)


def trajectory_auc(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Area under each row's curve (trapezoids over its observed points) divided by its span.

    The result is the time-averaged value of the curve, so it is comparable between
    trajectories of different lengths (e.g. failed ones) and, for LPIPS, lies in [0, 1].

    >>> trajectory_auc(np.array([[0.0, 1.0, 1.0]]), np.arange(3.0)).tolist()
    [0.75]
    """
    out = np.full(len(y), np.nan)
    for i, row in enumerate(y):
        seen = ~np.isnan(row)
        if seen.sum() >= 2:
            ts = t[seen]
            out[i] = np.trapezoid(row[seen], ts) / (ts[-1] - ts[0])
    return out


def fit_exponential(t: np.ndarray, d: np.ndarray, k_range: tuple[float, float] = (1e-4, 20.0)) -> tuple[float, float]:
    """Least-squares fit of ``d(t) = a (1 - exp(-k t))``; returns ``(a, k)``.

    ``a`` is the level the drift approaches and ``k`` the rate (half of the way after
    ``ln 2 / k`` iterations). For fixed ``k`` the best ``a`` is linear least squares, so the
    fit is a 1-D search over ``log k`` (grid, then bounded refinement). When the curve shows
    no saturation within the observed iterations (best ``k`` at the lower bound) the
    exponential model is not identifiable and ``(nan, nan)`` is returned - use the slope.

    >>> t = np.arange(0.0, 30.0)
    >>> a, k = fit_exponential(t, 0.6 * (1 - np.exp(-0.2 * t)))
    >>> round(a, 3), round(k, 3)
    (0.6, 0.2)
    """
    from scipy.optimize import minimize_scalar

    t = np.asarray(t, dtype=float)
    d = np.asarray(d, dtype=float)
    ok = np.isfinite(t) & np.isfinite(d)
    t, d = t[ok], d[ok]
    if len(t) < 3 or np.ptp(t) == 0:
        return math.nan, math.nan

    def sse(log_k: float) -> tuple[float, float]:
        g = -np.expm1(-np.exp(log_k) * t)
        gg = float(g @ g)
        a = float(g @ d) / gg if gg > 0 else 0.0
        return float(np.sum((d - a * g) ** 2)), a

    grid = np.linspace(math.log(k_range[0]), math.log(k_range[1]), 241)
    errors = np.array([sse(x)[0] for x in grid])
    best = int(np.argmin(errors))
    if best == 0:
        return math.nan, math.nan
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    res = minimize_scalar(lambda x: sse(x)[0], bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    log_k = float(res.x) if res.fun <= errors[best] else float(grid[best])
    return sse(log_k)[1], math.exp(log_k)


def drift_values(metric: str, y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Drift oriented to grow from 0: ``direction * (y - y(0))`` (LPIPS: itself, SSIM: ``1 - y``).

    NaN for metrics without a finite value at iteration 0 (PSNR of identical images).
    """
    start = y[..., t == 0]
    if start.shape[-1] == 0 or not np.all(np.isfinite(start)) or metric.startswith("psnr"):
        return np.full_like(y, np.nan)
    return metric_direction(metric) * (y - start[..., :1])


def drift_stats(
    table: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    psnr_cap: float = PSNR_CAP_DB,
) -> pd.DataFrame:
    """Drift rate and area under the curve of ``metric`` per group, with bootstrap intervals.

    Columns:

    * ``slope`` (``slope_lo``, ``slope_hi``): least-squares slope of the metric per iteration,
      from iteration 1 on (iteration 0 is the original by definition), averaged over the
      group's trajectories; the interval resamples trajectories.
    * ``auc`` (``auc_lo``, ``auc_hi``): area under the metric curve from iteration 0,
      divided by the number of iterations (the time-averaged value).
    * ``exp_a``, ``exp_k``, ``half_life``: fit of ``a (1 - exp(-k t))`` to the mean drift
      curve (:func:`drift_values`, :func:`fit_exponential`); NaN when not identifiable.
    """
    data = observed(table)
    out = []
    for key, rows in iter_groups(data, by):
        t = np.sort(rows["iteration"].unique()).astype(float)
        y = _matrix(rows, metric, t, psnr_cap)
        slopes = trajectory_slopes(np.where(t > 0, y, np.nan), t)
        aucs = trajectory_auc(y, t)
        w = _bootstrap_weights(len(y), n_boot, seed)
        record: dict[str, Any] = {"trajectories": len(y)}
        for name, values in (("slope", slopes), ("auc", aucs)):
            ok = ~np.isnan(values)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot = (w[:, ok] @ values[ok]) / w[:, ok].sum(axis=1)
            lo, hi = _percentile_interval(boot[:, None], ci)
            record.update({name: float(np.mean(values[ok])) if ok.any() else math.nan,
                           f"{name}_lo": float(lo[0]), f"{name}_hi": float(hi[0])})
        with warnings.catch_warnings():  # all-NaN columns (e.g. PSNR drift) give NaN silently
            warnings.simplefilter("ignore", RuntimeWarning)
            mean_drift = np.nanmean(drift_values(metric, y, t), axis=0) if len(y) else np.array([])
        a, k = fit_exponential(t, mean_drift) if len(mean_drift) else (math.nan, math.nan)
        record.update(exp_a=a, exp_k=k, half_life=math.log(2) / k if k and np.isfinite(k) else math.nan)
        out.append(_with_keys(by, key, pd.DataFrame([record])))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=[*by, "trajectories"])


# -- collapse -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CollapseRule:
    """A trajectory has collapsed at the first iteration where ``metric`` crosses ``threshold``.

    ``direction`` is ``">="`` (collapsed when the value is at least the threshold; LPIPS,
    MSE) or ``"<="`` (SSIM, PSNR). See :data:`DEFAULT_THRESHOLDS` for the defaults and why.

    >>> rule = CollapseRule.parse("ssim_orig<=0.4")
    >>> rule.describe(), rule.crossed(np.array([0.9, 0.4, np.nan])).tolist()
    ('ssim_orig <= 0.4', [False, True, False])
    """

    metric: str = "lpips_orig"
    threshold: float = DEFAULT_THRESHOLDS["lpips_orig"]
    direction: str = ">="

    def __post_init__(self) -> None:
        if self.direction not in (">=", "<="):
            raise ResultsError(f"collapse direction must be '>=' or '<=', got {self.direction!r}")
        if not math.isfinite(self.threshold):
            raise ResultsError(f"collapse threshold must be a finite number, got {self.threshold!r}")

    def crossed(self, values: np.ndarray) -> np.ndarray:
        """Boolean array: where ``values`` are past the threshold (NaN never is)."""
        with np.errstate(invalid="ignore"):
            hit = values >= self.threshold if self.direction == ">=" else values <= self.threshold
        return hit & ~np.isnan(values)

    def describe(self) -> str:
        return f"{self.metric} {self.direction} {self.threshold:g}"

    @classmethod
    def parse(cls, text: str) -> CollapseRule:
        """``"lpips_orig>=0.5"``, ``"ssim_orig<=0.3"``; ``"metric=value"`` takes the metric's direction."""
        match = _RULE_RE.match(text)
        if not match:
            raise ResultsError(f"cannot read collapse rule {text!r}; write e.g. 'lpips_orig>=0.5' or '0.4'")
        metric, op, value = match.groups()
        if op == "=":
            op = ">=" if metric_direction(metric) > 0 else "<="
        return cls(metric, float(value), op)


def collapse_rule(table: pd.DataFrame | None = None, spec: str | float | CollapseRule | None = None) -> CollapseRule:
    """The collapse rule to use for ``table``.

    ``spec`` may be a :class:`CollapseRule`, a rule string (``"ssim_orig<=0.4"``), or a number
    (a threshold for the default metric). The default metric is the first of
    :data:`DEFAULT_THRESHOLDS` that the table has (LPIPS, else SSIM, PSNR, MSE).

    >>> collapse_rule(None, 0.3).describe()
    'lpips_orig >= 0.3'
    """
    if isinstance(spec, CollapseRule):
        return spec
    if isinstance(spec, str):
        try:
            spec = float(spec)
        except ValueError:
            return CollapseRule.parse(spec)
    metric = "lpips_orig"
    if table is not None:
        found = present_metrics(table, list(DEFAULT_THRESHOLDS))
        if not found:
            raise ResultsError("the results table has none of the metrics a collapse rule can use "
                               f"({', '.join(DEFAULT_THRESHOLDS)})")
        metric = found[0]
    threshold = DEFAULT_THRESHOLDS[metric] if spec is None else float(spec)
    return CollapseRule(metric, threshold, ">=" if metric_direction(metric) > 0 else "<=")


def collapse_events(table: pd.DataFrame, rule: CollapseRule | str | float | None = None,
                    psnr_cap: float = PSNR_CAP_DB) -> pd.DataFrame:
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


def _km(times: np.ndarray, events: np.ndarray, grid: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Kaplan-Meier survival on ``grid`` for each row of ``weights`` (resampling counts)."""
    at_risk = weights @ (times[:, None] >= grid[None, :]).astype(float)
    dead = weights @ ((times[:, None] == grid[None, :]) & events[:, None]).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        hazard = np.where(at_risk > 0, dead / at_risk, 0.0)
    return np.cumprod(1.0 - hazard, axis=-1), at_risk, dead


def _median_time(survival: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """First grid time where survival <= 0.5 (per row); +inf when never reached."""
    below = survival <= 0.5
    return np.where(below.any(axis=-1), grid[np.argmax(below, axis=-1)], np.inf)


def _event_groups(table: pd.DataFrame, rule: CollapseRule | str | float | None, by: Sequence[str],
                  psnr_cap: float) -> Iterator[tuple[tuple[Any, ...], pd.DataFrame]]:
    events = collapse_events(table, rule, psnr_cap)
    yield from iter_groups(events, by)


def survival_curves(
    table: pd.DataFrame,
    rule: CollapseRule | str | float | None = None,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    psnr_cap: float = PSNR_CAP_DB,
) -> pd.DataFrame:
    """Kaplan-Meier share of trajectories not yet collapsed after each iteration, per group.

    A trajectory that never crosses the threshold is censored at its last observed
    iteration (the end of the run, or its last good iteration before a model failure): it
    counts as at risk up to and including that iteration and then leaves the risk set.

    Columns: ``*by, iteration, at_risk, collapsed`` (events at that iteration), ``survival``,
    ``lo``, ``hi`` (bootstrap band, trajectories resampled).
    """
    rule = collapse_rule(table, rule)
    grid = np.arange(0, int(table["iteration"].max()) + 1)
    out = []
    for key, ev in _event_groups(table, rule, by, psnr_cap):
        times, events = ev["iteration"].to_numpy(), ev["collapsed"].to_numpy(bool)
        surv, at_risk, dead = _km(times, events, grid, np.ones((1, len(ev))))
        boot, _, _ = _km(times, events, grid, _bootstrap_weights(len(ev), n_boot, seed))
        lo, hi = _percentile_interval(boot, ci)
        frame = pd.DataFrame({"iteration": grid, "at_risk": at_risk[0].astype(int), "collapsed": dead[0].astype(int),
                              "survival": surv[0], "lo": lo, "hi": hi})
        out.append(_with_keys(by, key, frame))
    return pd.concat(out, ignore_index=True)


def median_collapse(
    table: pd.DataFrame,
    rule: CollapseRule | str | float | None = None,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    psnr_cap: float = PSNR_CAP_DB,
) -> pd.DataFrame:
    """Median collapse iteration per group (Kaplan-Meier) with a bootstrap percentile interval.

    The median is the first iteration where the survival curve is at or below 0.5; ``inf``
    when fewer than half of the trajectories collapse within the run (also for interval
    ends). Columns: ``*by, trajectories, collapsed`` (count), ``collapsed_share``,
    ``median_collapse``, ``median_collapse_lo``, ``median_collapse_hi``.
    """
    rule = collapse_rule(table, rule)
    grid = np.arange(0, int(table["iteration"].max()) + 1)
    out = []
    for key, ev in _event_groups(table, rule, by, psnr_cap):
        times, events = ev["iteration"].to_numpy(), ev["collapsed"].to_numpy(bool)
        surv, _, _ = _km(times, events, grid, np.ones((1, len(ev))))
        boot, _, _ = _km(times, events, grid, _bootstrap_weights(len(ev), n_boot, seed))
        lo, hi = _percentile_interval(_median_time(boot, grid)[:, None].astype(float), ci)
        record = {"trajectories": len(ev), "collapsed": int(events.sum()), "collapsed_share": float(events.mean()),
                  "median_collapse": float(_median_time(surv, grid)[0]),
                  "median_collapse_lo": float(lo[0]), "median_collapse_hi": float(hi[0])}
        out.append(_with_keys(by, key, pd.DataFrame([record])))
    return pd.concat(out, ignore_index=True)


# -- summaries ------------------------------------------------------------------------------------

def summary_table(
    table: pd.DataFrame,
    by: Sequence[str] = ("model", "mask_label"),
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per group: trajectories, failures, and each metric's mean at the last iteration.

    ``metrics`` default: :func:`summary_metrics`.

    >>> t = pd.DataFrame({"model": ["m"] * 4, "mask_label": ["g"] * 4, "trajectory_id": ["a", "a", "b", "b"],
    ...                   "iteration": [0, 1, 0, 1], "lpips_orig": [0, 0.25, 0, 0.75], "failed": [False] * 4})
    >>> summary_table(t)[["model", "trajectories", "lpips_orig@1"]].to_dict("records")
    [{'model': 'm', 'trajectories': 2, 'lpips_orig@1': 0.5}]
    """
    by = list(by)
    last = table["iteration"].max()
    final = table[table["iteration"] == last].replace([np.inf, -np.inf], np.nan)
    present = present_metrics(table, summary_metrics(table) if metrics is None else metrics)
    out = table.groupby(by).agg(trajectories=("trajectory_id", "nunique")).reset_index()
    if "failed" in table.columns:
        fails = table[table["failed"]].groupby(by)["trajectory_id"].nunique().rename("failed")
        out = out.merge(fails, on=by, how="left").fillna({"failed": 0})
        out["failed"] = out["failed"].astype(int)
    if present:
        means = final.groupby(by)[present].mean().add_suffix(f"@{last}").reset_index()
        out = out.merge(means, on=by, how="left")
    return out


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
    rule: CollapseRule | str | float | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    psnr_cap: float = PSNR_CAP_DB,
) -> pd.DataFrame:
    """Everything per group in one row.

    Columns: ``*by``, ``trajectories``, ``failed``; ``<metric>@<i>`` (mean at iteration
    ``i`` of :func:`clip_iterations`, for each of ``metrics`` present, default
    :func:`summary_metrics`); for the rule's metric
    ``<m>_slope``/``_lo``/``_hi``, ``<m>_auc``/``_lo``/``_hi``, ``<m>_exp_k``, ``<m>_half_life``
    (see :func:`drift_stats`); ``collapsed``, ``collapsed_share``, ``median_collapse`` and its
    interval (see :func:`median_collapse`); ``halluc_slope`` (``_lo``, ``_hi``; trend of the
    hallucination score per iteration) when the table has hallucination scores.
    ``table.attrs`` of the result: ``rule`` (text) and ``iterations`` (the ``at`` used).
    """
    by = list(by)
    rule = collapse_rule(table, rule)
    data = observed(table)
    uid = trajectory_uid(table)
    out = uid.groupby([table[c] for c in by], sort=True, dropna=False).nunique().rename("trajectories").reset_index()
    if "failed" in table.columns:
        bad = table["failed"].astype(bool)
        fails = uid[bad].groupby([table.loc[bad, c] for c in by]).nunique().rename("failed").reset_index()
        out = out.merge(fails, on=by, how="left").fillna({"failed": 0})
        out["failed"] = out["failed"].astype(int)
    iterations = clip_iterations(at, int(table["iteration"].max()))
    present = present_metrics(table, summary_metrics(table) if metrics is None else metrics)
    if present:
        rows = data[data["iteration"].isin(iterations)][[*by, "iteration"]].copy()
        for m in present:
            rows[m] = metric_values(data[data["iteration"].isin(iterations)], m, psnr_cap)
        wide = rows.groupby([*by, "iteration"], dropna=False)[present].mean().unstack("iteration")
        wide.columns = [f"{m}@{i}" for m, i in wide.columns]
        order = [f"{m}@{i}" for m in present for i in iterations if f"{m}@{i}" in wide.columns]
        out = out.merge(wide[order].reset_index(), on=by, how="left")
    stats_kw: dict[str, Any] = {"n_boot": n_boot, "ci": ci, "seed": seed, "psnr_cap": psnr_cap}
    drift = drift_stats(table, rule.metric, by, **stats_kw).drop(columns="trajectories")
    drift = drift.drop(columns=["exp_a"]).rename(columns={c: f"{rule.metric}_{c}" for c in drift.columns
                                                          if c not in by})
    out = out.merge(drift, on=by, how="left")
    med = median_collapse(table, rule, by, **stats_kw).drop(columns="trajectories")
    out = out.merge(med, on=by, how="left")
    if present_metrics(table, ["halluc_score"]):
        hall = drift_stats(table, "halluc_score", by, **stats_kw)[[*by, "slope", "slope_lo", "slope_hi"]]
        out = out.merge(hall.rename(columns={"slope": "halluc_slope", "slope_lo": "halluc_slope_lo",
                                             "slope_hi": "halluc_slope_hi"}), on=by, how="left")
    out.attrs = {"rule": rule.describe(), "iterations": iterations}
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
            out[col] = [_fmt(v, digits, col) if _same_inf(v, a, b)
                        else f"{_fmt(v, digits, col)} [{_fmt(a, digits, col)}, {_fmt(b, digits, col)}]"
                        for v, a, b in zip(values, summary[lo], summary[hi])]
        elif pd.api.types.is_float_dtype(values):
            out[col] = [_fmt(v, digits, col) for v in values]
        else:
            out[col] = values.astype(str)
    return out


def _same_inf(*values: Any) -> bool:
    return all(isinstance(v, float) and math.isinf(v) for v in values)


def _fmt(value: Any, digits: int, column: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "not reached" if "collapse" in column else ("inf" if value > 0 else "-inf")
    if column.startswith("median_collapse") or column == "collapsed":
        return f"{value:.0f}"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"


#: ``ripbench.load(run_dir, ...)``: the public name of :func:`load_runs`.
load = load_runs
