"""The regions a metric is reported in, and the per-region averaging shared by all metrics.

At iteration ``k`` of a trajectory, with ``mask_k`` the region repainted at ``k``:

========== ==================================================================================
region     pixels
========== ==================================================================================
(whole)    the whole image (the column has no region suffix: ``lpips_orig``)
current    inside ``mask_k``: what the model just repainted (``lpips_orig_current``)
outside    outside ``mask_k``: what the model was asked to keep (``..._outside``)
ever       inside ``mask_1 | ... | mask_k``: repainted at least once so far (``..._ever``)
never      outside every mask so far: never repainted (``..._never``)
========== ==================================================================================

``never`` vs the original separates *VAE / pipeline drift* (pixels that were never handed
to the denoiser as "repaint", yet changed because the whole output is fed back) from
*denoiser drift* (``ever``). With paste-back on, the ``never`` region is copied back
unchanged, so its pixel metrics (MSE, PSNR) vs the original stay exact.

**How region values are computed (one rule for every metric).** The metric's per-pixel
map is computed on the *whole* image (LPIPS: the spatial map, upsampled from each layer;
SSIM: the uncropped 11x11-window map; MSE/PSNR: the squared error), and the region value is
its mean over the region's pixels (PSNR: from that mean squared error). Small or
irregular regions therefore need no minimum size of their own; a metric's minimum size
(SSIM's 11 px window, LPIPS's backbone) applies to the whole image only. Near a region's
border, windowed maps (SSIM, LPIPS) include context from just outside the region. An
**empty region gives NaN, never 0** (e.g. ``ever`` at iteration 0, ``never`` once
everything has been repainted).

Example
-------
>>> import torch
>>> values = torch.arange(8.0).reshape(2, 1, 2, 2)
>>> mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).expand(2, 1, 2, 2)
>>> masked_mean(values, mask).tolist()
[0.0, 4.0]
>>> masked_mean(values, torch.zeros(2, 1, 2, 2)).isnan().tolist()
[True, True]

Many regions at once (what the run loop does every iteration, one matrix product on the CPU):

>>> regions = RegionSet(region_masks(mask, mask))
>>> {k: v.tolist() for k, v in regions.means(values).items()}
{'current': [0.0, 4.0], 'outside': [2.0, 6.0], 'ever': [0.0, 4.0], 'never': [2.0, 6.0]}
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ripbench.errors import InputError
from ripbench.metrics.spec import REGIONS  # region names in column order, declared without torch


def host_kernels(tensor: torch.Tensor) -> bool:
    """Whether the metrics use their CPU code paths for ``tensor`` (host-side decisions, cache-sized chunks).

    On other devices they use code that never waits for the device. Tests replace this
    function to run the accelerator code paths on the CPU.
    """
    return tensor.device.type == "cpu"


def region_masks(current: torch.Tensor, ever: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four regions of one iteration as float {0, 1} ``B x 1 x H x W`` masks.

    Args:
        current: this iteration's mask (``> 0.5`` = repainted now).
        ever: pixels repainted at any iteration so far, this one included (``> 0.5``).

    >>> import torch
    >>> now = torch.tensor([[[[1.0, 0.0, 0.0]]]]); ever = torch.tensor([[[[1.0, 1.0, 0.0]]]])
    >>> {k: v.flatten().tolist() for k, v in region_masks(now, ever).items()}
    {'current': [1.0, 0.0, 0.0], 'outside': [0.0, 1.0, 1.0], 'ever': [1.0, 1.0, 0.0], 'never': [0.0, 0.0, 1.0]}
    """
    inside, touched = binary_mask(current), binary_mask(ever)
    return {"current": inside, "outside": 1.0 - inside, "ever": touched, "never": 1.0 - touched}


