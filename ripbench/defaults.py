"""Operating points shared by the hallucination evaluations (plain numbers, no imports).

One home for each: the threshold calibration of :mod:`ripbench.hallucination`, the hallucination
section of the report (:mod:`ripbench.hallucination_stats`) and the two reproductions
(:mod:`ripbench.repro.shapes_rip`, :mod:`ripbench.repro.toy_gaussians`) read them from here.

>>> KEEP_SHARE, CALIBRATION_SHARE, GOAL_MIN_N
(0.96, 0.25, 30)
"""

from __future__ import annotations

__all__ = ["CALIBRATION_SHARE", "GOAL_MIN_N", "KEEP_SHARE"]

#: Share of the in-support (valid) outputs that the calibrated hallucination threshold keeps: the
#: operating point of Aithal et al. (NeurIPS 2024), "retaining 96% of in-support samples".
KEEP_SHARE: float = 0.96

#: Share of the trajectories (or samples) whose rows make every choice -- the best baseline, the
#: residual fit, the threshold; the others are held out and give the numbers reported.
CALIBRATION_SHARE: float = 0.25

#: Fewest cases of each kind (hallucinated and valid outputs; hallucinations evaluated) on which a
#: generated sentence may say a goal is *reached*: with fewer, a bootstrap or Wilson interval can sit
#: above the goal by chance (one duplicate gives an AUROC interval of 0.94-1.00), so the sentence
#: says the run is too small instead. The interval's lower bound must clear the goal as well.
GOAL_MIN_N: int = 30
