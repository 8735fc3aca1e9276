"""A report for people: one self-contained HTML page and a Markdown summary of one or more runs.

:func:`write_report` loads the runs (:func:`ripbench.analysis.load_runs`: several runs are
compared on the iterations, images and masks they share, and what differs is stated), computes
the statistics (:mod:`ripbench.analysis`, :mod:`ripbench.compare`,
:mod:`ripbench.hallucination_stats`), phrases the findings (:mod:`ripbench.findings`), draws the
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

Example
-------
>>> from ripbench.report import write_report                     # doctest: +SKIP
>>> write_report(["results/quick"])["html"]                      # doctest: +SKIP
PosixPath('results/quick/report/report.html')
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__, analysis, compare, findings, hallucination_stats, plots
from .errors import ResultsError
from .io import atomic_write_text
from .metrics.registry import column_label, spec_for_column
from .stats import fmt_p, holm, pct

#: Folder name of the report inside a single run's folder (default output place).
REPORT_DIR = "report"
#: Pixels per inch of the thumbnails embedded in the page (a full-width figure is shown this many
#: pixels per inch of its paper size).
SCREEN_PPI = 125
#: At most this many failed trajectories are listed in the page (all are in failures.csv).
MAX_LISTED_FAILURES = 40


@dataclass
class Figure:
    """A figure of the report: key (file stem), heading, caption, written PNG path, other formats,
    and whether it shows photographs (embedded as JPEG) or a plot (embedded as a palette PNG)."""

    key: str
    title: str
    caption: str
    path: Path
    formats: tuple[str, ...] = ("pdf",)
    photo: bool = False


@dataclass
class Section:
    """One section of the report: heading, sentences, tables (title, frame), figures, notes."""

    key: str
    title: str
    sentences: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def how_to_read(rule: analysis.CollapseRule, ci: float) -> list[tuple[str, str]]:
    """The "How to read this" entries, phrased from the rule, the confidence level and the metric specs."""
    level = f"{ci:.0%}"
    spec = spec_for_column(rule.metric)
    label = spec.label if spec else rule.metric
    direction = spec.direction_word if spec else ""
    scale = ""
    if rule.metric == "lpips_orig":
        points = analysis.LPIPS_REFERENCE_POINTS
        scale = " For reference (LPIPS-alex on ripbench's sample photos): " + ", ".join(
            f"{name} {value}" for name, value in points.items()) + "."
    return [
        ("Intervals", f"every bracket is a {level} confidence interval. Means, slopes and areas: percentile "
                      "bootstrap over trajectories (whole trajectories resampled, scipy.stats.bootstrap). Shares: "
                      "Wilson interval. Survival: Greenwood's interval on the log-log scale (scipy.stats.ecdf). "
                      "An interval shows how sure a number is, not how spread out single trajectories are."),
        ("Drift curves", f"the mean distance of each iteration's image to the original, per group, with its {level} "
                         f"band; {label}: {direction}.{scale}"),
        ("Collapse", f"a trajectory has collapsed at the first iteration where {rule.describe()}. The threshold is "
                     "explicit because the RIP papers give none; change it with --threshold."),
        ("Survival", "the share of trajectories not yet collapsed after each iteration (Kaplan-Meier). A trajectory "
                     "that never collapses, or whose model call failed, is censored at its last observed iteration. "
                     "The median collapse iteration is where a curve drops to 0.5 or below; 'not reached' means "
                     "fewer than half collapsed within the run. Log-rank tests compare groups as independent samples."),
        ("Drift rate and fit", "slope: least-squares change of the metric per iteration from iteration 1 on, averaged "
                               "over trajectories (its sign is the metric's). AUC: area under the curve divided by the "
                               "iterations (the average level over the run). Half-life: from the fit d(t) = a (1 - "
                               "exp(-k t)) to the mean drift, shown only where it fits: enough iterations "
                               f"({analysis.MIN_FIT_ITERATIONS} or more), saturation within the run, and R² of at least "
                               f"{analysis.MIN_FIT_R2:g}; otherwise the table says why not."),
        ("Paired comparisons", "models see the same images, masks and noise for the same image, mask and seed, so "
                               "their trajectories pair up. For each pair: the final value and the AUC; the table gives "
                               "the mean difference b - a with its bootstrap interval, the matched-pairs rank-biserial "
                               "correlation r_rb (-1..1), the two-sided Wilcoxon signed-rank p and Holm's adjustment "
                               "over all rows."),
        ("Regions", "the metric to the original restricted to pixels: in the current mask, outside it, ever masked "
                    "so far (denoiser drift) and never masked so far (VAE / pipeline drift). A region with no pixels "
                    "has no value (n counts the trajectories that have one)."),
        ("Hallucination", "the variance of the model's predicted clean image over the denoising steps whose noise "
                          "level lies in a fixed low-noise band (Aithal et al. 2024; the band and the number of "
                          "steps in it are columns of the table). Where the run has ground truth (Simple Shapes), the ROC and AUROC say how well it "
                          "separates hallucinated outputs; with mask boxes the truth is the generation's (what "
                          "the iteration made in the region it repainted; a duplicate carried into later "
                          "iterations is not counted again). A content baseline is a control with no model in it "
                          "(e.g. the number of foreground pixels in the repainted region): a score only shows "
                          "more than the amount of content when it beats the best baseline, i.e. the paired "
                          "interval of AUROC(score) - AUROC(baseline), over the same resampled trajectories, lies "
                          "above 0. The content-matched AUROC compares hallucinated and in-support outputs with "
                          "the same number of shapes in the repainted region only. Intervals resample whole "
                          "trajectories."),
        ("PSNR", f"identical images have infinite PSNR; it is counted as {analysis.PSNR_CAP_DB:g} dB so that means "
                 "stay finite."),
    ]


_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d1d1f;background:#f4f4f5;
line-height:1.45;font-size:15px}
main{max-width:1100px;margin:0 auto;padding:22px 32px 48px;background:#fff;overflow-wrap:anywhere}
h1{font-size:1.55em;margin:0 0 4px} h2{font-size:1.25em;margin-top:34px;border-bottom:1px solid #ddd;
padding-bottom:4px} h3{font-size:1.02em;margin:22px 0 6px}
.meta{color:#555;font-size:.88em} ul.findings li{margin:4px 0}
nav{margin:10px 0 0;font-size:.9em;display:flex;flex-wrap:wrap;gap:4px 14px}
table{border-collapse:collapse;font-size:.8em;margin:8px 0;max-width:100%}
th,td{border:1px solid #e0e0e0;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#f3f3f3;font-weight:600} td.l,th.l{text-align:left} td.k,th.k{white-space:nowrap}
td .ci{display:block;color:#666;font-size:.88em;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
figure{margin:14px 0 22px} figure img{display:block;max-width:100%;height:auto}
figcaption{color:#444;font-size:.86em;margin-top:4px;max-width:860px}
dt{font-weight:600;margin-top:8px} dd{margin-left:18px;max-width:900px}
details pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:.75em;max-height:420px;white-space:pre-wrap}
code{background:#f2f2f2;padding:0 3px} .note{color:#555;font-size:.86em;max-width:900px}
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
        rows = plots.select(final, by, key)
        values = rows["_v"].to_numpy()
        if len(rows) == 0:
            continue
        if np.isnan(values).all():
            chosen.append(str(rows["trajectory_id"].iloc[0]))
            continue
        distance = np.abs(values - np.nanmedian(values))
        chosen.append(str(rows["trajectory_id"].iloc[int(np.nanargmin(distance))]))
    return chosen[:limit]


def in_reading_order(frame: pd.DataFrame, table: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Rows of a per-group frame in the figures' order (masks by area, names naturally), attrs kept."""
    order = {key: i for i, key in enumerate(plots.ordered_groups(table, by))}
    keys = frame[list(by)].itertuples(index=False, name=None)
    ranked = frame.assign(_order=[order.get(tuple(k), len(order)) for k in keys])
    out = ranked.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    out.attrs = frame.attrs
    return out


