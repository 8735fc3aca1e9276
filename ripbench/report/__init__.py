"""A report for people: one self-contained HTML page and a Markdown summary of one or more runs.

:func:`write_report` loads the runs (:func:`ripbench.analysis.load_runs`: several runs are
compared on the iterations, images and masks they share, and what differs is stated), computes
the statistics (:mod:`ripbench.analysis`, :mod:`ripbench.compare`,
:mod:`ripbench.hallucination.stats`), phrases the findings (:mod:`ripbench.findings`), draws the
figures (:mod:`ripbench.plots`) and writes, into the output folder:

* ``report.html`` - findings, summary, drift, collapse, paired comparisons, regions,
  hallucination, pictures, failures, how to read it, settings; figures embedded as compressed
  thumbnails (data URIs), no external file or network access, so it can be mailed or archived;
* ``summary.md`` - the findings and tables as Markdown (figures linked);
* ``summary.csv`` - the per-group summary with full-precision numbers;
* ``comparisons.csv`` and ``comparisons.tex`` - the paired comparisons (when models share
  trajectories), the LaTeX one a ``booktabs`` table for a paper;
* ``failures.csv`` - every failed trajectory (when there are any);
* ``figures/`` - every figure as PNG (:data:`ripbench.plots.DPI` dpi) and PDF.

The package, by job: :mod:`~ripbench.report.sections` builds each section from the table;
:mod:`~ripbench.report.tables` turns statistics into tables for people; :mod:`~ripbench.report.document`
holds what a report is made of (sections, figures, the fixed texts); :mod:`~ripbench.report.html` and
:mod:`~ripbench.report.markdown` write it out (the page template ``page.html`` and its style
``report.css`` are package files); :mod:`~ripbench.report.write` ties them together. The number and
Markdown formatters are :mod:`ripbench.formatting`'s.

Example
-------
>>> from ripbench.report import write_report                     # doctest: +SKIP
>>> write_report(["results/quick"])["html"]                      # doctest: +SKIP
PosixPath('results/quick/report/report.html')
"""

from __future__ import annotations

from ..formatting import markdown_table, md_escape
from .document import Figure, Section, how_to_read, run_settings
from .html import SCREEN_PPI, embed, render_html
from .markdown import render_markdown
from .tables import (
    MAX_LISTED_FAILURES,
    display_summary,
    hallucination_notes,
    in_reading_order,
    metrics_table,
    summary_notes,
    typical_trajectories,
)
from .write import REPORT_DIR, default_out_dir, write_report

__all__ = ["MAX_LISTED_FAILURES", "REPORT_DIR", "SCREEN_PPI", "Figure", "Section", "default_out_dir",
           "display_summary", "embed", "hallucination_notes", "how_to_read", "in_reading_order", "markdown_table",
           "md_escape", "metrics_table", "render_html", "render_markdown", "run_settings", "summary_notes",
           "typical_trajectories", "write_report"]
