"""Input checks and per-region averaging shared by all metrics.

A *region* is given by a ``B x 1 x H x W`` mask (1 = inside). Every metric turns a
per-pixel quantity (squared error, SSIM map, LPIPS spatial map) into one number per
batch item by averaging it over the region's pixels; an empty region gives NaN.

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
