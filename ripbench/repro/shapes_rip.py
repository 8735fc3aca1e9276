"""Recursive inpainting with ground truth: the bundled Simple Shapes DDPM repainting its own output.

Every iteration one of the three shape columns (or a random box) of a Simple Shapes image is
removed and repainted by the shapes diffusion model, and the labeller
(:func:`ripbench.datasets.shapes.label_shapes`) reads the result. Each *generation* (one
inpainting) gets one of these labels (:func:`ripbench.hallucination.shapes_truth.generation_labels`):

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
the whole image; with detector plug-ins the four ``det_x0_variance*`` variants). For each band of iterations the report gives the AUROC of duplicates against
valid generations with a 95% bootstrap interval over trajectories and the counts; a threshold
calibrated on a quarter of the trajectories (:data:`CALIBRATION_SHARE`, keeping :data:`KEEP` of
their valid generations); and the shares of valid generations kept and of duplicates removed on
the other trajectories, with Wilson
intervals.

Every score is then put next to the content baselines, scores with no model in them
(:data:`BASELINES`: the foreground and edge pixels of the output in the repainted region), on the
held-out trajectories (:func:`ripbench.hallucination.baselines.baseline_comparison`): the AUROC of each,
the paired difference to the best baseline (chosen on the calibration trajectories), the AUROC
against valid generations with the same number of shapes in the repainted region, and the AUROC of
the score's residual after the foreground area. Each noise band of ``bands`` is one run.

Run it as ``ripbench repro shapes-rip``; :func:`run_shapes_rip` is the library entry point.
The module holds this one reproduction (its config, the content baselines it adds, its tables and
its report), which is why it is long; the statistics live in :mod:`ripbench.hallucination`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import validate_config
from ..defaults import CALIBRATION_SHARE, GOAL_MIN_N, KEEP_SHARE
from ..errors import ConfigError
from ..formatting import auroc_cell, count, markdown_table
from ..formatting import pct as percent
from ..hallucination import calibrate_threshold, paper_band
from ..hallucination.baselines import baseline_comparison, comparison_sentence, matched_sentence
from ..hallucination.shapes_truth import GENERATION_LABELS, generation_table
from ..hallucination.stats import (
    calibration_split,
    iteration_bands,
    pooled_share,
    roc_analysis,
)
from ..io import atomic_save, atomic_write_text
from ..run import run_experiment
from . import SHAPES_HALLUCINATION

__all__ = ["BASELINES", "CALIBRATION_SHARE", "KEEP", "LEGACY_SCORES", "MIN_DUPLICATES", "VARIANTS",
           "add_content_baselines", "band_config", "calibration_split", "detection_by_band",
           "image_kinds_per_iteration", "run_shapes_rip", "score_variants", "shapes_baselines", "shapes_rip_config"]

#: Share of valid generations the calibrated threshold keeps (the paper's operating point;
#: :data:`ripbench.defaults.KEEP_SHARE`).
KEEP = KEEP_SHARE
#: What the paper reports that this experiment compares with (Aithal et al., NeurIPS 2024).
PAPER = ("Aithal et al. (NeurIPS 2024): filtering on the x0 variance over the last 10 of 1000 steps removes over "
         "95% of hallucinations while keeping 96% of in-support samples (their synthetic data sets); they apply "
         "the same score to unconditional Simple Shapes samples (64 px DDPM, 5,000 training images), not to "
         "recursive inpainting.")
#: What counts as a hallucination (shown by ``--help`` and in the report).
DEFINITION = SHAPES_HALLUCINATION
#: Score variants declared before evaluation (detector plug-in columns), the headline first.
VARIANTS = ("det_x0_variance_current", "det_x0_variance", "det_x0_variance_eroded", "det_x0_variance_component",
            "det_x0_variance_current_paper")
#: The legacy score columns, used when the run has no detector columns: the repainted region, the whole image.
LEGACY_SCORES = ("halluc_score_current", "halluc_score")
#: Scores compared in the report when the run has no detector columns (kept for old callers).
SCORES = LEGACY_SCORES
#: Content baselines (controls with no model in them): column -> label.
BASELINES = {"det_foreground_pixels": "foreground pixels in the repainted region",
             "det_edge_pixels": "edge pixels in the repainted region"}
#: Duplicates each mask mode should have in the held-out trajectories (issue 17, item 7).
MIN_DUPLICATES = 100
#: The detector quality the reproduction aims for: pooled AUROC of duplicates against valid generations.
AUROC_GOAL = 0.9
#: Foreground: grey value above this (as the ``foreground-pixels`` detector).
FOREGROUND_THRESHOLD = 0.5
#: Edge pixel: Sobel gradient magnitude at least this (as the ``edge-pixels`` detector: half the response to a
#: full 0 -> 1 step, with the 3 x 3 Sobel kernels divided by 8).
EDGE_THRESHOLD = 0.25


_UNIT_WORDS = {"sigma": "sigma/sqrt(alpha_bar)", "t/T": "t/T"}


def score_variants(table: pd.DataFrame) -> list[str]:
    """The score columns evaluated: the :data:`VARIANTS` present, else the :data:`LEGACY_SCORES` present.

    >>> score_variants(pd.DataFrame(columns=["halluc_score", "halluc_score_current"]))
    ['halluc_score_current', 'halluc_score']
    """
    found = [c for c in VARIANTS if c in table.columns]
    return found or [c for c in LEGACY_SCORES if c in table.columns]


def band_config(band: Any) -> dict[str, Any]:
    """The ``hallucination`` config entries that select noise band ``band`` (``"default"``, ``"paper"``, a
    number or a pair): the one place that knows the config key, so that one edit switches it to the
    named-band config (``{"band": band}``).

    >>> band_config("default"), band_config(0.1)
    ({}, {'band': 0.1})
    """
    if band is None or band == "default":
        return {}
    if isinstance(band, str) and band != "paper":
        raise ConfigError(f"unknown noise band {band!r}; use 'default', 'paper', a number or a pair")
    return {"band": band}


def _band_name(band: Any) -> str:
    if band is None:
        return "default"
    if isinstance(band, str):
        return band
    values = band if isinstance(band, (list, tuple)) else (0, band)
    return "-".join(f"{float(v):g}" for v in values)


def shapes_rip_config(out_dir: Path, *, images: int = 32, iterations: int = 12, steps: int = 100,
                      seeds: tuple[int, ...] = (0, 1, 2), mask: str = "columns", batch_size: int = 16,
                      band: Any = None) -> dict[str, Any]:
    """The experiment behind :func:`run_shapes_rip` as a plain config dict (64 px, the model's size).

    ``band``: the score's noise band (:func:`band_config`; ``None`` = the default band). Every
    iteration is saved, so that the content baselines can be computed from the images
    (:func:`add_content_baselines`) when the run does not write them.
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
        "hallucination": {"enabled": True, **band_config(band)},
        "snapshots": list(range(iterations + 1)),
        "batch_size": batch_size,
        "output_dir": str(out_dir.parent),
    }


