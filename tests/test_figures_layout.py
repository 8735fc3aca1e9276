"""Figures with nothing cut: every figure of a crowded two-run report (four groups per run, long
plug-in model names) keeps its text and legends inside the canvas (matplotlib's own extents) and
leaves the border of its PNG blank; coinciding curves stay apart; heat maps are per model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ripbench import analysis, plots
from ripbench.report import write_report
from tests.test_plots import synthetic_run

LONG = "my_company_models.experimental:SuperLongInpainterName"
OTHER = "vendor_inpainting.diffusion:AnotherRatherLongInpainter"
RUNS = ("run-a", "run-b-with-a-longer-name")
#: Extents may pass the figure's edge by this many pixels (rounding).
TOLERANCE = 0.5
#: Pixels at the edge of a PNG that must be background.
BORDER = 3


def _tick_labels(fig: Any) -> set[int]:
    """Ids of every tick label: the axes' tight boxes cover the ones drawn (the others sit off-axis)."""
    ids = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                ids |= {id(tick.label1), id(tick.label2)}
    return ids


def cut_artists(fig: Any) -> list[str]:
    """What extends past ``fig``'s canvas once drawn: axes with their ticks, labels and titles,
    every other text, every legend (matplotlib's extents)."""
    from matplotlib.text import Text

    fig.draw_without_rendering()
    renderer = plots._renderer(fig)
    bounds = fig.bbox
    found: list[str] = []

    def check(what: str, box: Any) -> None:
        if (box.x0 < -TOLERANCE or box.y0 < -TOLERANCE or box.x1 > bounds.x1 + TOLERANCE
                or box.y1 > bounds.y1 + TOLERANCE):
            found.append(f"{what}: {np.round(box.extents, 1).tolist()} outside {bounds.extents.tolist()}")

    visible = [ax for ax in fig.axes if ax.get_visible()]
    for ax in visible:
        check(f"axes {ax.get_title()!r}", ax.get_tightbbox(renderer))
    ticks = _tick_labels(fig)
    for text in fig.findobj(Text):
        if (id(text) in ticks or not text.get_visible() or not text.get_text()
                or (text.axes is not None and not text.axes.get_visible())):
            continue
        check(f"text {text.get_text()!r}", text.get_window_extent(renderer))
    for legend in [*fig.legends, *(ax.get_legend() for ax in visible)]:
        if legend is not None:
            check("legend", legend.get_window_extent(renderer))
    return found


def unlabelled_axes(fig: Any) -> list[str]:
    """Axes that show tick labels on an axis without a label (a panel sharing its neighbour's y axis
    shows none; image panels have no ticks)."""
    fig.draw_without_rendering()
    found = []
    for ax in fig.axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            shown = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            if ax.get_visible() and shown and not axis.label.get_text():
                found.append(f"{name} axis of {ax.get_title() or ax}")
    return found


