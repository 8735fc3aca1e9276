"""A report for people: one self-contained HTML page and a Markdown summary of one or more runs.

:func:`write_report` loads the runs (:func:`ripbench.analysis.load_runs`, which refuses runs
that cannot be compared), computes the per-group statistics
(:func:`ripbench.analysis.group_summary`), draws the figures (:mod:`ripbench.plots`, PNG and
SVG under ``figures/``) and writes

* ``report.html`` - figures embedded as base64 data URIs, no external file or network
  access, so it can be mailed or archived as one file;
* ``summary.md`` - the same summary table and findings as Markdown (figures linked);
* ``summary.csv`` - the summary table with full-precision numbers.

Example
-------
>>> from ripbench.report import write_report                     # doctest: +SKIP
>>> write_report(["results/quick"])["html"]                      # doctest: +SKIP
PosixPath('results/quick/report/report.html')
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__, analysis, plots
from .errors import ResultsError
from .io import atomic_write_text
from .metrics.registry import column_label

#: Folder name of the report inside a single run's folder (default output place).
REPORT_DIR = "report"


@dataclass
class Figure:
    """A figure of the report: key (file stem), heading, caption, written PNG path."""

    key: str
    title: str
    caption: str
    path: Path


HOW_TO_READ = [
    ("Collapse curves",
     "the mean distance of each iteration's image to the original, per model and mask size. The shaded band is a "
     "95% bootstrap confidence interval of that mean (trajectories resampled with replacement), so it shows how "
     "sure the mean is, not how spread out single trajectories are. LPIPS: 0 = identical, about 0.1 small visible "
     "change, 0.4-0.45 a heavily blurred copy, about 0.77 two unrelated photos. SSIM: 1 = identical."),
    ("Collapse",
     "a trajectory has collapsed at the first iteration where the metric crosses the threshold ({rule}). "
     "The default LPIPS-alex >= 0.5 means the image is further from its original than a heavily blurred copy and "
     "two thirds of the way to an unrelated picture: its content has been replaced, not just degraded. Change it "
     "with --threshold."),
    ("Survival curves",
     "the share of trajectories not yet collapsed after each iteration (Kaplan-Meier). A trajectory that never "
     "collapses, or whose model call failed, is censored at its last observed iteration: it counts until then and "
     "is not counted as collapsed. The median collapse iteration is where a curve drops to 0.5 or below; "
     "'not reached' means fewer than half collapsed within the run. Brackets are 95% bootstrap intervals."),
    ("Drift rate",
     "slope: the least-squares change of the metric per iteration, from iteration 1 on, averaged over "
     "trajectories. AUC: the area under the curve divided by the number of iterations (the average level over "
     "the run). exp k and half-life: the fit d(t) = a (1 - exp(-k t)) to the mean drift; half of the final level "
     "a is reached after ln 2 / k iterations. n/a means the curve shows no saturation (use the slope) or the "
     "metric has no fixed starting value (PSNR)."),
    ("Image strips and heat maps",
     "strips show a typical trajectory per model and mask (its final distance is the group's median), with the "
     "region repainted at each shown iteration outlined in red. Heat maps show where pixels changed: the mean "
     "absolute difference between the last saved snapshot and the original, averaged over models and seeds."),
    ("PSNR",
     f"identical images have infinite PSNR; it is counted as {analysis.PSNR_CAP_DB:g} dB so that means stay finite."),
]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.6em;margin:0 0 4px} h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:.9em} ul.findings li{margin:3px 0}
table{border-collapse:collapse;font-size:.82em;margin:8px 0} th,td{border:1px solid #ddd;padding:3px 7px;
text-align:right;vertical-align:top;white-space:nowrap} th{background:#f2f2f2;white-space:normal}
td.l,th.l{text-align:left;white-space:normal} .scroll{overflow-x:auto;max-width:100%}
figure{margin:18px 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.9em;margin-top:4px} dt{font-weight:600;margin-top:8px} dd{margin-left:18px}
details pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:.78em;max-height:480px}
nav a{margin-right:14px} code{background:#f2f2f2;padding:0 3px}
"""


