"""Figures drawn from a results table (matplotlib, headless).

Every function takes the tidy per-iteration table (see ``results/README.md``) and
writes image files; none needs the run that produced it.

Example
-------
>>> from ripbench.store import load_table                      # doctest: +SKIP
>>> collapse_curves(load_table("results/quick"), "curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .store import atomic_save

#: Human-readable axis labels of the table's metric columns.
METRIC_LABELS = {
    "lpips_orig": "LPIPS to original (lower = closer)",
    "ssim_orig": "SSIM to original (higher = closer)",
    "psnr_orig": "PSNR to original (dB)",
    "mse_orig": "MSE to original",
    "lpips_prev": "LPIPS to previous iteration",
    "ssim_prev": "SSIM to previous iteration",
    "halluc_score": "hallucination score (x0 variance)",
    "halluc_score_in": "hallucination score inside mask",
    "cum_mask_area": "share of pixels ever repainted",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def curve_stats(table: pd.DataFrame, metric: str, by: Sequence[str]) -> pd.DataFrame:
    """Mean, standard deviation and count of ``metric`` per group and iteration."""
    data = table.replace([np.inf, -np.inf], np.nan)
    return (data.groupby([*by, "iteration"])[metric].agg(["mean", "std", "count"]).reset_index())


def collapse_curves(
    table: pd.DataFrame,
    path: str | Path,
    metrics: Sequence[str] = ("lpips_orig", "ssim_orig"),
    by: Sequence[str] = ("model", "mask_label"),
) -> Path:
    """Plot mean metric vs iteration, one line per group, band = mean +- 1 std across trajectories.

    Metrics missing from the table (e.g. LPIPS when it was not computed) are skipped.
    Written atomically as PNG (and SVG when ``path`` ends in ``.svg``).
    """
    plt = _pyplot()
    present = [m for m in metrics if m in table.columns and table[m].notna().any()]
    if not present:  # e.g. a run without LPIPS and SSIM: show what it has
        present = [m for m in ("psnr_orig", "mse_orig") if m in table.columns][:1]
    if not present:
        raise ValueError(f"none of the metrics {list(metrics)} is in the table")
    fig, axes = plt.subplots(1, len(present), figsize=(5.2 * len(present), 4.0), squeeze=False)
    groups = list(table.groupby(list(by)).groups)
    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    for ax, metric in zip(axes[0], present):
        stats = curve_stats(table, metric, by)
        for i, key in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            sel = np.logical_and.reduce([stats[c] == v for c, v in zip(by, key)])
            s = stats[sel]
            if s.empty:
                continue
            colour = colours(i % colours.N)
            label = " / ".join(str(v) for v in key) + f" (n={int(s['count'].max())})"
            ax.plot(s["iteration"], s["mean"], color=colour, lw=1.8, label=label)
            std = s["std"].fillna(0.0)
            ax.fill_between(s["iteration"], s["mean"] - std, s["mean"] + std, color=colour, alpha=0.15, lw=0)
        ax.set_xlabel("iteration")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
    axes[0][0].legend(fontsize=8, frameon=False)
    fig.suptitle("Recursive inpainting: drift from the original (band: +-1 std across trajectories)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png"))
    plt.close(fig)
    return path
