"""Running a RIP experiment, one job per module (data flows down this list):

* :mod:`~ripbench.run.keys` — named random streams (masks and noise keyed by image, policy, seed);
* :mod:`~ripbench.run.plan` — config -> trajectories, every input checked before anything is written;
* :mod:`~ripbench.run.loop` — the recursive loop for one batch: masks -> model -> metrics -> rows;
* :mod:`~ripbench.run.annotators` — ground truth from the images (Simple Shapes labeller);
* :mod:`~ripbench.run.provenance` — versions, git commit, device;
* :mod:`~ripbench.run.experiment` — :func:`run_experiment`: models, batches, store, manifest, resume.
"""

from .experiment import RunResult, build_model, run_experiment
from .keys import noise_seed, trajectory_key
from .loop import MASK_BOX_COLUMNS, TIMING_COLUMNS, run_batch
from .plan import KEY_COLUMNS, Trajectory, plan

__all__ = [
    "KEY_COLUMNS",
    "MASK_BOX_COLUMNS",
    "TIMING_COLUMNS",
    "RunResult",
    "Trajectory",
    "build_model",
    "noise_seed",
    "plan",
    "run_batch",
    "run_experiment",
    "trajectory_key",
]
