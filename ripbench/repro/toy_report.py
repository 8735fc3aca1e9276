"""The toy reproduction's report: Markdown text, verdict and figures of :mod:`ripbench.repro.toy_gaussians`.

Split from the experiment so that each module holds one job: ``toy_gaussians`` makes the data,
trains and evaluates; this module turns its ``report`` dict into ``report.md``, the verdict
sentence and the PNG figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..defaults import CALIBRATION_SHARE, GOAL_MIN_N
from ..formatting import count, pct
from ..io import atomic_save
from .toy_gaussians import K_STD, KEEP, NUM_STEPS, PAPER, PAPER_TRAINING_ITEMS, TARGET_HALF_WIDTH


def _num(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def _ci(bounds: Sequence[float | None]) -> str:
    lo, hi = bounds
    return "" if lo is None or hi is None else f" [{100 * lo:.1f}-{100 * hi:.1f}]"


def _training_line(name: str, res: dict[str, Any]) -> str:
    s = res["setting"]
    items = f"{res['training_items']:.3g} training items, {_num(res['paper_training_items_ratio'])}x fewer than the paper's"
    if res.get("recipe") == "authors":
        full = s["trained_steps"] >= s["steps"]
        return (f"- {name}: **the authors' recipe** ({s['n_data']} points in a fixed order, batch {s['batch_size']}, "
                f"Adam at a constant lr {s['lr']:g}, Xavier init, uniform t, no EMA), "
                f"{s['trained_steps']} of its {s['steps']} steps ({'complete' if full else 'not complete: see the curve'}; "
                f"{items}), final loss {_num(res['final_loss'])}; training {_num(res['train_seconds'])} s so far, "
                f"sampling {_num(res['sample_seconds'])} s; learned mode spread {_num(res['model_spread_over_data_std'])} x "
                f"the data std; median score in support {_num(res['median_score_in_support'])} vs hallucinated "
                f"{_num(res['median_score_hallucinated'])}. Weights: `{Path(res['weights']).name}`.")
    focus = ""
    if s["focus_steps"]:
        weighting = "importance-weighted" if s.get("focus_reweight", True) else "not re-weighted"
        focus = f", half of each batch's t in the last {s['focus_steps']} steps, {weighting}"
    ema = f", sampled with an EMA of the weights (decay {s['ema_decay']:g})" if s.get("ema_decay") else ""
    return (f"- {name}: budget recipe, {s['n_data']} training points, width {s['width']}, {s['train_steps']} Adam "
            f"steps at batch {s['batch_size']} (lr {s['lr']:g}{', cosine decay to 0' if s['cosine_decay'] else ''}"
            f"{focus}{ema}; {items}), final loss {_num(res['final_loss'])}; training {_num(res['train_seconds'])} s, "
            f"sampling {_num(res['sample_seconds'])} s; learned mode spread {_num(res['model_spread_over_data_std'])} x "
            f"the data std; median score in support {_num(res['median_score_in_support'])} vs hallucinated "
            f"{_num(res['median_score_hallucinated'])}.")


def _rate(det: dict[str, Any], key: str = "detection_rate", ci: str = "detection_rate_ci95",
          n: str = "n_hallucinated") -> str:
    return f"{pct(det.get(key), 1)}{_ci(det.get(ci) or [None, None])} of n={det.get(n) or 0}"


def _markdown(report: dict[str, Any]) -> str:
    """The human-readable report: ours against the paper."""
    smoke = bool(report.get("fast"))
    lines = [
        "# Mode-interpolation hallucinations: Gaussian toy reproduction" + (" -- SMOKE RUN (--fast)" if smoke else ""),
        "",
        *([SMOKE_NOTE, ""] if smoke else []),
        f"Command: `{report.get('command', 'ripbench repro hallucination-toy')}`",
        "",
        f"Paper: Aithal et al., NeurIPS 2024 (arXiv 2406.09358): {PAPER['statement']}.",
        "",
        f"Score: population variance of x0_hat over the last {report['window_steps']} of {NUM_STEPS} reverse "
        f"steps, mean over coordinates. Ground truth: hallucination = farther than {K_STD:g} data std "
        "from every mode. "
        f"Threshold: keeps {KEEP:.0%} of the in-support samples of a random {CALIBRATION_SHARE:.0%} of the samples "
        "(calibration); rates measured on the rest (evaluation), with their n and 95% Wilson intervals in "
        "brackets. AUROC (two decimals) on all samples.",
        "",
        "| data set | recipe | samples | hallucination rate | threshold | hallucinations removed (ours) "
        "| in-support kept (ours) | AUROC | removed (paper) | kept (paper) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, res in report["results"].items():
        det = res.get("detection", {})
        lines.append(
            f"| {name} | {res.get('recipe', 'budget')} | {res['n_samples']} | {pct(res['hallucination_rate'], 1)} "
            f"| {_num(det.get('threshold'))} | {_rate(det)} "
            f"| {_rate(det, 'retention', 'retention_ci95', 'n_in_support')} | {_auc(res.get('auroc'))} "
            f"| > {pct(PAPER['hallucinations_removed'], 1)} | {pct(PAPER['in_support_kept'], 1)} |"
        )
    lines += ["", _precision(report), "",
              "## Comparison with the paper" + (" (not made: smoke run)" if smoke else ""), "", report["verdict"], ""]
    banded = {name: res for name, res in report["results"].items() if res.get("by_distance")}
    if banded:
        lines += ["## Removed share by distance to the nearest mode", "",
                  "Hallucinations of the evaluation set by how far they lie from the nearest mode (data std); "
                  "\"between modes\" reaches the midpoint of two modes, where mode interpolation puts its samples.",
                  "", "| data set | band | distance (std) | removed |", "| --- | --- | --- | --- |"]
        for name, res in banded.items():
            for row in res["by_distance"]:
                hi = "inf" if row["hi_std"] is None else f"{row['hi_std']:.3g}"
                lines.append(f"| {name} | {row['band']} | {row['lo_std']:.3g}-{hi} "
                             f"| {_rate(row, 'removed_share', 'removed_ci95', 'n')} |")
        lines += ["", "In-support samples that the threshold removes, by distance to their mode (data std):", "",
                  "| data set | flagged in support | median distance flagged / all in support "
                  "| 90% quantile flagged / all | distances of the 20 top-scoring in-support samples |",
                  "| --- | --- | --- | --- | --- |"]
        for name, res in banded.items():
            f = res["flagged_in_support"]
            lines.append(
                f"| {name} | {f['n_flagged']} of {f['n_in_support']} | {_num(f['flagged_distance_std']['median'])} / "
                f"{_num(f['all_distance_std']['median'])} | {_num(f['flagged_distance_std']['q90'])} / "
                f"{_num(f['all_distance_std']['q90'])} | {', '.join(f'{d:g}' for d in f['top_distances_std'])} |")
        lines.append("")
    for name, res in report["results"].items():
        if res.get("curve"):
            lines += [f"## {name}: detector against training items (authors' recipe)", "",
                      f"Each snapshot evaluated on {res['curve'][0]['n_samples']} samples (same seed); the paper's "
                      f"budget is {PAPER_TRAINING_ITEMS[name]:.3g} items.", "",
                      "| step | training items | hallucination rate | removed at the calibrated threshold | kept "
                      "| AUROC | mode spread / data std |", "| --- | --- | --- | --- | --- | --- | --- |"]
            for row in res["curve"]:
                lines.append(f"| {row['step']} | {row['items']:.3g} | {pct(row['hallucination_rate'], 2)} "
                             f"| {_rate(row, 'removed', 'removed_ci95')} | {pct(row['kept'], 1)} "
                             f"| {_auc(row['auroc'])} | {_num(row['spread_over_data_std'])} |")
            lines.append("")
        if res.get("ema_ablation", {}).get("detection"):
            ab = res["ema_ablation"]
            lines += [f"EMA ablation ({name}; not the authors' recipe): the EMA of the same run's weights (decay "
                      f"0.999), {ab['n_samples']} samples: hallucination rate {pct(ab['hallucination_rate'], 2)}, "
                      f"removed {_rate(ab['detection'])}, AUROC {_auc(ab['auroc'])}, mode spread "
                      f"{_num(ab['model_spread_over_data_std'])} x the data std.", ""]
    lines += [
        "## Sensitivity to the ground-truth radius k (in data std)",
        "",
        "| data set | k | hallucination rate | removed | kept | AUROC |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, res in report["results"].items():
        for row in res["sensitivity"]:
            det = row.get("detection", {})
            lines.append(
                f"| {name} | {row['k']:g} | {pct(row['hallucination_rate'], 1)} "
                f"| {pct(det.get('detection_rate'), 1)} | {pct(det.get('retention'), 1)} "
                f"| {_auc(row.get('auroc'))} |"
            )
    lines += ["", "## Training and model", ""]
    lines += [_training_line(name, res) for name, res in report["results"].items()]
    return "\n".join(lines) + "\n"


def _auc(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _half_width(bounds: Sequence[float | None]) -> float:
    lo, hi = bounds
    return float("nan") if lo is None or hi is None else (hi - lo) / 2


def _precision(report: dict[str, Any]) -> str:
    """Whether every removed/kept rate reached the target precision (+-10 points), from the report's intervals."""
    parts, short = [], []
    for name, res in report["results"].items():
        det = res.get("detection")
        if not det:
            short.append(name)
            continue
        removed, kept = _half_width(det["detection_rate_ci95"]), _half_width(det["retention_ci95"])
        parts.append(f"{name} removed +-{100 * removed:.1f}, kept +-{100 * kept:.1f}")
        if not (removed <= TARGET_HALF_WIDTH and kept <= TARGET_HALF_WIDTH):
            short.append(name)
    verdict = ("all within" if not short else f"{', '.join(short)} not within") + \
        f" the target of +-{100 * TARGET_HALF_WIDTH:.0f} points"
    return f"Precision (half-width of the 95% intervals, points): {'; '.join(parts) or 'none'}: {verdict}."


