"""Hallucination figures: the score per iteration band (with the ground-truth rate where known) and
the ROC curves of the scores, each from statistics of :mod:`ripbench.hallucination.stats`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ResultsError
from .groups import _label, _markevery, group_styles, ordered_groups, select
from .layout import (
    FULL_WIDTH,
    _iteration_axis,
    _legend_below,
    _shift,
    _spread,
    axis_label,
    figure_style,
    save_figure,
)


def hallucination_bands(
    table: pd.DataFrame,
    path: str | Path,
    score: str = "halluc_score",
    by: Sequence[str] = ("model",),
    *,
    bands: int = 4,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    formats: Sequence[str] | None = None,
    computed: pd.DataFrame | None = None,
) -> Path:
    """Box plots of ``score`` per iteration band and group; beside them, where the run has ground
    truth, the hallucination rate per band with its 95% interval (trajectories resampled).

    ``computed``: the :func:`ripbench.hallucination.stats.score_bands` frame of these arguments when
    the caller has it already (the report does); computed here otherwise.
    """
    from ..hallucination.stats import score_bands, scored_outputs

    frame = computed if computed is not None else score_bands(table, score, by, bands=bands, n_boot=n_boot,
                                                              ci=ci, seed=seed)
    if frame.empty:
        raise ResultsError(f"the table has no {score} values")
    by = list(by)
    data = scored_outputs(table, score)
    keys = [k for k in ordered_groups(data, by)]
    styles = group_styles(keys)
    rated = "halluc_rate" in frame.columns
    band_list = frame[["first", "last", "band"]].drop_duplicates().sort_values("first")
    width = 0.8 / max(1, len(keys))
    with figure_style() as plt:
        fig, axes = plt.subplots(1, 2 if rated else 1, figsize=(FULL_WIDTH if rated else FULL_WIDTH * 0.6, 2.6),
                                 squeeze=False)
        ax = axes[0][0]
        for g, key in enumerate(keys):
            part = select(data, by, key)
            series = [pd.to_numeric(part.loc[(part["iteration"] >= f) & (part["iteration"] <= last), score])
                      .dropna().to_numpy() for f, last in zip(band_list["first"], band_list["last"])]
            positions = np.arange(len(series)) + (g - (len(keys) - 1) / 2) * width
            box = ax.boxplot(series, positions=positions, widths=width * 0.85, patch_artist=True, showfliers=True,
                             flierprops={"markersize": 2, "alpha": 0.5}, medianprops={"color": "black"})
            for patch in box["boxes"]:
                patch.set(facecolor=styles[key]["color"], alpha=0.55)
            ax.plot([], [], color=styles[key]["color"], lw=6, alpha=0.55, label=_label(key))
        ax.set_xticks(np.arange(len(band_list)), [f"it. {b}" for b in band_list["band"]])
        ax.set_xlabel("band of iterations")
        ax.set_ylabel(axis_label(score))
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        if rated:
            ax2 = axes[0][1]
            for g, key in enumerate(keys):
                s = select(frame, by, key).sort_values("first")
                centre = (s["first"] + s["last"]) / 2
                bars = ax2.errorbar(centre, s["halluc_rate"], yerr=[s["halluc_rate"] - s["halluc_rate_lo"],
                                                                    s["halluc_rate_hi"] - s["halluc_rate"]],
                                    **{"marker": "o", "ms": 3.5, **styles[key]}, capsize=2.5, label=_label(key))
                _shift([bars], dx=(g - (len(keys) - 1) / 2) * 2.5)  # groups side by side, not on each other
            _iteration_axis(ax2)
            ax2.set_ylim(bottom=0)
            ax2.set_ylabel(f"hallucination rate\n(ground truth, {ci:.0%} CI)")
        _legend_below(fig, ncol=4)
        return save_figure(fig, path, formats)


def roc_curves(results: Sequence[dict[str, Any]], path: str | Path, *,
               formats: Sequence[str] | None = None) -> Path:
    """ROC curves of :func:`ripbench.hallucination.stats.roc_analysis` results, AUROC [95% CI] in the legend.

    Like :func:`survival_curves`, curves are drawn up to 3 points apart (in print, across the
    diagonal) so that curves that coincide stay visible."""
    shown = [r for r in results if r.get("status") == "ok"]
    if not shown:
        raise ResultsError("no ROC curve to draw (no ground truth with both classes)")
    with figure_style() as plt:
        fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.55, 3.4))
        styles = group_styles([(i,) for i in range(len(shown))])
        for i, r in enumerate(shown):
            lines = ax.step(r["fpr"], r["tpr"], where="post", **_markevery(styles[(i,)], i, len(r["fpr"])),
                            label=f"{r['score']}: AUROC {r['auroc']:.2f} [{r['auroc_lo']:.2f}, {r['auroc_hi']:.2f}]")
            _shift(lines, dx=-_spread(i, len(shown)), dy=_spread(i, len(shown)))  # coinciding curves side by side
        ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=0.9, label="chance")
        ax.set_xlim(-0.02, 1)  # room for the curves drawn apart at FPR 0 and TPR 1
        ax.set_ylim(0, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate (in-support flagged)")
        ax.set_ylabel("true positive rate\n(hallucinations flagged)")
        first = shown[0]
        ax.set_title(f"n = {first['outputs']} outputs ({first['hallucinated']} hallucinated), "
                     f"{first['trajectories']} trajectories")
        _legend_below(fig, ncol=1)
        return save_figure(fig, path, formats)