# -- tables for people --------------------------------------------------------------------------------

def _column_or_nan(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]``, or NaN for every row when the column is missing (no interval)."""
    return frame[column] if column in frame.columns else pd.Series(np.nan, index=frame.index)


def _iv(value: Any, lo: Any, hi: Any, digits: int = 3) -> str:
    """``"v [lo, hi]"`` (no brackets without an interval)."""
    if pd.isna(lo) or pd.isna(hi):
        return findings.fmt(value, digits)
    v, a, b = findings.fmt_interval(value, lo, hi, digits)
    return f"{v} [{a}, {b}]"


def _iteration(value: float) -> str:
    return "not reached" if math.isinf(value) else ("n/a" if math.isnan(value) else f"{value:.0f}")


def display_summary(summary: pd.DataFrame, by: Sequence[str], rule: analysis.CollapseRule) -> pd.DataFrame:
    """The per-group summary for people: few columns, each value with its interval."""
    m = rule.metric
    final = summary.attrs.get("final", "")
    spec = spec_for_column(m)
    short = spec.label if spec else m
    out = pd.DataFrame({c: summary[c].astype(str) for c in by})
    out["n"] = summary["trajectories"].astype(int)
    if f"{final}_n" in summary.columns and (summary[f"{final}_n"] != summary["trajectories"]).any():
        out[f"n at it. {final.partition('@')[2]}"] = summary[f"{final}_n"].astype(int)  # the mean rests on these
    if "failed" in summary.columns and summary["failed"].any():
        out["failed"] = summary["failed"].astype(int)
    if final in summary.columns:
        out[f"{short} at it. {final.partition('@')[2]}"] = [
            _iv(v, a, b) for v, a, b in zip(summary[final], _column_or_nan(summary, f"{final}_lo"),
                                            _column_or_nan(summary, f"{final}_hi"))]
    out["slope / it."] = [_iv(v, a, b) for v, a, b in zip(summary[f"{m}_slope"], summary[f"{m}_slope_lo"],
                                                           summary[f"{m}_slope_hi"])]
    out["AUC / it."] = [_iv(v, a, b) for v, a, b in zip(summary[f"{m}_auc"], summary[f"{m}_auc_lo"],
                                                         summary[f"{m}_auc_hi"])]
    out["collapsed"] = [f"{int(k)}/{int(n)} [{pct(lo)}, {pct(hi)}]"
                        for k, n, lo, hi in zip(summary["collapsed"], summary["trajectories"],
                                                summary["collapsed_share_lo"], summary["collapsed_share_hi"])]
    out["median collapse it."] = [
        _iteration(v) if math.isinf(v) else f"{_iteration(v)} [{_iteration(a)}, {_iteration(b)}]"
        for v, a, b in zip(summary["median_collapse"], summary["median_collapse_lo"], summary["median_collapse_hi"])]
    out["half-life (R²)"] = [
        (f"{v:.1f} [{a:.1f}, {'inf' if math.isinf(b) else f'{b:.1f}'}] (R² {r2:.2f})" if status == "ok"
         else _short_fit(status))
        for v, a, b, r2, status in zip(summary[f"{m}_half_life"], summary[f"{m}_half_life_lo"],
                                       summary[f"{m}_half_life_hi"], summary[f"{m}_exp_r2"], summary[f"{m}_fit"])]
    if "halluc_slope" in summary.columns:
        out["halluc. score slope"] = [_iv(v, a, b) for v, a, b in zip(summary["halluc_slope"],
                                                                      summary["halluc_slope_lo"],
                                                                      summary["halluc_slope_hi"])]
    return out


def _short_fit(status: str) -> str:
    """A refused fit's reason, short enough for a table cell."""
    for start, short in (("too few", "too few iterations"), ("no saturation", "no saturation"),
                         ("no fixed", "n/a (no fixed start)")):
        if status.startswith(start):
            return short
    return status.split(" <")[0] + (")" if "(" in status and " <" in status else "")


