"""The batched metric suite the run loop calls every iteration, and the drift tracker around it.

:class:`MetricSuite` holds the chosen metrics (built from their specs, on one device) and
compares two batches of images, whole image and per region (see
:mod:`ripbench.metrics.regions`). :class:`DriftTracker` follows a batch of trajectories:
every new image is compared with the original and with the previous image, in every region,
reusing each image's prepared statistics (LPIPS features, SSIM moments) across iterations.

Example
-------
>>> import torch
>>> suite = MetricSuite(names=("mse", "psnr"))
>>> a = torch.zeros(2, 3, 16, 16)
>>> b = a.clone(); b[:, :, :8] = 0.5
>>> mask = torch.zeros(2, 1, 16, 16); mask[:, :, :8] = 1
>>> out = suite.compute(a, b, mask)
>>> sorted(out)
['mse', 'mse_current', 'mse_outside', 'psnr', 'psnr_current', 'psnr_outside']
>>> out["mse_current"].tolist(), out["mse_outside"].tolist()
([0.25, 0.25], [0.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ripbench.errors import ConfigError, InputError
from ripbench.metrics.regions import REGIONS, check_images, region_masks
from ripbench.metrics.registry import BUILTIN_METRICS, REFERENCES, available_metrics, get_metric_spec
from ripbench.metrics.spec import Metric

#: The built-in metrics, in their default order.
METRIC_NAMES: tuple[str, ...] = tuple(BUILTIN_METRICS)


def validate_metric_names(names: str | Iterable[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple without duplicates, or raise :class:`ConfigError`.

    Example:
        >>> validate_metric_names(["ssim", "mse", "ssim"])
        ('ssim', 'mse')
    """
    chosen = (names,) if isinstance(names, str) else tuple(names)
    known = available_metrics()
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise ConfigError(f"unknown metric name(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(known)}")
    if not chosen:
        raise ConfigError(f"no metrics chosen; allowed: {', '.join(known)}")
    return tuple(dict.fromkeys(chosen))


