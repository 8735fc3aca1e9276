"""Figures of a run's saved images: trajectories as strips of snapshots (masks outlined), and heat maps
of where the change accumulated; with the helpers that find and read the snapshots."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import analysis
from ..errors import ResultsError
from ..store import IMAGES_DIR, load_table
from .groups import _natural_key, ordered_groups
from .layout import FULL_WIDTH, _wrap_to, axis_label, figure_style, save_figure

#: Width (inches) of the row labels beside image grids (:func:`image_strips`); longer lines are wrapped.
ROW_LABEL_WIDTH = 0.9


def read_png(path: str | Path) -> np.ndarray:
    """A saved snapshot or mask as floats in ``[0, 1]``: ``H x W`` for greyscale, ``H x W x 3`` otherwise."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB" if img.mode not in ("L", "1") else "L"), dtype=np.float32) / 255.0


def snapshot_iterations(run_dir: str | Path, trajectory_id: str) -> list[int]:
    """Iterations for which the run saved an image of ``trajectory_id`` (ascending)."""
    folder = Path(run_dir) / IMAGES_DIR / trajectory_id
    found = (re.fullmatch(r"iter_(\d+)\.png", p.name) for p in folder.glob("iter_*.png"))
    return sorted(int(m.group(1)) for m in found if m)


def choose_iterations(available: Sequence[int], count: int = 5) -> list[int]:
    """The original plus at most ``count`` later iterations of ``available``, spread out, the last included.

    >>> choose_iterations([0, 1, 2, 3, 4, 5, 10, 20], 3)
    [0, 5, 10, 20]
    """
    later = sorted(i for i in set(available) if i > 0)
    if len(later) > count:
        chosen: list[int] = []
        for target in np.linspace(later[-1] / count, later[-1], count):
            free = [i for i in later if i not in chosen]
            chosen.append(min(free, key=lambda i: (abs(i - target), i)))
        later = sorted(chosen)
    return ([0] if 0 in set(available) else []) + later


