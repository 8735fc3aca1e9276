"""Writing a report: :func:`write_report` loads the runs, builds the sections and writes every file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import analysis
from ..defaults import KEEP_SHARE
from ..formatting import count
from .document import Section
from .html import render_html
from .markdown import render_markdown
from .sections import Context, build_sections
from .tables import in_reading_order

__all__ = ["REPORT_DIR", "default_out_dir", "write_report"]

#: Folder name of the report inside a single run's folder (default output place).
REPORT_DIR = "report"


def default_out_dir(run_dirs: Sequence[Path]) -> Path:
    """``<run>/report`` for one run; ``<parent>/report-<run1>+<run2>...`` beside the first run for several."""
    if len(run_dirs) == 1:
        return run_dirs[0] / REPORT_DIR
    return run_dirs[0].parent / ("report-" + "+".join(d.name for d in run_dirs))


def write_report(
    run_dirs: Sequence[str | Path] | str | Path,
    out_dir: str | Path | None = None,
    *,
    threshold: str | float | analysis.CollapseRule | None = None,
    by: Sequence[str] | None = None,
    at: Sequence[int] = (10, 50, 100),
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    keep: float = KEEP_SHARE,
    max_strips: int = 9,
    title: str | None = None,
) -> dict[str, Path]:
    """Write the HTML report, Markdown summary, CSV/LaTeX tables and figures of one or more runs.

    Args:
        run_dirs: run folders (``<output_dir>/<name>``); several are compared on what they share
            (see :func:`ripbench.analysis.load_runs`), and what differs is stated in the report.
        out_dir: where to write; default :func:`default_out_dir`.
        threshold: collapse rule: a number for the default metric (LPIPS ``>=``, else SSIM
            ``<=``...) or a rule text such as ``"ssim_orig<=0.4"``; see
            :func:`ripbench.analysis.collapse_rule`.
        by: grouping columns of the summary (default ``model, mask_label``, with ``run`` first
            for several runs).
        at: iterations at which the summary CSV lists metric means (clipped to the run).
        n_boot, ci, seed: bootstrap resamples, confidence level and seed (results are reproducible).
        keep: share of in-support outputs the calibrated hallucination threshold keeps.
        max_strips: at most this many trajectories in each run's image strip.
        title: page title (default: from the run names).

    Returns:
        ``{"html": ..., "markdown": ..., "summary_csv": ..., ["comparisons_csv", "comparisons_tex",
        "failures_csv"], <figure key>: <png path>, ...}``.
    """
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    table = analysis.load_runs(*dirs)
    out = Path(out_dir) if out_dir is not None else default_out_dir(dirs)
    rule = analysis.collapse_rule(table, threshold)
    runs = list(table.attrs["run_dirs"])
    models = ["run", "model"] if len(runs) > 1 else ["model"]
    by = list(by) if by is not None else [*models, "mask_label"]
    kw: dict[str, Any] = {"n_boot": n_boot, "ci": ci, "seed": seed}
    summary = in_reading_order(analysis.group_summary(table, by, at=at, rule=rule, **kw), table, by)
    c = Context(table, rule, by, models, summary, out, ci, kw)
    for run, manifest in (table.attrs.get("manifests") or {}).items():
        status = (manifest or {}).get("status")
        if status != "complete":
            c.top.append(f"Run {run} is {status or 'of unknown status'}, not complete: its numbers cover only the "
                         "trajectories finished so far (run the same command again to finish it).")
    note = analysis.collapse_rule_note(table, rule)
    c.top += [note] if note else []
    sections: list[Section] = []
    if len(runs) > 1:
        differences = table.attrs.get("differences") or []
        sections.append(Section("runs", "Runs compared", differences or ["The runs' settings agree."]))
        if differences:
            c.top.append(f"The runs differ in {count(len(differences), 'way')}; the report compares what they share "
                         "(see Runs compared).")
    sections += build_sections(c, keep=keep, max_strips=max_strips)

    c.write("summary_csv", "summary.csv", summary.to_csv(index=False))
    title = title or "ripbench report: " + ", ".join(runs)
    manifests = table.attrs["manifests"]
    c.write("html", "report.html", render_html(title, runs, rule, c.top, sections, manifests, ci))
    c.write("markdown", "summary.md", render_markdown(title, runs, rule, c.top, sections, manifests, out))
    return {**c.paths, **{f.key: f.path for s in sections for f in s.figures}}
