"""What a metric is: one :class:`MetricSpec` (its facts) and a :class:`Metric` (its batched computation).

Every fact about a metric lives in its spec and nowhere else: the results table, the
analysis (direction of "worse"), the figures (labels) and the report read it from here.

A metric compares two batches of images, ``B x 3 x H x W`` float in ``[0, 1]`` on one
device, and returns, per batch item, a whole-image value and (optionally) a per-pixel map
whose mean over a region is the metric's value in that region (see
:mod:`ripbench.metrics.regions`). Work that depends on one image only (LPIPS backbone
features, SSIM's local means) goes in :meth:`Metric.prepare`, so a recursive loop that
compares each new image with both the original and the previous image does it once.

Writing a metric
----------------
For a metric that is a plain function of two image batches, give the spec a function::

    def mean_abs(a, b):                      # B x 3 x H x W each
        diff = (a - b).abs()
        return diff.flatten(1).mean(1), diff  # whole-image values, per-pixel map

    MEAN_ABS = MetricSpec(name="mae", label="MAE", higher_is_better=False, range=(0.0, 1.0),
                          identity=0.0, compute=mean_abs)

(return only the ``B`` values, without a map, if region values make no sense; then
``regions=()``). Subclass :class:`Metric` when the metric has state (a network) or
per-image work to share. Register with :func:`ripbench.metrics.register_metric` or the
``ripbench.metrics`` entry-point group (see :mod:`ripbench.metrics.registry`).

Example
-------
>>> import torch
>>> spec = MetricSpec(name="mae", label="MAE", higher_is_better=False, range=(0.0, 1.0), identity=0.0,
...                   compute=lambda a, b: ((a - b).abs().flatten(1).mean(1), (a - b).abs()))
>>> metric = spec.build("cpu")
>>> a = torch.zeros(1, 3, 4, 4)
>>> whole, per_pixel = metric.compare(metric.prepare(a), metric.prepare(a + 0.25))
>>> whole.tolist(), tuple(per_pixel.shape)
([0.25], (1, 3, 4, 4))
>>> spec.direction_word
'lower is better'
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from ripbench.errors import ConfigError
from ripbench.references import Expected, resolve_reference

if TYPE_CHECKING:
    import torch

__all__ = ["REGIONS", "FunctionMetric", "Metric", "MetricSpec"]

#: The regions a metric can report, besides the whole image (see :mod:`ripbench.metrics.regions`,
#: which explains them and re-exports this name). Declared here, without torch, so that specs,
#: the registry and the analysis of a results table never import torch.
REGIONS: tuple[str, ...] = ("current", "outside", "ever", "never")

#: ``(whole, per_pixel)``: ``B`` values and a ``B x C x H x W`` map (or ``None``).
MetricOutput = tuple["torch.Tensor", "torch.Tensor | None"]


class Metric(ABC):
    """A metric ready to compute on one device (built by :meth:`MetricSpec.build`).

    Subclasses implement :meth:`compare`; they may override :meth:`prepare` (per-image work),
    :meth:`finish` (how a value follows from a mean of the per-pixel map, e.g. PSNR from a mean
    squared error), :meth:`reduce` (a region value computed some other way) and :meth:`provenance`.

    Optional declarations that let the suite do less work (all off by default; each is a
    promise that the built-in metrics' tests check for them):

    * :attr:`border` -- the whole-image value is ``finish(mean of the map with a border of this
      many pixels cropped)`` (SSIM: 5, MSE/PSNR: 0); the suite then takes it from the map.
    * :attr:`map_key` -- metrics of one suite with the same key compute the same per-pixel map
      from the same prepared data (MSE and PSNR): it is computed once.
    * :attr:`radius` -- locality: the map and the prepared statistics at a pixel depend only on
      the images within this many pixels of it, :meth:`prepare` and :meth:`compare` work on any
      crop (reflecting at the crop's edges like at the image's), and an image compared with
      itself gives :attr:`pixel_identity` everywhere. On the CPU the drift tracker then
      recomputes only around the pixels a model changed (needs :attr:`border` too).
    """

    spec: MetricSpec
    #: whole-image value = ``finish(mean of the map cropped by this border)``; ``None``: from :meth:`compare`.
    border: int | None = None
    #: metrics with equal keys share one per-pixel map (and their prepared data).
    map_key: str | None = None
    #: the map and prepared statistics at a pixel depend on the images within this many pixels.
    radius: int | None = None
    #: the per-pixel map of an image compared with itself (local metrics).
    pixel_identity: float = 0.0

    def prepare(self, images: torch.Tensor) -> Any:
        """Per-image work, done once per image and reused by every comparison it takes part in.

        Returns a tensor, or a list / tuple / dict of tensors, each with the batch first (the
        suite concatenates prepared batches). Default: the images themselves.
        """
        return images

    @abstractmethod
    def compare(self, a: Any, b: Any) -> MetricOutput:
        """Compare two prepared batches: ``(whole, per_pixel)`` as described in :data:`MetricOutput`."""

    def compare_map(self, a: Any, b: Any) -> torch.Tensor | None:
        """Only the per-pixel map of :meth:`compare` (metrics with a :attr:`border` skip the whole value)."""
        return self.compare(a, b)[1]

    def finish(self, means: torch.Tensor) -> torch.Tensor:
        """Metric values from means of the per-pixel map (default: the means themselves)."""
        return means

    def reduce(self, per_pixel: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        """The metric's value inside ``region`` (``B x 1 x H x W`` {0, 1}): ``finish`` of the map's mean there.

        NaN if the region is empty. Overriding this (rather than :meth:`finish`) makes the suite
        reduce region by region instead of all regions in one product.
        """
        from ripbench.metrics.regions import masked_mean

        return self.finish(masked_mean(per_pixel, region))

    def provenance(self) -> dict[str, Any]:
        """What the run manifest records about this metric's settings (weights, windows, ...)."""
        return {}

    def features(self, prepared: Any) -> torch.Tensor | None:
        """A ``B x D`` feature vector per image from its :meth:`prepare` output, stored by the run for the
        population metrics (:mod:`ripbench.population`); ``None`` (default): the metric stores none."""
        return None


class FunctionMetric(Metric):
    """A :class:`Metric` around a plain function ``f(a, b) -> whole`` or ``-> (whole, per_pixel)``."""

    def __init__(self, spec: MetricSpec, function: Callable[..., Any], options: Mapping[str, Any]) -> None:
        self.spec = spec
        self.function = function
        self.options = dict(options)

    def compare(self, a: torch.Tensor, b: torch.Tensor) -> MetricOutput:
        out = self.function(a, b, **self.options)
        if isinstance(out, tuple):
            whole, per_pixel = out
            return whole, per_pixel
        return out, None

    def provenance(self) -> dict[str, Any]:
        fn = self.function
        return {"function": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}",
                **self.options}


