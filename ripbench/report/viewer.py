"""The report's trajectory viewer: scrub through one trajectory's saved iterations in the page.

For each run, model and mask, :func:`build_viewer` picks three trajectories by the final value of
the collapse metric (:func:`~ripbench.report.tables.trajectory_picks`: typical, best, worst, the
direction from the metric's spec) and embeds, for each saved iteration (at most
:data:`MAX_FRAMES`, spread over the run), a JPEG thumbnail of the image, the region repainted at
that iteration as a transparent outline (from the saved mask, else the mask box of the results
table) and the numbers of that iteration's row: every metric to the original, the hallucination
score, the ground truth where there is one, the repainted box, whether the trajectory has collapsed.
:meth:`Viewer.html` writes it as plain HTML, the data as JSON and a few lines of script
(``viewer.js``, a package file): no framework, no network. Numbers are formatted here, never in
the script.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import analysis, plots
from ..formatting import fmt, pct
from ..hallucination import stats as hallucination_stats
from ..metrics.registry import column_label
from ..store import IMAGES_DIR, MASK_BOX_COLUMNS
from .tables import PICKS, trajectory_picks

__all__ = ["MAX_FRAMES", "VIEWER_BYTES", "VIEWER_PX", "Viewer", "build_viewer"]

#: Width in CSS pixels of each image in the viewer; larger images are downscaled to it (smaller ones
#: are embedded at their own size and shown enlarged, pixel for pixel).
VIEWER_PX = 256
#: At most this many saved iterations per trajectory are embedded (spread over the run, the last included).
MAX_FRAMES = 24
#: JPEG quality of the embedded images.
JPEG_QUALITY = 80
#: The most bytes the viewer takes of the page; beyond it, fewer saved iterations are embedded.
VIEWER_BYTES = 600_000

_PICK_TEXT = {"typical": "typical: final {label} closest to the group's median",
              "best": "best: the least drift by final {label} ({direction})",
              "worst": "worst: the most drift by final {label} ({direction})"}


@dataclass
class Viewer:
    """What the viewer shows: groups (label, picks as ``[pick, trajectory index, description]``) and
    trajectories (title, original, frames with image, outline, caption and ``[name, value]`` rows)."""

    groups: list[dict[str, Any]] = field(default_factory=list)
    trajectories: list[dict[str, Any]] = field(default_factory=list)
    thinned: bool = False
    max_frames: int = MAX_FRAMES
    title: str = "Trajectory viewer"

    def caption(self) -> str:
        """What the viewer shows, in one sentence or two."""
        text = ("For each model and mask, a typical, the best and the worst trajectory by the final value of the "
                "collapse metric: scrub through its saved iterations with the slider or the arrow keys; the "
                "numbers are that iteration's row of the results table.")
        if self.thinned:
            text += (f" At most {self.max_frames} saved iterations per trajectory are embedded, spread over the "
                     "run, the last included (every saved image is in the run's images/ folder).")
        return text

    def html(self) -> str:
        """The viewer's markup, its data as JSON and its script, for the report page."""
        data = json.dumps({"groups": self.groups, "trajectories": self.trajectories}, separators=(",", ":"))
        data = data.replace("</", "<\\/")  # nothing in the data can close the script element
        return (
            f'<h3 id="viewer-title">{html.escape(self.title)}</h3><p class="note">{html.escape(self.caption())}</p>'
            '<div class="viewer" id="viewer">'
            '<div class="vctl"><label>Model and mask <select id="v-group"></select></label>'
            '<label>Trajectory <select id="v-pick"></select></label></div>'
            '<p class="vwhich" id="v-which"></p>'
            '<div class="vrow">'
            '<figure class="vimg"><div class="vstack"><img id="v-orig" alt="the original image"></div>'
            "<figcaption>original</figcaption></figure>"
            '<figure class="vimg"><div class="vstack"><img id="v-img" alt="the image at the chosen iteration">'
            '<img id="v-box" class="vbox" alt="" hidden></div><figcaption id="v-cap"></figcaption></figure>'
            '<table class="vnums"><tbody id="v-nums"></tbody></table></div>'
            '<label class="vslide">Saved iteration (slider, or the arrow keys) '
            '<input type="range" id="v-slider" min="0" max="0" value="0" step="1"></label>'
            "<noscript><p>The viewer needs JavaScript; the image strips above show the typical trajectories."
            "</p></noscript></div>"
            f'<script type="application/json" id="v-data">{data}</script>'
            f"<script>{_viewer_js()}</script>"
        )


