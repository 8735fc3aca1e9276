"""Figures drawn from a results table (matplotlib, headless).

Every function takes the tidy per-iteration table (see ``results/README.md``) or a run
folder, writes image files atomically and returns the path of the first one. With
``formats=("png", "svg")`` the same figure is also written beside it in the other format.

* :func:`collapse_curves` - mean metric vs iteration per group, 95% bootstrap band;
* :func:`survival_curves` - share of trajectories not yet collapsed (Kaplan-Meier);
* :func:`model_comparison` - one panel per mask size, one line per model;
* :func:`image_strips` - snapshots of trajectories side by side, each iteration's mask outlined;
* :func:`drift_heatmap` - where in the image the change accumulated.

Example
-------
>>> from ripbench.store import load_table                      # doctest: +SKIP
>>> collapse_curves(load_table("results/quick"), "curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import analysis
from .errors import ResultsError
from .io import atomic_save
from .metrics.registry import column_label
from .store import IMAGES_DIR, load_table

#: Axis labels of the table's columns that are not metrics (metric labels come from their specs).
OTHER_LABELS = {
    "halluc_score": "hallucination score (x0 variance)",
    "halluc_score_current": "hallucination score inside mask",
    "cum_mask_area": "share of pixels ever repainted",
}

def axis_label(column: str) -> str:
    """Axis label of a results column: the metric's spec, else :data:`OTHER_LABELS`, else the name."""
    return column_label(column) or OTHER_LABELS.get(column, column)


#: Resolution of PNG figures.
DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, formats: Sequence[str] | None = None) -> Path:
    """Write ``fig`` to ``path`` (format from its suffix, PNG without one) and to each of
    ``formats`` beside it (same name, other suffix), atomically; close the figure.

    SVGs are written without a date and with fixed element ids, so that the same figure
    gives the same file.
    """
    import matplotlib

    plt = _pyplot()
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    wanted = [path.suffix.lstrip(".").lower()] + [f.lower().lstrip(".") for f in formats or ()]
    try:
        with matplotlib.rc_context({"svg.hashsalt": "ripbench"}):
            for fmt in dict.fromkeys(wanted):
                target = path.with_suffix(f".{fmt}")
                meta = {"Date": None} if fmt == "svg" else None
                atomic_save(target, lambda tmp, fmt=fmt, meta=meta: fig.savefig(
                    tmp, dpi=DPI, format=fmt, bbox_inches="tight", metadata=meta))
    finally:
        plt.close(fig)
    return path


def _natural_key(value: Any) -> tuple[Any, ...]:
    parts = re.split(r"(\d+(?:\.\d+)?)", str(value))
    return tuple((0, float(p)) if i % 2 else (1, p) for i, p in enumerate(parts))


def ordered_groups(table: pd.DataFrame, by: Sequence[str]) -> list[tuple[Any, ...]]:
    """Group keys of ``by`` in reading order: mask labels by mask area, the rest naturally sorted."""
    by = list(by)
    if not by:
        return [()]
    area: dict[Any, float] = {}
    if "mask_label" in by and "mask_area" in table.columns:
        area = table[table["iteration"] > 0].groupby("mask_label")["mask_area"].mean().to_dict()
    keys = table[by].drop_duplicates().itertuples(index=False, name=None)

    def sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple((area.get(v, 0.0), _natural_key(v)) if c == "mask_label" else (0.0, _natural_key(v))
                     for c, v in zip(by, key))

    return sorted(keys, key=sort_key)


def _label(key: tuple[Any, ...]) -> str:
    return " / ".join(str(v) for v in key) or "all"


