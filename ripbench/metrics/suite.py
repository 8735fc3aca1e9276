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
from ripbench.metrics.regions import REGIONS, RegionSet, check_images, host_kernels, region_masks
from ripbench.metrics.registry import METRIC_NAMES as METRIC_NAMES  # declared with the registry (torch-free)
from ripbench.metrics.registry import REFERENCES, get_metric_spec, validate_metric_names
from ripbench.metrics.spec import Metric


def _leaves(state: Any) -> list[torch.Tensor]:
    """The tensors of a prepared batch (a tensor, or lists / tuples / dicts of them)."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, (list, tuple)):
        return [leaf for item in state for leaf in _leaves(item)]
    if isinstance(state, dict):
        return [leaf for item in state.values() for leaf in _leaves(item)]
    raise TypeError(f"prepare() must return tensors (or lists / tuples / dicts of them), got {type(state).__name__}")


def _map_leaves(fn: Any, state: Any) -> Any:
    """``state`` with ``fn`` applied to each of its tensors (same structure)."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, (list, tuple)):
        return type(state)(_map_leaves(fn, item) for item in state)
    if isinstance(state, dict):
        return {k: _map_leaves(fn, v) for k, v in state.items()}
    raise TypeError(f"prepare() must return tensors (or lists / tuples / dicts of them), got {type(state).__name__}")