def metrics_table(table: pd.DataFrame, by: Sequence[str], **kw: Any) -> pd.DataFrame:
    """Every metric's mean distance to the original at the last iteration per group, with its interval;
    column headers are the metrics' labels from their specs (plug-in metrics included)."""
    metrics = [m for m in analysis.summary_metrics(table) if m.endswith("_orig")]
    out: pd.DataFrame | None = None
    for metric in analysis.present_metrics(table, metrics):
        values = analysis.region_summary(table, metric, by, regions=["whole"], **kw)
        frame = values[list(by)].astype(str)
        frame[column_label(metric) or metric] = [_iv(v, a, b) for v, a, b in
                                                 zip(values["mean"], values["lo"], values["hi"])]
        out = frame if out is None else out.merge(frame, on=list(by), how="outer")
    return out if out is not None else pd.DataFrame()


def hallucination_notes(table: pd.DataFrame) -> list[str]:
    """What the table says about how its scores were made: the noise band, steps per score, and how
    many outputs got no score and why (columns ``halluc_band_lo``/``_hi``, ``halluc_steps``,
    ``halluc_status``, when the run has them)."""
    notes = []
    later = table[table["iteration"] > 0]
    by_model = compare.arm_columns(later)
    if {"halluc_band_lo", "halluc_band_hi"} <= set(later.columns):
        bands = later.dropna(subset=["halluc_band_lo", "halluc_band_hi"]).groupby(by_model)[
            ["halluc_band_lo", "halluc_band_hi"]].first()
        if len(bands):
            notes.append("Scores use the denoising steps whose noise level t/T lies in the band: " + "; ".join(
                f"{' / '.join(map(str, key if isinstance(key, tuple) else (key,)))} [{lo:g}, {hi:g}]"
                for key, (lo, hi) in bands.iterrows()) + ".")
    if "halluc_steps" in later.columns:
        steps = pd.to_numeric(later["halluc_steps"], errors="coerce").dropna()
        if len(steps):
            low, high = int(steps.min()), int(steps.max())
            notes.append(f"Steps per score: {low}" + (f" to {high}." if high != low else "."))
    if "halluc_status" in later.columns:
        counts = later["halluc_status"].dropna().astype(str).value_counts()
        unscored = {k: int(v) for k, v in counts.items() if k != "ok"}
        if unscored:
            notes.append(f"{sum(unscored.values())} of {int(counts.sum())} outputs have no score: " + ", ".join(
                f"{k} {v}" for k, v in unscored.items()) + " (see results/README.md).")
    return notes