#: What a ``"module:attr"`` string in :attr:`MetricSpec.compute` may name (the spec's author wrote it).
COMPUTE_REFERENCE = Expected("a ripbench Metric subclass or a function", any_callable=True)


@dataclass(frozen=True)
class MetricSpec:
    """Everything ripbench knows about a metric.

    Attributes:
        name: registry key and column prefix (``lpips`` -> ``lpips_orig``, ``lpips_orig_current``, ...);
            lower-case letters, digits, ``_`` and ``-``, starting with a letter.
        label: short human name for tables and axes (``"LPIPS"``).
        higher_is_better: ``True`` when larger values mean "closer to the reference" (SSIM, PSNR);
            the analysis turns every metric into a drift that grows with this direction.
        range: ``(low, high)`` of possible values (``math.inf`` allowed).
        identity: the value of an image compared with itself (LPIPS 0, SSIM 1, PSNR +inf).
        min_size: smallest image side the metric accepts, or a function of the metric's options
            returning it (LPIPS depends on the backbone).
        units: unit of the values (``"dB"``) or ``""``.
        regions: the regions (see :data:`ripbench.metrics.regions.REGIONS`) the metric reports;
            ``()`` for a whole-image-only metric (its ``compare`` returns no per-pixel map).
        description: one line for ``ripbench metrics -v``.
        compute: a :class:`Metric` subclass (constructed as ``cls(device=..., **options)``), or a plain
            function ``f(a, b, **options) -> whole | (whole, per_pixel)`` (tensors arrive on their
            device); a ``"module:attr"`` string is imported on first use.
        options: the options the metric accepts, name -> ``(default, one-line help)``.
        region_note: how region values are computed, for the docs and ``metrics -v``.
        collapse_threshold: the default collapse threshold on the distance to the original
            (``<name>_orig``): a trajectory has collapsed at the first iteration where it is past this
            value, in the direction of "worse" (``>=`` when lower is better, else ``<=``); ``None``
            when the metric is no default collapse rule (see :func:`ripbench.analysis.collapse_rule`,
            which uses the first built-in metric, in :data:`~ripbench.metrics.registry.METRIC_NAMES`
            order, that a run has).
        reach: how far, in pixels, a change of one pixel moves the metric's per-pixel map (``0`` for a
            pixel-local metric such as MSE or PSNR; SSIM: its window's radius; LPIPS: its backbone's
            receptive field plus the upsampling of its coarsest layer), or a function of the metric's
            options returning it; ``None`` when not declared. A region value of a metric with reach
            ``r > 0`` includes pixels up to ``r`` pixels outside the region (context), so only
            pixel-local metrics say whether the region's own pixels changed (the report's region
            findings read them; see :mod:`ripbench.metrics.regions`).
        inf_value: what the analysis counts ``+inf`` values as, for a metric whose identity is
            ``+inf`` (PSNR of identical pixels), so that means, slopes and areas stay finite; such a
            metric has no fixed starting value, so it has no drift from iteration 0 either.
    """

    name: str
    label: str
    higher_is_better: bool
    range: tuple[float, float]
    identity: float
    compute: Any
    min_size: int | Callable[..., int] = 1
    units: str = ""
    regions: tuple[str, ...] = REGIONS
    description: str = ""
    options: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    region_note: str = "mean of the per-pixel map over the region's pixels"
    collapse_threshold: float | None = None
    inf_value: float = 100.0
    reach: int | Callable[..., int] | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", self.name or ""):
            raise ConfigError(f"metric name {self.name!r} must start with a letter and hold only a-z, 0-9, '_', '-'")
        unknown = [r for r in self.regions if r not in REGIONS]
        if unknown:
            raise ConfigError(f"metric {self.name!r}: unknown region(s) {unknown}; allowed: {', '.join(REGIONS)}")
        low, high = self.range
        if not low <= self.identity <= high:
            raise ConfigError(f"metric {self.name!r}: identity {self.identity} lies outside its range {self.range}")
        if self.collapse_threshold is not None and not math.isfinite(self.collapse_threshold):
            raise ConfigError(f"metric {self.name!r}: collapse_threshold must be a finite number, "
                              f"got {self.collapse_threshold!r}")
        if not math.isfinite(self.inf_value):
            raise ConfigError(f"metric {self.name!r}: inf_value must be a finite number, got {self.inf_value!r}")

    @property
    def direction(self) -> int:
        """``+1`` when larger values mean more drift (lower is better), ``-1`` otherwise."""
        return -1 if self.higher_is_better else 1

    @property
    def fixed_start(self) -> bool:
        """Whether an image compared with itself has a finite value (a drift from iteration 0 exists).

        PSNR's identity is ``+inf``: its first iteration's value says only "identical", so it has none.
        """
        return math.isfinite(self.identity)

    def finite_values(self, values: Any, inf_value: float | None = None) -> Any:
        """``values`` (a float array) with ``+inf`` counted as :attr:`inf_value` (or ``inf_value``) when
        this metric's identity is ``+inf``; other values unchanged.

        >>> import numpy as np
        >>> from ripbench.metrics.catalog import PSNR_SPEC
        >>> PSNR_SPEC.finite_values(np.array([np.inf, 30.0])).tolist()
        [100.0, 30.0]
        """
        import numpy as np

        if self.identity != math.inf:
            return values
        return np.where(values == np.inf, self.inf_value if inf_value is None else inf_value, values)

    @property
    def direction_word(self) -> str:
        """``"higher is better"`` or ``"lower is better"``."""
        return "higher is better" if self.higher_is_better else "lower is better"

    def minimum_size(self, **options: Any) -> int:
        """Smallest image side this metric accepts with these options."""
        return int(self.min_size(**options) if callable(self.min_size) else self.min_size)

    def reach_px(self, **options: Any) -> int | None:
        """The metric's :attr:`reach` in pixels with these options (``None`` when not declared).

        >>> from ripbench.metrics.catalog import LPIPS_SPEC, MSE_SPEC
        >>> MSE_SPEC.reach_px(), LPIPS_SPEC.reach_px(net="alex")
        (0, 101)
        """
        if self.reach is None:
            return None
        if callable(self.reach):
            known = {k: v for k, v in options.items() if k in self.options}
            return int(self.reach(**known))
        return int(self.reach)

    @property
    def pixel_local(self) -> bool:
        """Whether a region value of this metric depends on the region's own pixels only (reach 0)."""
        return self.reach is not None and not callable(self.reach) and int(self.reach) == 0

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options with defaults filled in; unknown names raise :class:`ConfigError`."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = ", ".join(self.options) or "none"
            raise ConfigError(f"metric {self.name!r} has no option(s) {', '.join(unknown)}; allowed: {allowed}")
        return {**{k: default for k, (default, _) in self.options.items()}, **options}

    def build(self, device: str | torch.device = "cpu", **options: Any) -> Metric:
        """A :class:`Metric` ready to run on ``device``."""
        options = self.check_options(options)
        target = self.compute
        if isinstance(target, str):
            target = resolve_reference(target, COMPUTE_REFERENCE, f"metric {self.name!r}: compute")
        if isinstance(target, type) and issubclass(target, Metric):  # constructed as cls(device=..., **options)
            import torch

            metric = cast("Callable[..., Metric]", target)(device=torch.device(device), **options)
        else:
            metric = FunctionMetric(self, target, options)
        metric.spec = self
        return metric

    def column_label(self, reference: str = "orig") -> str:
        """Axis label such as ``"LPIPS to original (lower is better)"``."""
        ref = {"orig": "to original", "prev": "to previous iteration"}.get(reference, reference)
        units = f", {self.units}" if self.units else ""
        return f"{self.label} {ref} ({self.direction_word}{units})"

    def describe(self) -> dict[str, Any]:
        """The spec as plain data (for ``ripbench metrics -v`` and manifests)."""
        low, high = self.range
        return {
            "name": self.name, "label": self.label, "higher_is_better": self.higher_is_better,
            "range": [low if math.isfinite(low) else str(low), high if math.isfinite(high) else str(high)],
            "identity": self.identity if math.isfinite(self.identity) else str(self.identity),
            "units": self.units, "regions": list(self.regions), "description": self.description,
            "options": {k: {"default": d, "help": h} for k, (d, h) in self.options.items()},
            # analysis facts, not result facts: a resume ignores them (run/experiment.py, ANALYSIS_ONLY)
            "collapse_threshold": self.collapse_threshold, "inf_value": self.inf_value,
            "reach": self.reach if self.reach is None or isinstance(self.reach, int) else "depends on options",
        }
