"""Figures drawn from a results table (matplotlib, headless), sized for a paper and for the report.

Every function takes the tidy per-iteration table (see ``results/README.md``) or a run
folder, writes image files atomically and returns the path of the first one. The statistics drawn
come from the public functions of :mod:`ripbench.analysis` and :mod:`ripbench.hallucination.stats`
(a figure whose numbers the caller has computed already takes them: ``hallucination_bands(...,
computed=...)``, :func:`roc_curves`); nothing here computes a statistic of its own beyond a mean
and standard deviation per iteration (:func:`curve_stats`). With
``formats=("pdf", "svg")`` the same figure is also written beside it in those formats (vector
graphics for papers; PNGs are written at :data:`DPI`). All figures share one style
(:data:`STYLE`): a text width of :data:`FULL_WIDTH` inches, 8-9 pt fonts, legends outside the
axes, no titles above the figure (the report and a paper give captions). Nothing is cut: labels and
titles longer than their axes are wrapped (:func:`fit_text`, :func:`wrap_text`), a legend below the
panels takes the columns that fit and the figure grows by its height; groups differ in colour, line
style and marker (:func:`group_styles`), the smallest drawn on top.

Every figure ripbench draws, and only that, in modules by what they draw: :mod:`~ripbench.plots.layout`
(the style, labels, wrapping, legends, grids, :func:`save_figure`; what every figure shares),
:mod:`~ripbench.plots.groups` (order, labels and styles of the groups), :mod:`~ripbench.plots.curves`,
:mod:`~ripbench.plots.hallucination` and :mod:`~ripbench.plots.images`. Every public name is
importable from ``ripbench.plots``.

* :func:`collapse_curves` - mean metric vs iteration per group, 95% bootstrap band;
* :func:`survival_curves` - share of trajectories not yet collapsed (Kaplan-Meier);
* :func:`model_comparison` - one panel per mask size, one line per model;
* :func:`region_curves` - drift in the whole image / current mask / ever- / never-masked pixels;
* :func:`hallucination_bands` - hallucination score per iteration band (and the rate where known);
* :func:`roc_curves` - ROC of the hallucination scores against ground truth, AUROC with CI;
* :func:`image_strips` - one trajectory per row at chosen iterations next to the original;
* :func:`drift_heatmap` - where in the image the change accumulated, per model and mask.
* :func:`population_curves` - FD / KID / CMMD of each group's images from the originals per iteration.

Example
-------
>>> from ripbench.store import load_table                      # doctest: +SKIP
>>> collapse_curves(load_table("results/quick"), "curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

from .curves import (
    collapse_curves,
    curve_stats,
    model_comparison,
    population_curves,
    region_curves,
    survival_curves,
)
from .groups import LINE_STYLES, MARKERS, group_styles, ordered_groups, select
from .hallucination import hallucination_bands, roc_curves
from .images import (
    ROW_LABEL_WIDTH,
    choose_iterations,
    drift_heatmap,
    image_strips,
    read_png,
    snapshot_iterations,
)
from .layout import (
    DPI,
    EDGE_PAD,
    FULL_WIDTH,
    OTHER_LABELS,
    STYLE,
    _renderer,  # noqa: F401 - measured by the layout tests
    _text_width,  # noqa: F401 - measured by the layout tests
    axis_label,
    figure_style,
    fit_text,
    save_figure,
    wrap_text,
)

__all__ = [
    "DPI", "EDGE_PAD", "FULL_WIDTH", "LINE_STYLES", "MARKERS", "OTHER_LABELS", "ROW_LABEL_WIDTH", "STYLE",
    "axis_label", "choose_iterations", "collapse_curves", "curve_stats", "drift_heatmap", "figure_style",
    "fit_text", "group_styles", "hallucination_bands", "image_strips", "model_comparison", "ordered_groups",
    "population_curves", "read_png", "region_curves", "roc_curves", "save_figure", "select",
    "snapshot_iterations", "survival_curves", "wrap_text",
]
