"""How every figure looks and is written: the shared style, axis labels, text that is wrapped rather
than cut, legends below the panels, panel grids, small print-point shifts, and the atomic
multi-format writer (:func:`save_figure`). The figure modules of :mod:`ripbench.plots` draw with these."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io import atomic_save
from ..metrics.registry import column_label

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


def _iteration_axis(ax: Any) -> None:
    """Label the x axis as iterations, with whole-number ticks."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(left=0)


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


def _wrap_to(fig: Any, text: str, inches: float, size: float) -> str:
    """``text`` wrapped to ``inches`` at font size ``size`` (points) on ``fig``'s canvas."""
    from matplotlib.font_manager import FontProperties

    return wrap_text(text, inches * fig.dpi, FontProperties(size=size), _renderer(fig))