def summary_notes(summary: pd.DataFrame, rule: analysis.CollapseRule, ci: float) -> list[str]:
    """What the columns of :func:`display_summary` mean (labels from the metric specs)."""
    notes = [f"n: trajectories (image x mask x seed) in the group. Brackets: {ci:.0%} confidence intervals.",
             f"{column_label(rule.metric) or rule.metric}: mean at the last iteration; slope / it.: change per "
             "iteration; AUC / it.: average level over the run.",
             f"collapsed: trajectories that reached {rule.describe()}, with the Wilson interval of the share; median "
             "collapse it.: Kaplan-Meier median with its interval ('not reached': fewer than half collapsed).",
             "half-life: iterations to half of the level the drift approaches, from an exponential fit to the mean "
             "drift; where the fit is refused the reason is given."]
    if "halluc_slope" in summary.columns:
        notes.append("halluc. score slope: trend of the hallucination score per iteration.")
    return notes


def _region_table(regions: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    order = [r for r in analysis.REGION_MEANINGS if r in set(regions["region"])]
    rows = []
    for key, part in regions.groupby(list(by), sort=False) if by else [((), regions)]:
        key = key if isinstance(key, tuple) else (key,)
        cells = {r["region"]: r for _, r in part.iterrows()}
        row = dict(zip(by, map(str, key)))
        for region in order:
            r = cells.get(region)
            row[region] = "n/a" if r is None or r["n"] == 0 else f"{_iv(r['mean'], r['lo'], r['hi'])} n={int(r['n'])}"
        rows.append(row)
    return pd.DataFrame(rows)


def _band_table(bands: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    out = pd.DataFrame({c: bands[c].astype(str) for c in by})
    out["iterations"] = bands["band"].astype(str)
    out["outputs"] = bands["outputs"].astype(int)
    out["median [q1, q3]"] = [_iv(m, a, b) for m, a, b in zip(bands["median"], bands["q1"], bands["q3"])]
    out["mean [CI]"] = [_iv(v, a, b) for v, a, b in zip(bands["mean"], bands["mean_lo"], bands["mean_hi"])]
    if "halluc_rate" in bands.columns:
        out["hallucinated"] = [f"{int(k)}/{int(n)}" for k, n in zip(bands["hallucinated"], bands["labelled"])]
        out["rate [CI]"] = [f"{pct(v)} [{pct(a)}, {pct(b)}]"
                            for v, a, b in zip(bands["halluc_rate"], bands["halluc_rate_lo"], bands["halluc_rate_hi"])]
    return out


def _logrank_table(tests: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in tests.columns if c not in ("a", "b", "n_a", "n_b", "collapsed_a", "collapsed_b", "statistic",
                                                  "pvalue", "p_holm")]
    out = pd.DataFrame({c: tests[c].astype(str) for c in keys})
    out["a"], out["b"] = tests["a"], tests["b"]
    out["collapsed a"] = [f"{int(k)}/{int(n)}" for k, n in zip(tests["collapsed_a"], tests["n_a"])]
    out["collapsed b"] = [f"{int(k)}/{int(n)}" for k, n in zip(tests["collapsed_b"], tests["n_b"])]
    out["log-rank p"] = [fmt_p(p) for p in tests["pvalue"]]
    out["p (Holm)"] = [fmt_p(p) for p in tests["p_holm"]]
    return out


def _failure_table(found: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("run", "model", "image_id", "mask_label", "seed", "problem", "iteration", "last_good",
                        "reason") if c in found.columns]
    return found[cols].head(MAX_LISTED_FAILURES).astype(str).replace({"<NA>": "", "nan": "", "None": ""})


# -- figures ------------------------------------------------------------------------------------------

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


# -- the report ---------------------------------------------------------------------------------------

@dataclass
class _Context:
    """What every section builder needs: the table and its settings, and where results go."""

    table: pd.DataFrame
    rule: analysis.CollapseRule
    by: list[str]
    models: list[str]
    summary: pd.DataFrame
    out: Path
    ci: float
    kw: dict[str, Any]
    top: list[str] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def fig_dir(self) -> Path:
        return self.out / "figures"

    def write(self, key: str, name: str, text: str) -> None:
        """Write a result file beside the report and remember it under ``key``."""
        self.paths[key] = self.out / name
        atomic_write_text(self.paths[key], text)


def _summary_section(c: _Context) -> Section:
    table, by, rule = c.table, c.by, c.rule
    fastest = findings.fastest_drift(c.summary, by, c.ci, table)
    c.top += [fastest] if fastest else []
    section = Section("summary", "Summary per group", findings.collapse_sentences(c.summary, by, rule, c.ci),
                      [("", display_summary(c.summary, by, rule))], notes=summary_notes(c.summary, rule, c.ci))
    every = metrics_table(table, by, **c.kw)
    if len(every.columns) > len(by) + 1:
        section.tables.append((f"Every metric at iteration {int(table['iteration'].max())} (mean "
                               f"[{c.ci:.0%} CI])", every))
        shown = analysis.present_metrics(table, [m for m in analysis.summary_metrics(table) if m.endswith("_orig")])
        section.notes.append("Results-table columns: " + "; ".join(f"{m} = {column_label(m) or m}" for m in shown)
                             + " (all columns: results/README.md).")
    return section


def _drift_section(c: _Context) -> Section:
    table, rule, models, phrase = c.table, c.rule, c.models, findings.metric_phrase(c.rule.metric)
    section = Section("drift", "Drift from the original")
    curve_metrics = list(dict.fromkeys([rule.metric, *[m for m in analysis.summary_metrics(table)
                                                      if m.endswith("_orig")]]))
    section.figures.append(Figure(
        "collapse_curves", "Drift curves", f"Mean distance to the original per iteration, one panel per metric; "
        f"band: {c.ci:.0%} bootstrap CI of the mean; dashed: collapse threshold; n: trajectories.",
        plots.collapse_curves(table, c.fig_dir / "collapse_curves.png", curve_metrics, c.by, rule=rule,
                              formats=("pdf",), **c.kw)))
    if table["mask_label"].nunique() > 1 or table[models].drop_duplicates().shape[0] > 1:
        section.figures.append(Figure(
            "model_comparison", "Models compared per mask", f"{phrase} per iteration, one panel per mask, one line "
            f"per {' / '.join(models)}; band: {c.ci:.0%} bootstrap CI.",
            plots.model_comparison(table, c.fig_dir / "model_comparison.png", rule.metric, "mask_label", models,
                                   rule=rule, formats=("pdf",), **c.kw)))
    per_category = table.groupby("category")["image_id"].nunique() if "category" in table.columns else pd.Series()
    if (per_category >= 2).sum() >= 2:
        section.figures.append(Figure(
            "categories", "By image category", f"{phrase} per iteration for each image category (all masks together).",
            plots.collapse_curves(table, c.fig_dir / "categories.png", [rule.metric], [*models, "category"],
                                  rule=rule, formats=("pdf",), **c.kw)))
    return section


def _survival_section(c: _Context) -> Section:
    section = Section("survival", "Collapse and survival")
    section.figures.append(Figure(
        "survival", "Survival", f"Share of trajectories not yet collapsed ({c.rule.describe()}; Kaplan-Meier, censored "
        f"at the last observed iteration); band: pointwise {c.ci:.0%} CI; dotted: 0.5.",
        plots.survival_curves(c.table, c.fig_dir / "survival.png", c.rule, c.by, ci=c.ci, formats=("pdf",))))
    strata = [col for col in c.by if col not in c.models]
    tests = analysis.logrank_tests(c.table, c.rule, by=strata, between=c.models)
    if len(tests):
        tests = in_reading_order(tests, c.table, strata)
        tests["p_holm"] = holm(tests["pvalue"].to_numpy(float))
        section.tables.append(("Log-rank tests of time to collapse (Holm over the rows)", _logrank_table(tests)))
    return section


def _paired_section(c: _Context) -> Section | None:
    comparisons = compare.paired_comparisons(c.table, c.rule.metric, **c.kw)
    if comparisons.empty:
        return None
    comparisons = in_reading_order(comparisons, c.table, ["mask_label"])
    lines = findings.comparison_sentences(comparisons, ci=c.ci)
    c.top += lines
    c.write("comparisons_csv", "comparisons.csv", comparisons.to_csv(index=False))
    c.write("comparisons_tex", "comparisons.tex", compare.to_latex(comparisons))
    return Section("paired", "Paired comparisons", lines, [("", compare.display_table(comparisons))],
                   notes=[f"Metric: {findings.metric_phrase(c.rule.metric)}, final = at iteration "
                          f"{comparisons.attrs['iteration']}, auc = area under the curve / iterations. Pairs: same "
                          "image, mask and seed. Files: comparisons.csv (full precision), comparisons.tex (booktabs "
                          "table for a paper)."])


def _region_section(c: _Context) -> Section | None:
    metric = c.rule.metric
    regions = analysis.region_summary(c.table, metric, c.by, **c.kw)
    if regions.empty or not set(regions["region"]) - {"whole"}:
        return None
    phrase = findings.metric_phrase(metric)
    section = Section("regions", "Drift by region", findings.region_sentences(regions, c.by, metric, c.ci),
                      [(f"{phrase} at iteration {regions.attrs['iteration']}, mean [CI] and n per region",
                        _region_table(regions, c.by))],
                      notes=["; ".join(f"{k}: {v}" for k, v in analysis.REGION_MEANINGS.items()) + "."])
    with contextlib.suppress(ResultsError):  # fewer than two regions with values: the table says it all
        section.figures.append(Figure(
            "regions", "Drift per region", f"{phrase} per iteration and region, one panel per group; band: "
            f"{c.ci:.0%} bootstrap CI. Never-masked = VAE / pipeline drift, ever-masked = denoiser drift.",
            plots.region_curves(c.table, c.fig_dir / "regions.png", metric, c.by, formats=("pdf",), **c.kw)))
    return section


def _evidence_table(evidence: Sequence[dict[str, Any]], labels: dict[str, str]) -> pd.DataFrame:
    """Held-out AUROC of each score and each content baseline, the paired difference to the best baseline
    and the content-matched AUROC, with intervals and n (AUROC with two decimals)."""
    def cell(d: dict[str, float] | None, signed: bool = False) -> str:
        if not d or pd.isna(d.get("value")):
            return "n/a"
        f = "{:+.2f}" if signed else "{:.2f}"
        if pd.isna(d.get("lo")) or pd.isna(d.get("hi")):
            return f.format(d["value"])
        return f"{f.format(d['value'])} [{f.format(d['lo'])}, {f.format(d['hi'])}]"

    rows = []
    for r in evidence:
        best = r.get("best_baseline")
        for column in [r["score"], *r["baselines"]]:
            if column != r["score"] and column != best:
                continue
            is_score = column == r["score"]
            rows.append({
                "score": labels.get(column, column) if is_score else f"{labels.get(column, column)} (control of "
                f"{labels.get(r['score'], r['score'])})",
                "kind": "detector" if is_score else "best content baseline (no model)",
                "AUROC [CI]": cell(r["auroc"].get(column)),
                "minus best baseline [CI]": cell(r["difference"].get(best), signed=True) if is_score and best else "",
                "content-matched AUROC [CI]": cell(r["matched"].get(column)) if r.get("matched") else "n/a",
                "n": f"{r['duplicates']} / {r['valid']} ({r['trajectories']} traj.)",
                "verdict": r["verdict"] if is_score else ""})
    return pd.DataFrame(rows)


def _hallucination_section(c: _Context, keep: float) -> Section | None:
    table, models = c.table, c.models
    specs = hallucination_stats.score_specs(table)
    detectors = [s for s in specs if not s.is_baseline]
    if not detectors:
        return None
    scores = [s.column for s in detectors]  # the headline (the repainted region's score) first
    table = hallucination_stats.oriented(table, specs)  # lower-is-suspect plug-ins: negated, higher = suspect
    labels = {s.column: s.label + (" (negated: lower is suspect)" if s.direction == "lower-is-suspect" else "")
              for s in specs}
    # a score is not comparable across models (or runs): ROC and threshold per arm, never pooled
    arms = [(key, rows) for key, rows in analysis.iter_groups(table, models)
            if analysis.present_metrics(rows, scores[:1])]
    rocs, lines, evidence_rows = [], [], []
    for i, (key, rows) in enumerate(arms):
        arm_specs = [s for s in specs if analysis.present_metrics(rows, [s.column])]
        arm_rocs = [hallucination_stats.roc_analysis(rows, s.column, **c.kw) for s in arm_specs]
        for roc, s in zip(arm_rocs, arm_specs, strict=True):  # a baseline is named as the control it is
            if s.is_baseline:
                roc["score"] = f"{s.label.removesuffix(' (baseline)')} (content baseline: a control with no model in it)"
        if len(arms) > 1:
            for roc in arm_rocs:
                roc["score"] = f"{roc['score']} of {' / '.join(map(str, key))}"
        cut = hallucination_stats.threshold_analysis(rows, scores[0], keep, held_out=True, **c.kw)
        lines += findings.hallucination_sentences(arm_rocs, cut, c.summary if i == 0 else None, c.by, c.ci)
        evidence = hallucination_stats.content_evidence(rows, arm_specs, **c.kw)
        verdicts = findings.baseline_sentences(evidence, labels, c.ci)
        if len(arms) > 1:
            verdicts = [f"{' / '.join(map(str, key))}: {v}" for v in verdicts]
        lines += verdicts
        c.top += verdicts[:1]
        frame = _evidence_table(evidence, labels)
        if len(arms) > 1 and not frame.empty:
            frame.insert(0, "arm", " / ".join(map(str, key)))
        evidence_rows.append(frame)
        rocs += arm_rocs
    _, source = hallucination_stats.ground_truth(table)
    c.top += [line for line in lines if line.startswith("Detecting") and "AUROC" in line][:1]
    bands = hallucination_stats.score_bands(table, scores[0], models, **c.kw)
    tables = []
    evidence_frame = pd.concat([f for f in evidence_rows if not f.empty]) if any(
        not f.empty for f in evidence_rows) else pd.DataFrame()
    if not evidence_frame.empty:
        tables.append(("Scores against the best content baseline, held-out trajectories (n: hallucinated / in "
                       "support)", evidence_frame))
    tables.append((f"{scores[0]} per iteration band", _band_table(bands, models)))
    notes = [f"Ground truth: {source}."]
    if not evidence_frame.empty:
        notes.append(f"Content baselines are controls with no model in them; the best is chosen on a random "
                     f"{hallucination_stats.CALIBRATION_SHARE:.0%} of the trajectories and every number of the "
                     "comparison is on the others.")
    elif not any(s.is_baseline for s in specs):
        notes.append("The run has no content-baseline column, so no score is compared with the amount of content.")
    section = Section("hallucination", "Hallucination", lines, tables, notes=[*notes, *hallucination_notes(table)])
    rate = f"; right: hallucination rate by ground truth with {c.ci:.0%} CI." if "halluc_rate" in bands.columns else "."
    section.figures.append(Figure(
        "hallucination_bands", "Score per iteration band",
        f"Hallucination score per band of iterations (box: quartiles, whiskers 1.5 IQR){rate}",
        plots.hallucination_bands(table, c.fig_dir / "hallucination_bands.png", scores[0], models, formats=("pdf",),
                                  **c.kw)))
    if any(r["status"] == "ok" for r in rocs):
        section.figures.append(Figure(
            "roc", "ROC against ground truth", f"ROC of each score and content baseline; legend: AUROC with "
            f"{c.ci:.0%} CI (trajectories resampled); dotted: chance.",
            plots.roc_curves(rocs, c.fig_dir / "roc.png", formats=("pdf",))))
    return section


def _pictures_section(c: _Context, max_strips: int) -> Section | None:
    table, metric = c.table, c.rule.metric
    runs = list(table.attrs["run_dirs"])
    spec = spec_for_column(metric)
    section = Section("pictures", "Pictures")
    for run in runs:
        run_dir = Path(table.attrs["run_dirs"][run])
        rows = table[table["run"] == run]
        suffix, where = (f"_{_slug(run)}", f" (run {run})") if len(runs) > 1 else ("", "")
        ids = [t for t in typical_trajectories(rows, metric, ["model", "mask_label"], max_strips)
               if plots.snapshot_iterations(run_dir, t)]
        if ids:
            section.figures.append(Figure(
                f"image_strips{suffix}", f"One trajectory per model and mask{where}",
                "For each model and mask, the trajectory whose final distance is the group's median, at saved "
                "iterations next to the original; red: the region repainted at that iteration; under each image: "
                f"{spec.label if spec else metric} to the original.",
                plots.image_strips(run_dir, ids, c.fig_dir / f"image_strips{suffix}.png", table=rows, metric=metric,
                                   formats=("pdf",)), photo=True))
        with contextlib.suppress(ResultsError):  # no saved snapshots: no heat map
            section.figures.append(Figure(
                f"drift_heatmap{suffix}", f"Where the images changed{where}",
                "Mean absolute pixel change between the last saved snapshot and the original, per image and mask, "
                "averaged over models and seeds.",
                plots.drift_heatmap(run_dir, c.fig_dir / f"drift_heatmap{suffix}.png", table=rows, formats=("pdf",)),
                photo=True))
    return section if section.figures else None


def _failure_section(c: _Context) -> Section:
    found = analysis.failures(c.table, c.rule.metric)
    lines = findings.failure_sentences(c.table, found, c.ci)
    c.top += [line for line in lines if not line.startswith("No failed")]
    section = Section("failures", "Failures", lines)
    if len(found):
        c.write("failures_csv", "failures.csv", found.to_csv(index=False))
        section.tables.append(("", _failure_table(found)))
        if len(found) > MAX_LISTED_FAILURES:
            section.notes.append(f"The first {MAX_LISTED_FAILURES} of {len(found)} are listed; all are in "
                                 "failures.csv.")
    return section


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
    keep: float = 0.96,
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
    c = _Context(table, rule, by, models, summary, out, ci, kw)
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
            c.top.append(f"The runs differ in {len(differences)} ways; the report compares what they share "
                         "(see Runs compared).")
    built = [_summary_section(c), _drift_section(c), _survival_section(c), _paired_section(c), _region_section(c),
             _hallucination_section(c, keep), _pictures_section(c, max_strips), _failure_section(c)]
    sections += [s for s in built if s is not None]

    c.write("summary_csv", "summary.csv", summary.to_csv(index=False))
    title = title or "ripbench report: " + ", ".join(runs)
    manifests = table.attrs["manifests"]
    c.write("html", "report.html", _html(title, runs, rule, c.top, sections, manifests, ci))
    c.write("markdown", "summary.md", _markdown(title, runs, rule, c.top, sections, manifests, out))
    return {**c.paths, **{f.key: f.path for s in sections for f in s.figures}}


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


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


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]|$"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"})