def check_images(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """Raise :class:`InputError` unless ``a``/``b`` are matching ``B x 3 x H x W`` tensors on one device.

    ``mask``, when given, must be ``B x 1 x H x W`` on the same device. Values are not
    inspected (that would need a device-to-host sync).
    """
    if a.dim() != 4 or a.shape[1] != 3:
        raise InputError(f"metric inputs must be B x 3 x H x W RGB tensors, got shape {tuple(a.shape)}")
    if a.shape != b.shape:
        raise InputError(f"metric inputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.device != b.device:
        raise InputError(f"metric inputs are on different devices: {a.device} vs {b.device}")
    if mask is not None:
        expected = (a.shape[0], 1, a.shape[2], a.shape[3])
        if tuple(mask.shape) != expected:
            raise InputError(
                f"metric mask must have shape {expected} (B x 1 x H x W), got {tuple(mask.shape)}"
            )
        if mask.device != a.device:
            raise InputError(f"metric mask is on {mask.device} but the images are on {a.device}")


def binary_mask(mask: torch.Tensor) -> torch.Tensor:
    """Return ``mask > 0.5`` as a float32 tensor (so soft or integer masks behave like {0, 1})."""
    return (mask > 0.5).to(torch.float32)


def masked_mean(values: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    """Per-item mean of ``values`` (``B x C x H x W``) over the pixels where ``region`` is 1.

    Args:
        values: per-pixel quantity; all ``C`` channels of a selected pixel count.
        region: ``B x 1 x H x W`` float {0, 1} mask, or ``None`` for the whole image.

    Returns:
        ``B`` float tensor on ``values``' device; NaN for items whose region is empty.
        Values outside the region never leak in, even if they are inf or NaN.
    """
    if region is None:
        return values.flatten(1).mean(dim=1)
    selected = region.expand_as(values) > 0.5
    total = torch.where(selected, values, torch.zeros((), dtype=values.dtype, device=values.device))
    total = total.flatten(1).sum(dim=1)
    count = selected.flatten(1).sum(dim=1).to(values.dtype)
    nan = torch.full_like(total, float("nan"))
    return torch.where(count > 0, total / count.clamp_min(1), nan)


def region_means(values: torch.Tensor, regions: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
    """Per-item means of ``values`` (``B x C x H x W``) over each of ``K`` regions at once: ``B x K``.

    Args:
        values: per-pixel quantity; all ``C`` channels of a selected pixel count.
        regions: ``B x K x H x W`` float32 {0, 1} masks.
        counts: the regions' pixel counts (``B x K``), if already known.

    Same values as :func:`masked_mean` per region (up to float32 summation order): NaN for an
    empty region, and values outside a region never leak in. On the CPU the sums are one
    batched matrix product (items whose map holds a non-finite value fall back to
    :func:`masked_mean`); on other devices each region is a masked sum (exact float32, no
    TF32, no host synchronisation).
    """
    b, c = values.shape[:2]
    k = regions.shape[1]
    values = values.to(torch.float32)
    if counts is None:
        counts = regions.flatten(2).sum(dim=2, dtype=torch.float64).to(torch.float32)
    denominator = counts * c
    if not host_kernels(values):
        columns = [masked_mean(values, regions[:, j : j + 1]) for j in range(k)]
        return torch.stack(columns, dim=1)
    sums = torch.bmm(values.reshape(b, c, -1), regions.reshape(b, k, -1).transpose(1, 2)).sum(dim=1)
    means = torch.where(counts > 0, sums / denominator.clamp_min(1), torch.full_like(sums, float("nan")))
    finite = torch.isfinite(sums).all(dim=1)
    if not bool(finite.all()):  # a non-finite map value poisons every region's product: redo exactly
        for i in (~finite).nonzero().flatten().tolist():
            for j in range(k):
                means[i, j] = masked_mean(values[i : i + 1], regions[i : i + 1, j : j + 1])[0]
    return means


def _pixel_counts(stack: torch.Tensor) -> torch.Tensor:
    """Pixels per region of a ``B x K x H x W`` {0, 1} stack, exactly (float32 sums are exact below 2**24)."""
    flat = stack.flatten(2)
    exact = flat.shape[2] < 2**24
    return flat.sum(dim=2) if exact else flat.sum(dim=2, dtype=torch.float64).to(torch.float32)


class RegionSet:
    """Named regions of one batch, stacked once so that every metric map is averaged in all of them together.

    Args:
        masks: region name -> ``B x 1 x H x W`` float {0, 1} mask (e.g. :func:`region_masks`).
    """

    def __init__(self, masks: Mapping[str, torch.Tensor]) -> None:
        if not masks:
            raise InputError("a RegionSet needs at least one region")
        self.names: tuple[str, ...] = tuple(masks)
        self.stack = torch.cat([m.to(torch.float32) for m in masks.values()], dim=1)
        self.counts = _pixel_counts(self.stack)

    @classmethod
    def of_iteration(cls, current: torch.Tensor, ever: torch.Tensor) -> RegionSet:
        """The four regions of one iteration (as :func:`region_masks`), written straight into one stack."""
        b, _, h, w = current.shape
        regions = cls.__new__(cls)
        regions.names = REGIONS
        stack = torch.empty(b, len(REGIONS), h, w, device=current.device)
        torch.gt(current, 0.5, out=stack[:, 0:1])
        if ever.dtype == torch.bool:
            stack[:, 2:3].copy_(ever)  # a plain copy is much cheaper than a comparison into floats
        else:
            torch.gt(ever, 0.5, out=stack[:, 2:3])
        torch.sub(1.0, stack[:, 0:1], out=stack[:, 1:2])
        torch.sub(1.0, stack[:, 2:3], out=stack[:, 3:4])
        regions.stack = stack
        inside = _pixel_counts(stack[:, 0::2])  # current, ever; the complements follow
        total = torch.full_like(inside, float(h * w))
        regions.counts = torch.stack([inside[:, 0], total[:, 0] - inside[:, 0], inside[:, 1],
                                      total[:, 1] - inside[:, 1]], dim=1)
        return regions

    def __len__(self) -> int:
        return len(self.names)

    def mask(self, name: str) -> torch.Tensor:
        """The ``B x 1 x H x W`` mask of region ``name``."""
        j = self.names.index(name)
        return self.stack[:, j : j + 1]

    def means(self, values: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{region: B means of values}`` (see :func:`region_means`)."""
        means = region_means(values, self.stack, self.counts)
        return {name: means[:, j] for j, name in enumerate(self.names)}
