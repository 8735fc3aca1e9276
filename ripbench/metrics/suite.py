"""The batched metric suite the harness calls every iteration.

For each chosen metric ``m`` it returns three ``B``-length float32 tensors on the device:
``m`` (whole image), ``m_in`` (inside this iteration's mask) and ``m_out`` (outside it).

* ``lpips``: whole = standard LPIPS v0.1; regions = spatial LPIPS map averaged in the region.
* ``ssim``: whole = scikit-image's value (border-cropped map mean); regions = uncropped map
  averaged in the region (see :mod:`ripbench.metrics.ssim`).
* ``mse`` / ``psnr``: over the region's pixels (all 3 channels); PSNR uses data range 1 and is
  +inf where the compared pixels are identical (not capped).
* An empty region gives NaN, never an error.

Example
-------
>>> import torch
>>> suite = MetricSuite(names=("mse", "psnr"))
>>> a = torch.zeros(2, 3, 16, 16)
>>> b = a.clone(); b[:, :, :8] = 0.5
>>> mask = torch.zeros(2, 1, 16, 16); mask[:, :, :8] = 1
>>> out = suite.compute(a, b, mask)
>>> sorted(out)
['mse', 'mse_in', 'mse_out', 'psnr', 'psnr_in', 'psnr_out']
>>> out["mse_in"].tolist(), out["mse_out"].tolist()
([0.25, 0.25], [0.0, 0.0])
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch

from ripbench.errors import ConfigError, InputError
from ripbench.metrics.lpips_metric import load_lpips
from ripbench.metrics.pixel import psnr_from_mse, squared_error
from ripbench.metrics.regions import binary_mask, check_images, masked_mean
from ripbench.metrics.ssim import SSIM_SETTINGS, ssim_map, whole_image_ssim

#: Every metric the suite knows, in its default order.
METRIC_NAMES: tuple[str, ...] = ("lpips", "ssim", "psnr", "mse")
#: Suffixes of the three values reported per metric.
REGION_SUFFIXES: tuple[str, ...] = ("", "_in", "_out")


def validate_metric_names(names: str | Iterable[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple without duplicates, or raise :class:`ConfigError`.

    Example:
        >>> validate_metric_names(["ssim", "mse", "ssim"])
        ('ssim', 'mse')
    """
    chosen = (names,) if isinstance(names, str) else tuple(names)
    unknown = [name for name in chosen if name not in METRIC_NAMES]
    if unknown:
        raise ConfigError(
            f"unknown metric name(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(METRIC_NAMES)}"
        )
    if not chosen:
        raise ConfigError(f"no metrics chosen; allowed: {', '.join(METRIC_NAMES)}")
    return tuple(dict.fromkeys(chosen))


