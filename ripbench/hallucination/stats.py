"""The hallucination section's numbers, from a results table: score per iteration band, ROC with a
confidence interval where ground truth exists, and the calibrated threshold's detection rates; the
comparison of every score with the content baselines is :mod:`ripbench.hallucination.baselines`'.

Ground truth (:func:`ground_truth`) comes from the Simple Shapes labeller when the run has it. With
mask boxes and the labeller's layouts it is the *generation's* label
(:func:`ripbench.hallucination.shapes_truth.generation_table`: what this iteration made in the region it
repainted, so a duplicate carried into later iterations is not counted again); otherwise the
image's ``shapes_label`` (``duplicate`` = hallucination, ``valid`` = in support, other failures such as
``empty``, ``wrong_column`` or ``malformed`` are neither and left out), else ``shapes_reason``
(``duplicate`` in the reason = hallucination, ``ok`` = in support), else ``shapes_valid``.

Scores (:func:`score_specs`) come from the manifest's ``"detectors"`` list when the run has one
(``kind`` ``"baseline"`` = a control with no model in it, e.g. the number of foreground pixels in
the repainted region), else from the known columns (``halluc_score_current`` / ``halluc_score``).
Every detection claim is put next to the best content baseline: does the score see more than the
amount of content? (:func:`ripbench.hallucination.baselines.baseline_comparison`).

Outputs of one trajectory are not independent, so every interval here resamples whole
trajectories (a cluster bootstrap, :func:`ripbench.stats.resample_ci`); a share's interval is the
union of that and the Wilson interval (which alone would ignore the clustering, while the
bootstrap alone collapses to a point when no output, or every output, is hallucinated).

Example
-------
>>> t = pd.DataFrame({"trajectory_id": ["a", "a", "b", "b"], "iteration": [1, 2, 1, 2],
...                   "halluc_score": [0.1, 0.9, 0.2, 0.8], "shapes_reason": ["ok", "duplicate", "ok", "ok"]})
>>> ground_truth(t)[0].tolist()
[False, True, False, False]
>>> roc_analysis(t, n_boot=50)["auroc"]
1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..analysis import iter_groups, observed, trajectory_uid
from ..defaults import CALIBRATION_SHARE, KEEP_SHARE  # CALIBRATION_SHARE re-exported
from ..stats import proportion_ci, resample_ci
from .evaluation import auroc, calibrate_threshold, roc_curve
from .shapes_truth import generation_table

__all__ = ["CALIBRATION_SHARE", "KNOWN_SCORES", "SCORE_COLUMNS", "ScoreSpec", "calibration_split",
           "generation_truth", "ground_truth", "iteration_bands", "oriented", "pooled_share", "roc_analysis",
           "score_bands", "score_specs", "scored_outputs", "threshold_analysis"]

#: Legacy hallucination score columns (before detector plug-ins), whole image first.
SCORE_COLUMNS = ("halluc_score", "halluc_score_current")


@dataclass(frozen=True)
class ScoreSpec:
    """One score column of a results table: ``column``, a readable ``label``, ``kind`` (``"detector"``,
    or ``"baseline"`` for a control with no model in it) and the detector ``name`` (may be empty)."""

    column: str
    label: str
    kind: str = "detector"
    name: str = ""
    direction: str = "higher-is-suspect"

    @property
    def is_baseline(self) -> bool:
        """Whether the score is a content baseline (a control with no model in it)."""
        return self.kind == "baseline"


def _known_scores() -> tuple[ScoreSpec, ...]:
    from ..detectors.catalog import BUILTINS  # torch-free: the built-in detectors' specs as data

    def spec(d: Any) -> ScoreSpec:
        return ScoreSpec(d.column, d.label, d.kind, d.name, d.direction)

    return (*[spec(d) for d in BUILTINS if d.kind != "baseline"],
            ScoreSpec("halluc_score_current", "x0 variance (repainted region; legacy halluc_score_current)"),
            ScoreSpec("halluc_score", "x0 variance (whole image; legacy halluc_score)"),
            *[spec(d) for d in BUILTINS if d.kind == "baseline"])


#: Columns known without a manifest: the built-in detectors' columns (labels from their specs), the
#: legacy aliases, and the content baselines.
KNOWN_SCORES: tuple[ScoreSpec, ...] = _known_scores()
_LEGACY_ALIASES = {"halluc_score": "det_x0_variance", "halluc_score_current": "det_x0_variance_current"}


def _present(table: pd.DataFrame, column: str) -> bool:
    return column in table.columns and bool(pd.to_numeric(table[column], errors="coerce").notna().any())


def score_specs(table: pd.DataFrame, detectors: Iterable[dict[str, Any]] | None = None) -> list[ScoreSpec]:
    """The score columns of ``table`` with values: detectors first (the current-region one, the headline,
    leading), then baselines.

    ``detectors``: the manifest's ``"detectors"`` list (dicts with ``column``, ``label``, ``kind``,
    ``name``); default: ``table.attrs["manifests"]``' lists when present, else :data:`KNOWN_SCORES`. A
    legacy ``halluc_score*`` column is left out when its detector column is there too.

    >>> t = pd.DataFrame({"halluc_score": [1.0], "halluc_score_current": [2.0], "det_foreground_pixels": [3.0]})
    >>> [(s.column, s.kind) for s in score_specs(t)]
    [('halluc_score_current', 'detector'), ('halluc_score', 'detector'), ('det_foreground_pixels', 'baseline')]
    """
    if detectors is None:
        listed = [d for m in (table.attrs.get("manifests") or {}).values() for d in ((m or {}).get("detectors") or [])]
        detectors = listed or None
    if detectors is not None:
        found: dict[str, ScoreSpec] = {}
        for d in detectors:
            column = str(d.get("column") or "det_" + str(d.get("name", "")).replace("-", "_"))
            if column not in found and _present(table, column):
                found[column] = ScoreSpec(column, str(d.get("label") or d.get("name") or column),
                                          "baseline" if d.get("kind") == "baseline" else "detector",
                                          str(d.get("name", "")), str(d.get("direction") or "higher-is-suspect"))
        specs = list(found.values())
        if not any(s.kind == "detector" for s in specs):  # a manifest without detector columns: the old ones
            specs = [s for s in KNOWN_SCORES if s.column in SCORE_COLUMNS and _present(table, s.column)] + specs
    else:
        specs = [s for s in KNOWN_SCORES if _present(table, s.column)]
    columns = {s.column for s in specs}
    specs = [s for s in specs if _LEGACY_ALIASES.get(s.column) not in columns]
    headline = ("det_x0_variance_current", "halluc_score_current")
    rank = {c: i for i, c in enumerate(headline)}
    detectors_first = sorted((s for s in specs if not s.is_baseline), key=lambda s: rank.get(s.column, len(rank)))
    return detectors_first + [s for s in specs if s.is_baseline]


def oriented(table: pd.DataFrame, specs: Iterable[ScoreSpec]) -> pd.DataFrame:
    """``table`` with the score of every ``lower-is-suspect`` spec negated, so that a higher value always means
    more suspect: every ROC, threshold and comparison of this module assumes that (a copy; ``table`` is kept).

    >>> t = pd.DataFrame({"a": [1.0, 2.0]})
    >>> oriented(t, [ScoreSpec("a", "a", direction="lower-is-suspect")])["a"].tolist()
    [-1.0, -2.0]
    """
    flip = [s.column for s in specs if s.direction == "lower-is-suspect" and s.column in table.columns]
    if not flip:
        return table
    out = table.copy()
    out[flip] = -out[flip].apply(pd.to_numeric, errors="coerce")
    return out


def calibration_split(trajectories: pd.Series, seed: int = 0, share: float = CALIBRATION_SHARE) -> np.ndarray:
    """``True`` for rows whose trajectory is in the calibration set: a seeded random ``share`` of the
    trajectories (rows of one trajectory stay together because they are correlated). Calibration
    needs valid generations only, which are plentiful; the rest evaluate, so that the rare
    duplicates go mostly to the evaluation.

    >>> calibration_split(pd.Series(["a", "a", "b", "c", "d"]), share=0.5).tolist()
    [True, True, False, True, False]
    """
    ids = np.array(sorted(trajectories.astype(str).unique()))
    order = np.random.default_rng(seed).permutation(ids.size)
    calibration = set(ids[order[: int(round(share * ids.size))]])
    return trajectories.astype(str).isin(calibration).to_numpy()


_GENERATION_COLUMNS = ("shapes_layout", "shapes_label", "mask_x0", "mask_x1", "mask_y0", "mask_y1", "trajectory_id",
                       "iteration")


def _image_size(rows: pd.DataFrame) -> int:
    """Side of the (square) images of one trajectory, from its rectangular mask boxes and mask areas."""
    box = (rows["mask_x1"].astype(float) - rows["mask_x0"].astype(float)) * (
        rows["mask_y1"].astype(float) - rows["mask_y0"].astype(float))
    area = pd.to_numeric(rows.get("mask_area", pd.Series(np.nan, index=rows.index)), errors="coerce")
    ratio = (box / area)[(area > 0) & (box > 0)]
    side = float(np.sqrt(ratio.median())) if len(ratio) else 64.0
    return 32 if abs(side - 32) < abs(side - 64) else 64


def generation_truth(table: pd.DataFrame) -> pd.DataFrame | None:
    """``generation`` and ``region_shapes`` (:func:`ripbench.hallucination.shapes_truth.generation_table`) for the
    Simple Shapes generations of ``table`` (indexed like its rows; other rows are left out), or ``None``
    when the table has no mask boxes and labeller layouts. Needs each trajectory's iteration 0."""
    if not set(_GENERATION_COLUMNS) <= set(table.columns):
        return None
    shaped = table[table["shapes_layout"].map(lambda v: isinstance(v, str))]
    if shaped.empty or not (shaped["iteration"] > 0).any():
        return None
    shaped = shaped.assign(trajectory_id=trajectory_uid(shaped))
    parts, rule = [], "columns"
    for _, rows in shaped.groupby("trajectory_id", sort=False):
        later = rows[rows["iteration"] > 0]
        if later.empty:
            continue
        part = generation_table(rows, _image_size(later))
        rule = "box" if part.attrs.get("region_shapes") == "box" else rule
        parts.append(part)
    if not parts:
        return None
    out = pd.concat(parts)
    out.attrs["region_shapes"] = rule
    return out


