"""Mean curves, drift and its exponential approach, and the collapse rule.

* :func:`bootstrap_curves` - mean of a metric per iteration with a 95% bootstrap band
  (trajectories resampled with replacement, :func:`scipy.stats.bootstrap`, seeded);
* :func:`drift_stats` - drift rate (least-squares slope per iteration), area under the
  drift curve and, where it fits, the exponential approach ``d(t) = a (1 - exp(-k t))`` with
  its R² and a half-life with a bootstrap interval (:func:`exponential_approach`,
  :func:`fit_exponential`);
* :class:`CollapseRule`, :func:`collapse_rule` - the threshold a trajectory collapses at
  (:data:`DEFAULT_THRESHOLDS`, from the metric specs), drawn on the curves and used by
  :mod:`ripbench.analysis.survival`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ResultsError
from ..metrics.registry import METRIC_NAMES, column_name, get_metric_spec, spec_for_column
from ..stats import nanmean_rows, resample_ci
from .loading import iter_groups, metric_direction, observed, present_metrics, trajectory_matrix, with_keys


#: Default collapse thresholds of the built-in metrics (on the distance to the original), in the
#: order :func:`collapse_rule` tries them: LPIPS first, then SSIM, PSNR, MSE for runs without LPIPS.
#: Read from each spec's ``collapse_threshold`` (:mod:`ripbench.metrics.catalog` says why each value);
#: the direction of "worse" comes from the spec too.
def _collapse_thresholds(names: Sequence[str]) -> dict[str, float]:
    """``{"<metric>_orig": collapse threshold}`` of the metrics ``names`` whose spec declares one."""
    out: dict[str, float] = {}
    for name in names:
        threshold = get_metric_spec(name).collapse_threshold
        if threshold is not None:
            out[column_name(name)] = threshold
    return out


DEFAULT_THRESHOLDS: dict[str, float] = _collapse_thresholds(METRIC_NAMES)

#: How to read an LPIPS-alex distance: reference points measured on ripbench's sample photos (see
#: :data:`~ripbench.metrics.catalog.LPIPS_SPEC`), quoted by the report's "How to read this".
LPIPS_REFERENCE_POINTS: dict[str, str] = {"identical": "0", "a small visible change": "about 0.1",
                                          "a heavily blurred copy (4x down/up-sampled)": "0.41-0.45",
                                          "two unrelated photos": "about 0.77"}

#: An exponential approach is fitted only to a mean curve with at least this many iterations after 0.
MIN_FIT_ITERATIONS = 8
#: ... and shown only when it explains at least this share of the curve's variance (R²).
MIN_FIT_R2 = 0.9

_RULE_RE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|=)\s*([-+0-9.eE]+)\s*$")


# -- mean curves -----------------------------------------------------------------------------------

def bootstrap_curves(
    table: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    psnr_cap: float | None = None,
) -> pd.DataFrame:
    """Mean of ``metric`` per group and iteration with a bootstrap confidence band.

    Trajectories (whole curves, not rows) are resampled with replacement ``n_boot`` times
    (:func:`scipy.stats.bootstrap`, generator seeded by ``seed``); ``lo``/``hi`` are the
    percentile interval of the resampled means.

    Returns columns ``*by, iteration, mean, lo, hi, n`` (``n``: trajectories observed there).

    >>> t = pd.DataFrame({"trajectory_id": list("aabb"), "iteration": [0, 1, 0, 1], "m": ["x"] * 4,
    ...                   "lpips_orig": [0.0, 0.2, 0.0, 0.4]})
    >>> bootstrap_curves(t, "lpips_orig", by=["m"])[["iteration", "mean", "n"]].round(6).to_dict("list")
    {'iteration': [0, 1], 'mean': [0.0, 0.3], 'n': [2, 2]}
    """
    data = observed(table)
    out = []
    for key, rows in iter_groups(data, by):
        iterations = np.sort(rows["iteration"].unique())
        y = trajectory_matrix(rows, metric, iterations, psnr_cap)
        mean, lo, hi = resample_ci(nanmean_rows(y), len(y), n_boot=n_boot, ci=ci, seed=seed)
        frame = pd.DataFrame({"iteration": iterations, "mean": mean, "lo": lo, "hi": hi,
                              "n": (~np.isnan(y)).sum(axis=0)})
        out.append(with_keys(by, key, frame))
    columns = [*by, "iteration", "mean", "lo", "hi", "n"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=columns)


# -- drift rate, area and exponential approach -------------------------------------------------------

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


_K_RANGE = (1e-4, 20.0)
_LOG_K_GRID = np.linspace(math.log(_K_RANGE[0]), math.log(_K_RANGE[1]), 241)


def _grid_fit(t: np.ndarray, d: np.ndarray, grid: np.ndarray = _LOG_K_GRID) -> tuple[np.ndarray, np.ndarray]:
    """Best ``log k`` on ``grid`` (refined between grid points) and its ``a`` for each row of ``d``
    (NaN-aware); ``log k`` is NaN where the best is the grid's low end (no saturation).

    For a fixed ``k`` the best ``a`` is linear least squares, so the sum of squares of every
    row at every grid ``k`` is one matrix product.
    """
    d = np.atleast_2d(d)
    seen = ~np.isnan(d)
    d0 = np.where(seen, d, 0.0)
    g = -np.expm1(-np.exp(grid)[:, None] * t[None, :])  # K x T
    dg = d0 @ g.T                                                 # R x K
    with np.errstate(invalid="ignore", divide="ignore"):
        gg = seen.astype(float) @ (g * g).T
        sse = (d0 * d0).sum(axis=1)[:, None] - np.where(gg > 0, dg * dg / gg, 0.0)
        best = np.argmin(np.where(np.isnan(sse), np.inf, sse), axis=1)
        a = np.take_along_axis(dg / gg, best[:, None], axis=1)[:, 0]
        # refine between grid points: vertex of the parabola through the best point and its neighbours
        inner = np.clip(best, 1, len(grid) - 2)
        s0, s1, s2 = (np.take_along_axis(sse, (inner + o)[:, None], axis=1)[:, 0] for o in (-1, 0, 1))
        curvature = s0 - 2 * s1 + s2
        shift = np.where(curvature > 0, 0.5 * (s0 - s2) / curvature, 0.0)
    step = grid[1] - grid[0]
    log_k = grid[inner] + np.clip(np.nan_to_num(shift), -1.0, 1.0) * step
    log_k = np.where((best == 0) | ~np.isfinite(log_k), np.nan, log_k)
    return log_k, a


def fit_exponential(t: np.ndarray, d: np.ndarray, k_range: tuple[float, float] = _K_RANGE) -> tuple[float, float]:
    """Least-squares fit of ``d(t) = a (1 - exp(-k t))``; returns ``(a, k)``.

    ``a`` is the level the drift approaches and ``k`` the rate (half of the way after
    ``ln 2 / k`` iterations). For fixed ``k`` the best ``a`` is linear least squares, so the
    fit is a 1-D search over ``log k`` (grid, then bounded refinement with
    :func:`scipy.optimize.minimize_scalar`). When the curve shows no saturation within the
    observed iterations (best ``k`` at the lower bound) the exponential model is not
    identifiable and ``(nan, nan)`` is returned - use the slope.

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

    grid = np.linspace(math.log(k_range[0]), math.log(k_range[1]), len(_LOG_K_GRID))
    start = float(_grid_fit(t, d, grid)[0][0])
    if math.isnan(start):
        return math.nan, math.nan
    step = grid[1] - grid[0]
    res = minimize_scalar(lambda x: sse(x)[0], bounds=(start - step, start + step), method="bounded",
                          options={"xatol": 1e-6})
    log_k = float(res.x) if res.fun <= sse(start)[0] else start
    return sse(log_k)[1], math.exp(log_k)


