"""Plain-language findings generated from the numbers, for the report.

Every sentence reads the metric's label and direction from its spec
(:func:`ripbench.metrics.registry.spec_for_column`), carries its ``n`` and a confidence
interval, and says so plainly when a result is weak (intervals that overlap, a test that
cannot reach significance with so few pairs, an AUROC interval that includes chance). No
number in a sentence is fixed text: all come from the data passed in.

Example
-------
>>> summary = pd.DataFrame({"model": ["a", "b"], "trajectories": [4, 4], "ssim_orig@5": [0.9, 0.4],
...                         "ssim_orig@5_lo": [0.85, 0.3], "ssim_orig@5_hi": [0.95, 0.5]})
>>> summary.attrs["final"] = "ssim_orig@5"
>>> fastest_drift(summary, ["model"])
'Fastest drift: b, with the worst final SSIM to original (higher is better): 0.400 (95% CI 0.300 to 0.500, n = 4 trajectories) at iteration 5. Slowest: a, 0.900 (95% CI 0.850 to 0.950, n = 4).'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from . import analysis
from .formatting import count
from .metrics.registry import column_label, spec_for_column
from .stats import fmt, fmt_interval, pct, proportion_ci

__all__ = ["baseline_sentences", "collapse_sentences", "comparison_sentences", "decomposition_sentences",
           "failure_sentences", "fastest_drift", "group_name", "group_names", "hallucination_sentences", "metric_phrase",
           "region_sentences"]


def _value_ci(value: Any, lo: Any, hi: Any, ci: float = 0.95, digits: int = 3) -> str:
    """``"0.852 (95% CI 0.816 to 0.880"`` - the caller closes the parenthesis after adding n."""
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return f"{fmt(value, digits)} (no {ci:.0%} CI"
    v, a, b = fmt_interval(value, lo, hi, digits)
    return f"{v} ({ci:.0%} CI {a} to {b}"


def _auroc_ci(value: Any, lo: Any, hi: Any, ci: float = 0.95) -> str:
    """An AUROC always with two decimals: ``"0.85 (95% CI 0.80 to 0.90"`` (the caller closes the parenthesis).

    >>> _auroc_ci(1.0, 0.97, 1.0) + ")"
    '1.00 (95% CI 0.97 to 1.00)'
    """
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return f"{fmt(value, 2)} (no {ci:.0%} CI"
    return f"{float(value):.2f} ({ci:.0%} CI {float(lo):.2f} to {float(hi):.2f}"


def baseline_sentences(evidence: Sequence[dict[str, Any]], labels: dict[str, str] | None = None,
                       ci: float = 0.95) -> list[str]:
    """Per score: does it see more than the amount of content? The plain sentence of
    :func:`ripbench.hallucination_stats.comparison_sentence` (beats, matches or loses to the best content
    baseline) and, where computed, the content-matched and residual AUROCs."""
    from .hallucination.baselines import comparison_sentence, matched_sentence

    lines = []
    for result in evidence:
        lines.append(comparison_sentence(result, labels, ci))
        matched = matched_sentence(result, labels) if result.get("status") == "ok" else ""
        if matched:
            lines.append(matched)
    return lines


def group_name(row: pd.Series | dict[str, Any], by: Sequence[str]) -> str:
    """``"biharmonic / grid-16"``; ``"all trajectories"`` without grouping columns."""
    return " / ".join(str(row[c]) for c in by) or "all trajectories"


def metric_phrase(metric: str) -> str:
    """The metric's label and direction from its spec: ``"SSIM to original (higher is better)"``."""
    return column_label(metric) or metric


def _direction(metric: str) -> int:
    return analysis.metric_direction(metric)


def group_names(summary: pd.DataFrame, by: Sequence[str]) -> list[str]:
    """Each row's :func:`group_name`, qualified by its run (``"run-b / biharmonic / grid-32"``) where
    rows of different runs would otherwise share a name, so that no sentence names two groups alike."""
    names = [group_name(row, by) for _, row in summary.iterrows()]
    if len(set(names)) < len(names) and "run" in summary.columns and "run" not in by:
        names = [group_name(row, ["run", *by]) for _, row in summary.iterrows()]
    return names