class MetricSuite:
    """Computes the chosen metrics for a batch, whole image and inside/outside a mask.

    Args:
        names: metrics to compute, a subset of :data:`METRIC_NAMES`.
        lpips_net: ``"alex"``, ``"vgg"`` or ``"squeeze"``.
        lpips_weights: backbone weights file/folder (see :func:`ripbench.metrics.load_lpips`).
        device: the device the images will be on; the LPIPS model is placed there.

    Raises:
        ConfigError: unknown metric or LPIPS net.
        WeightsError: LPIPS is chosen and no genuine backbone weights can be had.
    """

    def __init__(
        self,
        names: Iterable[str] = METRIC_NAMES,
        lpips_net: str = "alex",
        lpips_weights: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.names = validate_metric_names(names)
        self.lpips = load_lpips(lpips_net, lpips_weights, device) if "lpips" in self.names else None
        self.device = self.lpips.device if self.lpips is not None else torch.device(device)

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys :meth:`compute` returns, e.g. ``("lpips", "lpips_in", "lpips_out", ...)``."""
        return tuple(name + suffix for name in self.names for suffix in REGION_SUFFIXES)

    @torch.inference_mode()
    def compute(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        mask: torch.Tensor,
        lpips_features: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Compare ``a`` with ``b`` per batch item, overall and inside/outside ``mask``.

        Args:
            a, b: ``B x 3 x H x W`` float images in ``[0, 1]`` on the suite's device.
            mask: ``B x 1 x H x W`` {0, 1}; 1 = the region inpainted this iteration.
            lpips_features: optional precomputed LPIPS features of ``a`` and ``b``
                (see :meth:`LpipsMetric.features`), to skip the backbone passes.

        Returns:
            ``{key: B-length float32 tensor}`` for every key in :attr:`keys`, on the device.
        """
        check_images(a, b, mask)
        if self.lpips is not None and a.device != self.device:
            raise InputError(f"metric suite was built for {self.device} but the images are on {a.device}")
        inside = binary_mask(mask)
        outside = 1.0 - inside
        out: dict[str, torch.Tensor] = {}

        def split(name: str, whole: torch.Tensor, per_pixel: torch.Tensor) -> None:
            out[name] = whole
            out[name + "_in"] = masked_mean(per_pixel, inside)
            out[name + "_out"] = masked_mean(per_pixel, outside)

        for name in self.names:
            if name == "lpips":
                assert self.lpips is not None
                if lpips_features is None:
                    split("lpips", *self.lpips.distances(a, b))
                else:
                    split("lpips", *self.lpips.distances_from_features(*lpips_features, a.shape[2:]))
            elif name == "ssim":
                full_map = ssim_map(a, b)
                split("ssim", whole_image_ssim(full_map), full_map)
            elif name == "mse" or name == "psnr":
                if "mse" not in out:
                    error = squared_error(a, b)
                    split("mse", masked_mean(error, None), error)
                if name == "psnr":
                    for suffix in REGION_SUFFIXES:
                        out["psnr" + suffix] = psnr_from_mse(out["mse" + suffix])
        return {key: out[key] for key in self.keys}

    def provenance(self) -> dict[str, Any]:
        """What the run manifest records about the metrics (names, LPIPS weights, SSIM/PSNR settings)."""
        record: dict[str, Any] = {"metrics": list(self.names), "regions": ["whole", "in", "out"]}
        if self.lpips is not None:
            record["lpips"] = dict(self.lpips.provenance)
        if "ssim" in self.names:
            record["ssim"] = dict(SSIM_SETTINGS)
        if "psnr" in self.names:
            record["psnr"] = {"data_range": 1.0, "identical_images": "inf (not capped)"}
        return record


class DriftTracker:
    """Metrics of a recursive trajectory: each new image against the original and the previous one.

    Holds the original and the previous image of a batch of trajectories and reuses work
    across iterations: LPIPS features of the original are computed once, and those of each
    new image serve again as "previous" in the next step, so every step costs one LPIPS
    backbone pass instead of four.

    >>> import torch
    >>> suite = MetricSuite(names=("mse",))
    >>> original = torch.zeros(1, 3, 16, 16)
    >>> tracker = DriftTracker(suite, original)
    >>> mask = torch.zeros(1, 1, 16, 16); mask[..., :4, :4] = 1
    >>> values = tracker.step(original + 0.5 * mask, mask)
    >>> round(values["mse_orig_in"].item(), 3), values["mse_prev_out"].item()
    (0.25, 0.0)
    """

    def __init__(self, suite: MetricSuite, original: torch.Tensor) -> None:
        self.suite = suite
        self.original = original
        self.previous = original
        self._orig_features = suite.lpips.features(original) if suite.lpips is not None else None
        self._prev_features = self._orig_features

    @staticmethod
    def column(metric_key: str, reference: str) -> str:
        """``lpips_in`` + ``orig`` -> ``lpips_orig_in`` (the results table's column names)."""
        base, _, region = metric_key.partition("_")
        return f"{base}_{reference}" + (f"_{region}" if region else "")

    @torch.inference_mode()
    def step(self, new: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Metrics of ``new`` vs the original and vs the previous image; then ``new`` becomes previous.

        Returns ``{"<metric>_orig[_in|_out]": B tensor, "<metric>_prev[_in|_out]": ...}``.
        """
        b = new.shape[0]
        features = None
        if self._orig_features is not None:
            assert self.suite.lpips is not None and self._prev_features is not None
            new_features = self.suite.lpips.features(new)
            features = (
                [torch.cat([f, f]) for f in new_features],
                [torch.cat([o, p]) for o, p in zip(self._orig_features, self._prev_features)],
            )
            self._prev_features = new_features
        values = self.suite.compute(
            torch.cat([new, new]), torch.cat([self.original, self.previous]), torch.cat([mask, mask]), features
        )
        self.previous = new
        out: dict[str, torch.Tensor] = {}
        for key, v in values.items():
            out[self.column(key, "orig")] = v[:b]
            out[self.column(key, "prev")] = v[b:]
        return out