def default_out_dir(run_dirs: Sequence[Path]) -> Path:
    """``<run>/report`` for one run; ``<parent>/report-<run1>+<run2>...`` beside the first run for several."""
    if len(run_dirs) == 1:
        return run_dirs[0] / REPORT_DIR
    return run_dirs[0].parent / ("report-" + "+".join(d.name for d in run_dirs))


def typical_trajectories(table: pd.DataFrame, metric: str, by: Sequence[str], limit: int) -> list[str]:
    """Per group, the trajectory whose final ``metric`` value is closest to the group median."""
    final = analysis.observed(table).sort_values("iteration").groupby("trajectory_id").tail(1).copy()
    final["_v"] = analysis.metric_values(final, metric)
    chosen = []
    for key in plots.ordered_groups(final, by):
        rows = plots._select(final, by, key)
        values = rows["_v"].to_numpy()
        if len(rows) == 0:
            continue
        if np.isnan(values).all():
            chosen.append(str(rows["trajectory_id"].iloc[0]))
            continue
        distance = np.abs(values - np.nanmedian(values))
        chosen.append(str(rows["trajectory_id"].iloc[int(np.nanargmin(distance))]))
    return chosen[:limit]


def findings(summary: pd.DataFrame, by: Sequence[str], rule: analysis.CollapseRule) -> list[str]:
    """Plain sentences: per group, collapse count, median collapse iteration, final value."""
    lines = []
    last_cols = [c for c in summary.columns if c.startswith(f"{rule.metric}@")]
    last = last_cols[-1] if last_cols else None
    for _, row in summary.iterrows():
        group = " / ".join(str(row[c]) for c in by) or "all trajectories"
        text = f"{group}: {int(row['collapsed'])} of {int(row['trajectories'])} trajectories collapsed"
        med = row["median_collapse"]
        if math.isfinite(med):
            text += (f", median collapse at iteration {med:.0f} (95% CI {_num(row['median_collapse_lo'])}"
                     f" to {_num(row['median_collapse_hi'])})")
        else:
            text += ", median collapse not reached"
        if last is not None:
            text += f"; mean {rule.metric} at iteration {last.split('@')[1]} = {row[last]:.3f}"
        if row.get("failed"):
            text += f"; {int(row['failed'])} trajectories had a failed model call (censored)"
        lines.append(text + ".")
    slope = f"{rule.metric}_slope"
    if slope in summary.columns and len(summary) > 1 and summary[slope].notna().any():
        i = int(summary[slope].idxmax())
        group = " / ".join(str(summary.loc[i, c]) for c in by)
        lines.append(f"Fastest drift: {group} ({summary.loc[i, slope]:.4f} {rule.metric} per iteration).")
    return lines


