"""The outputs of the shapes RIP experiment (:mod:`ripbench.repro.shapes_rip`): its Markdown report,
JSON and CSV tables and its figure, written from the numbers the experiment computed.

Every sentence is made from those numbers (nothing here computes a statistic); the experiment's
definitions (baselines, the goal, the paper's claim) are read from :mod:`~ripbench.repro.shapes_rip`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..defaults import CALIBRATION_SHARE, GOAL_MIN_N
from ..formatting import auroc_cell, count, markdown_table
from ..formatting import pct as percent
from ..hallucination import paper_band
from ..hallucination.baselines import comparison_sentence, matched_sentence
from ..io import atomic_save, atomic_write_text
from .shapes_rip import AUROC_GOAL, BASELINES, DEFINITION, KEEP, PAPER, score_variants

__all__ = ["steps_text", "unscored_text", "write_outputs"]

_UNIT_WORDS = {"sigma": "sigma/sqrt(alpha_bar)", "t/T": "t/T"}


def write_outputs(out_dir: Path, results: dict[str, dict[str, Any]], table: pd.DataFrame, rows: pd.DataFrame,
                  kinds: pd.DataFrame, sizing: dict[str, Any], *, images: int, seeds: Sequence[int], iterations: int,
                  steps: int, mask: str, iteration_bands: int) -> dict[str, Path]:
    """Write the detection, comparison and kinds tables (CSV), the figure, ``shapes_rip.md`` and
    ``shapes_rip.json`` into ``out_dir``; return their paths. ``results``: per noise band, as
    :func:`~ripbench.repro.shapes_rip.run_shapes_rip` computes them (the first band is the headline)."""
    names = list(results)
    first = results[names[0]]
    n_traj = int(table["trajectory_id"].nunique())
    paths = {"detection": out_dir / "shapes_rip_detection.csv", "comparison": out_dir / "shapes_rip_baselines.csv",
             "kinds": out_dir / "shapes_rip_kinds.csv", "figure": out_dir / "figures" / "shapes_rip.png",
             "report": out_dir / "shapes_rip.md", "json": out_dir / "shapes_rip.json"}
    atomic_write_text(paths["detection"], pd.concat([d.assign(score=s, noise_band=name) for name, r in results.items()
                                                     for s, d in r["detection"].items()]).to_csv(index=False))
    atomic_write_text(paths["comparison"], _comparison_frame(results).to_csv(index=False))
    atomic_write_text(paths["kinds"], kinds.to_csv(index=False))
    _figure(kinds, first["detection"], rows, paths["figure"])
    headline_score = score_variants(table)[0]
    headline = first["detection"][headline_score]
    pooled = headline[headline["band"] == "all"].iloc[0]
    final = kinds[kinds["iteration"] == kinds["iteration"].max()].iloc[0]
    band_args = ",".join(names)
    md = [
        "# Simple Shapes under recursive inpainting (ground-truth hallucinations)", "",
        f"Command: `ripbench repro shapes-rip --images {images} --seeds {','.join(map(str, seeds))} "
        f"--iterations {iterations} --steps {steps} --mask {mask} --bands {iteration_bands} "
        f"--noise-bands {band_args}`", "",
        f"Model: bundled shapes DDPM (64 px), replacement inpainting, {steps} denoising steps; {n_traj} trajectories "
        f"({images} images x {len(seeds)} seeds) x {iterations} iterations; mask: {mask}; noise bands: {band_args}.", "",
        f"**What counts as a hallucination.** {DEFINITION}", "",
        "**The question.** Does the x0 score see more than the amount of content? Each score is compared with "
        "content baselines, scores with no model in them: " + "; ".join(f"`{c}` = {v}" for c, v in BASELINES.items())
        + " (same rules as the foreground-pixels and edge-pixels detectors). All numbers in the comparison are on "
        f"the held-out trajectories ({1 - CALIBRATION_SHARE:.0%}); every choice (the best baseline, the residual fit, "
        f"the threshold) is made on the other {CALIBRATION_SHARE:.0%}. Intervals: 95%, bootstrap over trajectories "
        "(the same resampled trajectories for a score and its baseline, so the difference is paired).", "",
        _sizing_text(sizing, mask), "",
        f"Paper: {PAPER}", "",
    ]
    for name, r in results.items():
        band = r["band"]
        md += [f"## Noise band `{name}`: scores against the content baselines", "",
               f"Score: variance of x0 over the {r['steps_in_band']} denoising steps whose noise level "
               f"({_UNIT_WORDS.get(r['unit'], r['unit'])}) lies in [{band[0]:.3g}, {band[1]:.3g}]; {r['unscored']}; "
               "`det_x0_variance_current_paper` uses the steps of the same trajectories in the paper's band "
               f"(the authors' last 10 of 1000 steps as a noise level, [0, {paper_band(r['unit']).hi:.3g}]). Content-matched: duplicates against valid generations "
               "with the same number of shapes in the repainted region (only pairs in the same stratum count). "
               "After foreground area: the held-out AUROC of the residual of log score on log(foreground pixels + 1), "
               "fitted on the valid generations of the calibration trajectories.", "",
               _comparison_table(r["comparison"]), ""]
        for result in r["comparison"].values():
            md += [comparison_sentence(result, BASELINES), ""]
            matched = matched_sentence(result, BASELINES)
            md += [matched, ""] if matched else []
    md += [
        f"## Detector against the labeller, by band of iterations (noise band `{names[0]}`)", "",
        f"Threshold: keeps {KEEP:.0%} of the valid generations of the calibration trajectories; kept and removed are "
        "measured on the other trajectories (Wilson intervals for rates).", "",
        _band_table(headline), "",
        _verdict(pooled), "",
    ]
    for score in score_variants(table)[1:]:
        md += [f"`{score}` for comparison:", "", _band_table(first["detection"][score]), ""]
    md += [
        "## Images by label per iteration", "",
        f"After {int(final['iteration'])} iterations: "
        + ", ".join(f"{k} {final[k]:.0%}" for k in ("valid", "duplicate", "empty", "wrong_shape", "malformed"))
        + f" of {int(final['n'])} images.", "",
        markdown_table(kinds.round(3)), "",
    ]
    atomic_write_text(paths["report"], "\n".join(md))
    atomic_write_text(paths["json"], json.dumps(_finite(
        {"definition": DEFINITION, "keep": KEEP, "calibration_share": CALIBRATION_SHARE, "trajectories": n_traj,
         "iterations": iterations, "steps": steps, "mask": mask, "sizing": sizing, "baselines": BASELINES,
         "noise_bands": {name: {"band": r["band"], "detection": {s: d.to_dict("records") for s, d in r["detection"].items()},
                                "comparison": r["comparison"]} for name, r in results.items()},
         "detection": {s: d.to_dict("records") for s, d in first["detection"].items()},
         "kinds": kinds.to_dict("records")}), indent=2, default=_json_default, allow_nan=False))
    return paths


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return percent(value) if pct else f"{value:.2f}"


def _ci(row: pd.Series, name: str, pct: bool = True) -> str:
    lo, hi = row.get(f"{name}_lo"), row.get(f"{name}_hi")
    if lo is None or hi is None or not np.isfinite(lo) or not np.isfinite(hi):
        return _fmt(row.get(name), pct)
    return f"{_fmt(row.get(name), pct)} [{_fmt(lo, pct)}, {_fmt(hi, pct)}]"


def _band_table(det: pd.DataFrame) -> str:
    lines = ["| iterations | generations | duplicates | valid | other (carried / wrong / malformed / empty) "
             "| duplicate rate | AUROC dup vs valid [95% CI] | AUROC dup vs valid with a shape (n) "
             "| kept (valid) | removed (duplicates) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in det.iterrows():
        lines.append(
            f"| {r['band']} | {r['generations']} | {r['duplicate']} | {r['valid']} "
            f"| {r['carried']} / {r['wrong_shape']} / {r['malformed']} / {r['empty']} "
            f"| {_ci(r, 'hallucination_rate')} | {_ci(r, 'auroc', pct=False)} "
            f"| {_ci(r, 'auroc_vs_shape', pct=False)} (n={r['valid_with_shape']}) | {_ci(r, 'kept')} (n={r['n_kept_of']}) | {_ci(r, 'removed')} (n={r['n_removed_of']}) |")
    return "\n".join(lines)


def _verdict(pooled: pd.Series) -> str:
    """A few sentences on the pooled numbers against the goal of AUROC 0.9, from the measured numbers only."""
    value, lo, hi = (np.nan if v is None else float(v) for v in (pooled.get(k) for k in ("auroc", "auroc_lo",
                                                                                         "auroc_hi")))
    if not np.isfinite(value):
        return ("No AUROC: the run made no duplicate or no valid generation; run more images, seeds or "
                "iterations.")
    goal = AUROC_GOAL
    n = min(int(pooled["duplicate"]), int(pooled["valid"]))
    if not np.isfinite(lo):
        where = (f"which cannot be said to reach the goal of {goal}: the AUROC has no interval"
                 if value >= goal else f"which falls short of the goal of {goal}")
    elif lo >= goal and n >= GOAL_MIN_N:
        where = f"which reaches the goal of {goal} (the whole interval lies above it)"
    elif hi >= goal and n < GOAL_MIN_N:
        where = (f"which does not establish the goal of {goal}: a goal counts as reached only with at least "
                 f"{GOAL_MIN_N} duplicates and {GOAL_MIN_N} valid generations, and the interval is unreliable below that")
    elif hi >= goal:
        where = f"which may reach the goal of {goal} (the interval reaches below it)"
    else:
        where = f"which falls short of the goal of {goal} (the whole interval lies below it)"
    text = (f"Pooled over all iterations the detector separates duplicates from valid generations with AUROC "
            f"{_fmt(value)} (95% CI {_fmt(lo)}-{_fmt(hi)}; {count(pooled['duplicate'], 'duplicate')}, "
            f"{count(pooled['valid'], 'valid', 'valid')}), {where}.")
    control = pooled.get("auroc_vs_shape")
    if control is not None and np.isfinite(control):
        text += (f" Against only the {count(pooled['valid_with_shape'], 'valid generation')} that left a shape in the repainted "
                 f"region (the score grows with the amount of shape edge, and an emptied column scores near zero) "
                 f"the AUROC is {_ci(pooled, 'auroc_vs_shape', pct=False)}.")
    removed, n_removed = pooled.get("removed"), int(pooled.get("n_removed_of", 0))
    if removed is not None and np.isfinite(removed):
        text += (f" At the calibrated threshold {_ci(pooled, 'kept')} of the held-out valid generations are kept and "
                 f"{_ci(pooled, 'removed')} of the {count(n_removed, 'held-out duplicate')} removed (paper: over 95% removed at "
                 f"96% kept on its toy data).")
    return text


def steps_text(rows: pd.DataFrame) -> str:
    steps = sorted({int(v) for v in rows.get("halluc_steps", pd.Series(dtype=float)).dropna()})
    return "/".join(map(str, steps)) if steps else "recorded"


def unscored_text(rows: pd.DataFrame) -> str:
    variants = score_variants(rows)
    missing = int((~np.isfinite(rows[variants[0]].to_numpy(dtype=float))).sum()) if variants else len(rows)
    return "every generation has a score" if missing == 0 else (f"{count(missing, 'generation')} "
                                                                      f"{'has' if missing == 1 else 'have'} no score (too few steps in the band)")


def _figure(kinds: pd.DataFrame, det: dict[str, pd.DataFrame], rows: pd.DataFrame, path: Path) -> None:
    fig = _draw_figure(kinds, det, rows)
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))


def _draw_figure(kinds: pd.DataFrame, det: dict[str, pd.DataFrame], rows: pd.DataFrame) -> Any:
    """The shapes-rip figure (a matplotlib ``Figure``, laid out): images by label per iteration, AUROC per
    iteration band of the first two score variants of ``det``, and the first score's histogram per
    generation label (each label's share of generations per bin, log-spaced bins)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.8))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    # kinds whose shares coincide (often 0) stay apart by line style and marker
    for kind, colour, style, marker in (("duplicate", "tab:red", "-", "o"), ("empty", "tab:grey", "--", "s"),
                                        ("wrong_shape", "tab:orange", "-.", "^"), ("malformed", "tab:purple", ":", "D"),
                                        ("valid", "tab:green", "-", "v")):
        ax1.plot(kinds["iteration"], kinds[kind], ls=style, marker=marker, ms=3, color=colour, label=kind)
    ax1.set(xlabel="iteration", ylabel="share of images", title="Images by label (collapse curve)", ylim=(0, 1))
    ax1.legend(frameon=False, fontsize=7)
    for shown, (score, marker, style) in enumerate(zip(list(det)[:2], ("o", "s"), ("-", "--"))):
        d = det[score]
        bands = d[d["band"] != "all"]
        x = np.arange(len(bands))
        ax2.errorbar(x + (shown - 0.5) * 0.06, bands["auroc"],  # the two variants side by side, not on each other
                     yerr=[bands["auroc"] - bands["auroc_lo"], bands["auroc_hi"] - bands["auroc"]],
                     marker=marker, ls=style, capsize=3, label=score)
        ax2.set_xticks(x, bands["band"])
    ax2.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax2.axhline(0.9, color="tab:green", lw=0.8, ls="--")
    ax2.set(xlabel="iterations", ylabel="AUROC", ylim=(0, 1.02), title="AUROC, duplicates vs valid (95% CI)")
    ax2.legend(frameon=False, fontsize=7)
    values = rows[list(det)[0]]
    finite = values[np.isfinite(values) & (values > 0)]
    if len(finite):
        bins = np.logspace(np.log10(finite.min()), np.log10(finite.max()), 40)
        for label in ("valid", "duplicate"):
            selected = values[(rows["generation"] == label) & np.isfinite(values) & (values > 0)]
            if len(selected):
                ax3.hist(selected, bins=bins, alpha=0.6, weights=np.full(len(selected), 1 / len(selected)),
                         label=f"{label} (n={len(selected)})")
        ax3.set_xscale("log")
    ax3.set(xlabel="x0 variance inside the mask", ylabel="share of the label's generations",
            title="Score by generation label (all iterations)")
    ax3.legend(frameon=False, fontsize=7)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _comparison_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per score variant and per baseline: held-out AUROC, difference to the best baseline,
    content-matched and residual AUROC, each with its 95% interval and n."""
    lines = ["| score | kind | AUROC dup vs valid [95% CI] (n dup / valid) | difference to the best baseline [95% CI] "
             "| content-matched AUROC (pairs) | AUROC after foreground area |", "|---|---|---|---|---|---|"]
    for score, r in results.items():
        n = f"({r['duplicates']} / {r['valid']})"
        best = r.get("best_baseline")
        diff = auroc_cell(r["difference"].get(best), signed=True) if best else "n/a"
        residual = auroc_cell(r["residual"]) if r.get("residual") else "n/a"
        if r.get("residual") and r["residual"].get("outside_fit"):
            residual += f" (extrapolated for {r['residual']['outside_fit']} of {r['residual']['hallucinated']})"
        pairs = f" ({r['matched_pairs']})" if r.get("matched") else ""
        lines.append(f"| `{score}` | detector | {auroc_cell(r['auroc'].get(score))} {n} | {diff} "
                     f"| {auroc_cell(r['matched'].get(score))}{pairs} | {residual} |")
    if not results:
        return "\n".join(lines)
    # baselines are scored on the rows of the variant with the most scored rows; a variant scored on fewer
    # (the paper band's, when the run's band does not contain it) has its own paired difference above
    ref_name, r = max(results.items(), key=lambda item: item[1]["duplicates"] + item[1]["valid"])
    subset = any((v["duplicates"], v["valid"]) != (r["duplicates"], r["valid"]) for v in results.values())
    where = f" (rows of `{ref_name}`)" if subset else ""
    for base in r.get("baselines", []):
        n = f"({r['duplicates']} / {r['valid']})"
        pairs = f" ({r['matched_pairs']})" if r.get("matched") else ""
        mark = " (best)" if base == r.get("best_baseline") else ""
        lines.append(f"| `{base}`{mark} | baseline, no model{where} | {auroc_cell(r['auroc'].get(base))} {n} | - "
                     f"| {auroc_cell(r['matched'].get(base))}{pairs} | - |")
    return "\n".join(lines)


def _sizing_text(sizing: dict[str, Any], mask: str) -> str:
    text = (f"Size: {count(sizing['held_out_duplicates'], 'duplicate')} in the "
            f"{count(sizing['held_out_trajectories'], 'held-out trajectory', 'held-out trajectories')} (of {sizing['trajectories']}), against the target of {sizing['target']} per mask mode "
            f"({mask}): ")
    if not sizing["short"]:
        return text + "reached."
    if sizing["trajectories_needed"] is None:
        return text + "short, and no duplicate was made, so the size needed cannot be estimated."
    return text + (f"short; at this run's rate about {sizing['trajectories_needed']} trajectories (more --images or "
                   "--seeds) would reach it.")


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (nested in dicts and lists) replaced by ``None`` (JSON null)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return value.tolist()
    return None if value is None else str(value)


def _comparison_frame(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The comparisons as one flat table: one row per noise band, score and column (score or baseline)."""
    out = []
    for name, r in results.items():
        for score, c in r["comparison"].items():
            for column in [score, *c["baselines"]]:
                auc, diff = c["auroc"].get(column, {}), c["difference"].get(column, {})
                matched, res = c["matched"].get(column, {}), c["residual"] if column == score else None
                out.append({"noise_band": name, "score": score, "column": column,
                            "kind": "baseline" if column != score else "detector",
                            "best_baseline": column == c.get("best_baseline"), "duplicates": c["duplicates"],
                            "valid": c["valid"], "trajectories": c["trajectories"],
                            **{f"auroc{k}": auc.get(v, np.nan) for k, v in (("", "value"), ("_lo", "lo"), ("_hi", "hi"))},
                            **{f"difference{k}": diff.get(v, np.nan) for k, v in (("", "value"), ("_lo", "lo"),
                                                                                   ("_hi", "hi"))},
                            **{f"matched_auroc{k}": matched.get(v, np.nan) for k, v in (("", "value"), ("_lo", "lo"),
                                                                                        ("_hi", "hi"))},
                            "matched_pairs": c["matched_pairs"],
                            "residual_auroc": (res or {}).get("value", np.nan),
                            "residual_auroc_lo": (res or {}).get("lo", np.nan),
                            "residual_auroc_hi": (res or {}).get("hi", np.nan),
                            "verdict": c["verdict"] if column == score else ""})
    return pd.DataFrame(out)
