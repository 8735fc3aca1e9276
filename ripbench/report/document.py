"""What a report is made of, whatever it is written as: :class:`Section` and :class:`Figure`, and the
texts every report carries (:func:`how_to_read`, :func:`run_settings`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import analysis
from ..metrics.registry import spec_for_column

if TYPE_CHECKING:
    from .viewer import Viewer

__all__ = ["Figure", "Section", "how_to_read", "run_settings"]


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
    """One section of the report: heading, sentences, tables (title, frame), figures, notes, and an
    interactive trajectory viewer (HTML only)."""

    key: str
    title: str
    sentences: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    viewer: Viewer | None = None


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
                    "so far (denoiser drift) and never masked so far (drift outside the masks). Whether never-masked "
                    "pixels changed is read in a pixel-local metric (MSE, PSNR: reach 0): a windowed metric (SSIM, "
                    "LPIPS) averages a map that takes in pixels up to its reach away, so near repainted pixels it "
                    "rises although the never-masked pixels are unchanged (context leakage). The cause is named from "
                    "the model's declared space: a model with a VAE (latent) re-encodes every pixel, so its "
                    "never-masked change is VAE / pipeline drift; a pixel-space model has no VAE, and its never-masked "
                    "pixels change only by the hand-off's rounding or by not keeping them. A region with no pixels "
                    "has no value (n counts the trajectories that have one)."),
        ("Drift decomposition", "with runs reported together that differ in one source each (the rip-paper run, its "
                                "paste-back ablation, the vae-roundtrip control, hand-off variants), the drift per mask "
                                "and iteration is split into: the paste-back run's (the denoiser's, masks only), total "
                                "minus paste-back (feeding back the pixels outside the masks: VAE / pipeline drift), "
                                "the VAE alone, and hand-off differences; all on the trajectories every run shares, "
                                "so the differences are paired."),
        ("Hand-off", "what each iteration hands to the next (config field handoff): float (the output as it is), "
                     "uint8 / png (rounded to 8 bits, what a diffusers pipeline returns by default), jpeg:Q (JPEG of "
                     "quality Q). It is applied before the metrics, so the drift is that of the image handed on."),
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
        ("Semantic and population drift", "DINOv2 / CLIP distance: 1 - cosine similarity of the embeddings of an "
                                          "image and its original (0 = same embedding). FD, KID and CMMD compare "
                                          "the set of originals with the set of images at an iteration, per group, "
                                          "from the embeddings stored with the run; their intervals resample "
                                          "images. FD depends on n: compare it only between groups of equal n."),
        ("PSNR", f"identical images have infinite PSNR; it is counted as {analysis.PSNR_CAP_DB:g} dB so that means "
                 "stay finite."),
    ]


def run_settings(manifest: dict[str, Any]) -> list[tuple[str, str]]:
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
        ("metric options", "; ".join(f"{k}: {json.dumps(v)}" for k, v in
                                     ((config.get("metrics") or {}).get("options") or {}).items()) or None),
        ("LPIPS", f"net {lpips.get('net')}, weights sha256 {str(lpips.get('weights_sha256'))[:16]}"
                  if lpips else "not computed"),
        ("hallucination score", json.dumps(config.get("hallucination"))),
        ("hand-off between iterations", config.get("handoff") or "float"),
        ("snapshots", config.get("snapshots")),
        ("device", json.dumps(manifest.get("device"))),
        ("versions", ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items())),
        ("time", f"model {timing.get('model_seconds', 0):.1f} s, harness {timing.get('overhead_seconds', 0):.1f} s"
                 if timing else None),
    ]
    return [(k, "" if v is None else str(v)) for k, v in pairs]
