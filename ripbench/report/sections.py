"""The report's sections, built from a results table: each computes its statistics, phrases the
findings, draws its figures and returns a :class:`~ripbench.report.document.Section`
(:func:`build_sections` builds them all in the page's order)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import analysis, compare, findings, plots
from ..errors import ResultsError
from ..formatting import interval_text
from ..hallucination import baselines
from ..hallucination import stats as hallucination_stats
from ..io import atomic_write_text
from ..metrics.registry import column_label, spec_for_column
from ..stats import holm
from .document import Figure, Section
from .population import semantic_section
from .tables import (
    MAX_LISTED_FAILURES,
    band_table,
    display_summary,
    evidence_table,
    failure_table,
    hallucination_notes,
    in_reading_order,
    logrank_table,
    metrics_table,
    region_table,
    summary_notes,
    typical_trajectories,
)
from .viewer import build_viewer

__all__ = ["Context", "build_sections"]


@dataclass
class Context:
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


def _summary_section(c: Context) -> Section:
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
                             + " (all columns: README.md in the run folder).")
    return section


def _drift_section(c: Context) -> Section:
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


def _survival_section(c: Context) -> Section:
    section = Section("survival", "Collapse and survival")
    section.figures.append(Figure(
        "survival", "Survival", f"Share of trajectories not yet collapsed ({c.rule.describe()}; Kaplan-Meier, censored "
        f"at the last observed iteration); band: pointwise {c.ci:.0%} CI; dotted: 0.5"
        + ("; groups' lines are drawn up to 3 pt apart, so that curves that coincide stay visible." if
           len(c.summary) > 1 else "."),
        plots.survival_curves(c.table, c.fig_dir / "survival.png", c.rule, c.by, ci=c.ci, formats=("pdf",))))
    strata = [col for col in c.by if col not in c.models]
    tests = analysis.logrank_tests(c.table, c.rule, by=strata, between=c.models)
    if len(tests):
        tests = in_reading_order(tests, c.table, strata)
        tests["p_holm"] = holm(tests["pvalue"].to_numpy(float))
        section.tables.append(("Log-rank tests of time to collapse (Holm over the rows)", logrank_table(tests)))
    return section


def _paired_section(c: Context) -> Section | None:
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


def _region_section(c: Context) -> Section | None:
    metric = c.rule.metric
    regions = analysis.region_summary(c.table, metric, c.by, **c.kw)
    if regions.empty or not set(regions["region"]) - {"whole"}:
        return None
    phrase = findings.metric_phrase(metric)
    local_name = analysis.local_metric(c.table)
    local = None
    if local_name is not None:
        local = regions if local_name == metric else analysis.region_summary(c.table, local_name, c.by,
                                                                             regions=["never"], **c.kw)
    reach = _reach(c.table, metric)
    sentences = findings.region_sentences(regions, c.by, metric, c.ci, local=local, spaces=analysis.model_spaces(c.table),
                                          handoffs=analysis.run_handoffs(c.table), reach=reach,
                                          ignores=analysis.model_ignores(c.table))
    notes = ["; ".join(f"{k}: {v}" for k, v in analysis.REGION_MEANINGS.items()) + "."]
    spec = spec_for_column(metric)
    if spec is not None and not spec.pixel_local:
        notes.append(f"{spec.label} is windowed: its value in a region takes in pixels up to "
                     f"{reach if reach is not None else 'its reach in'} px outside it, so whether never-masked pixels "
                     f"changed is read from {findings.metric_phrase(local_name) if local_name else 'a pixel-local metric'}"
                     " (reach 0), and the cause from the model's declared space (latent: through a VAE; pixel: none).")
    section = Section("regions", "Drift by region", sentences,
                      [(f"{phrase} at iteration {regions.attrs['iteration']}, mean [CI] and n per region",
                        region_table(regions, c.by))], notes=notes)
    if local is not None and local_name is not None and local_name != metric:
        section.tables.append((f"{findings.metric_phrase(local_name)} in never-masked pixels at iteration "
                               f"{local.attrs['iteration']} (pixel-local: did those pixels change?)",
                               region_table(local, c.by)))
    with contextlib.suppress(ResultsError):  # fewer than two regions with values: the table says it all
        section.figures.append(Figure(
            "regions", "Drift per region", f"{phrase} per iteration and region, one panel per group; band: "
            f"{c.ci:.0%} bootstrap CI. Never-masked: drift outside the masks (VAE / pipeline drift only for a model "
            "with a VAE; a windowed metric there includes nearby repainted pixels); ever-masked: denoiser drift.",
            plots.region_curves(c.table, c.fig_dir / "regions.png", metric, c.by, formats=("pdf",), **c.kw)))
    return section


def _reach(table: pd.DataFrame, metric: str) -> int | None:
    """``metric``'s reach in pixels with the options the run recorded (LPIPS: its backbone)."""
    spec = spec_for_column(metric)
    if spec is None:
        return None
    recorded = ((table.attrs.get("manifest") or {}).get("metrics") or {}).get(spec.name) or {}
    options = {k: v for k, v in recorded.items() if k in spec.options and isinstance(v, (str, int, float))}
    try:
        return spec.reach_px(**options)
    except Exception:  # noqa: BLE001 - an option this version does not know: the default's reach
        return spec.reach_px()


