"""The built-in detectors (x0-variance score variants) and content baselines (controls).

Score variants (kind ``"detector"``; all need the x0 trajectory and its noise levels, all use
only the recorded steps inside the run's noise band, and give NaN when the band holds fewer
than the run's ``min_steps`` steps, as :func:`ripbench.hallucination.band_variance` does):

* ``x0-variance``: the paper's score, whole image: ``band_variance(x0, levels, band)``.
* ``x0-variance-current``: the same inside this iteration's mask (the headline score):
  ``band_variance(..., region=mask)``; the mask is brought to the trajectory's resolution by
  the rule of :func:`ripbench.hallucination.score.region_mask` (a latent cell counts when the mask
  touches it).
* ``x0-variance-eroded``: the same inside the mask eroded by :data:`ERODE_CELLS` cells of the
  trajectory's resolution (pixels for a pixel-space model, latent cells -- 8 image pixels each
  for SD -- for a latent one), so the seam between repainted and kept content does not count;
  beyond the image's edge counts as inside (see :func:`erode`). Computed as the mean of
  :func:`in_band_variance_map` over the eroded region (= ``band_variance(..., region=eroded)``);
  NaN when nothing is left.
* ``x0-variance-current-paper``: ``x0-variance-current`` over the recorded steps in the paper's
  band (:func:`ripbench.hallucination.paper_band`), from the same trajectories; NaN unless the run's
  band contains the paper's.
* ``x0-variance-component``: the largest per-component mean variance: the components are the
  8-connected components of the output's foreground (greyscale > 0.5) inside the mask, at the
  trajectory's resolution, with at least :data:`MIN_COMPONENT_CELLS` cells. For Simple Shapes
  a component is one shape (or a piece of one cut by the mask), so the score asks "is one
  shape unstable?" rather than "how much shape is there?". NaN when the region holds no such
  component (a repainted background).

Baselines (kind ``"baseline"``; no model: they read only the output image and the mask, so
they work for every model, classical ones included). The output is made grey as the mean of
its channels; NaN when the mask is empty:

* ``foreground-pixels``: number of output pixels with grey > 0.5 inside the mask (for Simple
  Shapes: the amount of shape in the repainted region).
* ``edge-pixels``: number of output pixels inside the mask whose Sobel gradient magnitude is
  at least :data:`EDGE_THRESHOLD` (see :func:`sobel`).
* ``edge-density``: mean gradient energy ``gx^2 + gy^2`` of the output inside the mask (for
  natural images: how much structure the repainted region holds).

Example
-------
>>> import torch
>>> from ripbench.detectors.spec import DetectorBatch
>>> out = torch.zeros(1, 3, 8, 8); out[..., 2:4, 2:4] = 1.0      # one white 2 x 2 square
>>> batch = DetectorBatch(output=out, mask=torch.ones(1, 1, 8, 8))
>>> FOREGROUND_PIXELS(batch).tolist(), EDGE_PIXELS(batch).tolist()
([4.0], [12.0])
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# the specs and the constants they quote are declared without torch, in ripbench.detectors.catalog
from ripbench.detectors.catalog import (
    BUILTINS,
    EDGE_DENSITY,
    EDGE_PIXELS,
    EDGE_THRESHOLD,
    ERODE_CELLS,
    FOREGROUND_PIXELS,
    FOREGROUND_THRESHOLD,
    MIN_COMPONENT_CELLS,
    X0_VARIANCE,
    X0_VARIANCE_COMPONENT,
    X0_VARIANCE_CURRENT,
    X0_VARIANCE_CURRENT_PAPER,
    X0_VARIANCE_ERODED,
)
from ripbench.detectors.spec import DetectorBatch, region_mean
from ripbench.errors import InputError
from ripbench.hallucination.score import band_variance, region_mask
from ripbench.noise_band import DEFAULT_UNIT, in_band, paper_band

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
    "erode",
    "grey",
    "in_band_variance_map",
    "sobel",
]



# --- shared pieces ------------------------------------------------------------------------------------

def grey(images: torch.Tensor) -> torch.Tensor:
    """``B x C x H x W`` -> ``B x 1 x H x W``: the mean of the channels (float32)."""
    return images.float().mean(dim=1, keepdim=True)


def sobel(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel gradients ``(gx, gy)`` of ``B x 1 x H x W`` grey images, scaled to intensity per pixel.

    The kernels are the 3 x 3 Sobel kernels divided by 8, with replicated borders (the image's
    edge is no edge): a vertical step from 0 to 1 gives ``gx = 0.5`` on the two pixels beside it,
    a constant image 0 everywhere.

    >>> step = torch.zeros(1, 1, 3, 4); step[..., 2:] = 1.0
    >>> gx, gy = sobel(step)
    >>> gx[0, 0, 1].tolist(), float(gy.abs().max())
    ([0.0, 0.5, 0.5, 0.0], 0.0)
    """
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=images.device) / 8.0
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)  # 2 x 1 x 3 x 3
    padded = F.pad(images.float(), (1, 1, 1, 1), mode="replicate")
    g = F.conv2d(padded, kernels)
    return g[:, :1], g[:, 1:]


