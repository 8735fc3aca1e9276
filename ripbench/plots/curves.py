"""Curves against the iteration: collapse curves with their bands, Kaplan-Meier survival, models
compared per mask size, drift per image region, and population distances (FD, KID, CMMD)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import analysis
from ..errors import ResultsError
from ..metrics.registry import spec_for_column
from .groups import _label, _markevery, _zorders, group_styles, ordered_groups, select
from .layout import (
    FULL_WIDTH,
    _grid,
    _iteration_axis,
    _legend_below,
    _shift,
    _spread,
    axis_label,
    figure_style,
    save_figure,
)


def curve_stats(table: pd.DataFrame, metric: str, by: Sequence[str]) -> pd.DataFrame:
    """Mean, standard deviation and count of ``metric`` per group and iteration."""
    data = table.replace([np.inf, -np.inf], np.nan)
    return (data.groupby([*by, "iteration"])[metric].agg(["mean", "std", "count"]).reset_index())


def _band_stats(table: pd.DataFrame, metric: str, by: Sequence[str], band: str, n_boot: int,
                seed: int, ci: float = 0.95) -> pd.DataFrame:
    """Columns ``*by, iteration, mean, lo, hi, n`` for a band of kind ``ci`` or ``std``."""
    if band == "ci":
        return analysis.bootstrap_curves(table, metric, by, n_boot=n_boot, ci=ci, seed=seed)
    if band != "std":
        raise ValueError(f"band must be 'ci' or 'std', got {band!r}")
    stats = curve_stats(analysis.observed(table), metric, by)
    std = stats["std"].fillna(0.0)
    return stats.assign(lo=stats["mean"] - std, hi=stats["mean"] + std, n=stats["count"])


def _draw_threshold(ax: Any, rule: analysis.CollapseRule | None, metric: str) -> None:
    if rule is not None and rule.metric == metric:
        ax.axhline(rule.threshold, color="0.35", ls="--", lw=0.9, label=f"collapse: {rule.describe()}")


def _draw_lines(ax: Any, stats: pd.DataFrame, by: Sequence[str], keys: Sequence[tuple[Any, ...]],
                styles: dict[tuple[Any, ...], dict[str, Any]], with_n: bool = True) -> None:
    """One line with its band per group; the group with the fewest trajectories drawn on top."""
    shown = {key: select(stats, by, key).sort_values("iteration") for key in keys}
    shown = {key: s for key, s in shown.items() if not s.empty and not s["mean"].isna().all()}
    zorder = _zorders({key: int(s["n"].max()) for key, s in shown.items()})
    for key, s in shown.items():
        label = f"{_label(key)} (n={int(s['n'].max())})" if with_n else _label(key)
        ax.plot(s["iteration"], s["mean"], label=label, zorder=zorder[key],
                **_markevery(styles[key], keys.index(key), len(s)))
        ax.fill_between(s["iteration"], s["lo"], s["hi"], color=styles[key]["color"], alpha=0.18, lw=0, zorder=1)


def collapse_curves(
    table: pd.DataFrame,
    path: str | Path,
    metrics: Sequence[str] = ("lpips_orig", "ssim_orig"),
    by: Sequence[str] = ("model", "mask_label"),
    *,
    band: str = "ci",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    rule: analysis.CollapseRule | None = None,
    formats: Sequence[str] | None = None,
) -> Path:
    """Plot mean metric vs iteration, one line per group, one panel per metric (two per row).

    ``band="ci"``: 95% bootstrap confidence band of the mean (trajectories resampled,
    ``seed``); ``band="std"``: mean +- 1 standard deviation across trajectories. With a
    ``rule``, its threshold is drawn on its metric's panel. Metrics missing from the table
    (e.g. LPIPS when it was not computed) are skipped. Written atomically as ``path`` (format
    from its suffix) and each of ``formats``.
    """
    present = analysis.present_metrics(table, metrics)
    if not present:  # e.g. a run without LPIPS and SSIM: show the first metrics it has
        present = analysis.present_metrics(table, [m for m in analysis.summary_metrics(table)
                                                   if m.endswith("_orig")])[:2]
    if not present:
        raise ValueError(f"none of the metrics {list(metrics)} is in the table")
    by = list(by)
    keys = ordered_groups(table, by)
    styles = group_styles(keys)
    with figure_style() as plt:
        fig, axes = _grid(plt, len(present), 2, 2.5)
        for ax, metric in zip(axes.flat, present):
            stats = _band_stats(table, metric, by, band, n_boot, seed, ci)
            spec = spec_for_column(metric)
            if spec is not None and not np.isfinite(spec.identity):  # PSNR: the original is +inf, start at 1
                stats = stats[stats["iteration"] > 0]
            _draw_lines(ax, stats, by, keys, styles)
            _draw_threshold(ax, rule, metric)
            _iteration_axis(ax)
            ax.set_ylabel(axis_label(metric))
        _legend_below(fig)
        return save_figure(fig, path, formats)


def survival_curves(
    table: pd.DataFrame,
    path: str | Path,
    rule: analysis.CollapseRule | str | float | None = None,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    ci: float = 0.95,
    formats: Sequence[str] | None = None,
) -> Path:
    """Kaplan-Meier share of trajectories not yet collapsed vs iteration, one step line per group.

    Band: pointwise 95% interval (Greenwood, log-log); the dotted line at 0.5 crosses each curve
    at its median collapse iteration. See :func:`ripbench.analysis.survival_curves`. Groups'
    lines differ in colour, line style and marker, the smallest group is drawn on top, and
    each line is shifted by up to 3 points (in print, not in data) so that curves that coincide
    stay visible side by side.
    """
    rule = analysis.collapse_rule(table, rule)
    by = list(by)
    stats = analysis.survival_curves(table, rule, by, ci=ci)
    events = analysis.collapse_events(table, rule)
    keys = [key for key in ordered_groups(table, by) if not select(stats, by, key).empty]
    styles = group_styles(keys)
    sizes = {key: len(select(events, by, key)) for key in keys}
    zorder = _zorders(sizes)
    with figure_style() as plt:
        fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.75, 3.2))
        for i, key in enumerate(keys):
            s = select(stats, by, key)
            ev = select(events, by, key)
            label = f"{_label(key)} ({int(ev['collapsed'].sum())}/{sizes[key]} collapsed)"
            lines = ax.step(s["iteration"], s["survival"], where="post", label=label, zorder=zorder[key],
                            **_markevery(styles[key], i, len(s)))
            # curves that coincide (all at 1.0 before any collapse) are drawn a little apart, in print points
            _shift(lines, dy=_spread(i, len(keys)))
            ax.fill_between(s["iteration"], s["lo"], s["hi"], step="post", color=styles[key]["color"], alpha=0.13,
                            lw=0, zorder=1)
        ax.axhline(0.5, color="0.4", ls=":", lw=0.9)
        ax.set_ylim(-0.02, 1.04)
        _iteration_axis(ax)
        ax.set_ylabel(f"share not yet collapsed\n({rule.describe()})")
        _legend_below(fig, ncol=2)
        return save_figure(fig, path, formats)


def model_comparison(
    table: pd.DataFrame,
    path: str | Path,
    metric: str | None = None,
    panel_by: str = "mask_label",
    line_by: str | Sequence[str] = "model",
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    rule: analysis.CollapseRule | None = None,
    formats: Sequence[str] | None = None,
) -> Path:
    """One panel per ``panel_by`` value (mask size), one line per ``line_by`` group (model).

    ``metric`` defaults to the collapse rule's metric (LPIPS when present). Bands: 95%
    bootstrap CI of the mean. Panels share the y axis so they compare at a glance.
    """
    rule = rule or analysis.collapse_rule(table)
    metric = metric or rule.metric
    line_by = [line_by] if isinstance(line_by, str) else list(line_by)
    panels = [p[0] for p in ordered_groups(table, [panel_by])]
    keys = ordered_groups(table, line_by)
    styles = group_styles(keys)
    stats = analysis.bootstrap_curves(table, metric, [panel_by, *line_by], n_boot=n_boot, ci=ci, seed=seed)
    with figure_style() as plt:
        fig, axes = _grid(plt, len(panels), 3, 2.2, sharey=True)
        for ax, panel in zip(axes.flat, panels):
            _draw_lines(ax, stats[stats[panel_by] == panel], line_by, keys, styles, with_n=False)
            _draw_threshold(ax, rule, metric)
            ax.set_title(f"{panel_by} = {panel}")
            _iteration_axis(ax)
        for row in axes:
            row[0].set_ylabel(axis_label(metric))
        _legend_below(fig, ncol=4)
        return save_figure(fig, path, formats)


#: Line styles of the regions in :func:`region_curves`.
_REGION_STYLES = {"whole": ("0.25", "-"), "current": ("tab:orange", "--"), "outside": ("tab:green", ":"),
                  "ever": ("tab:red", "-"), "never": ("tab:blue", "-")}


def region_curves(
    table: pd.DataFrame,
    path: str | Path,
    metric: str,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    regions: Sequence[str] = ("whole", "current", "ever", "never"),
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    formats: Sequence[str] | None = None,
) -> Path:
    """Drift of ``metric`` to the original per region, one panel per group (three per row).

    Lines: the whole image, the current mask, pixels ever masked (denoiser drift) and pixels
    never masked so far (VAE / pipeline drift), each with its 95% bootstrap band. A region
    that is empty (``never`` once everything has been repainted) ends its line.
    """
    columns = {r: c for r, c in analysis.region_columns(table, metric).items() if r in regions}
    if len(columns) < 2:
        raise ResultsError(f"the table has no region columns of {metric}")
    by = list(by)
    keys = ordered_groups(table, by)
    stats = {r: analysis.bootstrap_curves(table, c, by, n_boot=n_boot, ci=ci, seed=seed) for r, c in columns.items()}
    with figure_style() as plt:
        fig, axes = _grid(plt, len(keys), 3, 2.1, sharey=True)
        for ax, key in zip(axes.flat, keys):
            for region, frame in stats.items():
                s = select(frame, by, key).sort_values("iteration")
                colour, style = _REGION_STYLES.get(region, ("0.5", "-"))
                ax.plot(s["iteration"], s["mean"], color=colour, ls=style, label=analysis.REGION_MEANINGS[region])
                ax.fill_between(s["iteration"], s["lo"], s["hi"], color=colour, alpha=0.12, lw=0)
            ax.set_title(_label(key))
            _iteration_axis(ax)
        base = columns.get("whole") or next(iter(columns.values()))
        for row in axes:
            row[0].set_ylabel(axis_label(base))
        _legend_below(fig, ncol=2)
        return save_figure(fig, path, formats)


def population_curves(population: pd.DataFrame, path: str | Path, by: Sequence[str] = ("model", "mask_label"), *,
                      formats: Sequence[str] | None = None) -> Path:
    """Population distance of each group's images from their originals vs iteration, one panel per metric.

    ``population`` is :func:`ripbench.analysis.population_drift`'s frame (value, lo, hi, n per group,
    iteration and metric); band: its bootstrap interval over images. Labels and directions come from
    :data:`ripbench.population.POPULATION_METRICS`.
    """
    from ..population import POPULATION_METRICS

    metrics = [m for m in POPULATION_METRICS if m in set(population["metric"])]
    if not metrics:
        raise ValueError("no population metric in the frame")
    by = list(by)
    keys = ordered_groups(population, by)
    styles = group_styles(keys)
    with figure_style() as plt:
        fig, axes = _grid(plt, len(metrics), 3, 2.3)
        for ax, metric in zip(axes.flat, metrics):
            rows = population[population["metric"] == metric].rename(columns={"value": "mean"})
            _draw_lines(ax, rows, by, keys, styles)
            _iteration_axis(ax)
            facts = POPULATION_METRICS[metric]
            ax.set_ylabel(f"{facts['label']} to the originals\n({facts['direction']})")
            if not rows["mean"].notna().any():  # say why the panel is empty (FD / KID need 2 images per group)
                ax.text(0.5, 0.5, f"n/a: {facts['label']}\nneeds at least 2\nimages per group\n"
                        f"(n = {int(rows['n'].max()) if len(rows) else 0})", transform=ax.transAxes,
                        ha="center", va="center", fontsize="small")
                ax.set_yticks([])
        _legend_below(fig)
        return save_figure(fig, path, formats)