#: What a ``--fast`` report says first, and instead of comparing its numbers with the paper's.
SMOKE_NOTE = ("**Smoke run** (`--fast`): tiny training budgets that check the pipeline runs end to end; its "
              "numbers are not a reproduction and are not compared with the paper. Run without `--fast` for that.")


def _verdict(report: dict[str, Any]) -> str:
    """One paragraph: how our numbers compare with the paper's, read from the intervals, not the point estimates
    (a smoke run, ``report["fast"]``, makes no comparison and says so)."""
    if report.get("fast"):
        return SMOKE_NOTE
    removed_claim, kept_claim = PAPER["hallucinations_removed"], PAPER["in_support_kept"]
    claim = f"the paper's > {pct(removed_claim, 1)} removed at {pct(kept_claim, 1)} kept"
    parts = []
    for name, res in report["results"].items():
        det = res.get("detection")
        if not det or det["n_hallucinated"] == 0:
            parts.append(f"{name}: no hallucination in the evaluation set, so the detection rate is undefined.")
            continue
        rate, (lo, hi) = det["detection_rate"], det["detection_rate_ci95"]
        head = (f"{name}: {pct(rate, 1)} of hallucinations removed (95% interval {_ci((lo, hi)).strip()}, "
                f"{count(det['n_hallucinated'], 'hallucination')} evaluated) at {pct(det['retention'], 1)} retention")
        if hi >= removed_claim and det["n_hallucinated"] < GOAL_MIN_N:
            parts.append(f"{head}: too few hallucinations to test {claim} (a claim counts as reproduced only with at "
                         f"least {GOAL_MIN_N} evaluated and the whole interval above it).")
        elif lo >= removed_claim:
            parts.append(f"{head}: consistent with {claim}, and the whole interval lies above it.")
        elif hi >= removed_claim:
            parts.append(f"{head}: consistent with {claim}, but the interval reaches below "
                         f"{pct(removed_claim, 1)}, so this run does not establish it.")
        else:
            ratio = (res["median_score_hallucinated"] or float("nan")) / (
                res["median_score_in_support"] or float("nan"))
            text = (f"{head}: below {claim} (the whole interval lies under {pct(removed_claim, 1)}). The score "
                    f"still ranks the samples (AUROC {_auc(res.get('auroc'))}; the median hallucination scores "
                    f"{_num(ratio)}x the median in-support sample), but {pct(1 - rate, 1)} of the hallucinations "
                    f"score below the top {pct(1 - KEEP, 1)} of in-support samples.")
            items = res.get("paper_training_items_ratio")
            if items and items > 1:
                recipe = "the authors' recipe" if res.get("recipe") == "authors" else "a budget recipe"
                text += (f" Our model ({recipe}) saw {_num(items)}x fewer training items than the paper's and its "
                         f"learned modes are {_num(res['model_spread_over_data_std'])}x as wide as the data's; "
                         + ("the training curve below shows how the removed share moves with training items."
                            if res.get("curve") else "whether more training closes the gap is not measured here."))
            parts.append(text)
    return " ".join(parts)


