"""Recursive inpainting with ground truth: the bundled Simple Shapes DDPM repainting its own output.

Every iteration one of the three shape columns (or a random box) of a Simple Shapes image is
removed and repainted by the shapes diffusion model, and the labeller
(:func:`ripbench.datasets.shapes.label_shapes`) reads the result. Each *generation* (one
inpainting) gets one of these labels (:func:`ripbench.datasets.shapes.generation_labels`):

* ``duplicate``: a repainted column now holds two or more copies of its own shape, which it did
  not hold before (or the whole column was repainted). This, and only this, is a
  **hallucination** in the paper's sense (Aithal et al., NeurIPS 2024: mode interpolation).
* ``valid``: the repainted columns hold at most one copy of their own shape, well formed, and
  the image is not empty.
* ``carried``: a duplicate that was already there and was only partly repainted (box masks);
  the generation did not make it, so it counts on neither side.
* ``wrong_shape``, ``malformed``, ``empty``: invalid images that are not hallucinations (a shape
  in another shape's column, an unreadable blob, no shape at all). Counted and reported apart.

The detector's score of a generation is the variance of its predicted clean image x0 over the
denoising steps in the low-noise band (``halluc_band_lo``..``halluc_band_hi``) inside the repainted region (``halluc_score_current``; ``halluc_score`` is
the whole image). For each band of iterations the report gives the AUROC of duplicates against
valid generations with a 95% bootstrap interval over trajectories and the counts; a threshold
calibrated on a quarter of the trajectories (:data:`CALIBRATION_SHARE`, keeping :data:`KEEP` of
their valid generations); and the shares of valid generations kept and of duplicates removed on
the other trajectories, with Wilson
intervals.

Run it as ``ripbench repro shapes-rip``; :func:`run_shapes_rip` is the library entry point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import validate_config
from ..datasets.shapes import GENERATION_LABELS, generation_table
from ..hallucination import calibrate_threshold
from ..hallucination_stats import iteration_bands, pooled_share, roc_analysis
from ..io import atomic_save, atomic_write_text
from ..report import markdown_table
from ..run import run_experiment
from ..stats import pct as percent
from . import SHAPES_HALLUCINATION

#: Share of valid generations the calibrated threshold keeps (the paper's operating point).
KEEP = 0.96
#: Share of the trajectories whose valid generations calibrate the threshold (the rest evaluate it).
CALIBRATION_SHARE = 0.25
#: What the paper reports that this experiment compares with (Aithal et al., NeurIPS 2024).
PAPER = ("Aithal et al. (NeurIPS 2024): filtering on the x0 variance over the last 10 of 1000 steps removes over "
         "95% of hallucinations while keeping 96% of in-support samples (their synthetic data sets); they apply "
         "the same score to unconditional Simple Shapes samples (64 px DDPM, 5,000 training images), not to "
         "recursive inpainting.")
#: What counts as a hallucination (shown by ``--help`` and in the report).
DEFINITION = SHAPES_HALLUCINATION
#: Scores compared in the report: inside the repainted region (the headline) and the whole image.
SCORES = ("halluc_score_current", "halluc_score")


def shapes_rip_config(out_dir: Path, *, images: int = 32, iterations: int = 12, steps: int = 25,
                      seeds: tuple[int, ...] = (0, 1, 2), mask: str = "columns", batch_size: int = 16,
                      band: Any = None) -> dict[str, Any]:
    """The experiment behind :func:`run_shapes_rip` as a plain config dict (64 px, the model's size).

    ``band``: the score's noise band (``hallucination.window``; ``None`` = the default band).
    """
    masks = [{"policy": "columns", "count": 3}] if mask == "columns" else [{"policy": "box", "area": 0.25}]
    return {
        "name": "shapes-rip",
        "description": "Simple Shapes DDPM under recursive inpainting, with labeller ground truth",
        "iterations": iterations,
        "size": 64,
        "seeds": list(seeds),
        "inputs": {"source": "shapes", "count": images},
        "masks": masks,
        "models": [{"name": "shapes-ddpm", "options": {"steps": steps}}],
        "metrics": {"names": ["ssim", "mse"]},
        "hallucination": {"enabled": True, **({"window": band} if band is not None else {})},
        "snapshots": [0, 1, iterations // 2, iterations],
        "batch_size": batch_size,
        "output_dir": str(out_dir.parent),
    }


def calibration_split(trajectories: pd.Series, seed: int = 0, share: float = 0.25) -> np.ndarray:
    """``True`` for rows whose trajectory is in the calibration set: a seeded random ``share`` of the
    trajectories (rows of one trajectory stay together because they are correlated). Calibration
    needs valid generations only, which are plentiful; the rest evaluate the threshold, so that
    the rare duplicates go mostly to the evaluation."""
    ids = np.array(sorted(trajectories.unique()))
    order = np.random.default_rng(seed).permutation(ids.size)
    calibration = set(ids[order[: int(round(share * ids.size))]])
    return trajectories.isin(calibration).to_numpy()


def _interval(lo_hi: tuple[float, float]) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in lo_hi]


def _auroc(rows: pd.DataFrame, labels: np.ndarray, score: str, n_boot: int, seed: int) -> tuple[float, float, float]:
    """AUROC of ``score`` for ``duplicate`` against ``valid`` labels (others left out), with its interval
    from resampling whole trajectories (:func:`ripbench.hallucination_stats.roc_analysis`)."""
    result = roc_analysis(rows.assign(shapes_label=labels), score, n_boot=n_boot, seed=seed)
    return float(result["auroc"]), float(result["auroc_lo"]), float(result["auroc_hi"])


def detection_by_band(table: pd.DataFrame, *, bands: int = 3, score: str = "halluc_score_current",
                      keep: float = KEEP, seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """Detector quality per band of iterations (and pooled, band ``"all"``) against the generation labels.

    Columns: ``band``, ``generations``, one count per label of :data:`GENERATION_LABELS`,
    ``hallucination_rate`` (duplicates / generations) with ``_lo``/``_hi``; ``auroc`` of
    duplicates vs valid (all trajectories) with a bootstrap interval over trajectories;
    ``threshold`` calibrated on the valid generations of the calibration trajectories; ``kept``
    (valid generations of the evaluation trajectories at or below it) and ``removed`` (their
    duplicates above it), each with ``n_`` and a Wilson interval; and, as a control for the
    amount of shape in the region, ``auroc_vs_shape`` (duplicates vs the ``valid_with_shape``
    valid generations that left at least one shape in the repainted region) with its interval.
    """
    rows = table[table["iteration"] > 0].copy()
    rows[["generation", "region_shapes"]] = generation_table(table)
    calibration = calibration_split(rows["trajectory_id"], seed, CALIBRATION_SHARE)
    iterations = int(rows["iteration"].max()) if len(rows) else 0
    groups = [(f"{a}-{b}" if a != b else str(a), (rows["iteration"] >= a) & (rows["iteration"] <= b))
              for a, b in iteration_bands(iterations, bands)] if iterations else []
    groups.append(("all", pd.Series(True, index=rows.index)))
    out = []
    for name, selected in groups:
        g = rows[selected.to_numpy()]
        cal = calibration[selected.to_numpy()]
        labels = g["generation"].to_numpy()
        s = g[score].to_numpy(dtype=float)
        dup, valid = labels == "duplicate", labels == "valid"
        n = len(g)
        rec: dict[str, Any] = {"band": name, "generations": n, **{k: int((labels == k).sum()) for k in GENERATION_LABELS}}
        clusters = g["trajectory_id"]  # generations of one trajectory are alike: intervals resample trajectories
        rate = pooled_share(pd.Series(dup, index=g.index), clusters, n_boot=n_boot, ci=0.95, seed=seed)
        rec.update(hallucination_rate=dup.sum() / n if n else np.nan, hallucination_rate_lo=rate["lo"],
                   hallucination_rate_hi=rate["hi"])
        rec["auroc"], rec["auroc_lo"], rec["auroc_hi"] = _auroc(g, labels, score, n_boot, seed)
        # control: valid generations that left a shape in the repainted region (the x0 variance grows
        # with the amount of shape edge, and a column left empty scores near zero)
        shaped = valid & (g["region_shapes"].to_numpy() > 0)
        rec["valid_with_shape"] = int(shaped.sum())
        control = np.where(valid & ~shaped, "left_out", labels)
        rec["auroc_vs_shape"], rec["auroc_vs_shape_lo"], rec["auroc_vs_shape_hi"] = _auroc(g, control, score, n_boot,
                                                                                         seed)
        cal_valid = s[valid & cal & np.isfinite(s)]
        in_valid, in_dup = valid & ~cal & np.isfinite(s), dup & ~cal & np.isfinite(s)
        ev_valid, ev_dup = s[in_valid], s[in_dup]
        threshold = calibrate_threshold(cal_valid, keep=keep) if cal_valid.size else np.nan
        kw = {"n_boot": n_boot, "ci": 0.95, "seed": seed}
        kept = pooled_share(pd.Series(s <= threshold, index=g.index)[in_valid], clusters[in_valid], **kw)
        removed = pooled_share(pd.Series(s > threshold, index=g.index)[in_dup], clusters[in_dup], **kw)
        rec.update(n_calibration_valid=int(cal_valid.size), threshold=threshold,
                   n_kept_of=int(ev_valid.size), kept=kept["k"] / kept["n"] if kept["n"] else np.nan,
                   kept_lo=kept["lo"], kept_hi=kept["hi"], n_removed_of=int(ev_dup.size),
                   removed=removed["k"] / removed["n"] if removed["n"] else np.nan, removed_lo=removed["lo"],
                   removed_hi=removed["hi"])
        if not cal_valid.size:
            rec.update(kept=np.nan, kept_lo=np.nan, kept_hi=np.nan, removed=np.nan, removed_lo=np.nan,
                       removed_hi=np.nan)
        out.append(rec)
    return pd.DataFrame(out)


def image_kinds_per_iteration(table: pd.DataFrame) -> pd.DataFrame:
    """Share of images of each labeller kind per iteration (the collapse curve), with ``n``.

    >>> t = pd.DataFrame({"iteration": [0, 0, 1, 1], "shapes_label": ["valid", "valid", "duplicate", "empty"]})
    >>> image_kinds_per_iteration(t)[["iteration", "n", "duplicate", "empty"]].to_dict("records")
    [{'iteration': 0, 'n': 2, 'duplicate': 0.0, 'empty': 0.0}, {'iteration': 1, 'n': 2, 'duplicate': 0.5, 'empty': 0.5}]
    """
    from ..datasets.shapes import KINDS

    counts = pd.crosstab(table["iteration"], table["shapes_label"]).reindex(columns=list(KINDS), fill_value=0)
    shares = counts.div(counts.sum(axis=1), axis=0)
    shares.insert(0, "n", counts.sum(axis=1))
    return shares.reset_index().rename_axis(columns=None)


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
    value, lo, hi = pooled.get("auroc"), pooled.get("auroc_lo"), pooled.get("auroc_hi")
    if value is None or not np.isfinite(value):
        return ("No AUROC: the run made no duplicate or no valid generation; run more images, seeds or "
                "iterations.")
    where = ("reaches" if lo >= 0.9 else "may reach" if hi >= 0.9 else "falls short of") if np.isfinite(lo) else (
        "reaches" if value >= 0.9 else "falls short of")
    text = (f"Pooled over all iterations the detector separates duplicates from valid generations with AUROC "
            f"{_fmt(value)} (95% CI {_fmt(lo)}-{_fmt(hi)}; {pooled['duplicate']} duplicates, {pooled['valid']} valid), "
            f"which {where} the goal of 0.9.")
    control = pooled.get("auroc_vs_shape")
    if control is not None and np.isfinite(control):
        text += (f" Against only the {pooled['valid_with_shape']} valid generations that left a shape in the repainted "
                 f"region (the score grows with the amount of shape edge, and an emptied column scores near zero) "
                 f"the AUROC is {_ci(pooled, 'auroc_vs_shape', pct=False)}.")
    removed, n_removed = pooled.get("removed"), int(pooled.get("n_removed_of", 0))
    if removed is not None and np.isfinite(removed):
        text += (f" At the calibrated threshold {_ci(pooled, 'kept')} of the held-out valid generations are kept and "
                 f"{_ci(pooled, 'removed')} of the {n_removed} held-out duplicates removed (paper: over 95% removed at "
                 f"96% kept on its toy data).")
    return text


def _steps_text(rows: pd.DataFrame) -> str:
    steps = sorted({int(v) for v in rows.get("halluc_steps", pd.Series(dtype=float)).dropna()})
    return "/".join(map(str, steps)) if steps else "recorded"


def _unscored_text(rows: pd.DataFrame) -> str:
    missing = int((~np.isfinite(rows[SCORES[0]].to_numpy(dtype=float))).sum()) if SCORES[0] in rows else len(rows)
    return "every generation has a score" if missing == 0 else f"{missing} generations have no score (too few steps in the band)"


def _figure(kinds: pd.DataFrame, det: dict[str, pd.DataFrame], rows: pd.DataFrame, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.8))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for kind, colour in (("duplicate", "tab:red"), ("empty", "tab:grey"), ("wrong_shape", "tab:orange"),
                         ("malformed", "tab:purple"), ("valid", "tab:green")):
        ax1.plot(kinds["iteration"], kinds[kind], marker="o", ms=3, color=colour, label=kind)
    ax1.set(xlabel="iteration", ylabel="share of images", title="Images by label (collapse curve)", ylim=(0, 1))
    ax1.legend(frameon=False, fontsize=7)
    for score, marker in zip(SCORES, ("o", "s")):
        d = det[score]
        bands = d[d["band"] != "all"]
        x = np.arange(len(bands))
        ax2.errorbar(x, bands["auroc"], yerr=[bands["auroc"] - bands["auroc_lo"], bands["auroc_hi"] - bands["auroc"]],
                     marker=marker, capsize=3, label=score)
        ax2.set_xticks(x, bands["band"])
    ax2.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax2.axhline(0.9, color="tab:green", lw=0.8, ls="--")
    ax2.set(xlabel="iterations", ylim=(0, 1.02), title="AUROC, duplicates vs valid (95% CI)")
    ax2.legend(frameon=False, fontsize=7)
    score = rows[SCORES[0]]
    finite = score[np.isfinite(score) & (score > 0)]
    if len(finite):
        bins = np.logspace(np.log10(finite.min()), np.log10(finite.max()), 40)
        for label in ("valid", "duplicate"):
            selected = score[(rows["generation"] == label) & np.isfinite(score) & (score > 0)]
            if len(selected):
                ax3.hist(selected, bins=bins, alpha=0.6, density=True, label=f"{label} (n={len(selected)})")
        ax3.set_xscale("log")
    ax3.set(xlabel="x0 variance inside the mask", title="Score by generation label (all iterations)")
    ax3.legend(frameon=False, fontsize=7)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))


def run_shapes_rip(out_dir: str | Path = "results/shapes-rip", *, images: int = 32, iterations: int = 12,
                   steps: int = 25, seeds: tuple[int, ...] = (0, 1, 2), mask: str = "columns", batch_size: int = 16,
                   bands: int = 3, band: Any = None, progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Run the shapes RIP experiment and write its tables, figure and report into ``out_dir``.

    ``images x seeds`` trajectories, each with its own keyed masks and noise, ``iterations``
    inpaintings each. Returns a dict with the per-band detection tables (``detection``, one per
    score of :data:`SCORES`), the image kinds per iteration (``kinds``) and the paths.
    Resumable like any run: calling it again skips finished trajectories.
    """
    out_dir = Path(out_dir)
    cfg = validate_config(shapes_rip_config(out_dir, images=images, iterations=iterations, steps=steps,
                                            seeds=seeds, mask=mask, batch_size=batch_size, band=band))
    result = run_experiment(cfg, run_dir=out_dir, progress=progress, overwrite=overwrite)
    table = result.table
    rows = table[table["iteration"] > 0].copy()
    rows[["generation", "region_shapes"]] = generation_table(table)
    det = {score: detection_by_band(table, bands=bands, score=score) for score in SCORES if score in table}
    kinds = image_kinds_per_iteration(table)
    paths = {"detection": out_dir / "shapes_rip_detection.csv", "kinds": out_dir / "shapes_rip_kinds.csv",
             "figure": out_dir / "figures" / "shapes_rip.png", "report": out_dir / "shapes_rip.md",
             "json": out_dir / "shapes_rip.json"}
    atomic_write_text(paths["detection"], pd.concat([d.assign(score=s) for s, d in det.items()]).to_csv(index=False))
    atomic_write_text(paths["kinds"], kinds.to_csv(index=False))
    _figure(kinds, det, rows, paths["figure"])
    headline = det[SCORES[0]]
    pooled = headline[headline["band"] == "all"].iloc[0]
    n_traj = int(table["trajectory_id"].nunique())
    final = kinds[kinds["iteration"] == kinds["iteration"].max()].iloc[0]
    md = [
        "# Simple Shapes under recursive inpainting (ground-truth hallucinations)", "",
        f"Command: `ripbench repro shapes-rip --images {images} --seeds {','.join(map(str, seeds))} "
        f"--iterations {iterations} --steps {steps} --mask {mask} --bands {bands}"
        + (f" --band {band}" if band is not None else "") + "`", "",
        f"Model: bundled shapes DDPM (64 px), replacement inpainting, {steps} denoising steps; {n_traj} trajectories "
        f"({images} images x {len(seeds)} seeds) x {iterations} iterations; mask: {mask}.", "",
        f"**What counts as a hallucination.** {DEFINITION}", "",
        f"Score: variance of x0 over the {_steps_text(rows)} denoising steps whose noise level t/T lies in "
        f"[{cfg.hallucination.window[0]:g}, {cfg.hallucination.window[1]:g}], inside the repainted region "
        f"(`{SCORES[0]}`); {_unscored_text(rows)}. "
        f"Threshold: keeps {KEEP:.0%} of the valid generations of a random {CALIBRATION_SHARE:.0%} of the "
        "trajectories (calibration); kept and removed are measured on the other trajectories. Intervals: 95%, bootstrap over trajectories for the "
        "AUROC, Wilson for rates.", "",
        f"Paper: {PAPER}", "",
        "## Detector against the labeller, by band of iterations", "",
        _band_table(headline), "",
        _verdict(pooled), "",
    ]
    if SCORES[1] in det:
        md += [f"Whole-image score (`{SCORES[1]}`) for comparison:", "", _band_table(det[SCORES[1]]), ""]
    md += [
        "## Images by label per iteration", "",
        f"After {int(final['iteration'])} iterations: "
        + ", ".join(f"{k} {final[k]:.0%}" for k in ("valid", "duplicate", "empty", "wrong_shape", "malformed"))
        + f" of {int(final['n'])} images.", "",
        markdown_table(kinds.round(3)), "",
    ]
    atomic_write_text(paths["report"], "\n".join(md))
    atomic_write_text(paths["json"], json.dumps(
        {"definition": DEFINITION, "keep": KEEP, "trajectories": n_traj, "iterations": iterations, "steps": steps,
         "mask": mask, "detection": {s: d.to_dict("records") for s, d in det.items()},
         "kinds": kinds.to_dict("records")}, indent=2, default=lambda v: None if v is None else float(v)))
    return {"detection": det, "kinds": kinds, "paths": paths, "run_dir": result.run_dir, "table": table}