def fastest_drift(summary: pd.DataFrame, by: Sequence[str], ci: float = 0.95,
                  table: pd.DataFrame | None = None) -> str | None:
    """The group with the worst final value of the summary's final metric, in that metric's direction.

    "Worst" is the largest value for a metric where lower is better (LPIPS, MSE) and the smallest
    where higher is better (SSIM, PSNR). Says so when every group ends at the same value (no group
    is named fastest then), says plainly when the worst group's interval overlaps the runner-up's,
    and when the groups saw different images (``table`` given). ``None`` with fewer than two groups.
    Groups are named by :func:`group_names`, so a sentence never compares a group with itself.
    """
    final = summary.attrs.get("final")
    if not final or final not in summary.columns or len(summary) < 2:
        return None
    metric, _, iteration = final.partition("@")
    values = summary[final].astype(float)
    if values.notna().sum() < 2:
        return None
    names = dict(zip(summary.index, group_names(summary, by)))
    direction = _direction(metric)
    order = (values * direction).sort_values(ascending=False, na_position="last").index
    order = [i for i in order if not math.isnan(values[i])]
    worst, runner, best = order[0], order[1], order[-1]
    lo, hi = f"{final}_lo", f"{final}_hi"
    row = summary.loc[worst]
    if values[worst] == values[best]:
        text = (f"No group drifts fastest: all {count(len(order), 'group')} end at the same final "
                f"{metric_phrase(metric)}, {_value_ci(row[final], row.get(lo), row.get(hi), ci)}, "
                f"n = {count(_n_final(row, final), 'trajectory', 'trajectories')}) at iteration {iteration}.")
    else:
        text = (f"Fastest drift: {names[worst]}, with the worst final {metric_phrase(metric)}: "
                f"{_value_ci(row[final], row.get(lo), row.get(hi), ci)}, "
                f"n = {count(_n_final(row, final), 'trajectory', 'trajectories')}) at iteration {iteration}.")
        other = summary.loc[best]
        text += (f" Slowest: {names[best]}, {_value_ci(other[final], other.get(lo), other.get(hi), ci)}, "
                 f"n = {_n_final(other, final)}).")
        second = summary.loc[runner]
        if (lo in summary.columns and names[runner] != names[worst]
                and not any(pd.isna(v) for v in (row[lo], row[hi], second[lo], second[hi]))
                and row[lo] <= second[hi] and second[lo] <= row[hi]):
            if runner == best:
                text += " The two intervals overlap, so this run does not establish which of the two drifts faster."
            else:
                text += (f" The interval of {names[worst]} overlaps that of {names[runner]} ({fmt(second[final])}), "
                         "so this run does not establish which of the two drifts fastest.")
    if table is not None and by and all(c in table.columns for c in by) and "image_id" in table.columns:
        sets = {k: frozenset(g["image_id"].astype(str)) for k, g in table.groupby(list(by))}
        if len(set(sets.values())) > 1:
            text += " The groups did not all see the same images, so this ranking mixes inputs."
    return text


def _n_final(row: pd.Series, final: str) -> int:
    """Trajectories a final mean rests on: observed at that iteration (failed ones ended earlier)."""
    n = row.get(f"{final}_n")
    return int(row["trajectories"] if n is None or pd.isna(n) else n)


def collapse_sentences(summary: pd.DataFrame, by: Sequence[str], rule: analysis.CollapseRule,
                       ci: float = 0.95) -> list[str]:
    """Per group: final value with CI, collapses (share with CI), median collapse with CI, the
    exponential approach where it fits, failures."""
    lines = []
    final = summary.attrs.get("final") or ""
    metric = rule.metric
    for _, row in summary.iterrows():
        n = int(row["trajectories"])
        parts = [f"{group_name(row, by)}:"]
        if final in summary.columns:
            parts.append(f"mean {metric_phrase(metric)} at iteration {final.partition('@')[2]} = "
                         f"{_value_ci(row[final], row.get(f'{final}_lo'), row.get(f'{final}_hi'), ci)}, "
                         f"n = {_n_final(row, final)});")
        k = int(row["collapsed"])
        share, s_lo, s_hi = proportion_ci(k, n, ci)
        parts.append(f"{k} of {n} collapsed ({pct(share)}, {ci:.0%} CI {pct(s_lo)} to {pct(s_hi)}),")
        med = row["median_collapse"]
        if math.isfinite(med):
            hi = row["median_collapse_hi"]
            parts.append(f"median collapse at iteration {med:.0f} ({ci:.0%} CI {row['median_collapse_lo']:.0f} to "
                         f"{f'{hi:.0f}' if math.isfinite(hi) else 'beyond the run'})")
        else:
            parts.append("median collapse not reached within the run")
        text = " ".join(parts)
        fit = row.get(f"{metric}_fit")
        if fit == "ok":
            hl_hi = row[f"{metric}_half_life_hi"]
            text += (f"; the drift approaches its level exponentially with a half-life of "
                     f"{row[f'{metric}_half_life']:.1f} iterations ({ci:.0%} CI {row[f'{metric}_half_life_lo']:.1f} to "
                     f"{f'{hl_hi:.1f}' if math.isfinite(hl_hi) else 'beyond the run'}, R² {row[f'{metric}_exp_r2']:.2f})")
        failed = int(row.get("failed", 0) or 0)
        if failed:
            text += f"; {failed} of {count(n, 'trajectory', 'trajectories')} had a failed model call (censored there)"
        lines.append(text + ".")
    return lines