def ground_truth(table: pd.DataFrame) -> tuple[pd.Series | None, str]:
    """Per-row label (``True`` hallucinated, ``False`` in support, ``<NA>`` neither or unknown) and
    where it comes from; ``(None, reason)`` when the table has no ground truth.

    With mask boxes and labeller layouts the label is the generation's (:func:`generation_truth`;
    pass whole trajectories, iteration 0 included), else the image's."""
    generations = generation_truth(table)
    if generations is not None:
        y = pd.Series(pd.NA, index=table.index, dtype="boolean")
        y[generations.index[generations["generation"] == "duplicate"]] = True
        y[generations.index[generations["generation"] == "valid"]] = False
        return y, ("Simple Shapes labeller, generation level (what each generation made in the region it "
                   "repainted): 'duplicate' = a new second copy of a shape in a repainted column = hallucination, "
                   "'valid' = in support; duplicates carried over from earlier iterations, wrong shapes, malformed "
                   "and empty generations are neither and left out")
    if "shapes_label" in table.columns:
        label = table["shapes_label"].astype("string")
        y = pd.Series(pd.NA, index=table.index, dtype="boolean")
        y[label == "duplicate"] = True
        y[label == "valid"] = False
        return y, ("Simple Shapes labeller (shapes_label): 'duplicate' = hallucination, 'valid' = in support; "
                   "other failures (empty, wrong column, malformed) are neither and left out")
    if "shapes_reason" in table.columns:
        reason = table["shapes_reason"].astype("string")
        y = pd.Series(pd.NA, index=table.index, dtype="boolean")
        y[reason.str.split("+").apply(lambda parts: isinstance(parts, list) and "duplicate" in parts)] = True
        y[reason == "ok"] = False
        return y, ("Simple Shapes labeller (shapes_reason): a duplicated shape = hallucination, a valid image = in "
                   "support; other failures (empty, wrong shape, malformed) are neither and left out")
    if "shapes_valid" in table.columns:
        valid = table["shapes_valid"].astype("boolean")
        return ~valid, "Simple Shapes labeller (shapes_valid): any invalid image counts as a hallucination"
    return None, "the run has no ground truth (only Simple Shapes inputs have a labeller)"


