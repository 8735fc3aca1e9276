"""The self-contained HTML page: tables, figures as compressed data URIs, the page template and its CSS.

The page's frame is ``page.html`` and its style ``report.css``, package files beside this module
(read with :mod:`importlib.resources`); nothing on the page refers to another file or the network.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from string import Template
from typing import Any

import pandas as pd

from .. import __version__, analysis, plots
from .document import Figure, Section, how_to_read, run_settings

__all__ = ["SCREEN_PPI", "embed", "page_css", "render_html"]

#: Pixels per inch of the thumbnails embedded in the page (a full-width figure is shown this many
#: pixels per inch of its paper size).
SCREEN_PPI = 125


@cache
def _package_text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def page_css() -> str:
    """The page's style sheet (the package file ``report.css``)."""
    return _package_text("report.css")


def embed(fig: Figure) -> tuple[str, int, int]:
    """A compressed thumbnail of ``fig`` as a data URI, with its width and height in pixels.

    Plots become palette PNGs, photographs JPEGs, both at :data:`SCREEN_PPI` pixels per inch of
    the figure's size (the full-resolution files stay in ``figures/``).
    """
    from PIL import Image

    with Image.open(fig.path) as img:
        img = img.convert("RGB")
        scale = SCREEN_PPI / plots.DPI
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        if fig.photo:
            img.save(buffer, "JPEG", quality=84, optimize=True, progressive=True)
            mime = "image/jpeg"
        else:
            img.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                buffer, "PNG", optimize=True)
            mime = "image/png"
        return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), img.width, img.height


def _figure_files(fig: Figure) -> list[str]:
    return [f"figures/{fig.path.name}"] + [f"figures/{fig.path.with_suffix('.' + f).name}" for f in fig.formats]


def _cell(value: Any, split: bool = True) -> str:
    """A table cell: an interval ``"v [lo, hi] ..."`` puts the bracket on its own small line."""
    text = str(value)
    if split and " [" in text:
        head, _, rest = text.partition(" [")
        return f'{html.escape(head)}<span class="ci">[{html.escape(rest)}</span>'
    return html.escape(text)


def _html_table(frame: pd.DataFrame, left: Sequence[str] = (), keys: Sequence[str] = (), split: bool = True) -> str:
    """``left``: left-aligned columns; ``keys``: columns that never wrap; ``split``: intervals on their own line."""
    def css(column: str) -> str:
        return " ".join(name for name, on in (("l", column in left), ("k", column in keys)) if on)

    head = "".join(f'<th class="{css(c)}">{html.escape(str(c))}</th>' for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(f'<td class="{css(c)}">{_cell(v, split)}</td>' for c, v in zip(frame.columns, row))
        body.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


_LEFT = ("run", "model", "mask_label", "category", "a", "b", "measure", "image_id", "problem", "reason", "iterations")


def render_html(title: str, runs: list[str], rule: analysis.CollapseRule, top: list[str], sections: list[Section],
                manifests: dict[str, Any], ci: float) -> str:
    """``report.html``: the findings (``top``), the sections with their figures embedded, how to read it and
    each run's settings and manifest, in the package's page template and style."""
    esc = html.escape
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{s.key}">{esc(s.title)}</a>' for s in sections)
    parts = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">Generated {now} by ripbench {esc(__version__)}. Collapse rule: '
        f"<code>{esc(rule.describe())}</code>. Intervals: {ci:.0%}.</p>",
        f'<nav><a href="#findings">Findings</a>{nav}<a href="#how">How to read this</a>'
        '<a href="#settings">Settings</a></nav>',
        '<h2 id="findings">Findings</h2><ul class="findings">', *(f"<li>{esc(line)}</li>" for line in top), "</ul>",
    ]
    for section in sections:
        parts.append(f'<h2 id="{esc(section.key)}">{esc(section.title)}</h2>')
        if section.sentences:
            parts += ['<ul class="findings">', *(f"<li>{esc(line)}</li>" for line in section.sentences), "</ul>"]
        for caption, frame in section.tables:
            if caption:
                parts.append(f"<h3>{esc(caption)}</h3>")
            left = [c for c in frame.columns if c in _LEFT]
            parts.append(_html_table(frame, left=left, keys=left))
        for note in section.notes:
            parts.append(f'<p class="note">{esc(note)}</p>')
        for fig in section.figures:
            uri, width, height = embed(fig)
            files = ", ".join(_figure_files(fig))
            parts.append(f'<figure id="{esc(fig.key)}"><h3>{esc(fig.title)}</h3>'
                         f'<img src="{uri}" width="{width}" height="{height}" alt="{esc(fig.title)}">'
                         f"<figcaption>{esc(fig.caption)} Files: {esc(files)}.</figcaption></figure>")
        if section.viewer is not None:
            parts.append(section.viewer.html())
    parts += ['<h2 id="how">How to read this</h2><dl>',
              *(f"<dt>{esc(name)}</dt><dd>{esc(text)}</dd>" for name, text in how_to_read(rule, ci)), "</dl>",
              '<h2 id="settings">Settings</h2>']
    for run in runs:
        manifest = manifests.get(run) or {}
        parts.append(f"<h3>Run {esc(run)}</h3>")
        parts.append(_html_table(pd.DataFrame(run_settings(manifest), columns=["setting", "value"]),
                                 left=["setting", "value"], keys=["setting"], split=False))
        dump = json.dumps(manifest, indent=2, default=str)
        parts.append(f"<details><summary>Full manifest.json</summary><pre>{esc(dump)}</pre></details>")
    page = Template(_package_text("page.html"))
    return page.substitute(title=esc(title), css=page_css(), body="\n".join(parts))