def _interval(lo_hi: tuple[float, float]) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in lo_hi]


def _auroc(rows: pd.DataFrame, labels: np.ndarray, score: str, n_boot: int, seed: int) -> tuple[float, float, float]:
    """AUROC of ``score`` for ``duplicate`` against ``valid`` labels (others left out), with its interval
    from resampling whole trajectories (:func:`ripbench.hallucination.stats.roc_analysis`)."""
    # the labels given are the truth: without the layouts, roc_analysis reads them as they are
    given = rows.drop(columns=[c for c in ("shapes_layout", "shapes_boxes") if c in rows.columns])
    result = roc_analysis(given.assign(shapes_label=labels), score, n_boot=n_boot, seed=seed)
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
        kept = pooled_share(pd.Series(s <= threshold, index=g.index)[in_valid], clusters[in_valid],
                            n_boot=n_boot, ci=0.95, seed=seed)
        removed = pooled_share(pd.Series(s > threshold, index=g.index)[in_dup], clusters[in_dup],
                               n_boot=n_boot, ci=0.95, seed=seed)
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


def _steps_text(rows: pd.DataFrame) -> str:
    steps = sorted({int(v) for v in rows.get("halluc_steps", pd.Series(dtype=float)).dropna()})
    return "/".join(map(str, steps)) if steps else "recorded"


def _unscored_text(rows: pd.DataFrame) -> str:
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