def comparison_sentences(comparisons: pd.DataFrame, alpha: float = 0.05, ci: float = 0.95,
                         measure: str = "final") -> list[str]:
    """One sentence per paired comparison of ``measure`` (see :func:`ripbench.compare.paired_comparisons`)."""
    if comparisons.empty:
        return []
    metric = comparisons.attrs.get("metric", "")
    spec = spec_for_column(metric)
    label = spec.label if spec else metric
    lines = []
    rows = comparisons[comparisons["measure"] == measure]
    keys = [c for c in rows.columns if c not in ("a", "b") and c in ("mask_label", "category")]
    for _, r in rows.iterrows():
        where = f" ({', '.join(str(r[k]) for k in keys)})" if keys else ""
        n = int(r["n"])
        if r["diff"] == 0 and r["diff_lo"] == 0 and r["diff_hi"] == 0:
            lines.append(f"Paired{where}: {r['a']} and {r['b']} give identical final {label} on all {n} matched "
                         "trajectories.")
            continue
        worse, better = (r["b"], r["a"]) if r["worse"] == r["b"] else (r["a"], r["b"])
        text = (f"Paired{where}, {count(n, 'matched trajectory', 'matched trajectories')} (same image, mask, seed): {worse} ends further from the "
                f"original than {better}; final {label} {r['b']} - {r['a']} = "
                f"{_value_ci(r['diff'], r['diff_lo'], r['diff_hi'], ci)}); Wilcoxon p = {fmt(r['p'])}, Holm-adjusted "
                f"{fmt(r['p_holm'])}.")
        if r["min_p"] > alpha:
            text += (f" With {count(n - int(r['zero']), 'non-zero pair')} no two-sided test can reach p < {alpha:g}: "
                     "more images or seeds are needed to tell these models apart.")
        elif not r["p_holm"] < alpha:
            text += f" Not significant at {alpha:g} after Holm correction: no difference is established."
        lines.append(text)
    return lines


def hallucination_sentences(rocs: Sequence[dict[str, Any]], threshold: dict[str, Any] | None,
                            summary: pd.DataFrame | None = None, by: Sequence[str] = (),
                            ci: float = 0.95) -> list[str]:
    """AUROC per score with its CI and counts, the calibrated threshold's effect, the score's trend."""
    lines = []
    for roc in rocs:
        name = roc.get("name") or roc["score"]  # the report names a score in words (its column beside it)
        if roc.get("status") != "ok":
            lines.append(f"{name}: no ROC ({roc.get('status')}).")
            continue
        text = (f"Detecting hallucinated outputs by {name}: AUROC "
                f"{_auroc_ci(roc['auroc'], roc['auroc_lo'], roc['auroc_hi'], ci)}; n = {count(roc['outputs'], 'output')} of "
                f"{count(roc['trajectories'], 'trajectory', 'trajectories')}, {roc['hallucinated']} hallucinated).")
        if not roc["auroc_lo"] > 0.5:
            text += " The interval includes 0.5 (chance): this run does not show that the score detects them."
        lines.append(text)
    if threshold and threshold.get("status") == "ok":
        det, ret = threshold["detection"], threshold["retention"]
        before, after = threshold["rate_before"], threshold["rate_after"]

        def share(d: dict[str, Any]) -> str:
            return f"{pct(d['share'])}, {ci:.0%} CI {pct(d['lo'])} to {pct(d['hi'])}"

        held_out = bool(threshold.get("held_out"))
        head = (f"Threshold calibrated to keep {pct(threshold['keep'])} of the in-support outputs"
                f"{' of the calibration trajectories' if held_out else ''}: {fmt(threshold['threshold'])}. ")
        caveat = ("Measured on the held-out trajectories only." if held_out else
                  "Calibrated and measured on the same outputs, so these shares are optimistic.")
        kept = f"keeps {ret['k']} of {count(ret['n'], 'in-support output')} ({share(ret)})"
        if det["n"] == 0:
            lines.append(head + f"No output is hallucinated by the ground truth (rate {share(before)}, n = "
                         f"{before['n']}), so its detection rate is undefined; it {kept}. {caveat}")
        else:
            lines.append(head + f"It removes {det['k']} of {count(det['n'], 'hallucination')} ({share(det)}) and {kept}; the "
                         f"hallucination rate goes from {share(before)} (n = {before['n']}) to {share(after)} "
                         f"(n = {after['n']}). {caveat}")
    elif threshold:
        lines.append(f"No calibrated threshold: {threshold.get('status')}.")
    if summary is not None and "halluc_slope" in summary.columns:
        for _, row in summary[summary["halluc_slope"].notna()].iterrows():
            lo, hi = row["halluc_slope_lo"], row["halluc_slope_hi"]
            trend = ("rises" if lo > 0 else "falls" if hi < 0 else "shows no clear trend") if not pd.isna(lo) \
                else "has no interval (one trajectory)"
            lines.append(f"{group_name(row, by)}: the hallucination score {trend} over the iterations (slope "
                         f"per iteration {_value_ci(row['halluc_slope'], lo, hi, ci)}, n = {int(row['trajectories'])}).")
    return lines


