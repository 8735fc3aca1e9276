"""What the run loop calls every iteration: the enabled detectors, one column each.

>>> import torch
>>> from ripbench.models.base import InpaintResult
>>> suite = DetectorSuite(["x0-variance-current", "foreground-pixels"])
>>> out = InpaintResult(images=torch.ones(2, 3, 4, 4))               # a classical model: no trajectory
>>> cols = suite.columns(out, torch.ones(2, 1, 4, 4), out.images)
>>> {k: v.tolist() for k, v in cols.items()}
{'det_x0_variance_current': [nan, nan], 'det_foreground_pixels': [16.0, 16.0]}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ripbench.detectors.registry import BUILTIN_DETECTORS, resolve_detectors
from ripbench.detectors.spec import DetectorBatch, DetectorSpec

if TYPE_CHECKING:
    import torch

    from ripbench.hallucination import ScoreWindow
    from ripbench.models.base import InpaintResult

__all__ = ["ALIASES", "DetectorSuite"]

#: Legacy columns kept for one release: ``halluc_score*`` hold exactly the values of these detector columns.
ALIASES: dict[str, str] = {"halluc_score": "det_x0_variance", "halluc_score_current": "det_x0_variance_current"}


class DetectorSuite:
    """The enabled detectors of a run (default: every built-in), in order.

    Args:
        names: detector names or ``"module:attr"`` references (see
            :func:`~ripbench.detectors.registry.get_detector`); ``None`` = the built-ins.
    """

    def __init__(self, names: Sequence[str] | None = None) -> None:
        self.specs: list[DetectorSpec] = resolve_detectors(list(BUILTIN_DETECTORS) if names is None else names)

    def columns(self, result: InpaintResult, masks: torch.Tensor, output: torch.Tensor,
                inputs: torch.Tensor | None = None, window: ScoreWindow | None = None) -> dict[str, torch.Tensor]:
        """``{column: B float32 values on the output's device}`` for one iteration.

        Args:
            result: the model's return value (its ``x0_trajectory`` and ``x0_noise_levels``).
            masks: ``B x 1 x H x W`` this iteration's masks.
            output: ``B x 3 x H x W`` the output as the loop keeps it (checked, clamped).
            inputs: the images the model was given.
            window: the run's noise band and fewest steps; ``None`` when the model is not asked for x0
                (then every detector needing the trajectory gives NaN).
        """
        traj = result.x0_trajectory if window is not None else None
        batch = DetectorBatch(output=output, mask=masks, input=inputs, x0_trajectory=traj,
                              noise_levels=getattr(result, "x0_noise_levels", None) if traj is not None else None,
                              window=window)
        return {spec.column: spec(batch) for spec in self.specs}

    def describe(self) -> list[dict[str, Any]]:
        """The manifest's ``"detectors"`` entry: every enabled spec as plain data."""
        return [spec.describe() for spec in self.specs]