def drift_values(metric: str, y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Drift oriented to grow from 0: ``direction * (y - y(0))`` (LPIPS: itself, SSIM: ``1 - y``).

    NaN for metrics without a finite value at iteration 0 (PSNR of identical images).
    """
    start = y[..., t == 0]
    spec = spec_for_column(metric)
    if start.shape[-1] == 0 or not np.all(np.isfinite(start)) or (spec is not None and not spec.fixed_start):
        return np.full_like(y, np.nan)
    return metric_direction(metric) * (y - start[..., :1])


def exponential_approach(metric: str, y: np.ndarray, t: np.ndarray, *, n_boot: int = 1000, ci: float = 0.95,
                         seed: int = 0) -> dict[str, Any]:
    """Fit ``a (1 - exp(-k t))`` to the mean drift of the trajectories ``y`` (rows) - where it fits.

    Returns ``exp_a``, ``exp_k``, ``exp_r2`` (share of the mean curve's variance the fit
    explains), ``half_life`` (``ln 2 / k``) with ``half_life_lo``/``_hi`` (percentile bootstrap:
    trajectories resampled, the curve refitted; ``inf`` when resampled curves show no
    saturation), and ``fit``: ``"ok"`` or why the fit is not shown - fewer than
    :data:`MIN_FIT_ITERATIONS` iterations, a metric without a fixed starting value (PSNR), no
    saturation within the run (the curve is still rising, or its half-life lies beyond the last
    iteration), or R² below :data:`MIN_FIT_R2`. The half-life is NaN unless ``fit == "ok"``.

    >>> t = np.arange(0.0, 21.0)
    >>> y = 0.5 * (1 - np.exp(-0.3 * t)) + np.zeros((4, 1))
    >>> fit = exponential_approach("lpips_orig", y, t, n_boot=50)
    >>> fit["fit"], round(fit["half_life"], 2), round(fit["exp_r2"], 3)
    ('ok', 2.31, 1.0)
    >>> exponential_approach("lpips_orig", y[:, :5], t[:5], n_boot=50)["fit"]
    'too few iterations (4 < 8)'
    """
    nan = math.nan
    record: dict[str, Any] = {"exp_a": nan, "exp_k": nan, "exp_r2": nan, "half_life": nan,
                              "half_life_lo": nan, "half_life_hi": nan}
    drift = drift_values(metric, y, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(drift, axis=0) if len(y) else np.array([])
    steps = int(np.sum(np.isfinite(mean) & (t > 0)))
    if not np.isfinite(drift).any():
        return {**record, "fit": "no fixed starting value"}
    if steps < MIN_FIT_ITERATIONS:
        return {**record, "fit": f"too few iterations ({steps} < {MIN_FIT_ITERATIONS})"}
    a, k = fit_exponential(t, mean)
    if not math.isfinite(k):
        return {**record, "fit": "no saturation (still rising: use the slope)"}
    ok = np.isfinite(mean)
    fitted = a * -np.expm1(-k * t[ok])
    sst = float(np.sum((mean[ok] - mean[ok].mean()) ** 2))
    r2 = 1.0 - float(np.sum((mean[ok] - fitted) ** 2)) / sst if sst > 0 else nan
    record.update(exp_a=a, exp_k=k, exp_r2=r2)
    if math.log(2) / k > float(t.max()):
        return {**record, "fit": "no saturation within the run (half-life beyond the last iteration)"}
    if not r2 >= MIN_FIT_R2:
        return {**record, "fit": f"poor fit (R² {r2:.2f} < {MIN_FIT_R2})"}

    def rate(idx: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            log_k, _ = _grid_fit(t, np.nanmean(drift[idx], axis=1))
        return np.where(np.isnan(log_k), 0.0, np.exp(log_k))  # no saturation: rate 0

    _, k_lo, k_hi = resample_ci(rate, len(y), n_boot=n_boot, ci=ci, seed=seed)
    with np.errstate(divide="ignore"):
        record.update(half_life=math.log(2) / k, half_life_lo=float(math.log(2) / k_hi) if k_hi > 0 else math.inf,
                      half_life_hi=float(math.log(2) / k_lo) if k_lo > 0 else math.inf)
    return {**record, "fit": "ok"}


def drift_stats(
    table: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    psnr_cap: float | None = None,
) -> pd.DataFrame:
    """Drift rate and area under the curve of ``metric`` per group, with bootstrap intervals.

    Columns:

    * ``trajectories``;
    * ``slope`` (``slope_lo``, ``slope_hi``): least-squares slope of the metric per iteration,
      from iteration 1 on (iteration 0 is the original by definition), averaged over the
      group's trajectories; the interval resamples trajectories. Its sign is the metric's
      (SSIM falls as images drift).
    * ``auc`` (``auc_lo``, ``auc_hi``): area under the metric curve from iteration 0,
      divided by the number of iterations (the time-averaged value).
    * ``exp_a``, ``exp_k``, ``exp_r2``, ``half_life`` (``_lo``, ``_hi``), ``fit``: the
      exponential approach of the mean drift where it fits, see :func:`exponential_approach`.
    """
    data = observed(table)
    out = []
    for key, rows in iter_groups(data, by):
        t = np.sort(rows["iteration"].unique()).astype(float)
        y = trajectory_matrix(rows, metric, t, psnr_cap)
        record: dict[str, Any] = {"trajectories": len(y)}
        for name, values in (("slope", trajectory_slopes(np.where(t > 0, y, np.nan), t)),
                             ("auc", trajectory_auc(y, t))):
            est, lo, hi = resample_ci(nanmean_rows(values[:, None]), len(values), n_boot=n_boot, ci=ci, seed=seed)
            record.update({name: float(est[0]), f"{name}_lo": float(lo[0]), f"{name}_hi": float(hi[0])})
        record.update(exponential_approach(metric, y, t, n_boot=n_boot, ci=ci, seed=seed))
        out.append(with_keys(by, key, pd.DataFrame([record])))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=[*by, "trajectories"])


# -- collapse -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CollapseRule:
    """A trajectory has collapsed at the first iteration where ``metric`` crosses ``threshold``.

    ``direction`` is ``">="`` (collapsed when the value is at least the threshold; LPIPS,
    MSE) or ``"<="`` (SSIM, PSNR). The defaults are the metric specs' ``collapse_threshold``
    (:data:`DEFAULT_THRESHOLDS`; :mod:`ripbench.metrics.catalog` says why each value).

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
    :data:`DEFAULT_THRESHOLDS` that the table has (LPIPS, else SSIM, PSNR, MSE), else the first
    plug-in metric of the table whose spec declares a ``collapse_threshold``.

    >>> collapse_rule(None, 0.3).describe()
    'lpips_orig >= 0.3'
    """
    if isinstance(spec, CollapseRule):
        return spec
    if isinstance(spec, str):
        text = spec
        try:
            spec = float(text)
        except ValueError:
            return CollapseRule.parse(text)
    thresholds = DEFAULT_THRESHOLDS
    metric = next(iter(thresholds))
    if table is not None:
        plugins = [s.name for c in table.columns if c.endswith("_orig") and c not in thresholds
                   and (s := spec_for_column(c)) is not None and column_name(s.name) == c]
        thresholds = {**thresholds, **_collapse_thresholds(plugins)}
        found = present_metrics(table, list(thresholds))
        if not found:
            raise ResultsError("the results table has none of the metrics a collapse rule can use "
                               f"({', '.join(thresholds)})")
        metric = found[0]
    threshold = thresholds[metric] if spec is None else float(spec)
    return CollapseRule(metric, threshold, ">=" if metric_direction(metric) > 0 else "<=")


def collapse_rule_note(table: pd.DataFrame, rule: CollapseRule) -> str | None:
    """One line when the rule's metric is a fallback because the run has no LPIPS, else ``None``.

    >>> collapse_rule_note(pd.DataFrame({"ssim_orig": [1.0]}), CollapseRule("ssim_orig", 0.5, "<="))
    'LPIPS is not in this run (no LPIPS weights offline?): collapse is judged by ssim_orig <= 0.5 instead.'
    """
    primary = next(iter(DEFAULT_THRESHOLDS))  # lpips_orig
    if rule.metric == primary or present_metrics(table, [primary]):
        return None
    return (f"LPIPS is not in this run (no LPIPS weights offline?): collapse is judged by {rule.describe()} "
            "instead.")
