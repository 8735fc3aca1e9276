"""The built-in detectors' and baselines' specs, as plain data: what they are, not how they are computed.

Declared here, without torch, so that validating a config (``hallucination.detectors``), listing
detectors and analysing a results table (labels, kinds, directions) never import torch. Each
spec's ``compute`` is a ``"module:attr"`` reference to its function in
:mod:`ripbench.detectors.builtins` (which explains what each computes), imported on first call.
The specs stay importable from there too (``from ripbench.detectors.builtins import X0_VARIANCE``).

>>> X0_VARIANCE_CURRENT.column, EDGE_DENSITY.kind
('det_x0_variance_current', 'baseline')
"""

from __future__ import annotations

from ripbench.detectors.spec import DetectorSpec

__all__ = [
    "BUILTINS",
    "EDGE_DENSITY",
    "EDGE_PIXELS",
    "EDGE_THRESHOLD",
    "ERODE_CELLS",
    "FOREGROUND_PIXELS",
    "FOREGROUND_THRESHOLD",
    "MIN_COMPONENT_CELLS",
    "X0_VARIANCE",
    "X0_VARIANCE_COMPONENT",
    "X0_VARIANCE_CURRENT",
    "X0_VARIANCE_CURRENT_PAPER",
    "X0_VARIANCE_ERODED",
]

#: ``x0-variance-eroded``: the mask is eroded by this many cells of the trajectory's resolution.
ERODE_CELLS: int = 2
#: ``x0-variance-component``: smaller foreground components are ignored (antialiased specks).
MIN_COMPONENT_CELLS: int = 4
#: Foreground: grey value above this.
FOREGROUND_THRESHOLD: float = 0.5
#: Edge pixel: Sobel gradient magnitude at least this (half the response to a full 0 -> 1 step).
EDGE_THRESHOLD: float = 0.25

_NEEDS_X0 = ("x0_trajectory", "noise_levels", "mask")


X0_VARIANCE = DetectorSpec(
    name="x0-variance", label="x0 variance (whole image)", kind="detector",
    compute="ripbench.detectors.builtins:x0_variance", needs=("x0_trajectory", "noise_levels"),
    description="variance of the predicted clean image over the denoising steps in the noise band, "
                "averaged over the whole image (Aithal et al.)")
X0_VARIANCE_CURRENT = DetectorSpec(
    name="x0-variance-current", label="x0 variance (repainted region)", kind="detector",
    compute="ripbench.detectors.builtins:x0_variance_current", needs=_NEEDS_X0,
    description="x0 variance over the in-band steps, averaged inside this iteration's mask (the headline score)")
X0_VARIANCE_CURRENT_PAPER = DetectorSpec(
    name="x0-variance-current-paper", label="x0 variance (repainted region, paper's band)", kind="detector",
    compute="ripbench.detectors.builtins:x0_variance_current_paper", needs=_NEEDS_X0,
    description="x0 variance inside this iteration's mask over the recorded steps in the paper's band (the "
                "authors' last 10 of 1000 steps as a noise level); needs a run band containing it (the default does)")
X0_VARIANCE_ERODED = DetectorSpec(
    name="x0-variance-eroded", label="x0 variance (eroded region)", kind="detector",
    compute="ripbench.detectors.builtins:x0_variance_eroded", needs=_NEEDS_X0,
    description=f"x0 variance over the in-band steps inside the mask eroded by {ERODE_CELLS} cells of the "
                "trajectory's resolution (the seam left out); NaN when nothing is left")
X0_VARIANCE_COMPONENT = DetectorSpec(
    name="x0-variance-component", label="x0 variance (worst component)", kind="detector",
    compute="ripbench.detectors.builtins:x0_variance_component", needs=(*_NEEDS_X0, "output"),
    description="largest mean in-band x0 variance over the 8-connected components of the output's foreground "
                f"(grey > {FOREGROUND_THRESHOLD}) inside the mask, at the trajectory's resolution, of at least "
                f"{MIN_COMPONENT_CELLS} cells; NaN when the region holds none")
FOREGROUND_PIXELS = DetectorSpec(
    name="foreground-pixels", label="foreground pixels in region", kind="baseline",
    compute="ripbench.detectors.builtins:foreground_pixels", needs=("output", "mask"),
    description=f"control, no model: number of output pixels with grey (channel mean) > {FOREGROUND_THRESHOLD} "
                "inside the mask (for Simple Shapes: the amount of shape)")
EDGE_PIXELS = DetectorSpec(
    name="edge-pixels", label="edge pixels in region", kind="baseline",
    compute="ripbench.detectors.builtins:edge_pixels", needs=("output", "mask"),
    description=f"control, no model: number of output pixels inside the mask with Sobel magnitude >= "
                f"{EDGE_THRESHOLD} (kernels / 8, replicated border)")
EDGE_DENSITY = DetectorSpec(
    name="edge-density", label="edge density in region", kind="baseline",
    compute="ripbench.detectors.builtins:edge_density", needs=("output", "mask"),
    description="control, no model: mean Sobel gradient energy gx^2 + gy^2 of the output's grey image "
                "inside the mask (for natural images)")

#: The built-ins in their default order.
BUILTINS: tuple[DetectorSpec, ...] = (X0_VARIANCE, X0_VARIANCE_CURRENT, X0_VARIANCE_ERODED, X0_VARIANCE_COMPONENT,
                                      X0_VARIANCE_CURRENT_PAPER, FOREGROUND_PIXELS, EDGE_PIXELS, EDGE_DENSITY)