def image_strips(
    run_dir: str | Path,
    trajectory_ids: str | Sequence[str],
    path: str | Path,
    *,
    iterations: Sequence[int] | None = None,
    max_columns: int = 5,
    table: pd.DataFrame | None = None,
    metric: str | None = None,
    formats: Sequence[str] | None = None,
) -> Path:
    """One row per trajectory: the original and its snapshots at chosen iterations side by side.

    The region repainted at each shown iteration is outlined in red (from the saved mask).
    ``iterations`` limits the columns (default: the original and at most ``max_columns`` saved
    snapshots, spread over the run, see :func:`choose_iterations`). With a ``table`` (rows of
    this run), each image is captioned with ``metric`` to the original at that iteration
    (default: the collapse rule's metric) and rows are labelled model / mask / image / seed.
    """
    ids = [trajectory_ids] if isinstance(trajectory_ids, str) else list(trajectory_ids)
    available = {tid: snapshot_iterations(run_dir, tid) for tid in ids}
    columns = sorted({i for its in available.values() for i in its})
    columns = [i for i in columns if i in set(iterations)] if iterations is not None else \
        choose_iterations(columns, max_columns)
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
            info[str(tid)] = f"{r['model']}\n{r['mask_label']}\n{r['image_id']}, seed {r['seed']}"
    spec_label = (axis_label(metric).split(" ")[0] if metric else "")
    cell = min(1.05, (FULL_WIDTH - ROW_LABEL_WIDTH - 0.1) / len(columns))
    folder = Path(run_dir) / IMAGES_DIR
    with figure_style() as plt:
        fig, axes = plt.subplots(len(ids), len(columns), figsize=(cell * len(columns) + ROW_LABEL_WIDTH + 0.1,
                                                                  cell * len(ids) * 1.12),
                                 squeeze=False, gridspec_kw={"wspace": 0.04, "hspace": 0.0})
        for r, tid in enumerate(ids):
            for c, it in enumerate(columns):
                ax = axes[r][c]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for side in ax.spines.values():
                    side.set_visible(False)
                image_path = folder / tid / f"iter_{it:04d}.png"
                if not image_path.is_file():
                    continue
                ax.imshow(read_png(image_path), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                mask_path = folder / tid / f"mask_{it:04d}.png"
                if mask_path.is_file():
                    mask = read_png(mask_path)
                    mask = mask.mean(axis=-1) if mask.ndim == 3 else mask
                    if mask.max() > 0.5:
                        ax.contour(mask > 0.5, levels=[0.5], colors="red", linewidths=0.7)
                value = values.get((tid, it))
                text = "original" if it == 0 else f"it. {it}"
                if value is not None and np.isfinite(value) and it > 0:
                    text += f"  {spec_label} {value:.2f}"
                ax.set_xlabel(text, fontsize=6.5, labelpad=1.5)
            row_label = _wrap_to(fig, info.get(tid, tid.replace("__", "\n")), ROW_LABEL_WIDTH, 6.5)
            axes[r][0].set_ylabel(row_label, fontsize=6.5, rotation=0, ha="right", va="center", labelpad=3)
        return save_figure(fig, path, formats)


def drift_heatmap(
    run_dir: str | Path,
    path: str | Path,
    *,
    table: pd.DataFrame | None = None,
    column_by: str | Sequence[str] = ("model", "mask_label"),
    iteration: int | None = None,
    max_images: int = 4,
    formats: Sequence[str] | None = None,
) -> Path:
    """Where change accumulated: per-pixel ``|last snapshot - original|``, averaged over seeds.

    One row per image (at most ``max_images``): the original, then one heat map per group of
    ``column_by`` (default: model and mask size, so models are compared side by side rather than
    averaged together), each the channel-mean absolute difference between the latest saved
    snapshot (at or before ``iteration``) and the original, averaged over the trajectories of
    that image and group (seeds). Column titles name what differs between the columns (the mask
    alone when the run has one model). All maps share one colour scale. ``table`` (rows of this
    run) defaults to the run's table.
    """
    run_dir = Path(run_dir)
    table = load_table(run_dir) if table is None else table
    column_by = [column_by] if isinstance(column_by, str) else list(column_by)
    info = table.groupby("trajectory_id")[["image_id", *column_by]].first()
    sums: dict[tuple[Any, tuple[Any, ...]], np.ndarray] = {}
    counts: dict[tuple[Any, tuple[Any, ...]], int] = {}
    shown_iter: dict[tuple[Any, tuple[Any, ...]], set[int]] = {}
    originals: dict[Any, np.ndarray] = {}
    for tid, row in info.iterrows():
        its = [i for i in snapshot_iterations(run_dir, str(tid)) if iteration is None or i <= iteration]
        if 0 not in its or max(its) == 0:
            continue
        folder = run_dir / IMAGES_DIR / str(tid)
        original = read_png(folder / "iter_0000.png")
        final = read_png(folder / f"iter_{max(its):04d}.png")
        diff = np.abs(final - original)
        diff = diff.mean(axis=-1) if diff.ndim == 3 else diff
        key = (row["image_id"], tuple(row[c] for c in column_by))
        if key in sums and sums[key].shape != diff.shape:
            continue
        sums[key] = sums.get(key, 0) + diff
        counts[key] = counts.get(key, 0) + 1
        shown_iter.setdefault(key, set()).add(max(its))
        originals.setdefault(row["image_id"], original)
    if not sums:
        raise ResultsError(f"no trajectory in {run_dir} has a saved original and a later snapshot")
    images = sorted(originals, key=_natural_key)[:max_images]
    cols = [c for c in ordered_groups(table, column_by) if any((i, c) in sums for i in images)]
    varying = [j for j in range(len(column_by)) if len({c[j] for c in cols}) > 1] or [len(column_by) - 1]
    maps = {k: sums[k] / counts[k] for k in sums}
    vmax = float(np.percentile(np.concatenate([m.ravel() for m in maps.values()]), 99.5)) or 1.0
    cell = min(1.1, (FULL_WIDTH - 1.2) / (len(cols) + 1))
    with figure_style() as plt:
        fig, axes = plt.subplots(len(images), len(cols) + 1, figsize=(cell * (len(cols) + 1) + 1.2,
                                                                      cell * len(images) + 0.3), squeeze=False)
        # long column titles (plug-in model names) wrapped to the cell; the figure grows by their lines
        titles = {c: _wrap_to(fig, "\n".join(str(c[j]) for j in varying), cell - 0.1, 7) for c in cols}
        lines = max(t.count("\n") for t in titles.values())
        fig.set_figheight(fig.get_figheight() + lines * 7 * 1.2 / 72)
        mappable = None
        for r, image_id in enumerate(images):
            axes[r][0].imshow(originals[image_id], cmap="gray", vmin=0, vmax=1)
            axes[r][0].set_ylabel(str(image_id), fontsize=7)
            if r == 0:
                axes[r][0].set_title("original", fontsize=7)
            for c, col in enumerate(cols, start=1):
                ax = axes[r][c]
                if (image_id, col) in maps:
                    mappable = ax.imshow(maps[(image_id, col)], cmap="magma", vmin=0, vmax=vmax)
                    its = sorted(shown_iter[(image_id, col)])
                    ax.set_xlabel(f"it. {its[-1]}, n={counts[(image_id, col)]}", fontsize=6.5, labelpad=1.5)
                if r == 0:
                    ax.set_title(titles[col], fontsize=7)
            for ax in axes[r]:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for side in ax.spines.values():
                    side.set_visible(False)
        if mappable is not None:
            bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.04, pad=0.02, shrink=0.7)
            bar.set_label("mean |last snapshot - original|\n(pixel values 0-1)", fontsize=7)
            bar.ax.tick_params(labelsize=6.5)
        return save_figure(fig, path, formats)