def erode(region: torch.Tensor, cells: int) -> torch.Tensor:
    """Erode a ``B x 1 x h x w`` {0, 1} region by ``cells`` (a (2 cells + 1)-square neighbourhood).

    Beyond the image's edge counts as inside: only the boundary with the rest of the image
    (the seam) is eroded, not the image's own border.

    >>> r = torch.zeros(1, 1, 5, 7); r[..., :, 1:6] = 1.0   # a full-height column
    >>> erode(r, 1)[0, 0, 0].tolist()                     # its sides go, its top stays
    [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    """
    if cells <= 0:
        return region
    outside = 1.0 - region.float()
    return 1.0 - F.max_pool2d(outside, kernel_size=2 * cells + 1, stride=1, padding=cells)


def _in_band(batch: DetectorBatch) -> tuple[torch.Tensor, int, bool]:
    """``(x0 of the in-band steps, number of them, enough?)`` by :func:`~ripbench.hallucination.in_band` per level."""
    traj = batch.x0_trajectory
    assert traj is not None and batch.window is not None
    levels = torch.as_tensor(batch.noise_levels, dtype=torch.float64).detach().cpu().reshape(-1)
    if levels.numel() != traj.shape[0]:
        raise InputError(f"The x0 trajectory has {traj.shape[0]} steps but {levels.numel()} noise levels.")
    keep = [i for i, level in enumerate(levels.tolist()) if in_band(level, batch.window.band)]
    enough = len(keep) >= max(2, batch.window.min_steps)
    return traj[keep] if enough else traj[:0], len(keep), enough


def in_band_variance_map(batch: DetectorBatch) -> torch.Tensor | None:
    """Per-cell x0 variance over the in-band steps, averaged over channels: ``B x 1 x h x w`` float32.

    The population variance over the steps per coordinate (two-pass: the mean of the squared
    deviations from the mean), as in :func:`ripbench.hallucination.trajectory_variance`, so its
    mean over a region equals ``band_variance(..., region=...)`` up to float round-off.
    ``None`` when the band holds too few steps. Computed once per batch (kept in ``batch.cache``).
    """
    if "variance_map" in batch.cache:
        return batch.cache["variance_map"]
    var = None
    if batch.x0_trajectory is not None and batch.window is not None:
        x0, _, enough = _in_band(batch)
        if enough:
            if x0.ndim == 4:  # K x B x h x w: one channel
                x0 = x0.unsqueeze(2)
            if x0.ndim != 5:
                raise InputError(f"A map-based detector needs a K x B x C x h x w trajectory, got {tuple(x0.shape)}.")
            x0 = x0.float()
            # two passes instead of Tensor.var(dim=0): the same values, ~30x faster on the CPU
            var = (x0 - x0.mean(dim=0)).square().mean(dim=0).mean(dim=1, keepdim=True)
    batch.cache["variance_map"] = var
    return var


def _region_at(batch: DetectorBatch, spatial: tuple[int, int], device: torch.device) -> torch.Tensor:
    return region_mask(batch.mask, batch.size, spatial, device)


def _band(batch: DetectorBatch, region: torch.Tensor | None = None) -> torch.Tensor:
    if batch.window is None or batch.x0_trajectory is None:
        return batch.nan()
    scores, _ = band_variance(batch.x0_trajectory, batch.noise_levels, batch.window.band, region=region,
                              min_steps=batch.window.min_steps)
    return scores


# --- score variants -----------------------------------------------------------------------------------

def x0_variance(batch: DetectorBatch) -> torch.Tensor:
    """x0 variance over the in-band steps, whole image (:func:`ripbench.hallucination.band_variance`)."""
    return _band(batch)


def x0_variance_current(batch: DetectorBatch) -> torch.Tensor:
    """x0 variance over the in-band steps inside this iteration's mask."""
    return _band(batch, region=batch.mask)


def x0_variance_current_paper(batch: DetectorBatch) -> torch.Tensor:
    """x0 variance inside this iteration's mask over the recorded steps in the **paper's** band.

    The paper's band (:func:`ripbench.hallucination.paper_band`, in the run's unit) lies inside the
    default band (both start at 0), so one run recording the default band gives both scores from
    the same trajectories; NaN when fewer than the run's ``min_steps`` recorded steps lie in it, or
    when the run's band does not contain the paper's (its steps were not all recorded).
    """
    if batch.window is None or batch.x0_trajectory is None:
        return batch.nan()
    band = paper_band(getattr(batch.window.band, "unit", DEFAULT_UNIT))
    if batch.window.band[0] > band.lo or batch.window.band[1] < band.hi:  # the run did not record all of it
        return batch.nan()
    scores, _ = band_variance(batch.x0_trajectory, batch.noise_levels, band, region=batch.mask,
                              min_steps=batch.window.min_steps)
    return scores