def _arm_of(key: Sequence[Any], by: Sequence[str]) -> tuple[str, ...]:
    """The ``(run, model)`` (or ``(model,)``) of a group key, for :func:`ripbench.analysis.model_spaces`."""
    values = dict(zip(by, key))
    return tuple(str(values[c]) for c in ("run", "model") if c in values)


def region_sentences(regions: pd.DataFrame, by: Sequence[str], metric: str, ci: float = 0.95, *,
                     local: pd.DataFrame | None = None, spaces: dict[tuple[str, ...], str | None] | None = None,
                     handoffs: dict[str, str] | None = None, reach: int | None = None,
                     ignores: dict[tuple[str, ...], frozenset[str]] | None = None) -> list[str]:
    """Per group: what changed in the never-masked pixels, and why, next to the ever-masked pixels' drift.

    ``regions``: :func:`ripbench.analysis.region_summary` of ``metric``. Whether never-masked pixels
    changed is read from ``local`` (the region summary of a pixel-local metric, reach 0: MSE, PSNR)
    when given, since a windowed metric (LPIPS, SSIM: ``reach`` pixels) takes in repainted pixels
    near the region. The cause is named from the model's space (``spaces``, see
    :func:`ripbench.analysis.model_spaces`): a VAE for a latent model; for a pixel-space model no VAE,
    and a windowed metric's value there is context leakage; ``handoffs`` (run -> hand-off) adds the
    rounding between iterations as a cause when it is not ``float``. ``ignores`` (arm -> inputs a control
    declares it ignores, :func:`ripbench.analysis.model_ignores`): a control that ignores the mask (the VAE
    round trip) has no denoiser drift, its ever-masked pixels are said to drift like the others.
    """
    if regions.empty or not {"ever", "never"} <= set(regions["region"]):
        return []
    iteration = regions.attrs.get("iteration")
    phrase = metric_phrase(metric)
    spec = spec_for_column(metric)
    windowed = spec is not None and not spec.pixel_local
    local_cells: dict[tuple[Any, ...], pd.Series] = {}
    local_phrase = ""
    if local is not None and not local.empty:
        local_phrase = metric_phrase(str(local["column"].iloc[0]).removesuffix("_never"))
        for key, part in local.groupby(list(by), sort=False) if by else [((), local)]:
            key = key if isinstance(key, tuple) else (key,)
            never_rows = part[part["region"] == "never"]
            if len(never_rows):
                local_cells[key] = never_rows.iloc[0]
    reach_text = f" (its reach: {reach} px)" if reach is not None else ""
    lines = []
    for key, part in regions.groupby(list(by), sort=False) if by else [((), regions)]:
        key = key if isinstance(key, tuple) else (key,)
        cells = {r["region"]: r for _, r in part.iterrows()}
        never, ever = cells["never"], cells["ever"]
        name = " / ".join(map(str, key)) or "all trajectories"
        arm = _arm_of(key, by)
        space = (spaces or {}).get(arm)
        run = dict(zip(by, key)).get("run")
        known = handoffs or {}
        only = next(iter(known.values())) if len(known) == 1 else None
        handoff = (known.get(str(run)) if run is not None else only) or only or "float"

        def cell(r: pd.Series) -> str:
            if r["n"] == 0:
                return "none left"
            return f"{_value_ci(r['mean'], r['lo'], r['hi'], ci)}, n = {int(r['n'])})"

        pix = local_cells.get(key)
        pix_spec = spec_for_column(str(pix["column"])) if pix is not None else None
        unchanged = bool(pix is not None and pix["n"] and pix_spec is not None and math.isfinite(pix_spec.identity)
                         and pix["mean"] == pix_spec.identity and (pd.isna(pix["hi"]) or pix["hi"] == pix_spec.identity))
        if pix is not None:
            changed = f"never-masked pixels: {local_phrase} {cell(pix)}"
        else:
            changed = f"never-masked pixels: {phrase} {cell(never)}"
        if space == "latent":
            text = f"{name}, at iteration {iteration}: " + changed.replace("pixels:", "pixels (VAE / pipeline drift):", 1)
        elif space == "pixel":
            text = (f"{name} works in pixel space (no VAE), so none of its drift comes from a VAE. At iteration "
                    f"{iteration}, {changed}")
        else:
            text = (f"{name}, at iteration {iteration}: {changed} (drift outside the masks; the model does not "
                    "declare whether it has a VAE)")
        blind = "mask" in (ignores or {}).get(arm, frozenset())
        own = ("no denoiser: the model ignores the mask, so these pixels drift like the rest" if blind else
               "denoiser drift" if space == "latent" else "the model's own drift")
        text += f"; ever-masked pixels ({own}), {phrase}: {cell(ever)}."
        if pix is not None and unchanged:
            text += " The never-masked pixels are unchanged: this model adds no drift outside its masks."
        elif pix is not None and pix["n"] and handoff != "float":
            text += (f" The run hands each output to the next iteration as {handoff}, so never-masked pixels change "
                     "by that rounding too" + (", not by a VAE." if space == "pixel" else "."))
        elif pix is not None and pix["n"] and space == "pixel":
            text += " Pixels it was asked to keep changed: the model does not return its unmasked pixels as they were."
        if pix is not None and windowed and never["n"]:
            leak = "context leakage" if (unchanged or space == "pixel") else "partly context leakage"
            text += (f" {spec.label if spec else metric} in never-masked pixels, {cell(never)}, is {leak}: the metric's "
                     f"window{reach_text} takes in repainted pixels nearby.")
        elif pix is None and windowed:
            text += (f" No pixel-local metric (MSE, PSNR) in this run: {phrase} in never-masked pixels includes "
                     f"repainted pixels within its reach{reach_text}, so it is an upper bound on their drift.")
        lines.append(text)
    return lines