def assert_blank_border(path: Path) -> None:
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB")).astype(int)
    edges = np.concatenate([pixels[:BORDER].reshape(-1, 3), pixels[-BORDER:].reshape(-1, 3),
                            pixels[:, :BORDER].reshape(-1, 3), pixels[:, -BORDER:].reshape(-1, 3)])
    assert (edges >= 250).all(), f"{path.name}: {int((edges < 250).any(axis=1).sum())} border pixels drawn on"


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], pd.DataFrame]:
    """Two identical runs (their curves coincide) of two long-named models on two masks."""
    root = tmp_path_factory.mktemp("crowded")
    dirs = [root / name for name in RUNS]
    for folder in dirs:
        synthetic_run(folder, models=(LONG, OTHER), masks={"grid-8": 8, "grid-16": 16})
    return dirs, analysis.load_runs(*dirs)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every figure :func:`ripbench.plots.save_figure` writes, by file stem, as it was saved (as PNG only:
    the PDF beside it takes as long and is not looked at here)."""
    figures: dict[str, Any] = {}
    save = plots.save_figure

    def keep(fig: Any, path: str | Path, formats: Any = None) -> Path:
        written = save(fig, path)
        figures[written.stem] = fig
        return written

    for module in (plots, plots.curves, plots.hallucination, plots.images):  # each figure module calls its own
        monkeypatch.setattr(module, "save_figure", keep)
    return figures


@pytest.mark.slow
def test_crowded_two_run_report_cuts_nothing(crowded, captured, tmp_path):
    dirs, _ = crowded
    paths = write_report(dirs, tmp_path / "report", n_boot=30)
    slugs = [f"_{run}" for run in RUNS]
    expected = {"collapse_curves", "model_comparison", "survival", "regions", "hallucination_bands",
                "roc", *(f"image_strips{s}" for s in slugs), *(f"drift_heatmap{s}" for s in slugs)}
    assert expected <= set(captured), sorted(captured)
    problems = {name: cut_artists(fig) + unlabelled_axes(fig) for name, fig in captured.items()}
    assert not {name: p for name, p in problems.items() if p}
    for name in captured:
        assert_blank_border(paths["html"].parent / "figures" / f"{name}.png")
    # long labels are wrapped, not cut: the whole metric label and model name are still drawn
    ylabels = [ax.get_ylabel() for ax in captured["collapse_curves"].axes if ax.get_visible()]
    assert [label.replace("\n", " ") for label in ylabels] == [plots.axis_label(m) for m in
                                                                ("lpips_orig", "ssim_orig", "psnr_orig")]
    assert "SSIM to original\n(higher is better)" in ylabels
    legend_text = " ".join(t.get_text() for t in captured["survival"].legends[0].get_texts())
    assert legend_text.replace("\n", "").count(LONG) == 4
    # the legend below the panels grew the canvas instead of squeezing the panels
    assert captured["survival"].get_figheight() > 3.2


def test_coinciding_survival_curves_are_drawn_apart_smallest_group_on_top(crowded, captured, tmp_path):
    _, table = crowded
    smaller = (table["run"] == RUNS[1]) & (table["model"] == LONG) & (table["mask_label"] == "grid-8")
    table = table[~(smaller & (table["seed"] == 1))]  # that group: 2 trajectories, the others 4
    by = ["run", "model", "mask_label"]
    plots.survival_curves(table, tmp_path / "survival.png", 0.2, by)
    fig = captured["survival"]
    lines = {line.get_label().split(" (")[0]: line for line in fig.axes[0].get_lines()
             if "collapsed" in line.get_label()}
    assert len(lines) == 8
    a, b = lines[f"{RUNS[0]} / {LONG} / grid-16"], lines[f"{RUNS[1]} / {LONG} / grid-16"]
    np.testing.assert_array_equal(a.get_ydata(), b.get_ydata())  # the same data (identical runs)...
    drawn = [line.get_transform().transform(line.get_xydata())[:, 1] for line in (a, b)]
    assert np.all(np.abs(drawn[0] - drawn[1]) > 0.5)  # ...drawn apart on the canvas
    assert len({(line.get_linestyle(), line.get_marker()) for line in lines.values()}) == 8
    top = max(lines.values(), key=lambda line: line.get_zorder())
    assert top is lines[f"{RUNS[1]} / {LONG} / grid-8"]
    assert not cut_artists(fig)


def test_drift_heatmap_has_a_column_per_model_and_mask(crowded, captured, tmp_path):
    dirs, _ = crowded
    plots.drift_heatmap(dirs[0], tmp_path / "heat.png")
    fig = captured["heat"]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "original" and len(titles) == 5  # 2 models x 2 masks, nothing averaged over models
    assert [t.replace("\n", "") for t in titles[1:]] == [f"{m}grid-{s}" for m in (LONG, OTHER) for s in (8, 16)]
    assert not cut_artists(fig)
    one_model = tmp_path / "one"
    synthetic_run(one_model, models=("alpha",), masks={"grid-8": 8, "grid-16": 16})
    plots.drift_heatmap(one_model, tmp_path / "heat1.png")
    assert [ax.get_title() for ax in captured["heat1"].axes if ax.get_title()] == ["original", "grid-8", "grid-16"]


def test_wrap_text_breaks_where_a_reader_would():
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer, prop = RendererAgg(600, 400, 100), FontProperties(size=8.5)
    width = plots._text_width("LPIPS to original", prop, renderer) + 1
    assert plots.wrap_text("LPIPS to original (lower is better)", width, prop, renderer) == \
        "LPIPS to original\n(lower is better)"
    assert plots.wrap_text("short", width, prop, renderer) == "short"
    wrapped = plots.wrap_text(LONG, width, prop, renderer)
    assert wrapped.replace("\n", "") == LONG and len(wrapped.split("\n")) > 2
    lines = wrapped.split("\n")
    for line, after in zip(lines, lines[1:]):  # broken after punctuation inside the name, or between words
        assert line[-1] in "._:" or (line[-1].islower() and after[0].isupper()), lines
    assert all(plots._text_width(line, prop, renderer) <= width for line in wrapped.split("\n"))


def test_shapes_rip_figure_cuts_nothing_and_labels_every_axis(tmp_path):
    from ripbench.repro.shapes_rip_report import _draw_figure

    rng = np.random.default_rng(0)
    kinds = pd.DataFrame({"iteration": range(1, 9), "n": 40, "duplicate": 0.1, "empty": 0.05, "wrong_shape": 0.05,
                          "malformed": 0.0, "valid": 0.8})
    det = {s: pd.DataFrame({"band": ["1-4", "5-8", "all"], "auroc": [0.7, 0.8, 0.75], "auroc_lo": [0.6, 0.7, 0.7],
                            "auroc_hi": [0.8, 0.9, 0.8]}) for s in ("halluc_score_current", "halluc_score")}
    rows = pd.DataFrame({"halluc_score_current": rng.lognormal(-8, 1, 300),
                         "generation": rng.choice(["valid", "duplicate"], 300)})
    fig = _draw_figure(kinds, det, rows)
    assert not cut_artists(fig) and not unlabelled_axes(fig)
    fig.savefig(tmp_path / "shapes.png", dpi=120)
    assert_blank_border(tmp_path / "shapes.png")


def test_toy_repro_figures_leave_their_border_blank(tmp_path):
    from ripbench.repro.toy_report import _figures

    rng = np.random.default_rng(0)
    arrays, results = {}, {}
    for name, dim in (("gaussian1d", 1), ("grid2d", 2)):
        samples = rng.normal(size=(400, dim))
        scores = rng.lognormal(-6, 1, 400)
        arrays[name] = {"samples": samples, "scores": scores, "labels": scores > np.quantile(scores, 0.9)}
        results[name] = {"window_steps": 10, "detection": {"threshold": float(np.quantile(scores, 0.96))},
                         "data": {"modes": [[0.0, 0.0], [1.0, 1.0]]}}
    written = _figures(tmp_path, {"results": results}, arrays)
    assert len(written) == 4
    for name in written:
        assert_blank_border(tmp_path / name)