def x0_variance_eroded(batch: DetectorBatch) -> torch.Tensor:
    """x0 variance over the in-band steps inside the mask eroded by :data:`ERODE_CELLS` trajectory cells.

    The mean of :func:`in_band_variance_map` over the eroded region (what
    ``band_variance(..., region=eroded)`` gives); NaN when the eroded region is empty.
    """
    var = in_band_variance_map(batch)
    if var is None:
        return batch.nan()
    region = erode(_region_at(batch, (int(var.shape[-2]), int(var.shape[-1])), var.device), ERODE_CELLS)
    return region_mean(var, region)


def _foreground_at(batch: DetectorBatch, spatial: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Output foreground (grey > 0.5) at the trajectory's resolution (area-averaged grey, then > 0.5)."""
    g = grey(batch.output).to(device)
    if tuple(g.shape[-2:]) != spatial:
        g = F.interpolate(g, size=spatial, mode="area")
    return g > FOREGROUND_THRESHOLD


def x0_variance_component(batch: DetectorBatch) -> torch.Tensor:
    """Largest mean in-band x0 variance over the foreground components inside the mask.

    Components: 8-connected components of (output grey > 0.5) AND (mask), at the trajectory's
    resolution, of at least :data:`MIN_COMPONENT_CELLS` cells. Labelling runs on the CPU
    (:func:`scipy.ndimage.label` on the ``B`` small boolean maps: about 0.1 ms per 64 x 64 map,
    plus one device-to-host copy, which waits for the device once per iteration); the means
    and the maximum are computed on the device.
    """
    from scipy import ndimage

    var = in_band_variance_map(batch)
    if var is None:
        return batch.nan()
    b, _, h, w = var.shape
    region = _region_at(batch, (h, w), var.device) > 0.5
    fg = (_foreground_at(batch, (h, w), var.device) & region)[:, 0]
    host = fg.cpu().numpy()
    labels = np.zeros((b, h, w), dtype=np.int64)
    structure = np.ones((3, 3), dtype=bool)
    offset = 0
    for i in range(b):  # CPU labelling (see the docstring); labels are made unique across the batch
        lab, n = ndimage.label(host[i], structure=structure)
        labels[i] = np.where(lab > 0, lab + offset, 0)
        offset += n
    if offset == 0:
        return batch.nan()
    lab = torch.from_numpy(labels).to(var.device).reshape(-1)
    flat = var.reshape(-1).double()
    sums = torch.zeros(offset + 1, dtype=torch.float64, device=var.device).scatter_add_(0, lab, flat)
    counts = torch.zeros(offset + 1, dtype=torch.float64, device=var.device).scatter_add_(
        0, lab, torch.ones_like(flat))
    means = torch.where(counts >= MIN_COMPONENT_CELLS, sums / counts.clamp_min(1), torch.full_like(sums, -np.inf))
    means[0] = -np.inf  # label 0: not a component
    owner = torch.zeros(offset + 1, dtype=torch.int64, device=var.device)
    owner.scatter_(0, lab, torch.arange(b, device=var.device).repeat_interleave(h * w))
    best = torch.full((b,), -np.inf, dtype=torch.float64, device=var.device).scatter_reduce(
        0, owner[1:], means[1:], reduce="amax")
    return torch.where(torch.isfinite(best), best, torch.full_like(best, float("nan"))).float()


# --- content baselines --------------------------------------------------------------------------------

def _count_in_region(flags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    inside = mask > 0.5
    count = (flags & inside).flatten(1).sum(dim=1).float()
    return torch.where(inside.flatten(1).any(dim=1), count, torch.full_like(count, float("nan")))


def foreground_pixels(batch: DetectorBatch) -> torch.Tensor:
    """Number of output pixels with grey > :data:`FOREGROUND_THRESHOLD` inside the mask."""
    return _count_in_region(grey(batch.output) > FOREGROUND_THRESHOLD, batch.mask)


def edge_pixels(batch: DetectorBatch) -> torch.Tensor:
    """Number of output pixels inside the mask whose Sobel magnitude is >= :data:`EDGE_THRESHOLD`."""
    gx, gy = sobel(grey(batch.output))
    return _count_in_region(gx.square() + gy.square() >= EDGE_THRESHOLD**2, batch.mask)


def edge_density(batch: DetectorBatch) -> torch.Tensor:
    """Mean Sobel gradient energy ``gx^2 + gy^2`` of the output inside the mask."""
    gx, gy = sobel(grey(batch.output))
    return region_mean(gx.square() + gy.square(), batch.mask)
