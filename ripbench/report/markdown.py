"""The Markdown summary: findings, tables and settings; figures linked to their files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import analysis
from ..formatting import markdown_table, md_escape
from .document import Section, run_settings

__all__ = ["render_markdown"]


def render_markdown(title: str, runs: list[str], rule: analysis.CollapseRule, top: list[str],
                    sections: list[Section], manifests: dict[str, Any], out: Path) -> str:
    """``summary.md``: the findings (``top``), each section's sentences, tables and notes, figure links
    relative to ``out`` and each run's key settings."""
    esc = md_escape
    md = [f"# {esc(title)}", "", f"Collapse rule: `{rule.describe()}` (first iteration crossing it). Brackets: "
          "confidence intervals. Open `report.html` for the figures and the explanations.", "", "## Findings", "",
          *(f"- {esc(line)}" for line in top), ""]
    for section in sections:
        md += [f"## {esc(section.title)}", ""]
        if section.sentences:
            md += [f"- {esc(line)}" for line in section.sentences] + [""]
        for caption, frame in section.tables:
            md += ([f"**{esc(caption)}**", ""] if caption else []) + [markdown_table(frame), ""]
        for note in section.notes:
            md += [esc(note), ""]
        if section.figures:
            md += [f"- [{esc(fig.title)}]({fig.path.relative_to(out).as_posix()}): {esc(fig.caption)}"
                   for fig in section.figures] + [""]
        if section.viewer is not None:
            md += [f"- {esc(section.viewer.title)}: in report.html ({esc(section.viewer.caption())})", ""]
    md += ["## Settings", ""]
    for run in runs:
        md += [f"### Run {esc(run)}", ""]
        md += [f"- **{esc(k)}**: {esc(v)}" for k, v in run_settings(manifests.get(run) or {}) if v]
        md.append("")
    return "\n".join(md)
