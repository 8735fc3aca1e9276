"""The report's semantic section: per-image semantic drift (DINOv2 / CLIP distances, from their specs) and
population drift per iteration (FD / KID / CMMD from the features the run stored)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .. import analysis, plots
from ..errors import ResultsError
from ..formatting import count, fmt, interval_text
from ..metrics.registry import get_metric_spec
from ..population import CMMD_SCALE, CMMD_SIGMA, KID_SUBSET_SIZE, KID_SUBSETS, POPULATION_METRICS
from .document import Figure, Section

if TYPE_CHECKING:
    from .sections import Context

__all__ = ["POPULATION_BOOT", "SEMANTIC_METRICS", "population_table", "semantic_section"]

#: The per-image metrics this section reads (their columns ``<name>_orig``).
SEMANTIC_METRICS = ("dinov2", "clip")
#: Bootstrap resamples of the population intervals (each one recomputes FD, KID and CMMD).
POPULATION_BOOT = 200


def _label(key: tuple[object, ...]) -> str:
    return " / ".join(str(v) for v in key) or "all"


def population_table(population: pd.DataFrame, by: list[str], iterations: list[int]) -> pd.DataFrame:
    """A table for papers: one row per group and iteration, each population metric as ``value [lo, hi]``, and n."""
    rows = population[population["iteration"].isin(iterations)]
    out = []
    for key, group in rows.groupby([*by, "iteration"], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        record = dict(zip([*by, "iteration"], key))
        for _, r in group.iterrows():
            record[str(r["label"])] = interval_text(r["value"], r["lo"], r["hi"])
        record["n images"] = int(group["n"].max())
        out.append(record)
    frame = pd.DataFrame(out)
    order = {k: i for i, k in enumerate(plots.ordered_groups(population, by))}
    if len(frame):
        frame["_o"] = [order.get(tuple(r[c] for c in by), 0) for _, r in frame.iterrows()]
        frame = frame.sort_values(["_o", "iteration"], kind="stable").drop(columns="_o")
    return frame.reset_index(drop=True)


def _semantic_sentences(c: Context, last: int) -> list[str]:
    """Per semantic metric: which group drifted most by the last iteration (direction and label from its spec)."""
    lines = []
    for name in SEMANTIC_METRICS:
        column = f"{name}_orig"
        if not analysis.present_metrics(c.table, [column]):
            continue
        spec = get_metric_spec(name)
        curves = analysis.bootstrap_curves(c.table, column, c.by, **c.kw)
        final = curves[curves["iteration"] == last].dropna(subset=["mean"])
        if final.empty:
            continue
        worst = final.loc[(final["mean"] * spec.direction).idxmax()]
        best = final.loc[(final["mean"] * spec.direction).idxmin()]
        text = (f"{spec.label} to the original ({spec.direction_word}) at iteration {last}: furthest for "
                f"{_label(tuple(worst[b] for b in c.by))}, {interval_text(worst['mean'], worst['lo'], worst['hi'])} "
                f"(n = {int(worst['n'])})")
        if len(final) > 1:
            text += (f"; closest for {_label(tuple(best[b] for b in c.by))}, "
                     f"{interval_text(best['mean'], best['lo'], best['hi'])} (n = {int(best['n'])})")
        lines.append(text + "." + _overlap(final, c.by, "mean", spec.direction))
    return lines


def _overlap(rows: pd.DataFrame, by: list[str], value: str, direction: int) -> str:
    """`` The interval of <furthest> overlaps ...`` when the furthest group's interval overlaps the runner-up's (else ``""``)."""
    ranked = rows.dropna(subset=[value]).sort_values(value, key=lambda v: v * direction, ascending=False)
    if len(ranked) < 2:
        return ""
    first, second = ranked.iloc[0], ranked.iloc[1]
    if any(pd.isna(v) for v in (first["lo"], first["hi"], second["lo"], second["hi"])):
        return ""
    if first["lo"] <= second["hi"] and second["lo"] <= first["hi"]:
        return (f" The interval of {_label(tuple(first[b] for b in by))} overlaps that of "
                f"{_label(tuple(second[b] for b in by))} ({fmt(second[value])}), so "
                "this run does not establish which group drifted furthest.")
    return ""


def _population_sentences(population: pd.DataFrame, by: list[str], last: int) -> list[str]:
    lines = []
    final = population[population["iteration"] == last]
    for metric, facts in POPULATION_METRICS.items():
        rows = final[final["metric"] == metric].dropna(subset=["value"])
        if rows.empty:
            continue
        sign = 1 if facts["direction"] == "lower is better" else -1
        worst = rows.loc[(rows["value"] * sign).idxmax()]
        text = (f"{facts['label']} of the images at iteration {last} from their originals ({facts['direction']}): "
                f"furthest for {_label(tuple(worst[b] for b in by))}, "
                f"{interval_text(worst['value'], worst['lo'], worst['hi'])} (n = {count(int(worst['n']), 'image')})")
        if metric == "fd_dinov2" and bool(worst["fd_small_n"]):
            text += f", fewer images than the {int(worst['dim'])} feature dimensions: FD is biased at this n"
        if metric == "fd_dinov2" and rows["n"].nunique() > 1:
            text += (f"; the groups' n differ ({int(rows['n'].min())}-{int(rows['n'].max())} images)"
                     + ("" if bool(worst["fd_small_n"]) else " and FD is biased upward at small n")
                     + ", so this comparison is not at equal n")
        lines.append(text + "." + _overlap(rows, by, "value", sign))
    return lines


def semantic_section(c: Context) -> Section | None:
    """Semantic drift per image and population drift per iteration; ``None`` when the run has neither."""
    per_image = analysis.present_metrics(c.table, [f"{m}_orig" for m in SEMANTIC_METRICS])
    problem = None
    try:
        population = analysis.population_drift(c.table, c.by, n_boot=min(int(c.kw.get("n_boot", POPULATION_BOOT)),
                                                                         POPULATION_BOOT),
                                               ci=c.ci, seed=int(c.kw.get("seed", 0)))
    except ResultsError as exc:  # e.g. runs compared whose features come from different backbones
        population, problem = pd.DataFrame(), str(exc)
    if not per_image and population.empty and problem is None:
        return None
    last = int(analysis.observed(c.table)["iteration"].max())
    section = Section("semantic", "Semantic and population drift", _semantic_sentences(c, last))
    if per_image:
        section.figures.append(Figure(
            "semantic_curves", "Semantic drift per image",
            f"Mean embedding distance (1 - cosine) of each iteration's image to its original, per group; band: "
            f"{c.ci:.0%} bootstrap CI of the mean (trajectories resampled); n: trajectories.",
            plots.collapse_curves(c.table, c.fig_dir / "semantic_curves.png", per_image, c.by, formats=("pdf",),
                                  **c.kw)))
    if population.empty:
        if problem:
            section.notes.append(f"No population metrics: {problem}.")
        elif per_image:  # the distances are in the table, the features are not
            folders = ", ".join(f"{d}/features" for d in (c.table.attrs.get("run_dirs") or {}).values())
            section.notes.append(f"No population metrics: the results have {', '.join(per_image)} but no stored "
                                 f"features ({folders or 'features/'} missing or empty: moved or deleted?); rerun "
                                 "the run with --overwrite to compute them again.")
        else:
            section.notes.append("The run stored no features (no dinov2 or clip metric), so it has no population "
                                 "metrics.")
        return section
    section.sentences += _population_sentences(population, c.by, last)
    c.write("population_csv", "population.csv", population.to_csv(index=False))
    shown = sorted({1, max(1, last // 4), max(1, last // 2), last} & set(population["iteration"]))
    section.tables.append((f"Population distance of each group's images from their originals (value [{c.ci:.0%} "
                           "CI], images resampled)", population_table(population, c.by, shown)))
    section.figures.append(Figure(
        "population_curves", "Population drift",
        f"Distance between the set of originals and the set of images at each iteration, per group; band: "
        f"{c.ci:.0%} bootstrap CI ({POPULATION_BOOT} resamples of the images); n: images.",
        plots.population_curves(population, c.fig_dir / "population_curves.png", c.by, formats=("pdf",))))
    small = population[population["fd_small_n"] & population["value"].notna()]
    notes = [f"FD-DINOv2: Fréchet distance of Gaussians fitted to DINOv2 features (Stein et al. 2023). KID: unbiased "
             f"MMD² with the cubic polynomial kernel on the same features ({KID_SUBSETS} subsets of at most "
             f"{KID_SUBSET_SIZE}; an image's original and its iterate are a pair, left out of the cross term). CMMD: "
             f"MMD² with a Gaussian kernel (sigma {CMMD_SIGMA:g}) on unit CLIP embeddings, times {CMMD_SCALE:g} "
             "(Jayasumana et al. 2024). All from the features stored with the run (population.csv: every iteration).",
             "Intervals resample images (an original and its iterate together); with several seeds an image counts "
             "once per seed."]
    if not small.empty:
        low, high = int(small["n"].min()), int(small["n"].max())
        notes.append(f"FD rests on n = {low if low == high else f'{low}-{high}'} images per group, fewer than "
                     f"its {int(small['dim'].max())} feature dimensions: " + analysis.FD_MIN_IMAGES_NOTE + ".")
    if population["value"].isna().any() or (population["n"] < 3).any():
        notes.append("n/a: FD and KID need at least 2 images per group, a value's interval at least 3 (a group with "
                     "fewer shows the value alone).")
    section.notes += notes
    return section
