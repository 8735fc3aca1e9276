"""Population drift per group and iteration, from the features a run stored (no network is run).

For each group of trajectories and each iteration ``k``, the set of images at ``k`` is compared
with the set of their originals (iteration 0) with the population distances of
:mod:`ripbench.population`: FD and KID on DINOv2 features, CMMD on CLIP embeddings, precision and
recall on DINOv2 features. Each value carries a bootstrap interval over images (an image's
original and its iterate resampled together) and its n (images observed, failed rows left out).

Example
-------
>>> from ripbench.analysis import load_runs, population_drift   # doctest: +SKIP
>>> population_drift(load_runs("results/semantic"), by=["model", "mask_label"])   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import population as pop
from ..store import RunStore
from .loading import iter_groups, observed, trajectory_uid

__all__ = ["FD_MIN_IMAGES_NOTE", "feature_matrix", "has_features", "population_drift", "run_features"]

#: Why FD is flagged at small n (the report prints it with the numbers).
FD_MIN_IMAGES_NOTE = ("FD is biased upward at small n (it shrinks as n grows) and with fewer images than feature "
                      "dimensions its covariances are singular; compare FD only between groups of equal n, and "
                      "read KID (unbiased at any n) and CMMD next to it")


_FEATURES: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}


def _load(run_dir: Path) -> dict[str, np.ndarray]:
    """A run's stored features, cached while its feature files stay the same."""
    store = RunStore(run_dir)
    key = (str(run_dir), *((p.name, p.stat().st_mtime_ns) for p in store.feature_files()))
    if key not in _FEATURES:
        if len(_FEATURES) > 8:
            _FEATURES.clear()
        _FEATURES[key] = store.load_features()
    return _FEATURES[key]


def run_features(table: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """The stored features of each run of ``table`` (run label -> arrays; see
    :meth:`~ripbench.store.RunStore.load_features`; cached while the files stay the same)."""
    return {str(run): _load(Path(d)) for run, d in (table.attrs.get("run_dirs") or {}).items()}


def has_features(table: pd.DataFrame, name: str) -> bool:
    """Whether any run of ``table`` stored features of metric ``name``."""
    return any(name in f for f in run_features(table).values())


def feature_matrix(table: pd.DataFrame, name: str) -> np.ndarray:
    """``len(table) x D`` float32 features of metric ``name`` for each row (NaN rows where none is stored)."""
    found = run_features(table)
    dims = {f[name].shape[1] for f in found.values() if name in f}
    if not dims:
        return np.full((len(table), 0), np.nan, dtype=np.float32)
    if len(dims) > 1:
        from ..errors import ResultsError

        raise ResultsError(f"the runs stored {name} features of different sizes ({sorted(dims)}): other backbones; "
                           "compare them one run at a time")
    out = np.full((len(table), dims.pop()), np.nan, dtype=np.float32)
    runs = table["run"].astype(str).to_numpy() if "run" in table.columns else np.full(len(table), "")
    for run, feats in found.items():
        if name not in feats:
            continue
        index = pd.MultiIndex.from_arrays([feats["trajectory_id"].astype(str), feats["iteration"].astype(int)])
        rows = np.flatnonzero(runs == run) if "run" in table.columns else np.arange(len(table))
        wanted = pd.MultiIndex.from_arrays([table["trajectory_id"].astype(str).to_numpy()[rows],
                                            table["iteration"].astype(int).to_numpy()[rows]])
        position = index.get_indexer(wanted)
        hit = position >= 0
        out[rows[hit]] = feats[name][position[hit]].astype(np.float32)
    return out


def _statistics() -> dict[str, tuple[str, Any]]:
    """Population metric -> (features it uses, ``f(originals, iterates, n_boot=, ci=, seed=) -> (value, lo, hi)``)."""
    def fast(name: str) -> Any:
        return lambda x, y, **kw: pop.population_bootstrap(name, x, y, **kw)

    def generic(statistic: Any) -> Any:
        return lambda x, y, **kw: pop.paired_bootstrap(statistic, x, y, **kw)

    return {
        "fd_dinov2": ("dinov2", fast("fd")),
        "kid_dinov2": ("dinov2", fast("kid")),
        "cmmd_clip": ("clip", fast("cmmd")),
        "precision_dinov2": ("dinov2", generic(lambda x, y: pop.precision_recall(x, y)[0])),
        "recall_dinov2": ("dinov2", generic(lambda x, y: pop.precision_recall(x, y)[1])),
    }


def population_drift(table: pd.DataFrame, by: Sequence[str] = ("model", "mask_label"), *,
                     metrics: Sequence[str] | None = None, iterations: Sequence[int] | None = None,
                     n_boot: int = 200, ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Population distance of each group's images at each iteration from their originals.

    Args:
        table: a results table of runs that stored features (:func:`~ripbench.analysis.load_runs`).
        by: grouping columns.
        metrics: names of :data:`ripbench.population.POPULATION_METRICS` (default: every one whose features
            the runs stored; precision and recall only when asked for).
        iterations: which iterations (default: all).
        n_boot, ci, seed: the bootstrap over images.

    Returns:
        One row per group, iteration and metric: the group columns, ``iteration``, ``metric``, ``label``,
        ``value``, ``lo``, ``hi``, ``n`` (images), ``dim`` (feature dimensions) and ``fd_small_n`` (FD with
        fewer images than feature dimensions). Empty when the runs stored no features.
    """
    stats = _statistics()
    if metrics is None:
        metrics = [m for m in ("fd_dinov2", "kid_dinov2", "cmmd_clip") if has_features(table, stats[m][0])]
    columns = [*by, "iteration", "metric", "label", "value", "lo", "hi", "n", "dim", "fd_small_n"]
    if not metrics:
        return pd.DataFrame(columns=columns)
    rows = observed(table).reset_index(drop=True)  # index = position in the feature matrices
    rows["_uid"] = trajectory_uid(rows).to_numpy()
    feats = {name: feature_matrix(rows, name) for name in {stats[m][0] for m in metrics}}
    out: list[dict[str, Any]] = []
    for key, group in iter_groups(rows, list(by)):
        start = group[group["iteration"] == 0].drop_duplicates("_uid")
        origin = pd.Series(start.index.to_numpy(), index=start["_uid"].to_numpy())  # uid -> row of its original
        wanted = sorted(group["iteration"].unique()) if iterations is None else \
            [k for k in iterations if k in set(group["iteration"])]
        for k in wanted:
            at = group[(group["iteration"] == k) & group["_uid"].isin(origin.index)]
            for metric in metrics:
                name, fn = stats[metric]
                x = feats[name][origin.loc[at["_uid"]].to_numpy()]
                y = feats[name][at.index.to_numpy()]
                ok = np.isfinite(x).all(1) & np.isfinite(y).all(1) if x.shape[1] else np.zeros(len(x), bool)
                x, y = x[ok], y[ok]
                value, lo, hi = fn(x, y, n_boot=n_boot, ci=ci, seed=seed) if len(x) else (np.nan, np.nan, np.nan)
                out.append({**dict(zip(by, key)), "iteration": int(k), "metric": metric,
                            "label": pop.POPULATION_METRICS[metric]["label"], "value": value, "lo": lo, "hi": hi,
                            "n": int(len(x)), "dim": int(x.shape[1]),
                            "fd_small_n": metric == "fd_dinov2" and len(x) < x.shape[1]})
    return pd.DataFrame(out, columns=columns)