def _cat(a: Any, b: Any) -> Any:
    """Concatenate two prepared batches (tensors, or lists / tuples / dicts of them) along the batch."""
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b])
    if isinstance(a, (list, tuple)):
        return type(a)(_cat(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    raise TypeError(f"prepare() must return tensors (or lists / tuples / dicts of them), got {type(a).__name__}")


class MetricSuite:
    """The chosen metrics, built on one device.

    Args:
        names: metric names (see ``ripbench metrics``); default the four built-ins.
        options: per-metric options, e.g. ``{"lpips": {"net": "vgg"}}``.
        device: where the images will be (networks are placed there).
        lpips_net, lpips_weights: shorthands for ``options["lpips"]``.

    Raises:
        ConfigError: unknown metric or option.
        WeightsError: LPIPS is chosen and no genuine backbone weights can be had.
    """

    def __init__(
        self,
        names: Iterable[str] = METRIC_NAMES,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        device: str | torch.device = "cpu",
        *,
        lpips_net: str | None = None,
        lpips_weights: Any = None,
    ) -> None:
        self.names = validate_metric_names(names)
        opts = {k: dict(v) for k, v in (options or {}).items()}
        unknown = sorted(set(opts) - set(self.names))
        if unknown:
            raise ConfigError(f"options given for metric(s) not chosen: {', '.join(unknown)}")
        if "lpips" in self.names:
            lp = opts.setdefault("lpips", {})
            if lpips_net is not None:
                lp.setdefault("net", lpips_net)
            if lpips_weights is not None:
                lp.setdefault("weights", lpips_weights)
        self.device = torch.device(device)
        self.specs = {name: get_metric_spec(name) for name in self.names}
        self.options = {name: spec.check_options(opts.get(name, {})) for name, spec in self.specs.items()}
        self.metrics: dict[str, Metric] = {
            name: spec.build(self.device, **self.options[name]) for name, spec in self.specs.items()
        }

    def keys(self, regions: Iterable[str] = ()) -> tuple[str, ...]:
        """Keys :meth:`compare` returns for these regions: ``("lpips", "lpips_current", ...)``."""
        wanted = tuple(regions)
        return tuple(f"{name}_{r}" if r else name for name, spec in self.specs.items()
                     for r in ("", *[r for r in wanted if r in spec.regions]))

    def minimum_size(self) -> int:
        """The smallest image side every chosen metric accepts."""
        return max(spec.minimum_size(**self.options[name]) for name, spec in self.specs.items())

    @torch.inference_mode()
    def prepare(self, images: torch.Tensor) -> dict[str, Any]:
        """Per-image work of every metric (see :meth:`Metric.prepare`)."""
        if images.device != self.device:
            raise InputError(f"metric suite was built for {self.device} but the images are on {images.device}")
        return {name: metric.prepare(images) for name, metric in self.metrics.items()}

    @staticmethod
    def concat(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """Two prepared batches as one (so one :meth:`compare` call covers both)."""
        return {name: _cat(a[name], b[name]) for name in a}

    @torch.inference_mode()
    def compare(
        self, a: dict[str, Any], b: dict[str, Any], regions: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Compare prepared batches: whole image and each region a metric supports.

        Returns ``{key: B float32 tensor}``: ``name`` for the whole image, ``name_<region>`` per region.
        """
        out: dict[str, torch.Tensor] = {}
        for name, metric in self.metrics.items():
            whole, per_pixel = metric.compare(a[name], b[name])
            out[name] = whole.to(torch.float32)
            for region, mask in (regions or {}).items():
                if region not in self.specs[name].regions:
                    continue
                if per_pixel is None:
                    raise InputError(f"metric {name!r} declares regions but returned no per-pixel map")
                out[f"{name}_{region}"] = metric.reduce(per_pixel, mask).to(torch.float32)
        return out

    def compute(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Compare two image batches directly: whole image and, with ``mask``, ``current`` / ``outside`` it."""
        check_images(a, b, mask)
        regions = None
        if mask is not None:
            regions = {k: v for k, v in region_masks(mask, mask).items() if k in ("current", "outside")}
        return self.compare(self.prepare(a), self.prepare(b), regions)

    def provenance(self) -> dict[str, Any]:
        """What the run manifest records about the metrics: names, regions, each metric's settings."""
        record: dict[str, Any] = {"metrics": list(self.names), "regions": ["whole", *REGIONS]}
        for name, metric in self.metrics.items():
            record[name] = {"spec": self.specs[name].describe(), **metric.provenance()}
        return record


class DriftTracker:
    """Metrics of a batch of recursive trajectories, iteration after iteration.

    Holds the original and the previous image, the prepared statistics of both, and the
    ``ever`` mask (pixels repainted so far). Every :meth:`step` compares the new image with
    the original and with the previous image in one batched call per metric, whole image
    and in the four regions (``current``, ``outside``, ``ever``, ``never``).

    >>> import torch
    >>> suite = MetricSuite(names=("mse",))
    >>> original = torch.zeros(1, 3, 16, 16)
    >>> tracker = DriftTracker(suite, original)
    >>> mask = torch.zeros(1, 1, 16, 16); mask[..., :4, :4] = 1
    >>> values = tracker.step(original + 0.5 * mask, mask)
    >>> round(values["mse_orig_current"].item(), 3), values["mse_prev_outside"].item()
    (0.25, 0.0)
    >>> values["mse_orig_never"].item(), round(values["mse_orig_ever"].item(), 3)
    (0.0, 0.25)
    """

    def __init__(self, suite: MetricSuite, original: torch.Tensor) -> None:
        self.suite = suite
        self.original = original
        self.previous = original
        self.ever = torch.zeros_like(original[:, :1], dtype=torch.bool)
        self._orig = suite.prepare(original)
        self._prev = self._orig

    @staticmethod
    def column(key: str, reference: str) -> str:
        """``lpips_current`` + ``orig`` -> ``lpips_orig_current`` (the results table's column names)."""
        for region in REGIONS:
            if key.endswith(f"_{region}"):
                return f"{key[: -len(region) - 1]}_{reference}_{region}"
        return f"{key}_{reference}"

    @torch.inference_mode()
    def step(self, new: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Metrics of ``new`` vs the original and the previous image; then ``new`` becomes previous.

        Returns ``{"<metric>_orig[_<region>]": B tensor, "<metric>_prev[_<region>]": ...}``.
        """
        b = new.shape[0]
        check_images(new, self.original, mask)
        self.ever |= mask > 0.5
        regions = {k: torch.cat([v, v]) for k, v in region_masks(mask, self.ever).items()}
        prepared = self.suite.prepare(new)
        both = self.suite.concat(prepared, prepared)
        values = self.suite.compare(both, self.suite.concat(self._orig, self._prev), regions)
        self.previous, self._prev = new, prepared
        out: dict[str, torch.Tensor] = {}
        for key, v in values.items():
            out[self.column(key, REFERENCES[0])] = v[:b]
            out[self.column(key, REFERENCES[1])] = v[b:]
        return out
