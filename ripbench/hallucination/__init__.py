"""Hallucination detection by the variance of the predicted clean sample (x0) trajectory.

Aithal et al., "Understanding Hallucinations in Diffusion Models through Mode Interpolation"
(NeurIPS 2024) observe that a diffusion model "knows" when it leaves the support of its
training data: its prediction of the clean sample, ``x0_hat``, keeps changing over the final
reverse steps. The score is the population variance of ``x0_hat`` over the last ``K`` steps,
per coordinate, averaged over coordinates (the paper's toy code: ``K = 10`` of ``T = 1000``).
Samples with a high score are flagged; the threshold is calibrated to keep a target share of
known in-support samples.

This package knows nothing about models: it works on any ``K x B x ...`` tensor (CPU or GPU)
and on plain score arrays. By job:

* :mod:`~ripbench.hallucination.score` - the band score kernel that models and the run loop call,
  and the run table's ``halluc_*`` columns (torch imported only when scoring);
* :mod:`~ripbench.hallucination.evaluation` - the calibrated threshold, detection report, ROC and AUROC
  of plain score arrays;
* :mod:`~ripbench.hallucination.stats` - the same from a results table, with intervals that resample
  whole trajectories (the report's hallucination section);
* :mod:`~ripbench.hallucination.baselines` - every score against the content baselines (controls
  with no model in them) on held-out trajectories;
* :mod:`~ripbench.hallucination.shapes_truth` - the Simple Shapes ground truth of each generation of a
  RIP table (:func:`~ripbench.hallucination.shapes_truth.generation_table`).

The noise bands (:class:`NoiseBand`, :func:`parse_band`, the levels of a schedule) live in the
torch-free :mod:`ripbench.noise_band` and are importable here too.

Example
-------
>>> import torch
>>> x0 = torch.zeros(10, 3, 2)            # K=10 steps, B=3 samples, 2 coordinates
>>> x0[:, 1] = torch.arange(10.0)[:, None]  # sample 1 keeps moving
>>> trajectory_variance(x0).tolist()
[0.0, 8.25, 0.0]
>>> t = calibrate_threshold([0.1, 0.2, 0.3, 0.4], keep=0.75)
>>> t
0.3
>>> detection_report([0.1, 0.2, 0.9], [False, False, True], t)["detection_rate"]
1.0

Inside the RIP loop the steps are chosen by **noise level**, not by position: every recorded x0
carries the noise level of its step, by default ``sigma/sqrt(alpha_bar)`` computed from the
model's own schedule (0 = clean; ``s/(1-s)`` for flow matching; see :class:`NoiseBand` for the
units), and the score uses the steps whose level lies in a fixed low-noise band
(default :data:`DEFAULT_BAND`; the authors' window is :data:`PAPER_BAND`). The same band then
means the same amount of noise whatever the sampler, its number of steps and the training
schedule, so scores of one model are comparable across samplers and step counts.

>>> levels = torch.tensor([0.9, 0.5, 0.2, 0.03])     # sigma levels of a 4-step sampler, oldest first
>>> x0 = torch.tensor([0.0, 1.0, 2.0, 4.0])[:, None].expand(4, 2)  # K=4 steps, B=2 samples
>>> scores, steps = band_variance(x0, levels, DEFAULT_BAND)
>>> [round(v, 4) for v in scores.tolist()], steps     # variance of 1, 2, 4 (the 3 in-band steps)
([1.5556, 1.5556], 3)
"""

from __future__ import annotations

from ripbench.hallucination.evaluation import (
    ArrayLike,
    auroc,
    calibrate_threshold,
    detection_report,
    roc_curve,
)
from ripbench.hallucination.score import (
    HALLUC_STATUSES,
    ScoreWindow,
    band_variance,
    hallucination_columns,
    region_mask,
    trajectory_variance,
)
from ripbench.noise_band import (  # the band code lives there (torch-free)
    BAND_NAMES,
    BAND_UNITS,
    DEFAULT_BAND,
    DEFAULT_UNIT,
    DEFAULT_WIDENING,
    LEGACY_DEFAULT_BAND,
    MIN_BAND_STEPS,
    PAPER_BAND,
    PAPER_SCHEDULE,
    PAPER_WINDOW_STEPS,
    NoiseBand,
    as_band,
    band_unit,
    flow_sigma_levels,
    in_band,
    linear_schedule_sigmas,
    named_band,
    paper_band,
    paper_window_levels,
    parse_band,
    sigma_levels,
)

__all__ = [
    "BAND_NAMES",
    "BAND_UNITS",
    "HALLUC_STATUSES",
    "DEFAULT_BAND",
    "DEFAULT_UNIT",
    "DEFAULT_WIDENING",
    "LEGACY_DEFAULT_BAND",
    "MIN_BAND_STEPS",
    "PAPER_BAND",
    "PAPER_SCHEDULE",
    "PAPER_WINDOW_STEPS",
    "NoiseBand",
    "ScoreWindow",
    "ArrayLike",
    "as_band",
    "auroc",
    "band_unit",
    "band_variance",
    "calibrate_threshold",
    "detection_report",
    "flow_sigma_levels",
    "hallucination_columns",
    "in_band",
    "linear_schedule_sigmas",
    "named_band",
    "paper_band",
    "paper_window_levels",
    "region_mask",
    "parse_band",
    "roc_curve",
    "sigma_levels",
    "trajectory_variance",
]