@cache
def _viewer_js() -> str:
    return resources.files(__package__).joinpath("viewer.js").read_text(encoding="utf-8")


def _uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _display_size(width: int, height: int) -> tuple[int, int]:
    return VIEWER_PX, max(1, round(VIEWER_PX * height / width))


def _photo(path: Path) -> str:
    """The saved image as a JPEG data URI, downscaled to :data:`VIEWER_PX` wide when larger."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.width > VIEWER_PX:
            img = img.resize(_display_size(img.width, img.height), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return _uri("image/jpeg", buffer.getvalue())


def _outline(mask: np.ndarray) -> str | None:
    """A transparent PNG, :data:`VIEWER_PX` wide, with the border of ``mask`` (``H x W`` bool) in red."""
    from PIL import Image

    if not mask.any():
        return None
    width, height = _display_size(mask.shape[1], mask.shape[0])
    rows = np.minimum(np.arange(height) * mask.shape[0] // height, mask.shape[0] - 1)
    cols = np.minimum(np.arange(width) * mask.shape[1] // width, mask.shape[1] - 1)
    big = mask[np.ix_(rows, cols)]
    inner = np.pad(big, 2)
    for _ in range(2):  # erode twice (4-neighbours; outside the image counts as unmasked): a 2 px border
        inner[1:-1, 1:-1] = (inner[1:-1, 1:-1] & inner[:-2, 1:-1] & inner[2:, 1:-1]
                             & inner[1:-1, :-2] & inner[1:-1, 2:])
    border = big & ~inner[2:-2, 2:-2]
    img = Image.fromarray(border.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 230, 20, 20])
    buffer = io.BytesIO()
    img.save(buffer, "PNG", optimize=True, transparency=0)
    return _uri("image/png", buffer.getvalue())


def _mask(folder: Path, iteration: int, row: pd.Series | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The region repainted at ``iteration``: the saved mask, else the row's mask box."""
    path = folder / f"mask_{iteration:04d}.png"
    if path.is_file():
        mask = plots.read_png(path)
        return (mask.mean(axis=-1) if mask.ndim == 3 else mask) > 0.5
    if row is None or any(pd.isna(row.get(c)) for c in MASK_BOX_COLUMNS):
        return None
    y0, x0, y1, x1 = (int(row[c]) for c in MASK_BOX_COLUMNS)
    out = np.zeros(shape, dtype=bool)
    out[y0:y1, x0:x1] = True
    return out


def _rows(row: pd.Series | None, metrics: list[str], score: hallucination_stats.ScoreSpec | None,
          truth: str | None, rule: analysis.CollapseRule, collapsed_at: float) -> list[list[str]]:
    """The numbers of one iteration, as ``[name, text]`` pairs."""
    if row is None:
        return [["results", "no row for this iteration"]]
    out = [[column_label(m) or m, fmt(row.get(m))] for m in metrics]
    if score is not None:
        out.append([f"hallucination score: {score.label}", fmt(row.get(score.column), 4)])
    if truth is not None:
        out.append(["ground truth", truth])
    it = int(row["iteration"])
    if it > 0 and not any(pd.isna(row.get(c)) for c in MASK_BOX_COLUMNS):
        y0, x0, y1, x1 = (int(row[c]) for c in MASK_BOX_COLUMNS)
        area = f", {pct(row['mask_area'], 1)} of the image" if pd.notna(row.get("mask_area")) else ""
        out.append(["repainted box", f"rows {y0}-{y1 - 1}, columns {x0}-{x1 - 1}{area}"])
    out.append([f"collapsed ({rule.describe()})",
                f"yes, since iteration {int(collapsed_at)}" if collapsed_at <= it else "not yet"])
    if bool(row.get("failed")):
        out.append(["model call failed", str(row.get("failure") or "")])
    return out


