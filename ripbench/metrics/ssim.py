"""Batched SSIM that reproduces scikit-image's ``structural_similarity`` (Wang et al. 2004 settings).

Reference call (scikit-image is the ground truth; agreement is better than 1e-4 in float32)::

    skimage.metrics.structural_similarity(
        a_hwc, b_hwc, channel_axis=-1, data_range=1.0,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False)

That is: an 11-tap Gaussian window (sigma 1.5, truncated at 3.5 sigma), K1 = 0.01,
K2 = 0.03, population (not sample) covariances, each RGB channel separately, borders
filled by symmetric reflection (scipy's ``mode='reflect'``).

* **Whole-image value** (``mask=None``): like scikit-image, the SSIM map is averaged
  after cropping a border of ``(win_size - 1) // 2 = 5`` pixels, then over the 3 channels.
  Images must therefore be at least 11 x 11.
* **Region value** (``mask`` given): the *uncropped* SSIM map (scikit-image's
  ``full=True`` map, border pixels included, so regions touching the image edge are
  not lost) is averaged over the region's pixels and the 3 channels. An empty region
  gives NaN. Consequently the inside/outside values are not a weighted split of the
  whole-image value (which excludes the border).

Example
-------
>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> a = torch.rand(2, 3, 32, 32, generator=g)
>>> ssim(a, a).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ripbench.errors import InputError
from ripbench.metrics.regions import binary_mask, check_images, masked_mean
from ripbench.metrics.spec import Metric, MetricOutput, MetricSpec

SIGMA = 1.5
TRUNCATE = 3.5
RADIUS = int(TRUNCATE * SIGMA + 0.5)  # scipy.ndimage's kernel radius: 5
WIN_SIZE = 2 * RADIUS + 1  # 11, the window scikit-image crops by
BORDER = (WIN_SIZE - 1) // 2  # 5
K1 = 0.01
K2 = 0.03
DATA_RANGE = 1.0

#: The settings, as recorded in the run manifest.
SSIM_SETTINGS: dict[str, object] = {
    "reference": "skimage.metrics.structural_similarity",
    "gaussian_weights": True,
    "sigma": SIGMA,
    "truncate": TRUNCATE,
    "win_size": WIN_SIZE,
    "K1": K1,
    "K2": K2,
    "use_sample_covariance": False,
    "data_range": DATA_RANGE,
    "channels": "RGB, per channel then averaged",
    "whole_image": f"map mean after cropping a {BORDER}-pixel border (as scikit-image)",
    "region": "uncropped map (scikit-image full=True) averaged over the region's pixels",
    "padding": "symmetric (scipy.ndimage mode='reflect')",
}


def _gaussian_kernel(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The normalised 1-D Gaussian that ``scipy.ndimage.gaussian_filter1d`` uses (length 11)."""
    x = torch.arange(-RADIUS, RADIUS + 1, device=device, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / SIGMA) ** 2)
    return (k / k.sum()).to(dtype)


def _symmetric_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices that pad a length-``n`` axis by ``pad`` on each side, mirroring with edge repeat."""
    idx = torch.arange(-pad, n + pad, device=device)
    idx = torch.where(idx < 0, -idx - 1, idx)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def _gaussian_filter(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of every channel of ``x`` (``N x C x H x W``), same size output."""
    n, c, h, w = x.shape
    x = x.index_select(2, _symmetric_index(h, RADIUS, x.device))
    x = x.index_select(3, _symmetric_index(w, RADIUS, x.device))
    k = _gaussian_kernel(x.device, x.dtype)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, WIN_SIZE, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, WIN_SIZE), groups=c)


def _check_size(images: torch.Tensor) -> None:
    if min(images.shape[2], images.shape[3]) < WIN_SIZE:
        raise InputError(
            f"SSIM needs images of at least {WIN_SIZE} x {WIN_SIZE} pixels, got {images.shape[2]} x {images.shape[3]}"
        )


def ssim_moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image SSIM statistics: ``(x, local mean of x, local mean of x**2)`` in float32.

    They depend on one image only, so a recursive loop computes them once per image and
    reuses them in every comparison (two of the five Gaussian filterings per pair).
    """
    _check_size(images)
    x = images.to(torch.float32)
    c = x.shape[1]
    mean, mean_sq = _gaussian_filter(torch.cat([x, x * x], dim=1)).split(c, dim=1)
    return x, mean, mean_sq


def ssim_map_from_moments(
    a: tuple[torch.Tensor, torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """:func:`ssim_map` from two :func:`ssim_moments` results (one more filtering: the cross term)."""
    (x, ux, uxx), (y, uy, uyy) = a, b
    uxy = _gaussian_filter(x * y)
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return numerator / denominator


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Full (uncropped) per-pixel, per-channel SSIM map, ``B x 3 x H x W`` float32.

    Equals scikit-image's ``full=True`` map (moved to channels-first) up to float32 rounding.
    """
    check_images(a, b)
    return ssim_map_from_moments(ssim_moments(a), ssim_moments(b))


def whole_image_ssim(full_map: torch.Tensor) -> torch.Tensor:
    """scikit-image's scalar SSIM from a full map: mean after cropping the border, per item (``B``)."""
    return full_map[:, :, BORDER:-BORDER, BORDER:-BORDER].flatten(1).mean(dim=1)


def ssim(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """SSIM per batch item: whole image (scikit-image's value) or averaged inside ``mask``.

    Args:
        a, b: ``B x 3 x H x W`` images in ``[0, 1]``, at least 11 x 11.
        mask: optional ``B x 1 x H x W`` {0, 1} region; see the module docstring for how
            region values are defined.

    Returns:
        ``B`` float32 tensor on the input device (NaN where the region is empty).
    """
    check_images(a, b, mask)
    full_map = ssim_map(a, b)
    if mask is None:
        return whole_image_ssim(full_map)
    return masked_mean(full_map, binary_mask(mask))


class SSIMMetric(Metric):
    """:func:`ssim` as a :class:`~ripbench.metrics.spec.Metric`: per-image moments prepared once."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def prepare(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return ssim_moments(images)

    def compare(self, a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> MetricOutput:
        full_map = ssim_map_from_moments(a, b)  # type: ignore[arg-type]
        return whole_image_ssim(full_map), full_map

    def provenance(self) -> dict[str, object]:
        return dict(SSIM_SETTINGS)


SSIM_SPEC = MetricSpec(
    name="ssim", label="SSIM", higher_is_better=True, range=(-1.0, 1.0), identity=1.0, compute=SSIMMetric,
    min_size=WIN_SIZE, description="structural similarity (scikit-image settings: Gaussian window, sigma 1.5)",
    region_note="uncropped SSIM map (border included) averaged over the region's pixels",
)
