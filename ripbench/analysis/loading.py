"""Loading runs into one table, and the helpers every statistic shares.

* :func:`load_runs` - one or several run folders into one tidy per-iteration table, several runs
  aligned on what they share (:func:`run_differences` says what differs, :func:`check_compatible`
  refuses instead);
* :func:`metric_values`, :func:`metric_direction`, :func:`present_metrics` - a metric's values
  (+inf PSNR counted as :data:`PSNR_CAP_DB`), which way is "worse", which metrics a table has;
* :func:`trajectory_keys`, :func:`trajectory_uid`, :func:`observed`, :func:`iter_groups`,
  :func:`trajectory_matrix`, :func:`with_keys` - trajectories, valid rows and groups.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import flatten_fields
from ..detectors import adopt_recorded_detectors
from ..errors import ResultsError
from ..metrics.catalog import PSNR_SPEC
from ..metrics.registry import adopt_recorded_specs, spec_for_column
from ..store import load_table

#: +inf PSNR (identical pixels) is counted as this many dB (the PSNR spec's ``inf_value``, which
#: says why); each metric's own ``inf_value`` is used unless a function's ``psnr_cap`` overrides it.
PSNR_CAP_DB: float = PSNR_SPEC.inf_value

#: Columns describing a trajectory (constant along it), in display order.
TRAJECTORY_COLUMNS = ("run", "model", "image_id", "category", "mask_policy", "mask_label", "seed")


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


_flatten = flatten_fields


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
    seen: dict[Path, Path] = {}
    for folder in flat:  # one run twice would be compared with itself: every difference exactly 0
        if folder.resolve() in seen:
            first = seen[folder.resolve()]
            also = f" (also as {str(first)!r})" if first != folder else ""
            raise ResultsError(f"results folder {str(folder)!r} is given twice{also}; give each run once")
        seen[folder.resolve()] = folder
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


def with_keys(by: Sequence[str], key: tuple[Any, ...], frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the group key ``key`` (of the columns ``by``) inserted as its first columns."""
    for col, value in reversed(list(zip(by, key))):
        frame.insert(0, col, value)
    return frame