def shapes_baselines(images: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """The Simple Shapes content baselines of outputs, with no model in them: ``det_foreground_pixels`` (pixels
    with grey value above :data:`FOREGROUND_THRESHOLD` in the repainted region) and ``det_edge_pixels``
    (pixels in the region whose Sobel magnitude, kernels divided by 8 and borders replicated, is at least
    :data:`EDGE_THRESHOLD`); NaN where the mask is empty. The same rules as the ``foreground-pixels`` and
    ``edge-pixels`` detectors: this is the seam to drop once every run writes those columns.

    Args:
        images: ``N x H x W`` or ``N x C x H x W`` in ``[0, 1]`` (channels averaged).
        masks: ``N x H x W`` (or ``N x 1 x H x W``), repainted where ``> 0.5``.

    >>> img = np.zeros((1, 8, 8)); img[0, 2:5, 2:5] = 1.0
    >>> mask = np.zeros((1, 8, 8)); mask[0, :, :4] = 1
    >>> {k: v.tolist() for k, v in shapes_baselines(img, mask).items()}
    {'det_foreground_pixels': [6.0], 'det_edge_pixels': [12.0]}
    """
    grey = np.asarray(images, dtype=np.float64)
    grey = grey.mean(axis=1) if grey.ndim == 4 else grey
    given = np.asarray(masks, dtype=np.float64)
    inside = (given[:, 0] if given.ndim == 4 else given) > 0.5
    p = np.pad(grey, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = grey.shape[1:]

    def at(dy: int, dx: int) -> np.ndarray:
        return p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1) - at(-1, -1) - 2 * at(0, -1) - at(1, -1)) / 8.0
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1) - at(-1, -1) - 2 * at(-1, 0) - at(-1, 1)) / 8.0
    edge = gx**2 + gy**2 >= EDGE_THRESHOLD**2
    empty = ~inside.reshape(len(inside), -1).any(axis=1)

    def count(flags: np.ndarray) -> np.ndarray:
        out = (flags & inside).reshape(len(flags), -1).sum(axis=1).astype(float)
        out[empty] = np.nan
        return out

    return {"det_foreground_pixels": count(grey > FOREGROUND_THRESHOLD), "det_edge_pixels": count(edge)}


def add_content_baselines(table: pd.DataFrame, run_dir: str | Path) -> pd.DataFrame:
    """``table`` with the :data:`BASELINES` columns; those the run did not write are computed from its saved
    images and masks (``images/<trajectory>/iter_k.png``, ``mask_k.png``; 8-bit PNGs, so a pixel of exactly
    0.5 may land on either side) by :func:`shapes_baselines`. Rows without a saved image keep NaN."""
    from ..plots import read_png
    from ..store import RunStore

    missing = [c for c in BASELINES if c not in table.columns]
    if not missing:
        return table
    store = RunStore(Path(run_dir))
    out = table.copy()
    for column in missing:
        out[column] = np.nan
    later = out[out["iteration"] > 0]
    images, masks, index = [], [], []
    for i, row in later.iterrows():
        folder = store.image_dir(str(row["trajectory_id"]))
        k = int(row["iteration"])
        image, mask = folder / f"iter_{k:04d}.png", folder / f"mask_{k:04d}.png"
        if image.is_file() and mask.is_file():
            pixels = read_png(image)
            images.append(pixels.mean(axis=-1) if pixels.ndim == 3 else pixels)
            masks.append(read_png(mask))
            index.append(i)
    if index:
        values = shapes_baselines(np.stack(images), np.stack([m.mean(axis=-1) if m.ndim == 3 else m for m in masks]))
        for column in missing:
            out.loc[index, column] = values[column]
    return out


def _truth(rows: pd.DataFrame) -> pd.Series:
    return rows["generation"].map({"duplicate": True, "valid": False}).astype("boolean")


def compare_with_baselines(rows: pd.DataFrame, *, seed: int = 0, n_boot: int = 1000) -> dict[str, dict[str, Any]]:
    """:func:`ripbench.hallucination.baselines.baseline_comparison` of every score variant present
    (:func:`score_variants`) against the :data:`BASELINES`, on the generations ``rows`` (with ``generation``
    and ``region_shapes``): held-out numbers, every choice on the calibration trajectories
    (:func:`calibration_split`, :data:`CALIBRATION_SHARE`, ``seed``). Variant -> result."""
    baselines = [c for c in BASELINES if c in rows.columns]
    calibration = calibration_split(rows["trajectory_id"], seed, CALIBRATION_SHARE)
    return {score: {**baseline_comparison(rows, score, baselines, _truth(rows), calibration=calibration,
                                          strata=rows["region_shapes"], area="det_foreground_pixels"
                                          if "det_foreground_pixels" in rows.columns else None,
                                          clusters=rows["trajectory_id"], n_boot=n_boot, seed=seed),
                    "region_rule": rows.attrs.get("region_shapes")}
            for score in score_variants(rows)}


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


