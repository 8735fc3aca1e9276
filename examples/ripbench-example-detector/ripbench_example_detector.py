"""Out-of-tree ripbench detectors: a score from the model and a content baseline.

It shows the whole detector contract: one :class:`ripbench.detectors.DetectorSpec` per
detector, holding its facts (label, kind, direction, what it needs) and a batched function of
a :class:`ripbench.detectors.DetectorBatch` returning one value per item on the batch's device.
Install this folder (``pip install ./examples/ripbench-example-detector``) and
``ripbench detectors -v`` lists both; ``--set hallucination.detectors=[x0-variance-current,x0-last-change]``
adds their columns (``det_x0_last_change``, ``det_output_brightness``) to a run's table, and
their specs go into the run's manifest.
"""

from __future__ import annotations

import torch

from ripbench.detectors import DetectorBatch, DetectorSpec, region_mean


def last_change(batch: DetectorBatch) -> torch.Tensor:
    """Mean absolute change between the last two recorded x0 predictions, whole image.

    Needs only the trajectory (no noise levels, no band): the final step's correction.
    """
    x0 = batch.x0_trajectory
    assert x0 is not None  # the loop calls a detector only when its needs are there
    if x0.shape[0] < 2:
        return batch.nan()
    return (x0[-1].float() - x0[-2].float()).abs().flatten(1).mean(dim=1)


def brightness(batch: DetectorBatch) -> torch.Tensor:
    """Mean grey value (channel mean) of the output inside this iteration's mask (NaN if empty)."""
    return region_mean(batch.output.float().mean(dim=1, keepdim=True), batch.mask)


LAST_CHANGE = DetectorSpec(
    name="x0-last-change", label="last x0 change", kind="detector", compute=last_change,
    needs=("x0_trajectory",),
    description="mean absolute difference between the last two recorded x0 predictions (example plug-in)",
)

BRIGHTNESS = DetectorSpec(
    name="output-brightness", label="output brightness in region (baseline)", kind="baseline",
    compute=brightness, needs=("output", "mask"),
    description="control, no model: mean grey value of the output inside the mask (example plug-in)",
)