def _figures(out_dir: Path, report: dict[str, Any], arrays: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Score histograms (in-support vs hallucinated) and sample plots; returns the file names."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state

    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        atomic_save(out_dir / name, lambda p: fig.savefig(p, format="png", dpi=120))
        written.append(name)

    for name, arr in arrays.items():
        res = report["results"][name]
        log_scores = np.log10(np.maximum(arr["scores"], 1e-12))
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        bins = np.linspace(log_scores.min(), log_scores.max(), 60).tolist()
        ax.hist(log_scores[~arr["labels"]], bins=bins, alpha=0.6, density=True, label="in support")
        if arr["labels"].any():
            ax.hist(log_scores[arr["labels"]], bins=bins, alpha=0.6, density=True, label="hallucinated")
        if "detection" in res:
            ax.axvline(
                math.log10(max(res["detection"]["threshold"], 1e-12)),
                color="k",
                ls="--",
                label=f"threshold (keeps {KEEP:.0%})",
            )
        ax.set_xlabel(f"log10 x0 variance over the last {res['window_steps']} steps")
        ax.set_ylabel("density")
        ax.set_title(f"{name}: hallucination score")
        ax.legend()
        fig.tight_layout()
        save(fig, f"score_hist_{name}.png")

        samples = arr["samples"]
        if samples.shape[1] == 2:
            fig = Figure(figsize=(6, 5.5))
            ax = fig.subplots()
            order = np.argsort(log_scores)
            sc = ax.scatter(samples[order, 0], samples[order, 1], c=log_scores[order], s=2, cmap="viridis")
            modes = np.asarray(res["data"]["modes"])
            ax.scatter(modes[:, 0], modes[:, 1], marker="x", c="r", s=20, label="modes")
            fig.colorbar(sc, ax=ax, label="log10 score")
            ax.set(xlabel="x[0]", ylabel="x[1]", title=f"{name}: samples coloured by hallucination score")
            ax.legend(loc="upper right")
            ax.set_aspect("equal")
            fig.tight_layout()
            save(fig, f"samples_{name}_score.png")
        else:
            fig = Figure(figsize=(6, 4))
            ax = fig.subplots()
            threshold = res.get("detection", {}).get("threshold", np.inf)
            keep = arr["scores"] <= threshold
            bins = np.linspace(samples.min(), samples.max(), 120).tolist()
            ax.hist(samples[keep, 0], bins=bins, alpha=0.6, label="kept")
            ax.hist(samples[~keep, 0], bins=bins, alpha=0.6, label="removed by the score")
            ax.set_yscale("log")
            ax.set_xlabel("x")
            ax.set_ylabel("samples per bin")
            ax.set_title(f"{name}: generated samples")
            ax.legend()
            fig.tight_layout()
            save(fig, f"samples_{name}_hist.png")
    return written