def decomposition_sentences(dominant: Sequence[dict[str, Any]], metric: str, ci: float = 0.95) -> list[str]:
    """Per mask, at the last iteration: the total drift, each source with its CI and n, and which dominates
    (or that the intervals of the two largest overlap, so the run does not establish it).

    ``dominant``: :func:`ripbench.analysis.dominant_sources` of a drift decomposition."""
    spec = spec_for_column(metric)
    label = spec.label if spec else metric
    lines = []
    for item in dominant:
        sources, total, vae = item["sources"], item["total"], item["vae"]
        n = int(total["n"]) if total is not None else int(sources[0]["n"])

        def value(r: pd.Series) -> str:
            return f"{_value_ci(r['mean'], r['lo'], r['hi'], ci)})"

        text = f"{item['mask_label']}, iteration {item['iteration']}, n = {n} shared trajectories: "
        if total is not None:
            text += f"total {label} drift {value(total)}; "
        text += "; ".join(f"{r['label']} {value(r)}" for r in sources)
        if vae is not None and not any(r["component"] == "vae" for r in sources):
            text += f"; for reference, the {vae['label']} {value(vae)}"
        top = sources[0]
        if len(sources) == 1:
            text += "."
        elif item["overlap"]:
            text += (f". The intervals of {top['label']} and {sources[1]['label']} overlap: this run does not "
                     "establish which source dominates.")
        else:
            text += f". {top['label'][0].upper()}{top['label'][1:]} dominates."
        lines.append(text)
    return lines


def failure_sentences(table: pd.DataFrame, found: pd.DataFrame, ci: float = 0.95) -> list[str]:
    """How many trajectories failed or miss a metric value, with the share's CI."""
    n = int(analysis.trajectory_uid(table).nunique())
    if found.empty:
        return [f"No failed model call and no missing metric value in {count(n, 'trajectory', 'trajectories')}."]
    lines = []
    for problem, part in found.groupby("problem", sort=False):
        k = int(part[analysis.trajectory_keys(part)].drop_duplicates().shape[0])
        share, lo, hi = proportion_ci(k, n, ci)
        what = "had a failed model call" if problem == "failed model call" else "miss a metric value"
        lines.append(f"{k} of {count(n, 'trajectory', 'trajectories')} {what} ({pct(share)}, {ci:.0%} CI {pct(lo)} to {pct(hi)}); "
                     "they are listed under Failures.")
    return lines

