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
from ripbench.metrics import regions
from ripbench.metrics.catalog import SSIM_RADIUS, SSIM_SIGMA, SSIM_TRUNCATE, SSIM_WIN_SIZE
from ripbench.metrics.catalog import SSIM_SPEC as SSIM_SPEC  # the spec, declared without torch
from ripbench.metrics.regions import binary_mask, check_images, masked_mean
from ripbench.metrics.spec import Metric, MetricOutput

# the window's facts are declared with the spec (ripbench.metrics.catalog, torch-free)
SIGMA = SSIM_SIGMA  # 1.5
TRUNCATE = SSIM_TRUNCATE  # 3.5
RADIUS = SSIM_RADIUS  # scipy.ndimage's kernel radius: 5
WIN_SIZE = SSIM_WIN_SIZE  # 11, the window scikit-image crops by
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


#: The kernel's taps as Python floats (float32-rounded, like the tensor the GPU path convolves with).
_TAPS: list[float] = _gaussian_kernel(torch.device("cpu"), torch.float32).tolist()
#: Elements per chunk of the CPU path: one chunk of every intermediate stays in the core's cache.
_CHUNK = 1 << 17


def _symmetric_index(n: int, pad: int, device: torch.device, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Indices of positions ``start - pad .. stop + pad`` of a length-``n`` axis, mirrored at its ends (edge repeated)."""
    stop = n if stop is None else stop
    idx = torch.arange(start - pad, stop + pad, device=device)
    idx = torch.where(idx < 0, -idx - 1, idx)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def _filter_planes(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """CPU separable Gaussian of ``P x H x W`` planes into ``out``: shifted adds of the symmetric taps.

    Each output value is the same sequence of float32 operations wherever the plane is cut,
    so a crop (reflected at its edges like the image) gives bit-identical values inside.
    """
    _, h, w = x.shape
    rows = x.index_select(1, _symmetric_index(h, RADIUS, x.device))
    vertical = torch.mul(rows[:, RADIUS : RADIUS + h], _TAPS[RADIUS])
    tmp = torch.empty_like(vertical)
    for j in range(1, RADIUS + 1):
        torch.add(rows[:, RADIUS - j : RADIUS - j + h], rows[:, RADIUS + j : RADIUS + j + h], out=tmp)
        vertical.add_(tmp, alpha=_TAPS[RADIUS + j])
    cols = vertical.index_select(2, _symmetric_index(w, RADIUS, x.device))
    torch.mul(cols[:, :, RADIUS : RADIUS + w], _TAPS[RADIUS], out=out)
    for j in range(1, RADIUS + 1):
        torch.add(cols[:, :, RADIUS - j : RADIUS - j + w], cols[:, :, RADIUS + j : RADIUS + j + w], out=tmp)
        out.add_(tmp, alpha=_TAPS[RADIUS + j])
    return out


def _plane_chunks(h: int, w: int, planes: int) -> list[slice]:
    step = max(1, _CHUNK // (h * w))
    return [slice(i, min(i + step, planes)) for i in range(0, planes, step)]


def _gaussian_filter(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of every channel of ``x`` (``N x C x H x W``), same size output.

    CPU: cache-sized chunks of planes, shifted adds (several times faster than a depthwise
    convolution there); other devices: two depthwise convolutions.
    """
    n, c, h, w = x.shape
    if regions.host_kernels(x):
        flat = x.reshape(n * c, h, w)
        out = torch.empty(flat.shape, dtype=flat.dtype, device=flat.device)
        for chunk in _plane_chunks(h, w, n * c):
            _filter_planes(flat[chunk], out[chunk])
        return out.view(n, c, h, w)
    return _gaussian_filter_conv(x)


def _gaussian_filter_conv(x: torch.Tensor) -> torch.Tensor:
    """:func:`_gaussian_filter` as two depthwise convolutions (the path for GPUs)."""
    _, c, h, w = x.shape
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


#: Prepared SSIM statistics of a batch: ``(x, mu, mu**2 + C1/2, sigma**2 + C2/2)``, each ``B x 3 x H x W``.
SSIMStats = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

_C1 = (K1 * DATA_RANGE) ** 2
_C2 = (K2 * DATA_RANGE) ** 2


def _stats_from_moments(x: torch.Tensor, mean: torch.Tensor, mean_sq: torch.Tensor) -> SSIMStats:
    """The per-image terms of SSIM's denominator, so a comparison only adds the two images' terms."""
    mean_2 = mean * mean
    variance = torch.sub(mean_sq, mean_2).add_(_C2 / 2)
    return x, mean, mean_2.add_(_C1 / 2), variance


def ssim_stats(images: torch.Tensor) -> SSIMStats:
    """What :class:`SSIMMetric` prepares per image (see :data:`SSIMStats`)."""
    _check_size(images)
    x = images.to(torch.float32)
    n, c, h, w = x.shape
    if not regions.host_kernels(x):
        return _stats_from_moments(*ssim_moments(x))
    # contiguous whatever the input's layout (channels-last, a crop): the planes are viewed flat
    mean, mean_2, variance = (torch.empty(x.shape, dtype=x.dtype, device=x.device) for _ in range(3))
    flat = [x.reshape(n * c, h, w)] + [t.view(n * c, h, w) for t in (mean, mean_2, variance)]
    for chunk in _plane_chunks(h, w, n * c):
        xs, ms, m2, var = (t[chunk] for t in flat)
        _filter_planes(xs, ms)
        square = torch.mul(xs, xs)
        _filter_planes(square, var)  # local mean of x**2 ...
        torch.mul(ms, ms, out=m2)
        var.sub_(m2).add_(_C2 / 2)  # ... minus mu**2: the variance
        m2.add_(_C1 / 2)
    return x, mean, mean_2, variance


def _ssim_formula(xy_mean: torch.Tensor, a: SSIMStats, b: SSIMStats, out: torch.Tensor | None = None) -> torch.Tensor:
    """SSIM from the local mean of x*y and both images' terms; ``xy_mean`` is overwritten."""
    _, ux, ax, vx = a
    _, uy, ay, vy = b
    product = torch.mul(ux, uy)
    covariance = xy_mean.sub_(product).mul_(2).add_(_C2)  # 2 sigma_xy + C2
    numerator = product.mul_(2).add_(_C1).mul_(covariance)  # (2 mu_x mu_y + C1)(2 sigma_xy + C2)
    denominator = torch.add(ax, ay).mul_(torch.add(vx, vy, out=covariance))
    return torch.div(numerator, denominator, out=out) if out is not None else numerator.div_(denominator)


def ssim_map_from_stats(a: SSIMStats, b: SSIMStats) -> torch.Tensor:
    """Full (uncropped) SSIM map of two prepared batches (one more filtering: the cross term)."""
    x, y = a[0], b[0]
    if not regions.host_kernels(x):
        return _ssim_formula(_gaussian_filter(x * y), a, b)
    n, c, h, w = x.shape
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    flat_a = [t.reshape(n * c, h, w) for t in a]
    flat_b = [t.reshape(n * c, h, w) for t in b]
    flat_out = out.view(n * c, h, w)
    for chunk in _plane_chunks(h, w, n * c):
        pa = tuple(t[chunk] for t in flat_a)
        pb = tuple(t[chunk] for t in flat_b)
        product = torch.mul(pa[0], pb[0])
        xy_mean = _filter_planes(product, torch.empty_like(product))
        _ssim_formula(xy_mean, pa, pb, out=flat_out[chunk])  # type: ignore[arg-type]
    return out


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Full (uncropped) per-pixel, per-channel SSIM map, ``B x 3 x H x W`` float32.

    Equals scikit-image's ``full=True`` map (moved to channels-first) up to float32 rounding.
    """
    check_images(a, b)
    return ssim_map_from_stats(ssim_stats(a), ssim_stats(b))


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
    """:func:`ssim` as a :class:`~ripbench.metrics.spec.Metric`: per-image statistics prepared once.

    Local (radius 5, the window's): on the CPU the drift tracker recomputes the map only
    around the pixels a model changed; an image compared with itself gives exactly 1.
    """

    border = BORDER
    radius = RADIUS
    pixel_identity = 1.0

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def prepare(self, images: torch.Tensor) -> SSIMStats:
        return ssim_stats(images)

    def compare(self, a: SSIMStats, b: SSIMStats) -> MetricOutput:
        full_map = ssim_map_from_stats(a, b)
        return whole_image_ssim(full_map), full_map

    def compare_map(self, a: SSIMStats, b: SSIMStats) -> torch.Tensor:
        return ssim_map_from_stats(a, b)

    def provenance(self) -> dict[str, object]:
        return dict(SSIM_SETTINGS)