def _cat(a: Any, b: Any) -> Any:
    """Concatenate two prepared batches (tensors, or lists / tuples / dicts of them) along the batch."""
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b])
    if isinstance(a, (list, tuple)):
        return type(a)(_cat(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    raise TypeError(f"prepare() must return tensors (or lists / tuples / dicts of them), got {type(a).__name__}")


def _from_map(metric: Metric) -> bool:
    """Whether every value of ``metric`` follows from its map (whole: border crop; regions: means)."""
    return metric.border is not None and type(metric).reduce is Metric.reduce


def _groups(metrics: Mapping[str, Metric]) -> list[list[str]]:
    """Metric names grouped so that each group computes one per-pixel map (MSE and PSNR share theirs)."""
    groups: dict[Any, list[str]] = {}
    for name, metric in metrics.items():
        key = (metric.map_key, metric.border) if metric.map_key is not None and _from_map(metric) else name
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def _crop_mean(per_pixel: torch.Tensor, border: int) -> torch.Tensor:
    """Per-item mean of a map with ``border`` pixels cropped on every side."""
    if border:
        per_pixel = per_pixel[:, :, border:-border, border:-border]
    return per_pixel.flatten(1).mean(dim=1)


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
        self.groups = _groups(self.metrics)
        #: the metrics whose prepared data yield stored features (:meth:`Metric.features`).
        self.feature_metrics = tuple(name for name, metric in self.metrics.items()
                                     if type(metric).features is not Metric.features)

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
        """Per-image work of every metric (see :meth:`Metric.prepare`); metrics sharing a map share it."""
        if images.device != self.device:
            raise InputError(f"metric suite was built for {self.device} but the images are on {images.device}")
        out: dict[str, Any] = {}
        for group in self.groups:
            prepared = self.metrics[group[0]].prepare(images)
            out.update(dict.fromkeys(group, prepared))
        return out

    @staticmethod
    def concat(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """Two prepared batches as one (so one :meth:`compare` call covers both)."""
        return {name: _cat(a[name], b[name]) for name in a}

    def _values(self, group: list[str], whole: torch.Tensor | None, per_pixel: torch.Tensor | None,
                regions: RegionSet | None) -> dict[str, torch.Tensor]:
        """Values of a group's metrics from its map (and the lead metric's whole value when not from the map)."""
        lead = self.metrics[group[0]]
        out: dict[str, torch.Tensor] = {}
        raw_whole = (_crop_mean(per_pixel, lead.border) if _from_map(lead) and per_pixel is not None
                     and lead.border is not None else None)
        wanted = [r for r in (regions.names if regions is not None else ()) if
                  any(r in self.specs[name].regions for name in group)]
        if wanted and per_pixel is None:
            raise InputError(f"metric {group[0]!r} declares regions but returned no per-pixel map")
        raw_regions = regions.means(per_pixel) if wanted and type(lead).reduce is Metric.reduce else {}  # type: ignore[union-attr,arg-type]
        for name in group:
            metric = self.metrics[name]
            value = metric.finish(raw_whole) if raw_whole is not None else whole
            out[name] = value.to(torch.float32)  # type: ignore[union-attr]
            for region in wanted:
                if region not in self.specs[name].regions:
                    continue
                if region in raw_regions:
                    out[f"{name}_{region}"] = metric.finish(raw_regions[region]).to(torch.float32)
                else:
                    out[f"{name}_{region}"] = metric.reduce(per_pixel, regions.mask(region)).to(torch.float32)  # type: ignore[arg-type,union-attr]
        return out

    def _compare_group(self, group: list[str], a: Any, b: Any, regions: RegionSet | None) -> \
            tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """``(values, per-pixel map)`` of one group for two prepared batches of its lead metric."""
        lead = self.metrics[group[0]]
        if _from_map(lead):
            per_pixel = lead.compare_map(a, b)
            return self._values(group, None, per_pixel, regions), per_pixel
        whole, per_pixel = lead.compare(a, b)
        return self._values(group, whole, per_pixel, regions), per_pixel

    @torch.inference_mode()
    def compare(
        self, a: dict[str, Any], b: dict[str, Any], regions: Mapping[str, torch.Tensor] | RegionSet | None = None
    ) -> dict[str, torch.Tensor]:
        """Compare prepared batches: whole image and each region a metric supports.

        ``regions``: region name -> ``B x 1 x H x W`` {0, 1} mask, or a :class:`RegionSet`.
        Returns ``{key: B float32 tensor}``: ``name`` for the whole image, ``name_<region>`` per region.
        """
        if regions is not None and not isinstance(regions, RegionSet):
            regions = RegionSet(regions) if regions else None
        out: dict[str, torch.Tensor] = {}
        for group in self.groups:
            out.update(self._compare_group(group, a[group[0]], b[group[0]], regions)[0])
        return {key: out[key] for key in self.keys(regions.names if regions is not None else ())}

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


#: A pixel box ``(y0, y1, x0, x1)``, end-exclusive.
Box = tuple[int, int, int, int]


def _grow(box: Box, by: int, height: int, width: int) -> Box:
    y0, y1, x0, x1 = box
    return max(0, y0 - by), min(height, y1 + by), max(0, x0 - by), min(width, x1 + by)


def changed_boxes(new: torch.Tensor, old: torch.Tensor) -> list[Box | None]:
    """Per item, the bounding box of the pixels where ``new`` and ``old`` differ (``None``: identical).

    >>> import torch
    >>> old = torch.zeros(2, 3, 8, 8); new = old.clone(); new[0, 1, 2:4, 5] = 1
    >>> changed_boxes(new, old)
    [(2, 4, 5, 6), None]
    """
    changed = torch.ne(new, old).view(torch.uint8)  # max over uint8 is faster than any() over bool
    rows = changed.amax(dim=3).amax(dim=1).cpu().numpy()
    cols = changed.amax(dim=2).amax(dim=1).cpu().numpy()
    boxes: list[Box | None] = []
    for r, c in zip(rows, cols):
        if not r.any():
            boxes.append(None)
            continue
        y0, y1 = int(r.argmax()), len(r) - int(r[::-1].argmax())
        x0, x1 = int(c.argmax()), len(c) - int(c[::-1].argmax())
        boxes.append((y0, y1, x0, x1))
    return boxes


class DriftTracker:
    """Metrics of a batch of recursive trajectories, iteration after iteration.

    Holds the original and the previous image, the prepared statistics of both, and the
    ``ever`` mask (pixels repainted so far). Every :meth:`step` compares the new image with
    the original and with the previous image, whole image and in the four regions
    (``current``, ``outside``, ``ever``, ``never``): each metric's per-pixel map is computed
    once per reference and averaged in all regions together.

    **Local recomputation (CPU).** For local metrics (SSIM, MSE, PSNR: see
    :attr:`Metric.radius <ripbench.metrics.spec.Metric.radius>`) a model that changes only
    some pixels (a classical inpainter, or paste-back) changes their maps only near those
    pixels. On the CPU the tracker then recomputes, per item, only the box around the changed
    pixels (grown by the metric's radius) and keeps the rest of the map vs the original from
    the previous iteration; the map vs the previous image is the identity value outside the
    box. The values are the same as recomputing everything (the same float operations per
    pixel; a test checks it). Off on other devices (it needs the boxes on the host), when the
    images are small, or when the boxes cover most of the image.

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

    #: Local recomputation needs at least this many pixels per image (below, batched work is cheaper).
    LOCAL_MIN_PIXELS = 64 * 64
    #: ... and the boxes to cover at most this share of the batch's pixels.
    LOCAL_MAX_SHARE = 0.5

    def __init__(self, suite: MetricSuite, original: torch.Tensor, *, local: bool | None = None) -> None:
        self.suite = suite
        self.original = original
        self.previous = original
        self.ever = torch.zeros_like(original[:, :1], dtype=torch.bool)
        self._orig = suite.prepare(original)
        self._prev = self._orig
        h, w = original.shape[2:]
        self.local = (host_kernels(original) and h * w >= self.LOCAL_MIN_PIXELS) if local is None else local
        self._local_groups = [g for g in suite.groups if suite.metrics[g[0]].radius is not None
                              and _from_map(suite.metrics[g[0]])]
        self._map_orig: dict[str, torch.Tensor] = {}  # group lead -> map of the previous image vs the original
        self._owned: set[str] = set()  # group leads whose previous statistics this tracker may update in place
        #: how many steps used local recomputation (for tests and benchmarks).
        self.local_steps = 0
        #: the regions of the last step.
        self.regions: RegionSet | None = None

    def features(self) -> dict[str, torch.Tensor]:
        """Stored features of the latest image (the original before the first :meth:`step`), per metric that
        has them (see :meth:`Metric.features`): ``{name: B x D}``, on the device."""
        out: dict[str, torch.Tensor] = {}
        for name in self.suite.feature_metrics:
            found = self.suite.metrics[name].features(self._prev[name])
            if found is not None:
                out[name] = found
        return out

    def ever_fraction(self) -> torch.Tensor:
        """Share of each image repainted at least once so far (``B`` float32; from the last step's regions)."""
        h, w = self.original.shape[2:]
        if self.regions is None:
            return torch.zeros(self.original.shape[0], device=self.original.device)
        return self.regions.counts[:, REGIONS.index("ever")] / float(h * w)

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
        check_images(new, self.original, mask)
        suite = self.suite
        self.ever |= mask > 0.5
        regions = self.regions = RegionSet.of_iteration(mask, self.ever)
        boxes = self._boxes(new) if self.local and self._local_groups else None
        self.local_steps += boxes is not None
        prepared: dict[str, Any] = {}
        to_ref: dict[str, dict[str, torch.Tensor]] = {ref: {} for ref in REFERENCES}  # original, previous
        for group in suite.groups:
            lead = group[0]
            if boxes is not None and group in self._local_groups:
                state, map_orig, map_prev = self._local_step(lead, new, boxes)
                to_orig = suite._values(group, None, map_orig, regions)
                to_prev = suite._values(group, None, map_prev, regions)
            else:
                state = suite.metrics[lead].prepare(new)
                to_orig, map_orig = suite._compare_group(group, state, self._orig[lead], regions)  # type: ignore[assignment]
                to_prev, _ = suite._compare_group(group, state, self._prev[lead], regions)
                if group in self._local_groups and map_orig is not None:
                    self._map_orig[lead] = map_orig
                    self._owned.add(lead)  # fresh statistics from prepare()
            prepared.update(dict.fromkeys(group, state))
            to_ref[REFERENCES[0]].update(to_orig)
            to_ref[REFERENCES[1]].update(to_prev)
        self.previous, self._prev = new, prepared
        wanted = suite.keys(regions.names)
        return {self.column(key, ref): to_ref[ref][key] for key in wanted for ref in REFERENCES}

    # -- local recomputation -------------------------------------------------
    def _boxes(self, new: torch.Tensor) -> list[Box | None] | None:
        """Changed-pixel boxes per item, or ``None`` when recomputing everything is cheaper."""
        boxes = changed_boxes(new, self.previous)
        b, _, h, w = new.shape
        radius = max(self.suite.metrics[g[0]].radius or 0 for g in self._local_groups)
        area = 0
        for box in boxes:
            if box is not None:
                y0, y1, x0, x1 = _grow(box, 2 * radius, h, w)
                area += (y1 - y0) * (x1 - x0)
        return boxes if area <= self.LOCAL_MAX_SHARE * b * h * w else None

    def _local_step(self, lead: str, new: torch.Tensor, boxes: list[Box | None]) \
            -> tuple[Any, torch.Tensor, torch.Tensor]:
        """New statistics, the map vs the original (updated in place) and the map vs the previous image."""
        metric = self.suite.metrics[lead]
        radius = int(metric.radius)  # type: ignore[arg-type]
        b, _, h, w = new.shape
        orig_state, prev_state = self._orig[lead], self._prev[lead]
        map_orig = self._map_orig.get(lead)
        patches: list[tuple[int, Box, Any]] = []
        map_prev: torch.Tensor | None = None
        for i, box in enumerate(boxes):
            if box is None:
                continue
            inner = _grow(box, radius, h, w)  # where the map and the statistics change
            window = _grow(inner, radius, h, w)  # what they depend on
            wy, wx = slice(window[0], window[1]), slice(window[2], window[3])
            crop_state = metric.prepare(new[i : i + 1, :, wy, wx])
            sub = (slice(None), slice(None), slice(inner[0] - window[0], inner[1] - window[0]),
                   slice(inner[2] - window[2], inner[3] - window[2]))

            def crop(state: Any, i: int = i, wy: slice = wy, wx: slice = wx) -> Any:
                return _map_leaves(lambda t: t[i : i + 1, ..., wy, wx], state)

            to_orig = metric.compare_map(crop_state, crop(orig_state))[sub]  # type: ignore[index]
            to_prev = metric.compare_map(crop_state, crop(prev_state))[sub]  # type: ignore[index]
            if map_orig is None:  # the original vs itself: the identity everywhere
                map_orig = torch.full((b, to_orig.shape[1], h, w), metric.pixel_identity,
                                      dtype=to_orig.dtype, device=new.device)
                self._map_orig[lead] = map_orig
            if map_prev is None:
                map_prev = torch.full_like(map_orig, metric.pixel_identity)
            iy, ix = slice(inner[0], inner[1]), slice(inner[2], inner[3])
            map_orig[i : i + 1, :, iy, ix] = to_orig
            map_prev[i : i + 1, :, iy, ix] = to_prev
            patches.append((i, inner, _map_leaves(lambda t, sub=sub: t[sub], crop_state)))
        if map_orig is None:  # nothing changed anywhere yet
            probe = self._probe(metric, orig_state)
            map_orig = self._map_orig[lead] = torch.full((b, probe, h, w), metric.pixel_identity,
                                                          dtype=torch.float32, device=new.device)
        if map_prev is None:
            map_prev = torch.full_like(map_orig, metric.pixel_identity)
        return self._patched(lead, prev_state, new, patches), map_orig, map_prev

    def _patched(self, lead: str, prev_state: Any, new: torch.Tensor, patches: list[tuple[int, Box, Any]]) -> Any:
        """The new image's statistics: the previous ones with the changed boxes replaced."""
        owned = lead in self._owned and prev_state is not self._orig[lead]
        previous = self.previous
        storage = previous.untyped_storage().data_ptr()
        per_patch = [_leaves(p) for _, _, p in patches]
        position = iter(range(len(_leaves(prev_state))))

        def update(leaf: torch.Tensor) -> torch.Tensor:
            j = next(position)
            if leaf is previous:  # the image itself: the new image is its new value
                return new
            if not owned or leaf.untyped_storage().data_ptr() == storage:
                leaf = leaf.clone()
            for (i, (y0, y1, x0, x1), _), values in zip(patches, per_patch):
                leaf[i : i + 1, ..., y0:y1, x0:x1] = values[j]
            return leaf

        state = _map_leaves(update, prev_state)
        self._owned.add(lead)
        return state

    @staticmethod
    def _probe(metric: Metric, state: Any) -> int:
        """Channels of ``metric``'s map (from a small crop of the original compared with itself)."""
        side = 2 * int(metric.radius or 0) + 1
        small = _map_leaves(lambda t: t[:1, ..., :side, :side], state)
        return int(metric.compare_map(small, small).shape[1])  # type: ignore[union-attr]
