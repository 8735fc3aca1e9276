"""Statistics on a results table (pure functions of the tidy per-iteration table).

The table is the one :func:`ripbench.store.load_table` returns (columns explained in
``results/README.md``); :func:`load_runs` loads one or several runs into one table, on what
they share. All statistics work per group of trajectories, grouped by any columns
(``model``, ``mask_label``, ``category``, ``run``, ...):

* :func:`bootstrap_curves` - mean of a metric per iteration with a 95% bootstrap band
  (trajectories resampled with replacement, :func:`scipy.stats.bootstrap`, seeded);
* :func:`drift_stats` - drift rate (least-squares slope per iteration), area under the
  drift curve and, where it fits, the exponential approach ``d(t) = a (1 - exp(-k t))`` with
  its R² and a half-life with a bootstrap interval;
* :func:`collapse_events`, :func:`survival_curves`, :func:`median_collapse`,
  :func:`logrank_tests` - when does a trajectory cross the :class:`CollapseRule` threshold
  (Kaplan-Meier via :func:`scipy.stats.ecdf` on :class:`scipy.stats.CensoredData`, censored at
  the last observed iteration; log-rank tests via :func:`scipy.stats.logrank`);
* :func:`region_summary` - drift in the current / outside / ever / never-masked regions;
* :func:`failures` - the trajectories whose model call failed or whose metric is missing;
* :func:`group_summary` - one row per group with the main numbers and their intervals;
* :func:`population_drift` - FD / KID / CMMD of each group's images per iteration vs their originals,
  from the features the run stored (DINOv2, CLIP), with bootstrap intervals over images.

Modules, in the order the data flows: :mod:`~ripbench.analysis.loading` (loading and aligning runs,
trajectories, groups, metric values), :mod:`~ripbench.analysis.curves` (mean curves, drift and
fits, the collapse rule and its thresholds), :mod:`~ripbench.analysis.survival` (collapse events,
Kaplan-Meier, log-rank), :mod:`~ripbench.analysis.regions`, :mod:`~ripbench.analysis.failed`
(failures) and :mod:`~ripbench.analysis.summary` (the summaries and their display). Every name is
importable from ``ripbench.analysis`` itself. (No module is named ``load`` or ``failures``: those
names stay ``ripbench.load`` and the function :func:`failures`.)

Paired model comparisons are in :mod:`ripbench.compare`, the hallucination section's numbers
in :mod:`ripbench.hallucination_stats`.

Conventions: rows of a failed model call (``failed``) are treated as not observed, so a
failed trajectory is censored at its last good iteration. PSNR of identical images is
``+inf``; it is replaced by :data:`PSNR_CAP_DB` so that means, slopes and areas stay finite.

Example
-------
>>> from ripbench.analysis import load_runs, group_summary   # doctest: +SKIP
>>> group_summary(load_runs("results/quick"))                 # doctest: +SKIP
"""

from __future__ import annotations

from .curves import (
    DEFAULT_THRESHOLDS,
    LPIPS_REFERENCE_POINTS,
    MIN_FIT_ITERATIONS,
    MIN_FIT_R2,
    CollapseRule,
    bootstrap_curves,
    collapse_rule,
    collapse_rule_note,
    drift_stats,
    drift_values,
    exponential_approach,
    fit_exponential,
    trajectory_auc,
    trajectory_slopes,
)
from .decomposition import decomposition_arms, dominant_sources, drift_decomposition
from .failed import failures
from .loading import (
    PAIRING_FIELDS,
    PSNR_CAP_DB,
    TRAJECTORY_COLUMNS,
    check_compatible,
    iter_groups,
    load_runs,
    metric_direction,
    metric_values,
    observed,
    present_metrics,
    run_differences,
    trajectory_keys,
    trajectory_matrix,
    trajectory_uid,
    with_keys,
)
from .population import FD_MIN_IMAGES_NOTE, feature_matrix, has_features, population_drift, run_features
from .regions import (
    REGION_MEANINGS,
    local_metric,
    model_ignores,
    model_spaces,
    region_columns,
    region_summary,
    run_handoffs,
)
from .summary import clip_iterations, format_summary, group_summary, summary_metrics
from .survival import collapse_events, kaplan_meier, logrank_tests, median_collapse, survival_curves

__all__ = [
    "DEFAULT_THRESHOLDS", "FD_MIN_IMAGES_NOTE", "LPIPS_REFERENCE_POINTS", "MIN_FIT_ITERATIONS", "MIN_FIT_R2",
    "PAIRING_FIELDS",
    "PSNR_CAP_DB", "REGION_MEANINGS", "TRAJECTORY_COLUMNS", "CollapseRule", "bootstrap_curves",
    "check_compatible", "clip_iterations", "collapse_events", "collapse_rule", "collapse_rule_note",
    "drift_stats", "drift_values", "exponential_approach", "failures", "feature_matrix", "fit_exponential",
    "format_summary", "group_summary", "has_features", "iter_groups", "kaplan_meier", "load_runs", "logrank_tests",
    "median_collapse", "metric_direction", "metric_values", "observed", "population_drift", "present_metrics",
    "region_columns", "region_summary", "local_metric", "model_ignores", "model_spaces", "run_handoffs", "decomposition_arms",
    "dominant_sources", "drift_decomposition", "run_differences", "run_features", "summary_metrics", "survival_curves",
    "trajectory_auc",
    "trajectory_keys", "trajectory_matrix", "trajectory_slopes", "trajectory_uid", "with_keys",
]