def build_viewer(table: pd.DataFrame, rule: analysis.CollapseRule, *, max_frames: int = MAX_FRAMES,
                 budget: int = VIEWER_BYTES) -> Viewer | None:
    """The viewer of ``table`` (one or several runs): three picks per run, model and mask, each with at most
    ``max_frames`` of its saved iterations, fewer when the viewer would take more than ``budget`` bytes of the
    page (many or large saved images); ``None`` when no picked trajectory has saved images."""
    viewer = _build(table, rule, max_frames)
    if viewer is None:
        return None
    size, shown = len(viewer.html()), max(len(t["frames"]) for t in viewer.trajectories)
    if size > budget and shown > 1:
        viewer = _build(table, rule, max(1, shown * budget // size))
        if viewer is not None:
            viewer.thinned = True
    return viewer


def _build(table: pd.DataFrame, rule: analysis.CollapseRule, max_frames: int) -> Viewer | None:
    metric = rule.metric
    run_dirs = table.attrs["run_dirs"]
    several = len(run_dirs) > 1
    shown = analysis.present_metrics(table, list(dict.fromkeys(
        [metric, *[m for m in analysis.summary_metrics(table) if m.endswith("_orig")]])))
    scores = [s for s in hallucination_stats.score_specs(table) if not s.is_baseline]
    label = column_label(metric) or metric
    short, _, direction = label.partition(" (")
    viewer = Viewer(max_frames=max_frames)
    for run, run_dir in run_dirs.items():
        rows = table[table["run"] == run]
        images = Path(run_dir) / IMAGES_DIR
        for key, picks in trajectory_picks(rows, metric, ["model", "mask_label"]):
            choices = []
            for pick in PICKS:
                tid = picks[pick]
                index = next((i for i, t in enumerate(viewer.trajectories) if t["id"] == (run, tid)), None)
                if index is None:
                    entry = _trajectory(rows[rows["trajectory_id"] == tid], images / tid, rule, shown,
                                        scores[0] if scores else None, max_frames)
                    if entry is None:
                        continue
                    viewer.thinned |= entry.pop("thinned")
                    entry["id"] = (run, tid)
                    viewer.trajectories.append(entry)
                    index = len(viewer.trajectories) - 1
                text = _PICK_TEXT[pick].format(label=short, direction=direction.rstrip(")"))
                choices.append([pick, index, text])
            if choices:
                viewer.groups.append({"label": " / ".join(map(str, ((run,) if several else ()) + key)),
                                      "picks": choices})
    for entry in viewer.trajectories:
        entry.pop("id")
    return viewer if viewer.groups else None


def _trajectory(rows: pd.DataFrame, folder: Path, rule: analysis.CollapseRule, metrics: list[str],
                score: hallucination_stats.ScoreSpec | None, max_frames: int) -> dict[str, Any] | None:
    """One trajectory's entry: title, original and frames; ``None`` without saved images."""
    available = plots.snapshot_iterations(folder.parent.parent, folder.name)
    if 0 not in available or len(available) < 2:
        return None
    later = plots.choose_iterations(available, max_frames)[1:]
    by_it = {int(r["iteration"]): r for _, r in rows.iterrows()}
    truth, _ = hallucination_stats.ground_truth(rows)
    labels = {int(it): "neither / unknown" if pd.isna(y) else "hallucinated" if y else "in support"
              for it, y in zip(rows["iteration"], truth)} if truth is not None else {}
    good = analysis.observed(rows)
    hit = good["iteration"].to_numpy()[rule.crossed(analysis.metric_values(good, rule.metric))]
    collapsed_at = float(hit.min()) if len(hit) else float("inf")
    first = rows.iloc[0]
    valued = rows[rows["iteration"] > 0]
    metrics = [m for m in metrics if pd.to_numeric(valued[m], errors="coerce").notna().any()]
    if score is not None and not pd.to_numeric(valued[score.column], errors="coerce").notna().any():
        score = None  # this model has no score (no x0 trajectory)
    if not any(label != "neither / unknown" for label in labels.values()):
        labels = {}  # no ground truth for this trajectory
    shape = plots.read_png(folder / "iter_0000.png").shape[:2]
    frames = []
    for it in later:
        row = by_it.get(it)
        mask = _mask(folder, it, row, shape)
        frames.append({"img": _photo(folder / f"iter_{it:04d}.png"),
                       "box": _outline(mask) if mask is not None else None,
                       "cap": f"iteration {it}" + (" (red: the region repainted at it)" if mask is not None else ""),
                       "rows": _rows(row, metrics, score, labels.get(it), rule, collapsed_at)})
    return {"title": f"image {first['image_id']}, seed {first['seed']} ({first['trajectory_id']})",
            "original": _photo(folder / "iter_0000.png"), "frames": frames,
            "thinned": len(later) < len([i for i in available if i > 0])}
