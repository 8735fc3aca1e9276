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

One responsibility, which is why the module is long: every figure ripbench draws, and only that
(the figures share the style, the atomic multi-format writer and the axis helpers).

* :func:`collapse_curves` - mean metric vs iteration per group, 95% bootstrap band;
* :func:`survival_curves` - share of trajectories not yet collapsed (Kaplan-Meier);
* :func:`model_comparison` - one panel per mask size, one line per model;
* :func:`region_curves` - drift in the whole image / current mask / ever- / never-masked pixels;
* :func:`hallucination_bands` - hallucination score per iteration band (and the rate where known);
* :func:`roc_curves` - ROC of the hallucination scores against ground truth, AUROC with CI;
* :func:`image_strips` - one trajectory per row at chosen iterations next to the original;
* :func:`drift_heatmap` - where in the image the change accumulated, per model and mask.

Example
-------
>>> from ripbench.store import load_table                      # doctest: +SKIP
>>> collapse_curves(load_table("results/quick"), "curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import analysis
from .errors import ResultsError
from .io import atomic_save
from .metrics.registry import column_label, spec_for_column
from .store import IMAGES_DIR, load_table

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

#: Axis labels of the table's columns that are not metrics (metric labels come from their specs).
OTHER_LABELS = {
    "halluc_score": "hallucination score (x0 variance)",
    "halluc_score_current": "hallucination score inside mask",
    "cum_mask_area": "share of pixels ever repainted",
}


def axis_label(column: str) -> str:
    """Axis label of a results column: the metric's spec, else :data:`OTHER_LABELS`, else the name."""
    return column_label(column) or OTHER_LABELS.get(column, column)


#: Resolution of PNG figures (dots per inch): sharp when printed at the figure's size.
DPI = 200
#: Width of a full-width figure in inches (a paper's text width); half-width figures use half.
FULL_WIDTH = 7.0
#: Margin (inches) kept free at the figure's edges by legends sized to fit (:func:`_legend_below`).
EDGE_PAD = 0.08
#: Shared matplotlib settings of every figure.
STYLE: dict[RcKeyType, Any] = {
    "font.size": 8.5, "axes.titlesize": 8.5, "axes.labelsize": 8.5, "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5, "legend.fontsize": 7.5, "legend.frameon": False, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6,
    "lines.linewidth": 1.5, "svg.hashsalt": "ripbench", "svg.fonttype": "none", "pdf.fonttype": 42,
    "figure.constrained_layout.use": True,
    # text is measured (to wrap it, to size legends) at the resolution it is written at: hinting makes
    # a label's width in inches differ by several percent between resolutions
    "figure.dpi": DPI,
    # labels come from the data (model labels, categories): a '$' is a dollar, never mathtext
    "text.parse_math": False,
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def figure_style() -> Iterator[Any]:
    """Context in which figures get :data:`STYLE`; yields ``matplotlib.pyplot``."""
    import matplotlib

    plt = _pyplot()
    with matplotlib.rc_context(STYLE):
        yield plt


def save_figure(fig: Any, path: str | Path, formats: Sequence[str] | None = None) -> Path:
    """Write ``fig`` to ``path`` (format from its suffix, PNG without one) and to each of
    ``formats`` beside it (same name, other suffix), atomically; close the figure.

    Labels and titles longer than their axes are wrapped first (:func:`fit_text`). SVG and PDF
    files are written without a date (and SVGs with fixed element ids), so that the same figure
    gives the same file.
    """
    import matplotlib

    plt = _pyplot()
    fit_text(fig)
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    wanted = [path.suffix.lstrip(".").lower()] + [f.lower().lstrip(".") for f in formats or ()]
    meta_for = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}
    try:
        with matplotlib.rc_context({"svg.hashsalt": "ripbench"}):
            for fmt in dict.fromkeys(wanted):
                target = path.with_suffix(f".{fmt}")
                atomic_save(target, lambda tmp, fmt=fmt: fig.savefig(
                    tmp, dpi=DPI, format=fmt, bbox_inches=None, metadata=meta_for.get(fmt)))
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


#: Line styles and markers cycled over the groups of a figure (with the colours), so that lines
#: that coincide, or a figure printed in grey, still tell the groups apart.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def group_styles(keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Matplotlib line properties of each group: its colour, and with two or more groups a line
    style and marker cycling with it (one group: a plain solid line)."""
    styles: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i, (key, colour) in enumerate(zip(keys, _colours(len(keys)))):
        styles[key] = {"color": colour}
        if len(keys) > 1:
            styles[key].update(ls=LINE_STYLES[i % len(LINE_STYLES)], marker=MARKERS[i % len(MARKERS)], ms=3.2)
    return styles


def _markevery(style: dict[str, Any], index: int, points: int) -> dict[str, Any]:
    """``style`` with markers on about six points of the line, shifted per group (markers of
    coinciding lines do not sit on each other)."""
    if "marker" not in style:
        return style
    step = max(1, points // 6)
    return {**style, "markevery": (index % step, step)}


def _zorders(sizes: dict[tuple[Any, ...], int]) -> dict[tuple[Any, ...], float]:
    """Drawing order of the groups' lines: the largest group (n) at the bottom, the smallest on top."""
    ranked = sorted(sizes, key=lambda k: -sizes[k])  # stable: equal n keep their order
    return {key: 2.0 + i / 100 for i, key in enumerate(ranked)}


def _renderer(fig: Any) -> Any:
    """The renderer that measures ``fig``'s text (its canvas's; a figure without a drawing canvas, e.g. a
    bare ``Figure()`` or one closed by pyplot, gets an Agg renderer of its size)."""
    get = getattr(fig.canvas, "get_renderer", None)
    return get() if get is not None else fig._get_renderer()


def _shift(artists: Any, dx: float = 0.0, dy: float = 0.0) -> None:
    """Draw ``artists`` (of one axes; lines, collections, an errorbar container) ``dx``, ``dy`` print
    points away from where their data put them; the data and the axes' limits stay as they are."""
    from matplotlib.container import Container
    from matplotlib.transforms import offset_copy

    for artist in artists:
        if isinstance(artist, Container):
            _shift([a for a in artist.get_children() if a is not None], dx, dy)
        elif artist is not None:
            artist.set_transform(offset_copy(artist.axes.transData, fig=artist.figure, x=dx, y=dy, units="points"))


def _spread(index: int, count: int) -> float:
    """Offset in print points of line ``index`` of ``count`` step lines that may coincide: centred on
    the data, at most a point apart, at most 3 points from it."""
    return (index - (count - 1) / 2) * min(1.0, 6.0 / max(1, count - 1))


def _text_width(text: str, prop: Any, renderer: Any) -> float:
    return max((renderer.get_text_width_height_descent(line, prop, ismath=False)[0]
                for line in text.split("\n")), default=0.0)


#: Where :func:`wrap_text` breaks a line, in order of preference: before a parenthesis, at a space,
#: after punctuation inside a name (``my_models.experimental:Long``), between camel-case words, anywhere.
_BREAKS = (r"(?= \()", r"(?<= )", r"(?<=[._:/\-])", r"(?<=[a-z])(?=[A-Z])", r"(?<=.)")


def wrap_text(text: str, width: float, prop: Any, renderer: Any) -> str:
    """``text`` with line breaks so that no line is wider than ``width`` pixels when drawn in font
    ``prop`` by ``renderer`` (existing breaks kept); unchanged when it fits.

    Lines are filled greedily; a break goes before a parenthesis where one fits, else at a space,
    else after punctuation inside a name (``my_models.experimental:``), else between camel-case
    words (``Super|Long|Name``), else anywhere.
    """
    def fits(line: str) -> bool:
        return _text_width(line.rstrip(), prop, renderer) <= width

    def wrap(line: str, level: int) -> list[str]:
        if level >= len(_BREAKS) or fits(line):
            return [line]
        lines, current = [], ""
        for piece in (p for p in re.split(_BREAKS[level], line) if p):
            if fits(current + piece):
                current += piece
                continue
            if current:
                lines.append(current)
            current = piece.lstrip()
            if not fits(current):  # too long alone: broken at the next kind of break, its tail carried on
                *done, current = wrap(current, level + 1)
                lines += done
        return [*lines, current]

    return "\n".join(part.strip() for line in text.split("\n") for part in wrap(line, 0))


def fit_text(fig: Any, rounds: int = 4) -> None:
    """Wrap every axes title, axis label and colour-bar label that is longer than its axes (a
    y label: than the axes' height) so that it fits, then lay the figure out again (the layout
    makes room for the extra lines); repeated until nothing changes. Horizontal y labels (row
    labels of image grids) are left as they are: their figure wraps them."""
    renderer = _renderer(fig)
    originals: dict[int, str] = {}
    for _ in range(rounds):
        fig.draw_without_rendering()
        changed = False
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            box = ax.get_window_extent(renderer)
            texts = [(ax.title, box.width), (ax.xaxis.label, box.width)]
            if ax.yaxis.label.get_rotation() % 180 == 90:
                texts.append((ax.yaxis.label, box.height))
            for text, span in texts:
                if not text.get_visible() or not text.get_text():
                    continue
                original = originals.setdefault(id(text), text.get_text())
                wrapped = wrap_text(original, span, text.get_fontproperties(), renderer)
                if wrapped != text.get_text():
                    text.set_text(wrapped)
                    changed = True
        if not changed:
            return


def select(frame: pd.DataFrame, by: Sequence[str], key: tuple[Any, ...]) -> pd.DataFrame:
    """The rows of ``frame`` whose ``by`` columns equal ``key``."""
    sel = np.ones(len(frame), dtype=bool)
    for col, value in zip(by, key):
        sel &= (frame[col] == value).to_numpy()
    return frame[sel]


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


def _iteration_axis(ax: Any) -> None:
    """Label the x axis as iterations, with whole-number ticks."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(left=0)


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


def _grid(plt: Any, panels: int, ncols: int, panel_height: float, width: float = FULL_WIDTH,
          **kwargs: Any) -> tuple[Any, np.ndarray]:
    ncols = max(1, min(panels, ncols))
    nrows = -(-panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, panel_height * nrows), squeeze=False, **kwargs)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    return fig, axes


def _legend_below(fig: Any, ncol: int = 3) -> None:
    """One legend for the figure (every panel's entries, once each), below its panels, never over a
    curve: in as many columns (at most ``ncol``, rows balanced) as fit the figure's width, labels
    wrapped when even one column does not fit; the figure grows by the legend's height, so the
    panels keep theirs."""
    found: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            found.setdefault(label, handle)
    if not found:
        return
    renderer = _renderer(fig)
    room = fig.bbox.width - 2 * EDGE_PAD * fig.dpi
    handles, labels = list(found.values()), list(found)
    for columns in range(min(ncol, len(labels)), 0, -1):
        columns = -(-len(labels) // -(-len(labels) // columns))  # as many columns, rows balanced
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=columns)
        width = legend.get_window_extent(renderer).width
        if width <= room:
            break
        texts = legend.get_texts()
        beside = width - max(t.get_window_extent(renderer).width for t in texts)  # handle, padding
        if columns == 1:  # one column is too wide: wrap the labels into the room beside their handles
            prop = texts[0].get_fontproperties()
            legend.remove()
            labels = [wrap_text(label, room - beside, prop, renderer) for label in labels]
            legend = fig.legend(handles, labels, loc="outside lower center", ncol=1)
        else:
            legend.remove()
    fig.set_figheight(fig.get_figheight() + legend.get_window_extent(renderer).height / fig.dpi)


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
    from .hallucination.stats import score_bands, scored_outputs

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


#: Width (inches) of the row labels beside image grids (:func:`image_strips`); longer lines are wrapped.
ROW_LABEL_WIDTH = 0.9


def _wrap_to(fig: Any, text: str, inches: float, size: float) -> str:
    """``text`` wrapped to ``inches`` at font size ``size`` (points) on ``fig``'s canvas."""
    from matplotlib.font_manager import FontProperties

    return wrap_text(text, inches * fig.dpi, FontProperties(size=size), _renderer(fig))


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


def population_curves(population: pd.DataFrame, path: str | Path, by: Sequence[str] = ("model", "mask_label"), *,
                      formats: Sequence[str] | None = None) -> Path:
    """Population distance of each group's images from their originals vs iteration, one panel per metric.

    ``population`` is :func:`ripbench.analysis.population_drift`'s frame (value, lo, hi, n per group,
    iteration and metric); band: its bootstrap interval over images. Labels and directions come from
    :data:`ripbench.population.POPULATION_METRICS`.
    """
    from .population import POPULATION_METRICS

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
        _legend_below(fig)
        return save_figure(fig, path, formats)
