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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import validate_config
from ..defaults import CALIBRATION_SHARE, KEEP_SHARE
from ..errors import ConfigError
from ..hallucination import calibrate_threshold
from ..hallucination.baselines import baseline_comparison
from ..hallucination.shapes_truth import GENERATION_LABELS, generation_table
from ..hallucination.stats import (
    calibration_split,
    iteration_bands,
    pooled_share,
    roc_analysis,
)
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


def _sizing(results: dict[str, dict[str, Any]], trajectories: int, target: int) -> dict[str, Any]:
    """Held-out duplicates reached against ``target``, and the trajectories that would reach it at this rate."""
    first = next(iter(results.values()), None)
    reached = int(first["duplicates"]) if first else 0
    held = int(first["trajectories"]) if first else 0
    needed = int(np.ceil(trajectories * target / reached)) if reached else None
    return {"target": target, "held_out_duplicates": reached, "held_out_trajectories": held,
            "trajectories": trajectories, "short": reached < target, "trajectories_needed": needed}


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
    from .shapes_rip_report import steps_text, unscored_text, write_outputs

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
                         "steps_in_band": steps_text(band_rows), "unscored": unscored_text(band_rows)}
        if table is None:
            table, rows, kinds = band_table, band_rows, image_kinds_per_iteration(band_table)
    assert table is not None and rows is not None and kinds is not None
    first = results[names[0]]
    n_traj = int(table["trajectory_id"].nunique())
    sizing = _sizing(first["comparison"], n_traj, min_duplicates)
    paths = write_outputs(out_dir, results, table, rows, kinds, sizing, images=images, seeds=seeds,
                          iterations=iterations, steps=steps, mask=mask, iteration_bands=iteration_bands)
    return {"results": results, "detection": first["detection"], "comparison": first["comparison"], "kinds": kinds,
            "sizing": sizing, "paths": paths, "run_dir": first["run_dir"], "table": table}