def _decomposition_section(c: Context) -> Section | None:
    """Total drift next to the VAE-only drift, the paste-back difference and hand-off variants, when the
    runs reported together allow it (see :mod:`ripbench.analysis.decomposition`)."""
    if len(c.table.attrs.get("run_dirs") or {}) < 2:
        return None
    parts = analysis.drift_decomposition(c.table, c.rule.metric, **c.kw)
    if parts.empty:  # say why when some runs look like parts of one (never a silently missing section)
        roles = analysis.decomposition_arms(c.table)
        if not roles:
            return None
        found = "; ".join(f"{a.role}: {a.run} / {a.model}" for a in roles)
        return Section("decomposition", "Where the drift comes from", [], notes=[
            f"No decomposition: it needs a latent model's run that feeds back its whole output (paste_back: false, "
            f"the rip-paper run) and, on the same images, masks and seeds, at least one of its paste-back run, the VAE "
            f"control (rip-paper-vae) or a hand-off variant; these runs give {found}."])
    lines = findings.decomposition_sentences(analysis.dominant_sources(parts), c.rule.metric, c.ci)
    c.top += lines[:1]
    c.write("decomposition_csv", "decomposition.csv", parts.to_csv(index=False))
    last = int(parts["iteration"].max())
    shown = sorted({i for i in (1, last // 4, last // 2, 3 * last // 4, last) if i >= 1})
    at = parts[parts["iteration"].isin(shown)]
    frame = at.assign(value=[f"{interval_text(m, lo, hi)} n={int(n)}" if n else "n/a"
                             for m, lo, hi, n in zip(at["mean"], at["lo"], at["hi"], at["n"])])
    wide = frame.pivot_table(index=["mask_label", "label"], columns="iteration", values="value", aggfunc="first",
                             sort=False).reset_index()
    wide.columns = ["mask", "component", *[f"iteration {i}" for i in wide.columns[2:]]]
    arms = "; ".join(f"{role}: {arm} (hand-off {parts.attrs['handoffs'][role]})"
                     for role, arm in parts.attrs["arms"].items())
    notes = [f"Arms: {arms}" + (f"; hand-off variants: {', '.join(parts.attrs['variants'])}"
                                if parts.attrs["variants"] else "") + ".",
             f"Drift: {findings.metric_phrase(c.rule.metric)} oriented to grow from 0, whole image. Every row uses "
             f"the trajectories all the arms share (same image, mask and seed), so differences are paired; "
             f"intervals: {c.ci:.0%} percentile bootstrap over those trajectories. Every iteration: decomposition.csv.",
             "A difference of two drifts is not a share of the total: a distance such as LPIPS is not additive and "
             "levels off, so once the total nears its ceiling a difference (total - paste-back, total - VAE alone) "
             "shrinks as the other arm catches up; read 'dominates' as 'the larger of the two at this iteration'."]
    return Section("decomposition", "Where the drift comes from", lines,
                   [(f"Drift components per mask, mean [{c.ci:.0%} CI] and n", wide)], notes=notes)


def _hallucination_section(c: Context, keep: float) -> Section | None:
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
                roc["score"] = f"{s.label} (content baseline: a control with no model in it)"
            roc["name"] = roc["score"] if s.is_baseline else f"{s.label} ({s.column})"
        if len(arms) > 1:
            for roc in arm_rocs:
                roc["score"] = f"{roc['score']} of {' / '.join(map(str, key))}"
                roc["name"] = f"{roc['name']} of {' / '.join(map(str, key))}"
        cut = hallucination_stats.threshold_analysis(rows, scores[0], keep, held_out=True, **c.kw)
        lines += findings.hallucination_sentences(arm_rocs, cut, c.summary if i == 0 else None, c.by, c.ci)
        evidence = baselines.content_evidence(rows, arm_specs, **c.kw)
        verdicts = findings.baseline_sentences(evidence, labels, c.ci)
        if len(arms) > 1:
            verdicts = [f"{' / '.join(map(str, key))}: {v}" for v in verdicts]
        lines += verdicts
        c.top += verdicts[:1]
        frame = evidence_table(evidence, labels)
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
    tables.append((f"{scores[0]} per iteration band", band_table(bands, models)))
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
                                  computed=bands, **c.kw)))
    if any(r["status"] == "ok" for r in rocs):
        section.figures.append(Figure(
            "roc", "ROC against ground truth", f"ROC of each score and content baseline; legend: AUROC with "
            f"{c.ci:.0%} CI (trajectories resampled); dotted: chance; curves are drawn up to 3 pt apart, so that "
            "curves that coincide stay visible.",
            plots.roc_curves(rocs, c.fig_dir / "roc.png", formats=("pdf",))))
    return section


