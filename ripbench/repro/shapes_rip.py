"""Recursive inpainting with ground truth: the bundled Simple Shapes DDPM repainting its own output.

Every iteration one of the three shape columns (or a random box) of a Simple Shapes image is
removed and repainted by the shapes diffusion model. The labeller says whether the result is
still a valid Simple Shapes image (one correct shape per column at most, at least one shape),
so the hallucination rate per iteration is measured, not guessed; and the trajectory-variance
score of each inpainting is compared with that ground truth (AUROC, and the share of
hallucinations removed at a threshold that keeps 96% of the valid images of that iteration).

Run it as ``ripbench repro shapes-rip``; :func:`run_shapes_rip` is the library entry point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import validate_config
from ..hallucination import auroc, calibrate_threshold, detection_report
from ..io import atomic_save, atomic_write_text
from ..report import markdown_table
from ..run import run_experiment

#: Share of valid images the detector's threshold keeps (the paper's operating point).
KEEP = 0.96


def shapes_rip_config(out_dir: Path, *, images: int = 16, iterations: int = 12, steps: int = 25,
                      seeds: tuple[int, ...] = (0, 1, 2), mask: str = "columns", batch_size: int = 16) -> dict[str, Any]:
    """The experiment behind :func:`run_shapes_rip` as a plain config dict."""
    masks = [{"policy": "columns", "count": 3}] if mask == "columns" else [{"policy": "box", "area": 0.25}]
    return {
        "name": "shapes-rip",
        "description": "Simple Shapes DDPM under recursive inpainting, with labeller ground truth",
        "iterations": iterations,
        "size": 32,
        "seeds": list(seeds),
        "inputs": {"source": "shapes", "count": images},
        "masks": masks,
        "models": [{"name": "shapes-ddpm", "options": {"num_inference_steps": steps}}],
        "metrics": {"names": ["ssim", "mse"]},
        "hallucination": {"enabled": True},
        "snapshots": [0, 1, iterations // 2, iterations],
        "batch_size": batch_size,
        "output_dir": str(out_dir.parent),
    }


def per_iteration_detection(table: pd.DataFrame, keep: float = KEEP) -> pd.DataFrame:
    """Hallucination rate and detector quality per iteration.

    Ground truth: ``shapes_valid`` (labeller). Score: ``halluc_score_current`` (x0 variance inside
    the repainted region). At each iteration the threshold keeps ``keep`` of that iteration's
    valid images; ``removed`` is the share of hallucinations scoring above it.

    >>> t = pd.DataFrame({"iteration": [1] * 4, "shapes_valid": [True, True, False, False],
    ...                   "halluc_score_current": [0.1, 0.2, 0.9, 0.8]})
    >>> per_iteration_detection(t)[["hallucination_rate", "auroc"]].to_dict("records")
    [{'hallucination_rate': 0.5, 'auroc': 1.0}]
    """
    rows = []
    for k, g in table[table["iteration"] > 0].groupby("iteration"):
        valid = g["shapes_valid"].astype(bool).to_numpy()
        score = g["halluc_score_current"].to_numpy(dtype=float)
        row: dict[str, Any] = {"iteration": int(k), "images": len(g), "hallucinations": int((~valid).sum()),
                               "hallucination_rate": float((~valid).mean())}
        if valid.any() and (~valid).any():
            threshold = calibrate_threshold(score[valid], keep=keep)
            rep = detection_report(score, ~valid, threshold)
            row.update(auroc=float(auroc(score, ~valid)), threshold=threshold,
                       removed=float(rep["detection_rate"]), kept=float(rep["retention"]))
        else:
            row.update(auroc=np.nan, threshold=np.nan, removed=np.nan, kept=np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def _figure(per_iter: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    start = table[table["iteration"] == 0]
    rate0 = float((~start["shapes_valid"].astype(bool)).mean()) if len(start) else 0.0
    ax1.plot([0, *per_iter["iteration"]], [rate0, *per_iter["hallucination_rate"]], marker="o", color="tab:red")
    ax1.set(xlabel="iteration", ylabel="share of images hallucinated", title="Collapse curve (ground truth)",
            ylim=(0, 1))
    ax2.plot(per_iter["iteration"], per_iter["auroc"], marker="o", label="AUROC")
    ax2.plot(per_iter["iteration"], per_iter["removed"], marker="s", label=f"removed at {KEEP:.0%} kept")
    ax2.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax2.set(xlabel="iteration", ylim=(0, 1.02), title="Variance detector vs labeller")
    ax2.legend(frameon=False, fontsize=8)
    later = table[table["iteration"] > 0]
    valid = later["shapes_valid"].astype(bool)
    bins = np.linspace(0, np.nanpercentile(later["halluc_score_current"], 99.5), 40)
    for selected, label in ((valid, "valid"), (~valid, "hallucinated")):
        if selected.any():
            ax3.hist(later.loc[selected, "halluc_score_current"], bins=bins, alpha=0.6, density=True, label=label)
    ax3.set(xlabel="x0 variance inside the mask", title="Score distribution (all iterations)")
    ax3.legend(frameon=False, fontsize=8)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))


def run_shapes_rip(out_dir: str | Path = "results/shapes-rip", *, images: int = 16, iterations: int = 12,
                   steps: int = 25, seeds: tuple[int, ...] = (0, 1, 2), mask: str = "columns", batch_size: int = 16,
                   progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Run the shapes RIP experiment and write its table, figure and report into ``out_dir``.

    Each seed gives every image its own sequence of repainted regions (``images x seeds``
    trajectories); the mask sequence depends on the seed only, so images of one seed are paired.
    Returns a dict with the per-iteration table (``per_iteration``), overall numbers and paths.
    Resumable like any run: calling it again skips finished trajectories.
    """
    out_dir = Path(out_dir)
    cfg = validate_config(shapes_rip_config(out_dir, images=images, iterations=iterations, steps=steps,
                                            seeds=seeds, mask=mask, batch_size=batch_size))
    result = run_experiment(cfg, run_dir=out_dir, progress=progress, overwrite=overwrite)
    table = result.table
    per_iter = per_iteration_detection(table)
    later = table[table["iteration"] > 0]
    valid = later["shapes_valid"].astype(bool).to_numpy()
    overall: dict[str, Any] = {"trajectories": int(table["trajectory_id"].nunique()), "iterations": iterations,
                               "steps": steps, "hallucination_rate_final": float(per_iter["hallucination_rate"].iloc[-1])}
    if valid.any() and (~valid).any():
        score = later["halluc_score_current"].to_numpy(dtype=float)
        threshold = calibrate_threshold(score[valid], keep=KEEP)
        rep = detection_report(score, ~valid, threshold)
        overall.update(auroc=float(auroc(score, ~valid)), removed=float(rep["detection_rate"]),
                       kept=float(rep["retention"]))
    paths = {"table": out_dir / "shapes_rip_per_iteration.csv", "figure": out_dir / "figures" / "shapes_rip.png",
             "report": out_dir / "shapes_rip.md", "json": out_dir / "shapes_rip.json"}
    atomic_write_text(paths["table"], per_iter.to_csv(index=False))
    _figure(per_iter, table, paths["figure"])
    reasons = later.loc[~valid, "shapes_reason"].value_counts().to_dict()
    md = [
        "# Simple Shapes under recursive inpainting (ground-truth hallucinations)", "",
        f"Model: bundled shapes DDPM, replacement inpainting, {steps} steps; {overall['trajectories']} "
        f"trajectories ({images} images x {len(seeds)} seeds) x {iterations} iterations; mask: {mask}. Ground truth: the Simple Shapes labeller. Score: variance of x0 "
        f"over the last steps, inside the repainted region; threshold keeps {KEEP:.0%} of each iteration's valid images.",
        "", markdown_table(per_iter.round(4)),
        "", f"All iterations pooled: AUROC {overall.get('auroc', float('nan')):.3f}, hallucinations removed "
        f"{overall.get('removed', float('nan')):.1%} at {overall.get('kept', float('nan')):.1%} of valid kept.",
        f"Kinds of hallucination (all iterations): {reasons}", "",
    ]
    atomic_write_text(paths["report"], "\n".join(md))
    atomic_write_text(paths["json"], json.dumps({"overall": overall, "per_iteration": per_iter.to_dict("records"),
                                                 "reasons": reasons}, indent=2, default=float))
    return {"per_iteration": per_iter, "overall": overall, "paths": paths, "run_dir": result.run_dir}

