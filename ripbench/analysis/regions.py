"""Drift per region: inside the current mask, outside it, ever and never masked (:func:`region_summary`),
and what a never-masked change can be read as: the run's pixel-local metric (:func:`local_metric`), each
model's space (:func:`model_spaces`: through a VAE or not) and each run's hand-off (:func:`run_handoffs`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..stats import nanmean_rows, resample_ci
from .loading import iter_groups, metric_values, observed, present_metrics

#: Regions of the region section, in display order, with what their drift means.
REGION_MEANINGS = {
    "whole": "whole image",
    "current": "inside this iteration's mask (just repainted)",
    "outside": "outside this iteration's mask (to be kept)",
    "ever": "pixels masked at some iteration so far: denoiser drift (none for a control that ignores the mask)",
    "never": "pixels never masked so far: drift outside the masks (VAE / pipeline drift for a model with a VAE, "
             "read in a pixel-local metric; a windowed metric there includes repainted pixels within its reach)",
}


def local_metric(table: pd.DataFrame) -> str | None:
    """The first pixel-local metric (reach 0: MSE, PSNR) the table has a never-masked column of, as
    ``<name>_orig``, those with a finite identity (MSE 0; PSNR's is +inf) first; ``None`` when it has none.

    >>> local_metric(pd.DataFrame({"lpips_orig_never": [0.1], "psnr_orig_never": [99.0], "mse_orig_never": [0.0]}))
    'mse_orig'
    """
    from ..metrics.registry import METRIC_NAMES, spec_for_column

    names = [c[: -len("_orig_never")] for c in table.columns if c.endswith("_orig_never")]
    names.sort(key=lambda n: METRIC_NAMES.index(n) if n in METRIC_NAMES else len(METRIC_NAMES))
    local = [(name, spec) for name in names if (spec := spec_for_column(f"{name}_orig")) is not None
             and spec.pixel_local and present_metrics(table, [f"{name}_orig_never"])]
    local.sort(key=lambda item: not math.isfinite(item[1].identity))
    return f"{local[0][0]}_orig" if local else None


def _arm(run: Any, model: Any, several: bool) -> tuple[str, ...]:
    return (str(run), str(model)) if several else (str(model),)


def model_spaces(table: pd.DataFrame) -> dict[tuple[str, ...], str | None]:
    """``(run, model)`` (``(model,)`` for one run) -> ``"latent"``, ``"pixel"`` or ``None`` (not declared).

    Read from each run's manifest (the model's declared :attr:`~ripbench.models.Inpainter.space`);
    a manifest written before models declared it falls back to the space the built-in model of that
    name declares.
    """
    from ..models.registry import available_inpainters, resolve_factory

    known = available_inpainters()

    manifests = table.attrs.get("manifests") or {"": table.attrs.get("manifest") or {}}
    several = "run" in table.columns and table["run"].nunique() > 1
    out: dict[tuple[str, ...], str | None] = {}
    for run, manifest in manifests.items():
        names = {str(m.get("label") or m.get("name")): str(m.get("name"))
                 for m in ((manifest or {}).get("config") or {}).get("models") or []}
        for label, record in ((manifest or {}).get("models") or {}).items():
            space = record.get("space") if isinstance(record, dict) else None
            if space is None and names.get(label) in known:
                try:
                    space = getattr(resolve_factory(names[label]), "space", None)
                except Exception:  # noqa: BLE001 - a plug-in that no longer loads: its space stays unknown
                    space = None
            out[_arm(run, label, several)] = space
    return out


def model_ignores(table: pd.DataFrame) -> dict[tuple[str, ...], frozenset[str]]:
    """``(run, model)`` (``(model,)`` for one run) -> the inputs a control model declares it ignores
    (:attr:`~ripbench.models.Inpainter.ignores`, e.g. ``{"mask", "seeds"}`` for ``vae-roundtrip``); read from
    each run's manifest, or from the built-in model of that name for a manifest written before it was recorded.
    """
    from ..models.registry import available_inpainters, resolve_factory

    known = available_inpainters()
    manifests = table.attrs.get("manifests") or {"": table.attrs.get("manifest") or {}}
    several = "run" in table.columns and table["run"].nunique() > 1
    out: dict[tuple[str, ...], frozenset[str]] = {}
    for run, manifest in manifests.items():
        names = {str(m.get("label") or m.get("name")): str(m.get("name"))
                 for m in ((manifest or {}).get("config") or {}).get("models") or []}
        for label, record in ((manifest or {}).get("models") or {}).items():
            ignored = record.get("ignores") if isinstance(record, dict) else None
            if ignored is None and names.get(label) in known:
                try:
                    ignored = getattr(resolve_factory(names[label]), "ignores", ())
                except Exception:  # noqa: BLE001 - a plug-in that no longer loads: nothing known
                    ignored = ()
            out[_arm(run, label, several)] = frozenset(ignored or ())
    return out


def run_handoffs(table: pd.DataFrame) -> dict[str, str]:
    """Run label -> the hand-off between its iterations (``"float"`` for runs made before it was a setting)."""
    manifests = table.attrs.get("manifests") or {"": table.attrs.get("manifest") or {}}
    return {str(run): str(((m or {}).get("config") or {}).get("handoff") or "float") for run, m in manifests.items()}


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