def iteration_bands(last: int, count: int = 4) -> list[tuple[int, int]]:
    """Split iterations ``1..last`` into at most ``count`` contiguous bands of near-equal length.

    >>> iteration_bands(20), iteration_bands(3)
    ([(1, 5), (6, 10), (11, 15), (16, 20)], [(1, 1), (2, 2), (3, 3)])
    """
    if last < 1:
        return []
    edges = np.linspace(0, last, min(count, last) + 1).round().astype(int)
    return [(int(a) + 1, int(b)) for a, b in zip(edges[:-1], edges[1:])]


def scored_outputs(table: pd.DataFrame, score: str) -> pd.DataFrame:
    """The observed outputs (rows with ``iteration > 0``) of ``table`` that have a finite ``score``: what
    every statistic of a score here (and its figures) is computed on."""
    data = observed(table)
    data = data[data["iteration"] > 0]
    values = pd.to_numeric(data[score], errors="coerce") if score in data.columns else pd.Series(dtype=float)
    return data[np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))]


def _labels(table: pd.DataFrame, data: pd.DataFrame) -> tuple[pd.Series | None, str]:
    """:func:`ground_truth` of the whole table (generation labels need each trajectory's earlier rows), for ``data``'s rows."""
    labels, source = ground_truth(table)
    return (None if labels is None else labels.reindex(data.index)), source