def _colours(n: int) -> list[Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _select(frame: pd.DataFrame, by: Sequence[str], key: tuple[Any, ...]) -> pd.DataFrame:
    sel = np.ones(len(frame), dtype=bool)
    for col, value in zip(by, key):
        sel &= (frame[col] == value).to_numpy()
    return frame[sel]


def curve_stats(table: pd.DataFrame, metric: str, by: Sequence[str]) -> pd.DataFrame:
    """Mean, standard deviation and count of ``metric`` per group and iteration."""
    data = table.replace([np.inf, -np.inf], np.nan)
    return (data.groupby([*by, "iteration"])[metric].agg(["mean", "std", "count"]).reset_index())


def _band_stats(table: pd.DataFrame, metric: str, by: Sequence[str], band: str, n_boot: int,
                seed: int) -> pd.DataFrame:
    """Columns ``*by, iteration, mean, lo, hi, n`` for a band of kind ``ci`` or ``std``."""
    if band == "ci":
        return analysis.bootstrap_curves(table, metric, by, n_boot=n_boot, seed=seed)
    if band != "std":
        raise ValueError(f"band must be 'ci' or 'std', got {band!r}")
    stats = curve_stats(analysis.observed(table), metric, by)
    std = stats["std"].fillna(0.0)
    return stats.assign(lo=stats["mean"] - std, hi=stats["mean"] + std, n=stats["count"])


def _iteration_axis(ax: Any) -> None:
    """Label the x axis as iterations, with whole-number ticks."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _draw_threshold(ax: Any, rule: analysis.CollapseRule | None, metric: str) -> None:
    if rule is not None and rule.metric == metric:
        ax.axhline(rule.threshold, color="0.3", ls="--", lw=1, label=f"collapse: {rule.describe()}")


def _draw_lines(ax: Any, stats: pd.DataFrame, by: Sequence[str], keys: Sequence[tuple[Any, ...]],
                colours: dict[tuple[Any, ...], Any]) -> None:
    for key in keys:
        s = _select(stats, by, key).sort_values("iteration")
        if s.empty or s["mean"].isna().all():
            continue
        ax.plot(s["iteration"], s["mean"], color=colours[key], lw=1.8, label=f"{_label(key)} (n={int(s['n'].max())})")
        ax.fill_between(s["iteration"], s["lo"], s["hi"], color=colours[key], alpha=0.18, lw=0)


def collapse_curves(
    table: pd.DataFrame,
    path: str | Path,
    metrics: Sequence[str] = ("lpips_orig", "ssim_orig"),
    by: Sequence[str] = ("model", "mask_label"),
    *,
    band: str = "ci",
    n_boot: int = 1000,
    seed: int = 0,
    rule: analysis.CollapseRule | None = None,
    formats: Sequence[str] | None = None,
) -> Path:
    """Plot mean metric vs iteration, one line per group, one panel per metric.

    ``band="ci"``: 95% bootstrap confidence band of the mean (trajectories resampled,
    ``seed``); ``band="std"``: mean +- 1 standard deviation across trajectories. With a
    ``rule``, its threshold is drawn on its metric's panel. Metrics missing from the table
    (e.g. LPIPS when it was not computed) are skipped. Written atomically as ``path`` (format
    from its suffix) and each of ``formats``.
    """
    plt = _pyplot()
    present = analysis.present_metrics(table, metrics)
    if not present:  # e.g. a run without LPIPS and SSIM: show the first metrics it has
        present = analysis.present_metrics(table, [m for m in analysis.summary_metrics(table)
                                                   if m.endswith("_orig")])[:2]
    if not present:
        raise ValueError(f"none of the metrics {list(metrics)} is in the table")
    by = list(by)
    keys = ordered_groups(table, by)
    colours = dict(zip(keys, _colours(len(keys))))
    fig, axes = plt.subplots(1, len(present), figsize=(5.4 * len(present), 4.0), squeeze=False)
    for ax, metric in zip(axes[0], present):
        _draw_lines(ax, _band_stats(table, metric, by, band, n_boot, seed), by, keys, colours)
        _draw_threshold(ax, rule, metric)
        _iteration_axis(ax)
        ax.set_ylabel(axis_label(metric))
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
    axes[0][0].legend(fontsize=8, frameon=False)
    what = "95% bootstrap CI of the mean" if band == "ci" else "+-1 std across trajectories"
    fig.suptitle(f"Recursive inpainting: drift from the original (band: {what})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, formats)


def survival_curves(
    table: pd.DataFrame,
    path: str | Path,
    rule: analysis.CollapseRule | str | float | None = None,
    by: Sequence[str] = ("model", "mask_label"),
    *,
    n_boot: int = 1000,
    seed: int = 0,
    formats: Sequence[str] | None = None,
) -> Path:
    """Kaplan-Meier share of trajectories not yet collapsed vs iteration, one step line per group.

    Band: 95% bootstrap interval; the dotted line at 0.5 crosses each curve at its median
    collapse iteration. See :func:`ripbench.analysis.survival_curves`.
    """
    plt = _pyplot()
    rule = analysis.collapse_rule(table, rule)
    by = list(by)
    stats = analysis.survival_curves(table, rule, by, n_boot=n_boot, seed=seed)
    stats = stats.rename(columns={"at_risk": "n"})
    keys = ordered_groups(table, by)
    colours = dict(zip(keys, _colours(len(keys))))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key in keys:
        s = _select(stats, by, key)
        if s.empty:
            continue
        events = analysis.collapse_events(_select(table, by, key), rule)
        label = f"{_label(key)} ({int(events['collapsed'].sum())}/{len(events)} collapsed)"
        ax.step(s["iteration"], s["survival"], where="post", color=colours[key], lw=1.8, label=label)
        ax.fill_between(s["iteration"], s["lo"], s["hi"], step="post", color=colours[key], alpha=0.15, lw=0)
    ax.axhline(0.5, color="0.4", ls=":", lw=1)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(left=0)
    _iteration_axis(ax)
    ax.set_ylabel("share not yet collapsed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    ax.set_title(f"Survival (Kaplan-Meier), collapse = first iteration with {rule.describe()}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, formats)


def model_comparison(
    table: pd.DataFrame,
    path: str | Path,
    metric: str | None = None,
    panel_by: str = "mask_label",
    line_by: str | Sequence[str] = "model",
    *,
    n_boot: int = 1000,
    seed: int = 0,
    rule: analysis.CollapseRule | None = None,
    formats: Sequence[str] | None = None,
) -> Path:
    """One panel per ``panel_by`` value (mask size), one line per ``line_by`` group (model).

    ``metric`` defaults to the collapse rule's metric (LPIPS when present). Bands: 95%
    bootstrap CI of the mean. Panels share the y axis so they compare at a glance.
    """
    plt = _pyplot()
    rule = rule or analysis.collapse_rule(table)
    metric = metric or rule.metric
    line_by = [line_by] if isinstance(line_by, str) else list(line_by)
    panels = [p[0] for p in ordered_groups(table, [panel_by])]
    keys = ordered_groups(table, line_by)
    colours = dict(zip(keys, _colours(len(keys))))
    stats = analysis.bootstrap_curves(table, metric, [panel_by, *line_by], n_boot=n_boot, seed=seed)
    ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.6 * nrows), squeeze=False, sharey=True)
    for ax, panel in zip(axes.flat, panels):
        _draw_lines(ax, stats[stats[panel_by] == panel], line_by, keys, colours)
        _draw_threshold(ax, rule, metric)
        ax.set_title(f"{panel_by} = {panel}", fontsize=10)
        _iteration_axis(ax)
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(axis_label(metric))
    axes.flat[0].legend(fontsize=8, frameon=False)
    fig.suptitle(f"{' / '.join(line_by)} compared per {panel_by} (band: 95% bootstrap CI)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, formats)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB" if img.mode not in ("L", "1") else "L"), dtype=np.float32) / 255.0


def snapshot_iterations(run_dir: str | Path, trajectory_id: str) -> list[int]:
    """Iterations for which the run saved an image of ``trajectory_id`` (ascending)."""
    folder = Path(run_dir) / IMAGES_DIR / trajectory_id
    found = (re.fullmatch(r"iter_(\d+)\.png", p.name) for p in folder.glob("iter_*.png"))
    return sorted(int(m.group(1)) for m in found if m)


def image_strips(
    run_dir: str | Path,
    trajectory_ids: str | Sequence[str],
    path: str | Path,
    *,
    iterations: Sequence[int] | None = None,
    table: pd.DataFrame | None = None,
    metric: str | None = None,
    formats: Sequence[str] | None = None,
) -> Path:
    """One row per trajectory: the original and its snapshots side by side.

    The region repainted at each shown iteration is outlined in red (from the saved mask).
    ``iterations`` limits the columns (default: every saved snapshot). With a ``table`` (rows
    of this run), each image is titled with ``metric`` to the original at that iteration
    (default: the collapse rule's metric) and rows are labelled model / image / mask / seed.
    """
    plt = _pyplot()
    ids = [trajectory_ids] if isinstance(trajectory_ids, str) else list(trajectory_ids)
    available = {tid: snapshot_iterations(run_dir, tid) for tid in ids}
    columns = sorted({i for its in available.values() for i in its})
    if iterations is not None:
        columns = [i for i in columns if i in set(iterations)]
    if not ids or not columns:
        raise ResultsError(f"no saved snapshots for {ids[:3]} in {Path(run_dir) / IMAGES_DIR}")
    values: dict[tuple[str, int], float] = {}
    info: dict[str, str] = {}
    if table is not None:
        metric = metric or analysis.collapse_rule(table).metric
        rows = table[table["trajectory_id"].isin(ids)]
        for tid, it, v in zip(rows["trajectory_id"], rows["iteration"], analysis.metric_values(rows, metric)):
            values[(tid, int(it))] = v
        for tid, g in rows.groupby("trajectory_id"):
            r = g.iloc[0]
            info[str(tid)] = f"{r['model']}\n{r['image_id']} | {r['mask_label']} | seed {r['seed']}"
    short = (metric or "").split("_")[0].upper()
    size = 1.75
    fig, axes = plt.subplots(len(ids), len(columns), figsize=(size * len(columns) + 0.8, size * len(ids) + 0.3),
                             squeeze=False)
    folder = Path(run_dir) / IMAGES_DIR
    for r, tid in enumerate(ids):
        for c, it in enumerate(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            image_path = folder / tid / f"iter_{it:04d}.png"
            if not image_path.is_file():
                ax.set_axis_off()
                continue
            ax.imshow(_read_png(image_path), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            mask_path = folder / tid / f"mask_{it:04d}.png"
            if mask_path.is_file():
                mask = _read_png(mask_path)
                mask = mask.mean(axis=-1) if mask.ndim == 3 else mask
                if mask.max() > 0.5:
                    ax.contour(mask > 0.5, levels=[0.5], colors="red", linewidths=0.9)
            title = "original" if it == 0 else f"iteration {it}"
            value = values.get((tid, it))
            if value is not None and np.isfinite(value) and it > 0:
                title += f"\n{short} {value:.3f}"
            ax.set_title(title, fontsize=7.5)
        axes[r][0].set_ylabel(info.get(tid, tid.replace("__", "\n")), fontsize=7, rotation=0, ha="right",
                              va="center", labelpad=4)
    fig.suptitle("Snapshots (red outline: region repainted at that iteration)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, formats)


def drift_heatmap(
    run_dir: str | Path,
    path: str | Path,
    *,
    table: pd.DataFrame | None = None,
    column_by: str = "mask_label",
    iteration: int | None = None,
    max_images: int = 12,
    formats: Sequence[str] | None = None,
) -> Path:
    """Where change accumulated: per-pixel ``|last snapshot - original|``, averaged.

    One row per image (at most ``max_images``): the original, then one heat map per value of
    ``column_by`` (default: mask size), each the channel-mean absolute difference between the
    latest saved snapshot (at or before ``iteration``) and the original, averaged over the
    trajectories of that image and column (models, seeds). All maps share one colour scale.
    ``table`` (rows of this run) defaults to the run's table.
    """
    plt = _pyplot()
    run_dir = Path(run_dir)
    table = load_table(run_dir) if table is None else table
    info = table.groupby("trajectory_id")[["image_id", column_by]].first()
    sums: dict[tuple[Any, Any], np.ndarray] = {}
    counts: dict[tuple[Any, Any], int] = {}
    shown_iter: dict[tuple[Any, Any], set[int]] = {}
    originals: dict[Any, np.ndarray] = {}
    for tid, (image_id, col) in info.iterrows():
        its = [i for i in snapshot_iterations(run_dir, str(tid)) if iteration is None or i <= iteration]
        if 0 not in its or max(its) == 0:
            continue
        folder = run_dir / IMAGES_DIR / str(tid)
        original = _read_png(folder / "iter_0000.png")
        final = _read_png(folder / f"iter_{max(its):04d}.png")
        diff = np.abs(final - original)
        diff = diff.mean(axis=-1) if diff.ndim == 3 else diff
        key = (image_id, col)
        if key in sums and sums[key].shape != diff.shape:
            continue
        sums[key] = sums.get(key, 0) + diff
        counts[key] = counts.get(key, 0) + 1
        shown_iter.setdefault(key, set()).add(max(its))
        originals.setdefault(image_id, original)
    if not sums:
        raise ResultsError(f"no trajectory in {run_dir} has a saved original and a later snapshot")
    images = sorted(originals, key=_natural_key)[:max_images]
    cols = [c for (c,) in ordered_groups(table, [column_by]) if any((i, c) in sums for i in images)]
    maps = {k: sums[k] / counts[k] for k in sums}
    vmax = float(np.percentile(np.concatenate([m.ravel() for m in maps.values()]), 99.5)) or 1.0
    size = 1.9
    fig, axes = plt.subplots(len(images), len(cols) + 1, figsize=(size * (len(cols) + 1) + 0.9, size * len(images)),
                             squeeze=False, layout="constrained")
    mappable = None
    for r, image_id in enumerate(images):
        axes[r][0].imshow(originals[image_id], cmap="gray", vmin=0, vmax=1)
        axes[r][0].set_ylabel(str(image_id), fontsize=8)
        if r == 0:
            axes[r][0].set_title("original", fontsize=8)
        for c, col in enumerate(cols, start=1):
            ax = axes[r][c]
            if (image_id, col) in maps:
                mappable = ax.imshow(maps[(image_id, col)], cmap="magma", vmin=0, vmax=vmax)
                its = sorted(shown_iter[(image_id, col)])
                ax.set_title(f"{col}, it {its[-1]} (n={counts[(image_id, col)]})", fontsize=7.5)
            else:
                ax.set_axis_off()
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    if mappable is not None:
        bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02, shrink=0.6)
        bar.set_label("mean |last snapshot - original| (pixel scale 0-1)", fontsize=8)
    fig.suptitle("Where the image changed (averaged over the trajectories of each image)", fontsize=9)
    return save_figure(fig, path, formats)
