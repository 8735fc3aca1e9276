"""Deprecated location: the run loop now lives in :mod:`ripbench.run` (plan, loop, experiment)."""

from .run import KEY_COLUMNS, TIMING_COLUMNS, RunResult, Trajectory, plan, run_experiment
from .run.annotators import annotator_for, shapes_annotations

__all__ = ["KEY_COLUMNS", "TIMING_COLUMNS", "RunResult", "Trajectory", "annotator_for", "plan", "run_experiment",
           "shapes_annotations"]
