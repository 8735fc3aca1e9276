"""Statistics on a results table (pure functions of the tidy per-iteration table).

The table is the one :func:`ripbench.store.load_table` returns (columns explained in
``results/README.md``); :func:`load_runs` loads one or several runs into one table, on what
they share. All statistics work per group of trajectories, grouped by any columns
(``model``, ``mask_label``, ``category``, ``run``, ...):

* :func:`bootstrap_curves` - mean of a metric per iteration with a 95% bootstrap band
  (trajectories resampled with replacement, :func:`scipy.stats.bootstrap`, seeded);
* :func:`drift_stats` - drift rate (least-squares slope per iteration), area under the
  drift curve and, where it fits, the exponential approach ``d(t) = a (1 - exp(-k t))`` with
  its R² and a half-life with a bootstrap interval;
* :func:`collapse_events`, :func:`survival_curves`, :func:`median_collapse`,
  :func:`logrank_tests` - when does a trajectory cross the :class:`CollapseRule` threshold
  (Kaplan-Meier via :func:`scipy.stats.ecdf` on :class:`scipy.stats.CensoredData`, censored at
  the last observed iteration; log-rank tests via :func:`scipy.stats.logrank`);
* :func:`region_summary` - drift in the current / outside / ever / never-masked regions;
* :func:`failures` - the trajectories whose model call failed or whose metric is missing;
* :func:`group_summary` - one row per group with the main numbers and their intervals.

Paired model comparisons are in :mod:`ripbench.compare`, the hallucination section's numbers
in :mod:`ripbench.hallucination_stats`.

Conventions: rows of a failed model call (``failed``) are treated as not observed, so a
failed trajectory is censored at its last good iteration. PSNR of identical images is
``+inf``; it is replaced by :data:`PSNR_CAP_DB` so that means, slopes and areas stay finite.

Example
-------
>>> from ripbench.analysis import load_runs, group_summary   # doctest: +SKIP
>>> group_summary(load_runs("results/quick"))                 # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .detectors import adopt_recorded_detectors
from .errors import ResultsError
from .metrics.catalog import PSNR_SPEC
from .metrics.registry import (
    METRIC_NAMES,
    adopt_recorded_specs,
    column_name,
    get_metric_spec,
    spec_for_column,
)
from .stats import nanmean_rows, proportion_ci, resample_ci
from .store import load_table


def summary_metrics(table: pd.DataFrame) -> list[str]:
    """Columns shown in summaries: every metric's whole-image distance to the original (from its
    spec, in table order, plug-ins included), then the hallucination score when present.

    >>> summary_metrics(pd.DataFrame(columns=["mse_orig", "mse_prev", "lpips_orig_never", "halluc_score"]))
    ['mse_orig', 'halluc_score']
    """
    found = [c for c in table.columns if c.endswith("_orig") and spec_for_column(c) is not None]
    return found + [c for c in ("halluc_score",) if c in table.columns]

#: +inf PSNR (identical pixels) is counted as this many dB (the PSNR spec's ``inf_value``, which
#: says why); each metric's own ``inf_value`` is used unless a function's ``psnr_cap`` overrides it.
PSNR_CAP_DB: float = PSNR_SPEC.inf_value

#: Columns describing a trajectory (constant along it), in display order.
TRAJECTORY_COLUMNS = ("run", "model", "image_id", "category", "mask_policy", "mask_label", "seed")

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


def metric_direction(metric: str) -> int:
    """+1 when a larger value means further from the reference, -1 when larger means closer.

    Read from the metric's spec (``higher_is_better``); columns that are not metrics (the
    hallucination score, mask areas) count as "larger = more".

    >>> metric_direction("ssim_orig"), metric_direction("lpips_prev_current"), metric_direction("halluc_score")
    (-1, 1, 1)
    """
    spec = spec_for_column(metric)
    return 1 if spec is None else spec.direction


def metric_values(table: pd.DataFrame, metric: str, psnr_cap: float | None = None) -> np.ndarray:
    """Float values of ``metric``: +inf of a metric whose identity is +inf (PSNR) -> its spec's
    ``inf_value`` (or ``psnr_cap`` when given), other infinities -> NaN.

    >>> metric_values(pd.DataFrame({"psnr_orig": [np.inf, 30.0]}), "psnr_orig").tolist()
    [100.0, 30.0]
    """
    if metric not in table.columns:
        available = ", ".join(c for c in table.columns if spec_for_column(c) is not None or c.startswith("halluc"))
        raise ResultsError(f"metric '{metric}' is not in the results table (available: {available or 'none'})")
    values = pd.to_numeric(table[metric], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    spec = spec_for_column(metric)
    if spec is not None:  # PSNR of identical pixels: counted as a finite value
        values = spec.finite_values(values, psnr_cap)
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
    """The settings that decide whether two runs' numbers are on one scale (image sizes: of the
    models that have rows in ``table``)."""
    config = manifest.get("config") or {}
    shown = set(table["model"].astype(str)) if "model" in table.columns else set()
    sizes = {m.get("size") or config.get("size") for m in config.get("models") or []
             if str(m.get("label") or m.get("name")) in shown or not shown} or {config.get("size")}
    lpips = ((manifest.get("metrics") or {}).get("lpips") or {}).get("net")
    return {
        "iterations": config.get("iterations", int(table["iteration"].max())),
        "image size": ", ".join(str(s) for s in sorted(sizes, key=str)),
        "image fit": config.get("fit"),
        "metrics": ", ".join(sorted(_metric_names(table))),
        "LPIPS backbone": lpips,
        "random keys": manifest.get("random_keys"),
    }


#: What a difference in a signature field means for the comparison.
_CONSEQUENCES = {
    "iterations": "compared on the iterations all runs have",
    "image size": "distances at different sizes are not on one scale, and masks differ, so no trajectory is "
                  "paired across these runs",
    "image fit": "the images differ, so no trajectory is paired across these runs",
    "metrics": "a metric missing from a run is blank for its groups",
    "LPIPS backbone": "LPIPS values of different backbones are not on one scale",
    "random keys": "masks and noise are drawn differently, so no trajectory is paired across these runs",
}
#: Signature fields that must agree for trajectories of two runs to be paired.
PAIRING_FIELDS = ("image size", "image fit", "random keys")
#: Config fields not worth reporting as a difference.
_IGNORED_CONFIG = {"name", "description", "output_dir"}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def _short(value: Any, width: int = 60) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        value = [str(v.get("label") or v["name"]) for v in value]  # a list of models: their names
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def run_differences(signatures: dict[str, dict[str, Any]], configs: dict[str, dict[str, Any]] | None = None,
                    limit: int = 8) -> list[str]:
    """Plain sentences naming every setting in which runs differ, and what that means here.

    ``signatures`` maps run label -> settings (see :func:`load_runs`); ``None`` means unknown (a
    run without manifest) and matches anything. ``configs`` (run label -> resolved config) adds
    the other config fields that differ, at most ``limit`` of them.

    >>> run_differences({"a": {"iterations": 20}, "b": {"iterations": 10}})
    ["iterations differ ('a' 20, 'b' 10): compared on the iterations all runs have."]
    """
    lines = []
    fields = next(iter(signatures.values())).keys() if signatures else []
    for field in fields:
        values = {label: sig[field] for label, sig in signatures.items() if sig.get(field) is not None}
        if len(set(map(str, values.values()))) > 1:
            shown = ", ".join(f"'{label}' {value}" for label, value in values.items())
            lines.append(f"{field} differ ({shown}): {_CONSEQUENCES.get(field, 'see the settings')}.")
    if configs and len(configs) > 1:
        flat = {label: _flatten(config) for label, config in configs.items()}
        keys = sorted(set().union(*flat.values()) - {"iterations", "size", "fit"})
        differing = [k for k in keys if k.split(".")[0] not in _IGNORED_CONFIG
                     and len({json.dumps(f.get(k), default=str, sort_keys=True) for f in flat.values()}) > 1]
        for key in differing[:limit]:
            shown = "; ".join(f"'{label}' {_short(f.get(key, 'not set'))}" for label, f in flat.items())
            lines.append(f"config field {key} differs: {shown}.")
        if len(differing) > limit:
            lines.append(f"{len(differing) - limit} more config fields differ (see the settings).")
    return lines


def check_compatible(signatures: dict[str, dict[str, Any]]) -> None:
    """Raise :class:`~ripbench.errors.ResultsError` naming every setting in which runs differ
    (for callers that want identical settings; :func:`load_runs` compares what runs share)."""
    lines = run_differences(signatures)
    if lines:
        raise ResultsError("cannot compare these runs: " + " ".join(lines))


def _align(tables: list[pd.DataFrame], labels: Sequence[str]) -> tuple[list[pd.DataFrame], list[str]]:
    """Restrict runs to the iterations and the (image, mask) combinations that every run has."""
    notes = []
    lasts = {label: int(t["iteration"].max()) for label, t in zip(labels, tables)}
    last = min(lasts.values())
    if len(set(lasts.values())) > 1:
        shown = ", ".join(f"'{label}' 0-{n}" for label, n in lasts.items())
        notes.append(f"Iterations differ ({shown}): everything is compared on iterations 0-{last}.")
        tables = [t[t["iteration"] <= last] for t in tables]
    combos = [set(zip(t["image_id"].astype(str), t["mask_label"].astype(str))) for t in tables]
    shared = set.intersection(*combos)
    if not shared:
        notes.append("The runs share no image and mask combination: their groups are shown side by side, "
                     "and no trajectory is paired across runs.")
        return tables, notes
    out = []
    for label, t in zip(labels, tables):
        keep = pd.Series(list(zip(t["image_id"].astype(str), t["mask_label"].astype(str))), index=t.index).isin(shared)
        dropped = t.loc[~keep]
        if len(dropped):
            n = dropped["trajectory_id"].nunique()
            what = ", ".join(sorted(f"{m} on {dropped.loc[dropped['model'] == m, 'image_id'].nunique()} images "
                                    f"({', '.join(sorted(dropped.loc[dropped['model'] == m, 'mask_label'].astype(str).unique()))})"
                                    for m in dropped["model"].unique()))
            notes.append(f"Left out of run '{label}': {n} trajectories whose image and mask not every run has "
                         f"({what}).")
        out.append(t.loc[keep])
    return out, notes


def load_runs(*run_dirs: str | Path | Sequence[str | Path], labels: Sequence[str] | None = None,
              align: bool = True, strict: bool = False) -> pd.DataFrame:
    """Load one or several run folders into one tidy per-iteration table.

    A ``run`` column names the run of each row (the manifest's run name, else the folder
    name). Several runs are compared on what they share (``align=True``): the iterations every
    run has, and the (image, mask) combinations every run has (when they share any). What
    differs - iterations, image size, metrics, LPIPS backbone, other config fields - is stated in
    ``table.attrs["differences"]`` (plain sentences) instead of refusing; ``strict=True`` refuses
    runs whose settings differ, naming them (:class:`~ripbench.errors.ResultsError`).

    ``table.attrs`` holds ``manifest`` (the first run's), ``manifests`` and ``run_dirs`` (both
    keyed by run label), ``differences`` and ``pairing`` (run label -> a number; runs with the
    same number drew the same masks and noise for the same image, mask and seed, so their
    trajectories can be paired).

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
    for manifest in manifests:  # plug-in metrics not installed here: their recorded specs give direction and label
        adopt_recorded_specs(manifest.get("metrics"))
        adopt_recorded_detectors(manifest)
    if labels is None:
        labels = _run_labels(flat, manifests)
    elif len(labels) != len(flat) or len(set(labels)) != len(labels):
        raise ResultsError(f"need {len(flat)} distinct run labels, got {list(labels)}")
    if strict:
        check_compatible({label: _run_signature(t, m) for label, t, m in zip(labels, tables, manifests)})
    notes: list[str] = []
    if len(tables) > 1 and align:
        tables, notes = _align(tables, labels)
    signatures = {label: _run_signature(t, m) for label, t, m in zip(labels, tables, manifests)}
    if notes and notes[0].startswith("Iterations differ"):
        for sig in signatures.values():
            sig.pop("iterations")  # said, with what follows from it, by the alignment's first note
    configs = {label: m.get("config") or {} for label, m in zip(labels, manifests)}
    differences = run_differences(signatures, configs) + notes
    pairing: dict[str, int] = {}
    classes: list[tuple[str, ...]] = []
    for label in labels:
        key = tuple(str(signatures[label].get(f)) for f in PAIRING_FIELDS)
        if key not in classes:
            classes.append(key)
        pairing[label] = classes.index(key)
    for label, t in zip(labels, tables):
        t.insert(0, "run", label)
        t.attrs = {}
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0].reset_index(drop=True)
    table.attrs = {
        "manifest": manifests[0],
        "manifests": dict(zip(labels, manifests)),
        "run_dirs": {label: str(d) for label, d in zip(labels, flat)},
        "differences": differences,
        "pairing": pairing,
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


def trajectory_matrix(rows: pd.DataFrame, metric: str, iterations: np.ndarray,
                      psnr_cap: float | None = None) -> np.ndarray:
    """Trajectories x iterations array of ``metric`` (NaN where not observed), trajectories sorted by key."""
    keys = trajectory_keys(rows)
    frame = rows[[*keys, "iteration"]].copy()
    frame["_v"] = metric_values(rows, metric, psnr_cap)
    wide = frame.groupby([*keys, "iteration"], sort=True)["_v"].first().unstack("iteration")
    return wide.reindex(columns=iterations).to_numpy(dtype=float)


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
        out.append(_with_keys(by, key, frame))
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
        out.append(_with_keys(by, key, pd.DataFrame([record])))
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
        out.append(_with_keys(by, key, frame))
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
        out.append(_with_keys(by, key, pd.DataFrame([record])))
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


# -- regions and failures ---------------------------------------------------------------------------

#: Regions of the region section, in display order, with what their drift means.
REGION_MEANINGS = {
    "whole": "whole image",
    "current": "inside this iteration's mask (just repainted)",
    "outside": "outside this iteration's mask (to be kept)",
    "ever": "pixels masked at some iteration so far: denoiser drift",
    "never": "pixels never masked so far: VAE / pipeline drift",
}


def region_columns(table: pd.DataFrame, metric: str) -> dict[str, str]:
    """Region name -> column of ``metric`` (a base name such as ``lpips``, or ``lpips_orig``) to the
    original, for the regions the table has values for.

    >>> region_columns(pd.DataFrame({"mse_orig": [0.0], "mse_orig_never": [0.0], "mse_orig_ever": [np.nan]}), "mse")
    {'whole': 'mse_orig', 'never': 'mse_orig_never'}
    """
    base = metric[: -len("_orig")] if metric.endswith("_orig") else metric
    candidates = {region: f"{base}_orig" + ("" if region == "whole" else f"_{region}") for region in REGION_MEANINGS}
    return {region: col for region, col in candidates.items() if present_metrics(table, [col])}


def region_summary(
    table: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    iteration: int | None = None,
    regions: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    psnr_cap: float | None = None,
) -> pd.DataFrame:
    """Mean of ``metric`` to the original per region at one iteration (default: the last), per group.

    ``regions``: a subset of :data:`REGION_MEANINGS` (default: all the table has). Columns:
    ``*by, region, column, n`` (trajectories with a value: a region can be empty, e.g. ``never``
    once every pixel has been repainted), ``mean``, ``lo``, ``hi`` (bootstrap).
    """
    data = observed(table)
    last = int(table["iteration"].max()) if iteration is None else int(iteration)
    at = data[data["iteration"] == last]
    rows = []
    for region, column in region_columns(table, metric).items():
        if regions is not None and region not in regions:
            continue
        for key, part in iter_groups(at, by):
            values = metric_values(part, column, psnr_cap)
            values = values[~np.isnan(values)]
            est, lo, hi = resample_ci(nanmean_rows(values[:, None]), len(values), n_boot=n_boot, ci=ci, seed=seed)
            rows.append({**dict(zip(by, key)), "region": region, "column": column, "n": len(values),
                         "mean": float(est[0]) if len(values) else math.nan, "lo": float(lo[0]) if len(values) else
                         math.nan, "hi": float(hi[0]) if len(values) else math.nan})
    frame = pd.DataFrame(rows, columns=[*by, "region", "column", "n", "mean", "lo", "hi"])
    frame.attrs["iteration"] = last
    return frame


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


# -- summaries ------------------------------------------------------------------------------------

def summary_table(
    table: pd.DataFrame,
    by: Sequence[str] = ("model", "mask_label"),
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per group: trajectories, failures, each metric's mean at the last iteration and the
    number of trajectories that mean rests on (``n@<last>``: those observed there, failed ones left out).

    ``metrics`` default: :func:`summary_metrics`.

    >>> t = pd.DataFrame({"model": ["m"] * 4, "mask_label": ["g"] * 4, "trajectory_id": ["a", "a", "b", "b"],
    ...                   "iteration": [0, 1, 0, 1], "lpips_orig": [0, 0.25, 0, 0.75], "failed": [False] * 4})
    >>> summary_table(t)[["model", "trajectories", "lpips_orig@1"]].to_dict("records")
    [{'model': 'm', 'trajectories': 2, 'lpips_orig@1': 0.5}]
    """
    by = list(by)
    last = table["iteration"].max()
    present = present_metrics(table, summary_metrics(table) if metrics is None else metrics)
    out = table.groupby(by).agg(trajectories=("trajectory_id", "nunique")).reset_index()
    if "failed" in table.columns:
        fails = table[table["failed"]].groupby(by)["trajectory_id"].nunique().rename("failed")
        out = out.merge(fails, on=by, how="left").fillna({"failed": 0})
        out["failed"] = out["failed"].astype(int)
    final = observed(table)  # a failed output's row holds no valid image
    final = final[final["iteration"] == last]
    if present:
        values = final[by].copy()
        for m in present:
            values[m] = metric_values(final, m)  # +inf PSNR capped as everywhere else
        means = values.groupby(by)[present].mean().add_suffix(f"@{last}").reset_index()
        out = out.merge(means, on=by, how="left")
        counts = final.groupby(by)["trajectory_id"].nunique().rename(f"n@{last}").reset_index()
        out = out.merge(counts, on=by, how="left").fillna({f"n@{last}": 0})
        out[f"n@{last}"] = out[f"n@{last}"].astype(int)
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
    table has hallucination scores. ``table.attrs`` of the result: ``rule`` (text),
    ``iterations`` (the ``at`` used) and ``final`` (the ``<m>@<last>`` column of the rule's metric).
    """
    by = list(by)
    rule = collapse_rule(table, rule)
    data = observed(table)
    uid = trajectory_uid(table)
    out = uid.groupby([table[c] for c in by], sort=True, dropna=False).nunique().rename("trajectories").reset_index()
    bad = table["failed"].astype(bool) if "failed" in table.columns else pd.Series(False, index=table.index)
    fails = uid[bad].groupby([table.loc[bad, c] for c in by]).nunique().rename("failed").reset_index()
    out = out.merge(fails, on=by, how="left").fillna({"failed": 0}) if len(fails) else out.assign(failed=0)
    out["failed"] = out["failed"].astype(int)
    last = int(table["iteration"].max())
    iterations = clip_iterations(at, last)
    present = present_metrics(table, summary_metrics(table) if metrics is None else metrics)
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
    final = f"{rule.metric}@{last}"
    band = region_summary(table, rule.metric, by, iteration=last, regions=["whole"], n_boot=n_boot, ci=ci, seed=seed,
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