def _sizing(results: dict[str, dict[str, Any]], trajectories: int, target: int) -> dict[str, Any]:
    """Held-out duplicates reached against ``target``, and the trajectories that would reach it at this rate."""
    first = next(iter(results.values()), None)
    reached = int(first["duplicates"]) if first else 0
    held = int(first["trajectories"]) if first else 0
    needed = int(np.ceil(trajectories * target / reached)) if reached else None
    return {"target": target, "held_out_duplicates": reached, "held_out_trajectories": held,
            "trajectories": trajectories, "short": reached < target, "trajectories_needed": needed}


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


def run_shapes_rip(out_dir: str | Path = "results/shapes-rip", *, images: int = 32, iterations: int = 12,
                   steps: int = 100, seeds: tuple[int, ...] = (0, 1, 2), mask: str = "columns", batch_size: int = 16,
                   iteration_bands: int = 3, bands: Sequence[Any] = ("default",),
                   min_duplicates: int = MIN_DUPLICATES, n_boot: int = 1000, progress: bool = True,
                   overwrite: bool = False) -> dict[str, Any]:
    """Run the shapes RIP experiment and write its tables, figure and report into ``out_dir``.

    ``images x seeds`` trajectories, each with its own keyed masks and noise, ``iterations``
    inpaintings each, once per noise band of ``bands`` (:func:`band_config`; each a run in
    ``out_dir/band-<name>``; the images are the same, only the score's band differs). Returns a dict
    with, per band (``results[band]``), the per-iteration-band detection tables (``detection``, one per
    score variant) and the comparisons with the content baselines (``comparison``); the image kinds
    per iteration (``kinds``), ``sizing`` and the paths. Resumable like any run: calling it again skips
    finished trajectories.
    """
    out_dir = Path(out_dir)
    bands = list(bands) or ["default"]
    names = [_band_name(b) for b in bands]
    if len(set(names)) < len(names):
        raise ConfigError(f"noise bands listed twice: {names}")
    results: dict[str, dict[str, Any]] = {}
    table = rows = kinds = None
    cfgs = {}
    for band, name in zip(bands, names):
        run_dir = out_dir / f"band-{name}"
        cfg = validate_config(shapes_rip_config(run_dir, images=images, iterations=iterations, steps=steps,
                                                seeds=seeds, mask=mask, batch_size=batch_size, band=band))
        cfgs[name] = cfg
        result = run_experiment(cfg, run_dir=run_dir, progress=progress, overwrite=overwrite)
        band_table = add_content_baselines(result.table, result.run_dir)
        band_rows = band_table[band_table["iteration"] > 0].copy()
        generations = generation_table(band_table)
        band_rows[["generation", "region_shapes"]] = generations
        band_rows.attrs["region_shapes"] = generations.attrs["region_shapes"]  # how shapes were counted
        det = {score: detection_by_band(band_table, bands=iteration_bands, score=score, n_boot=n_boot)
               for score in score_variants(band_table)}
        results[name] = {"detection": det, "comparison": compare_with_baselines(band_rows, n_boot=n_boot),
                         "run_dir": result.run_dir, "band": [float(cfg.hallucination.window[0]),
                                                             float(cfg.hallucination.window[1])],
                         "unit": cfg.hallucination.unit,
                         "steps_in_band": _steps_text(band_rows), "unscored": _unscored_text(band_rows)}
        if table is None:
            table, rows, kinds = band_table, band_rows, image_kinds_per_iteration(band_table)
    assert table is not None and rows is not None and kinds is not None
    first = results[names[0]]
    n_traj = int(table["trajectory_id"].nunique())
    sizing = _sizing(first["comparison"], n_traj, min_duplicates)
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
    return {"results": results, "detection": first["detection"], "comparison": first["comparison"], "kinds": kinds,
            "sizing": sizing, "paths": paths, "run_dir": first["run_dir"], "table": table}


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