def _cluster_ratio(k: np.ndarray, n: np.ndarray) -> Any:
    """``statistic(idx)``: pooled share ``sum k / sum n`` over the chosen trajectories."""
    def statistic(idx: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return k[idx].sum(axis=1) / n[idx].sum(axis=1)
    return statistic


def pooled_share(flags: pd.Series, clusters: pd.Series, *, n_boot: int, ci: float, seed: int) -> dict[str, Any]:
    """Share of ``True`` among ``flags`` (NA ignored) with its interval: the union of the Wilson interval
    and a cluster bootstrap (trajectories resampled). Wilson alone ignores that outputs of one
    trajectory are alike; the bootstrap alone collapses to a point when no (or every) output is flagged."""
    ok = flags.notna()
    grouped = flags[ok].astype(bool).groupby(clusters[ok])
    k, n = grouped.sum().to_numpy(float), grouped.size().to_numpy(float)
    if n.sum() == 0:
        return {"k": 0, "n": 0, "share": math.nan, "lo": math.nan, "hi": math.nan, "trajectories": 0}
    est, lo, hi = resample_ci(_cluster_ratio(k, n), len(n), n_boot=n_boot, ci=ci, seed=seed)
    _, w_lo, w_hi = proportion_ci(int(k.sum()), int(n.sum()), ci)
    return {"k": int(k.sum()), "n": int(n.sum()), "share": float(est), "lo": float(np.fmin(lo, w_lo)),
            "hi": float(np.fmax(hi, w_hi)), "trajectories": len(n)}


def score_bands(
    table: pd.DataFrame,
    score: str = "halluc_score",
    by: Sequence[str] = ("model",),
    *,
    bands: int = 4,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Distribution of ``score`` per group and iteration band, with the hallucination rate where known.

    Columns: ``*by, band`` (text ``"a-b"``), ``first``, ``last``, ``outputs`` (scored outputs),
    ``trajectories``, ``q1``, ``median``, ``q3``, ``mean`` with ``mean_lo``/``mean_hi`` (cluster
    bootstrap); with ground truth also ``labelled``, ``hallucinated``, ``halluc_rate`` with
    ``halluc_rate_lo``/``_hi``.
    """
    data = scored_outputs(table, score)
    if data.empty:
        return pd.DataFrame(columns=[*by, "band", "first", "last", "outputs", "trajectories", "median"])
    labels, _ = _labels(table, data)
    rows = []
    for key, part in iter_groups(data, by):
        for first, last in iteration_bands(int(table["iteration"].max()), bands):
            chunk = part[(part["iteration"] >= first) & (part["iteration"] <= last)]
            if chunk.empty:
                continue
            values = pd.to_numeric(chunk[score], errors="coerce").to_numpy(float)
            clusters = trajectory_uid(chunk)
            per = pd.Series(values, index=chunk.index).groupby(clusters)
            sums, counts = per.sum().to_numpy(float), per.size().to_numpy(float)
            mean, lo, hi = resample_ci(_cluster_ratio(sums, counts), len(sums), n_boot=n_boot, ci=ci, seed=seed)
            q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
            record = {**dict(zip(by, key)), "band": f"{first}-{last}" if first != last else str(first),
                      "first": first, "last": last, "outputs": len(values), "trajectories": len(sums),
                      "q1": q1, "median": median, "q3": q3, "mean": float(mean), "mean_lo": float(lo),
                      "mean_hi": float(hi)}
            if labels is not None:
                share = pooled_share(labels.loc[chunk.index], clusters, n_boot=n_boot, ci=ci, seed=seed)
                record.update(labelled=share["n"], hallucinated=share["k"], halluc_rate=share["share"],
                              halluc_rate_lo=share["lo"], halluc_rate_hi=share["hi"])
            rows.append(record)
    return pd.DataFrame(rows)


def roc_analysis(table: pd.DataFrame, score: str = "halluc_score", *, n_boot: int = 1000, ci: float = 0.95,
                 seed: int = 0) -> dict[str, Any]:
    """ROC curve and AUROC of ``score`` against the ground truth, over all scored, labelled outputs.

    Returns ``status`` (``"ok"`` or why there is no curve), ``source`` (of the ground truth),
    counts (``outputs``, ``hallucinated``, ``in_support``, ``left_out``: labelled neither,
    ``trajectories``), ``fpr``/``tpr`` (:func:`ripbench.hallucination.roc_curve`), ``auroc``
    (:func:`ripbench.hallucination.auroc`) and ``auroc_lo``/``auroc_hi`` (cluster bootstrap;
    resamples with a single class are left out).
    """
    data = scored_outputs(table, score)
    labels, source = _labels(table, data)
    out: dict[str, Any] = {"score": score, "source": source, "outputs": 0, "hallucinated": 0, "in_support": 0,
                           "left_out": 0, "trajectories": 0, "auroc": math.nan, "auroc_lo": math.nan,
                           "auroc_hi": math.nan, "fpr": np.array([]), "tpr": np.array([])}
    if labels is None:
        return {**out, "status": source}
    known = labels.notna()
    chosen = data[known]
    y = labels[known].astype(bool).to_numpy()
    s = pd.to_numeric(chosen[score], errors="coerce").to_numpy(float)
    clusters = trajectory_uid(chosen).to_numpy()
    out.update(outputs=int(len(y)), hallucinated=int(y.sum()), in_support=int((~y).sum()),
               left_out=int((~known).sum()), trajectories=int(len(set(clusters))))
    if y.all() or not y.any():
        return {**out, "status": f"needs both hallucinated and in-support outputs (got {int(y.sum())} and "
                                 f"{int((~y).sum())})"}
    fpr, tpr, _ = roc_curve(s, y)
    out.update(fpr=fpr, tpr=tpr, auroc=auroc(s, y))
    ids, inverse = np.unique(clusters, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(ids))]

    def statistic(idx: np.ndarray) -> np.ndarray:
        values = np.full(len(idx), np.nan)
        for r, pick in enumerate(idx):
            rows = np.concatenate([members[i] for i in pick])
            if 0 < y[rows].sum() < len(rows):
                values[r] = auroc(s[rows], y[rows])
        return values

    _, lo, hi = resample_ci(statistic, len(ids), n_boot=n_boot, ci=ci, seed=seed)
    return {**out, "auroc_lo": float(lo), "auroc_hi": float(hi), "status": "ok"}


def threshold_analysis(table: pd.DataFrame, score: str = "halluc_score", keep: float = KEEP_SHARE, *,
                       held_out: bool = False, n_boot: int = 1000, ci: float = 0.95,
                       seed: int = 0) -> dict[str, Any]:
    """The calibrated threshold (keeps ``keep`` of the in-support outputs, as in Aithal et al.) and
    what removing outputs above it does, each share with its cluster-bootstrap interval.

    With ``held_out=False`` calibration and evaluation use the same outputs, so the shares are
    in-sample (optimistic). With ``held_out=True`` the threshold is calibrated on the in-support
    outputs of the calibration trajectories (:func:`calibration_split` with ``seed``) and every share
    is measured on the other trajectories. Returns ``status``, ``threshold``, ``keep``, ``held_out``,
    and ``detection`` (hallucinations removed), ``retention`` (in-support outputs kept),
    ``rate_before`` and ``rate_after`` (hallucination rate among all, and among kept, outputs), each
    a dict ``k, n, share, lo, hi, trajectories``.
    """
    data = scored_outputs(table, score)
    labels, source = _labels(table, data)
    out: dict[str, Any] = {"score": score, "keep": keep, "source": source, "threshold": math.nan,
                           "held_out": held_out}
    if labels is None:
        return {**out, "status": source}
    known = labels.notna()
    chosen, y = data[known], labels[known].astype(bool)
    s = pd.to_numeric(chosen[score], errors="coerce")
    fit = np.ones(len(chosen), dtype=bool)
    if held_out:
        ids = trajectory_uid(table)  # the same split as content_evidence's on this table
        calibration = set(ids[calibration_split(ids, seed=seed)])
        fit = trajectory_uid(chosen).isin(calibration).to_numpy()
        if fit.all() or not fit.any():
            return {**out, "status": "too few trajectories to calibrate on some and measure on the others"}
    if not (~y & fit).any():
        return {**out, "status": "no in-support output to calibrate on"}
    threshold = calibrate_threshold(s[~y & fit].to_numpy(float), keep=keep)
    if held_out:
        chosen, y, s = chosen[~fit], y[~fit], s[~fit]
    removed = s > threshold
    clusters = trajectory_uid(chosen)
    kw: dict[str, Any] = {"n_boot": n_boot, "ci": ci, "seed": seed}
    return {**out, "status": "ok", "threshold": threshold,
            "detection": pooled_share(removed.where(y), clusters, **kw),
            "retention": pooled_share((~removed).where(~y), clusters, **kw),
            "rate_before": pooled_share(y.astype("boolean"), clusters, **kw),
            "rate_after": pooled_share(y.astype("boolean").where(~removed), clusters, **kw)}