def md_escape(text: Any) -> str:
    """Text shown literally in Markdown: labels from the data can hold ``|``, ``$``, ``<b>``, ``*``...

    >>> print(md_escape("m$1 | <b>x</b>"))
    m\\$1 \\| &lt;b&gt;x&lt;/b&gt;
    """
    return str(text).translate(_MD_SPECIAL).replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    """A pandas frame as a GitHub-flavoured Markdown table (no extra dependency); cells escaped."""
    def cell(v: Any) -> str:
        return md_escape(v)

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


_LEFT = ("run", "model", "mask_label", "category", "a", "b", "measure", "image_id", "problem", "reason", "iterations")


def _html(title: str, runs: list[str], rule: analysis.CollapseRule, top: list[str], sections: list[Section],
          manifests: dict[str, Any], ci: float) -> str:
    esc = html.escape
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{s.key}">{esc(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">', f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>",
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
    parts += ['<h2 id="how">How to read this</h2><dl>',
              *(f"<dt>{esc(name)}</dt><dd>{esc(text)}</dd>" for name, text in how_to_read(rule, ci)), "</dl>",
              '<h2 id="settings">Settings</h2>']
    for run in runs:
        manifest = manifests.get(run) or {}
        parts.append(f"<h3>Run {esc(run)}</h3>")
        parts.append(_html_table(pd.DataFrame(_settings(manifest), columns=["setting", "value"]),
                                 left=["setting", "value"], keys=["setting"], split=False))
        dump = json.dumps(manifest, indent=2, default=str)
        parts.append(f"<details><summary>Full manifest.json</summary><pre>{esc(dump)}</pre></details>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _markdown(title: str, runs: list[str], rule: analysis.CollapseRule, top: list[str], sections: list[Section],
              manifests: dict[str, Any], out: Path) -> str:
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
    md += ["## Settings", ""]
    for run in runs:
        md += [f"### Run {esc(run)}", ""]
        md += [f"- **{esc(k)}**: {esc(v)}" for k, v in _settings(manifests.get(run) or {}) if v]
        md.append("")
    return "\n".join(md)


__all__ = ["REPORT_DIR", "Figure", "Section", "default_out_dir", "display_summary", "embed", "how_to_read",
           "markdown_table", "md_escape", "typical_trajectories", "write_report"]
