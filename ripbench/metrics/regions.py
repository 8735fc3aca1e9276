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
"""

from __future__ import annotations

import torch

from ripbench.errors import InputError

#: Region names, in column order (the whole image has no suffix).
REGIONS: tuple[str, ...] = ("current", "outside", "ever", "never")


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
