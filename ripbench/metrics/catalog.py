"""The built-in metrics' specs, as plain data: what they are, not how they are computed.

Declared here, without torch, so that validating a config, listing metrics and analysing a
results table (labels, directions, ranges) never import torch or the LPIPS package. Each
spec's ``compute`` is a ``"module:attr"`` reference, imported when the metric is built:

* ``lpips`` -> :class:`ripbench.metrics.lpips_metric.LPIPS`;
* ``ssim`` -> :class:`ripbench.metrics.ssim.SSIMMetric`;
* ``psnr``, ``mse`` -> :class:`ripbench.metrics.pixel.PSNRMetric`, :class:`~ripbench.metrics.pixel.MSEMetric`.

The specs stay importable from those modules too (``from ripbench.metrics.ssim import SSIM_SPEC``).

>>> SSIM_SPEC.minimum_size(), LPIPS_SPEC.minimum_size(net="vgg"), PSNR_SPEC.identity
(11, 16, inf)
"""

from __future__ import annotations

import math
from typing import Any

from ripbench.errors import ConfigError
from ripbench.metrics.spec import MetricSpec

__all__ = [
    "LPIPS_MIN_SIZE",
    "LPIPS_NETS",
    "LPIPS_SPEC",
    "MSE_SPEC",
    "PSNR_SPEC",
    "SSIM_RADIUS",
    "SSIM_SIGMA",
    "SSIM_SPEC",
    "SSIM_TRUNCATE",
    "SSIM_WIN_SIZE",
]

# --- LPIPS ----------------------------------------------------------------------------------------

#: The LPIPS backbones.
LPIPS_NETS: tuple[str, ...] = ("alex", "vgg", "squeeze")
#: Smallest square image each backbone accepts (its pooling stack needs this much).
LPIPS_MIN_SIZE: dict[str, int] = {"alex": 31, "squeeze": 17, "vgg": 16}


def _check_net(net: str) -> None:
    if net not in LPIPS_NETS:
        raise ConfigError(f"unknown LPIPS net {net!r}; allowed: {', '.join(LPIPS_NETS)}")


def _lpips_min_size(net: str = "alex", weights: Any = None) -> int:
    _check_net(net)
    return LPIPS_MIN_SIZE[net]


LPIPS_SPEC = MetricSpec(
    name="lpips", label="LPIPS", higher_is_better=False, range=(0.0, math.inf), identity=0.0,
    compute="ripbench.metrics.lpips_metric:LPIPS", min_size=_lpips_min_size,
    description="learned perceptual distance (LPIPS v0.1, Zhang et al. 2018; genuine backbone weights only)",
    options={"net": ("alex", "backbone: alex, vgg or squeeze"),
             "weights": (None, "backbone weights file or folder (default: $RIPBENCH_LPIPS_WEIGHTS, torchvision)")},
    region_note="spatial LPIPS map (each layer upsampled to the image, summed) averaged over the region's pixels",
)

# --- SSIM (scikit-image's settings; the computation is in ripbench.metrics.ssim) --------------------

#: Gaussian window's sigma.
SSIM_SIGMA = 1.5
#: The window is truncated at this many sigmas.
SSIM_TRUNCATE = 3.5
#: scipy.ndimage's kernel radius: 5.
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
#: 11, the window scikit-image crops by (and the smallest image side SSIM accepts).
SSIM_WIN_SIZE = 2 * SSIM_RADIUS + 1

SSIM_SPEC = MetricSpec(
    name="ssim", label="SSIM", higher_is_better=True, range=(-1.0, 1.0), identity=1.0,
    compute="ripbench.metrics.ssim:SSIMMetric", min_size=SSIM_WIN_SIZE,
    description="structural similarity (scikit-image settings: Gaussian window, sigma 1.5)",
    region_note="uncropped SSIM map (border included) averaged over the region's pixels",
)

# --- MSE and PSNR ---------------------------------------------------------------------------------

MSE_SPEC = MetricSpec(
    name="mse", label="MSE", higher_is_better=False, range=(0.0, 1.0), identity=0.0,
    compute="ripbench.metrics.pixel:MSEMetric",
    description="mean squared error over the pixels and RGB channels (data range 1)",
    region_note="mean squared error over the region's pixels",
)
PSNR_SPEC = MetricSpec(
    name="psnr", label="PSNR", higher_is_better=True, range=(0.0, math.inf), identity=math.inf,
    compute="ripbench.metrics.pixel:PSNRMetric",
    units="dB", description="peak signal-to-noise ratio, 10 log10(1 / MSE); +inf for identical pixels",
    region_note="PSNR of the region's mean squared error",
)