def _num(value: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else "not reached"


def _settings(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """Key settings of a run's manifest as (name, text) pairs."""
    config = manifest.get("config") or {}
    metrics = manifest.get("metrics") or {}
    lpips = metrics.get("lpips") or {}
    timing = manifest.get("timing") or {}
    models = manifest.get("models") or {}
    inputs = config.get("inputs") or {}
    pairs = [
        ("run name", manifest.get("name")),
        ("status", manifest.get("status")),
        ("started / finished", f"{manifest.get('started', '?')} / {manifest.get('finished', '?')}"),
        ("command", manifest.get("command")),
        ("config fingerprint", manifest.get("fingerprint")),
        ("git commit", manifest.get("git_commit")),
        ("iterations", config.get("iterations")),
        ("image size / fit", f"{config.get('size')} px, {config.get('fit')}"),
        ("seeds", config.get("seeds")),
        ("inputs", f"{inputs.get('source')}: " + ", ".join(sorted(manifest.get("inputs") or {}))),
        ("masks", ", ".join(f"{k} {json.dumps(v)}" for k, v in (manifest.get("masks") or {}).items())),
        ("models", "; ".join(f"{k}: {json.dumps(v)}" for k, v in models.items())),
        ("metrics", ", ".join(metrics.get("metrics") or (config.get("metrics") or {}).get("names") or [])),
        ("LPIPS", f"net {lpips.get('net')}, weights sha256 {str(lpips.get('weights_sha256'))[:16]}"
                  if lpips else "not computed"),
        ("hallucination score", json.dumps(config.get("hallucination"))),
        ("snapshots", config.get("snapshots")),
        ("device", json.dumps(manifest.get("device"))),
        ("versions", ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items())),
        ("time", f"model {timing.get('model_seconds', 0):.1f} s, harness {timing.get('overhead_seconds', 0):.1f} s"
                 if timing else None),
    ]
    return [(k, "" if v is None else str(v)) for k, v in pairs]


def _html_table(frame: pd.DataFrame, left: Sequence[str] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(str(c)).replace("_", "_<wbr>")}</th>'
                   for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(f'<td class="{"l" if c in left else ""}">{html.escape(str(v))}</td>'
                        for c, v in zip(frame.columns, row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def markdown_table(frame: pd.DataFrame) -> str:
    """A pandas frame as a GitHub-flavoured Markdown table (no extra dependency)."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


COLUMN_NOTES = {
    "trajectories": "number of trajectories (image x mask x seed x model) in the group",
    "failed": "trajectories with a failed model call (censored there)",
    "@": "mean of the metric at iteration i",
    "_slope": "change per iteration (least squares, from iteration 1), 95% bootstrap CI in brackets",
    "_auc": "area under the curve / iterations = average level over the run",
    "_exp_k": "rate k of the fit a (1 - exp(-k t)) to the mean drift",
    "_half_life": "ln 2 / k: iterations to reach half of the fitted final level",
    "collapsed": "trajectories that crossed the collapse threshold",
    "collapsed_share": "their share",
    "median_collapse": "Kaplan-Meier median collapse iteration, 95% bootstrap CI",
    "halluc_slope": "trend of the hallucination score per iteration",
}


def _column_notes(columns: Sequence[str]) -> list[tuple[str, str]]:
    notes = []
    for base in dict.fromkeys(c.split("@")[0] for c in columns if "@" in c):
        label = column_label(base)
        if label:
            notes.append((base, label))
    for pattern, text in COLUMN_NOTES.items():
        match = [c for c in columns if (c == pattern if not pattern.startswith(("_", "@")) else pattern in c)]
        if match:
            name = match[0] if len(match) == 1 else ("<metric>@<i>" if pattern == "@" else f"<metric>{pattern}")
            notes.append((name, text))
    return notes


def write_report(
    run_dirs: Sequence[str | Path] | str | Path,
    out_dir: str | Path | None = None,
    *,
    threshold: str | float | analysis.CollapseRule | None = None,
    by: Sequence[str] | None = None,
    at: Sequence[int] = (10, 50, 100),
    n_boot: int = 1000,
    seed: int = 0,
    max_strips: int = 9,
    title: str | None = None,
) -> dict[str, Path]:
    """Write the HTML report, Markdown summary, summary CSV and figures of one or more runs.

    Args:
        run_dirs: run folders (``<output_dir>/<name>``); several are compared side by side and
            must be compatible (see :func:`ripbench.analysis.load_runs`).
        out_dir: where to write; default :func:`default_out_dir`.
        threshold: collapse rule: a number for the default metric (LPIPS ``>=``, else SSIM
            ``<=``...) or a rule text such as ``"ssim_orig<=0.4"``; see
            :func:`ripbench.analysis.collapse_rule`.
        by: grouping columns of the summary (default ``model, mask_label``, with ``run`` first
            for several runs).
        at: iterations at which the summary lists metric means (clipped to the run).
        n_boot, seed: bootstrap resamples and their seed (results are reproducible).
        max_strips: at most this many trajectories in each run's image strip.
        title: page title (default: from the run names).

    Returns:
        ``{"html": ..., "markdown": ..., "summary_csv": ..., <figure key>: <png path>, ...}``.
    """
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    table = analysis.load_runs(*dirs)
    out = Path(out_dir) if out_dir is not None else default_out_dir(dirs)
    fig_dir = out / "figures"
    rule = analysis.collapse_rule(table, threshold)
    runs = list(table.attrs["run_dirs"])
    multi = len(runs) > 1
    models = ["run", "model"] if multi else ["model"]
    by = list(by) if by is not None else [*models, "mask_label"]
    stats_kw: dict[str, Any] = {"n_boot": n_boot, "seed": seed}
    summary = analysis.group_summary(table, by, at=at, rule=rule, **stats_kw)
    formats = ("svg",)

    figures: list[Figure] = []
    curve_metrics = list(dict.fromkeys([rule.metric, *[m for m in analysis.summary_metrics(table)
                                                      if m.endswith("_orig")]]))
    path = plots.collapse_curves(table, fig_dir / "collapse_curves.png", curve_metrics, by, rule=rule,
                                 formats=formats, **stats_kw)
    figures.append(Figure("collapse_curves", "Collapse curves", "Mean distance to the original per iteration; "
                          "band: 95% bootstrap CI of the mean; dashed: collapse threshold.", path))
    path = plots.survival_curves(table, fig_dir / "survival.png", rule, by, formats=formats, **stats_kw)
    figures.append(Figure("survival", "Survival", "Share of trajectories not yet collapsed (Kaplan-Meier, "
                          "censored at the last observed iteration); the dotted line marks the median.", path))
    path = plots.model_comparison(table, fig_dir / "model_comparison.png", rule.metric, "mask_label", models,
                                  rule=rule, formats=formats, **stats_kw)
    figures.append(Figure("model_comparison", "Models compared per mask size",
                          f"{rule.metric} per iteration, one panel per mask, one line per "
                          f"{' / '.join(models)}.", path))
    if table["category"].nunique() > 1:
        path = plots.collapse_curves(table, fig_dir / "categories.png", [rule.metric], [*models, "category"],
                                     rule=rule, formats=formats, **stats_kw)
        figures.append(Figure("categories", "By image category", f"{rule.metric} per iteration for each image "
                              "category (all mask sizes together).", path))
    for run in runs:
        run_dir = Path(table.attrs["run_dirs"][run])
        rows = table[table["run"] == run]
        suffix = f"_{_slug(run)}" if multi else ""
        ids = [t for t in typical_trajectories(rows, rule.metric, ["model", "mask_label"], max_strips)
               if plots.snapshot_iterations(run_dir, t)]
        where = f" (run {run})" if multi else ""
        if ids:
            path = plots.image_strips(run_dir, ids, fig_dir / f"image_strips{suffix}.png", table=rows,
                                      metric=rule.metric, formats=formats)
            figures.append(Figure(f"image_strips{suffix}", f"Image strips{where}",
                                  "A typical trajectory per model and mask; red: region repainted at that "
                                  "iteration; title: distance to the original.", path))
        try:
            path = plots.drift_heatmap(run_dir, fig_dir / f"drift_heatmap{suffix}.png", table=rows, formats=formats)
        except ResultsError:
            continue
        figures.append(Figure(f"drift_heatmap{suffix}", f"Where the images changed{where}",
                              "Mean absolute pixel change between the last saved snapshot and the original.", path))

    summary_csv = out / "summary.csv"
    atomic_write_text(summary_csv, summary.to_csv(index=False))
    shown = analysis.format_summary(summary)
    title = title or "ripbench report: " + ", ".join(runs)
    lines = findings(summary, by, rule)
    manifests = table.attrs["manifests"]
    html_path = out / "report.html"
    atomic_write_text(html_path, _html(title, runs, rule, summary, shown, by, lines, figures, manifests))
    md_path = out / "summary.md"
    atomic_write_text(md_path, _markdown(title, runs, rule, shown, lines, figures, manifests, out))
    return {"html": html_path, "markdown": md_path, "summary_csv": summary_csv,
            **{f.key: f.path for f in figures}}


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


def _html(title: str, runs: list[str], rule: analysis.CollapseRule, summary: pd.DataFrame, shown: pd.DataFrame,
          by: Sequence[str], lines: list[str], figures: list[Figure], manifests: dict[str, Any]) -> str:
    esc = html.escape
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">', f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">Generated {now} by ripbench {esc(__version__)}. Collapse rule: '
        f"<code>{esc(rule.describe())}</code>. Iterations in the table: {esc(', '.join(map(str, summary.attrs.get('iterations', []))))}.</p>",
        '<nav><a href="#findings">Findings</a><a href="#how">How to read this</a><a href="#summary">Summary</a>'
        '<a href="#figures">Figures</a><a href="#settings">Settings</a></nav>',
        '<h2 id="findings">Findings</h2><ul class="findings">',
        *(f"<li>{esc(line)}</li>" for line in lines), "</ul>",
        '<h2 id="how">How to read this</h2><dl>',
        *(f"<dt>{esc(name)}</dt><dd>{esc(text.format(rule=rule.describe()))}</dd>" for name, text in HOW_TO_READ),
        "</dl>",
        '<h2 id="summary">Summary per group</h2>',
        f'<div class="scroll">{_html_table(shown, left=by)}</div>',
        _html_table(pd.DataFrame(_column_notes(list(shown.columns)), columns=["column", "meaning"]),
                    left=["column", "meaning"]),
        '<h2 id="figures">Figures</h2>',
    ]
    for fig in figures:
        parts.append(f'<figure id="{esc(fig.key)}"><h3>{esc(fig.title)}</h3>'
                     f'<img src="{_data_uri(fig.path)}" alt="{esc(fig.title)}">'
                     f"<figcaption>{esc(fig.caption)} (files: figures/{esc(fig.path.name)}, "
                     f"figures/{esc(fig.path.with_suffix('.svg').name)})</figcaption></figure>")
    parts.append('<h2 id="settings">Settings</h2>')
    for run in runs:
        manifest = manifests.get(run) or {}
        parts.append(f"<h3>Run {esc(run)}</h3>")
        parts.append(_html_table(pd.DataFrame(_settings(manifest), columns=["setting", "value"]),
                                 left=["setting", "value"]))
        dump = json.dumps(manifest, indent=2, default=str)
        parts.append(f"<details><summary>Full manifest.json</summary><pre>{esc(dump)}</pre></details>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _markdown(title: str, runs: list[str], rule: analysis.CollapseRule, shown: pd.DataFrame, lines: list[str],
              figures: list[Figure], manifests: dict[str, Any], out: Path) -> str:
    md = [f"# {title}", "", f"Collapse rule: `{rule.describe()}` (first iteration crossing it). "
          "Brackets: 95% bootstrap intervals. Open `report.html` for the figures and the explanations.", "",
          "## Findings", "", *(f"- {line}" for line in lines), "", "## Summary per group", "",
          markdown_table(shown), "", "## Figures", ""]
    for fig in figures:
        md.append(f"- [{fig.title}]({fig.path.relative_to(out).as_posix()}): {fig.caption}")
    md += ["", "## Settings", ""]
    for run in runs:
        md += [f"### Run {run}", ""]
        md += [f"- **{k}**: {v}" for k, v in _settings(manifests.get(run) or {}) if v]
        md.append("")
    return "\n".join(md)