def _pictures_section(c: Context, max_strips: int) -> Section | None:
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
                "Mean absolute pixel change between the last saved snapshot and the original, per image, model "
                "and mask (one column each), averaged over seeds.",
                plots.drift_heatmap(run_dir, c.fig_dir / f"drift_heatmap{suffix}.png", table=rows, formats=("pdf",)),
                photo=True))
    section.viewer = build_viewer(table, c.rule)
    return section if section.figures or section.viewer else None


def _failure_section(c: Context) -> Section:
    found = analysis.failures(c.table, c.rule.metric)
    lines = findings.failure_sentences(c.table, found, c.ci)
    c.top += [line for line in lines if not line.startswith("No failed")]
    section = Section("failures", "Failures", lines)
    if len(found):
        c.write("failures_csv", "failures.csv", found.to_csv(index=False))
        section.tables.append(("", failure_table(found)))
        if len(found) > MAX_LISTED_FAILURES:
            section.notes.append(f"The first {MAX_LISTED_FAILURES} of {len(found)} are listed; all are in "
                                 "failures.csv.")
    return section



def build_sections(c: Context, *, keep: float, max_strips: int) -> list[Section]:
    """Every section that has something to show, in the page's order: summary, drift, survival, paired
    comparisons, regions, drift decomposition, semantic and population drift, hallucination, pictures, failures
    (each adds its headline findings to ``c.top``)."""
    built = [_summary_section(c), _drift_section(c), _survival_section(c), _paired_section(c), _region_section(c),
             _decomposition_section(c), semantic_section(c), _hallucination_section(c, keep),
             _pictures_section(c, max_strips), _failure_section(c)]
    return [s for s in built if s is not None]


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)
