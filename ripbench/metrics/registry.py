"""Finding metrics by name: built-ins, third-party plug-ins, and the table columns they own.

Three ways to make a metric known (all take a :class:`~ripbench.metrics.spec.MetricSpec`):

1. :func:`register_metric` in your own code, before the run starts;
2. the ``ripbench.metrics`` entry-point group of an installed package::

       [project.entry-points."ripbench.metrics"]
       mae = "my_package.metrics:MAE_SPEC"

3. a ``"module:attr"`` or ``"path/to/file.py:attr"`` reference in ``metrics.names`` (registered
   under the spec's own name by :func:`register_reference`).

Then ``metrics: {names: [lpips, mae]}`` in a config (or ``--set metrics.names=[lpips,mae]``)
adds its columns (``mae_orig``, ``mae_orig_current``, ...) to the table, and the analysis,
figures and report pick up its label and direction from the spec.

Example
-------
>>> sorted(available_metrics())[:6]
['clip', 'dinov2', 'lpips', 'mse', 'psnr', 'ssim']
>>> get_metric_spec("ssim").higher_is_better
True
>>> spec_for_column("lpips_orig_never").name, spec_for_column("halluc_score")
('lpips', None)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ripbench.errors import ConfigError
from ripbench.metrics.spec import REGIONS, MetricSpec
from ripbench.registry import SpecRegistry

__all__ = [
    "BUILTIN_METRICS",
    "adopt_recorded_specs",
    "ENTRY_POINT_GROUP",
    "METRICS",
    "METRIC_NAMES",
    "REFERENCES",
    "available_metrics",
    "column_label",
    "column_name",
    "get_metric_spec",
    "metric_columns",
    "register_metric",
    "register_reference",
    "spec_for_column",
    "unregister_metric",
    "validate_metric_names",
]

ENTRY_POINT_GROUP = "ripbench.metrics"
#: What a metric column compares with: the original image, or the previous iteration's.
REFERENCES: tuple[str, ...] = ("orig", "prev")
#: Built-in metrics in their default order: their specs are plain data (:mod:`ripbench.metrics.catalog`,
#: torch-free); each names the module that computes it, imported only when the metric is built.
BUILTIN_METRICS: dict[str, str] = {
    "lpips": "ripbench.metrics.catalog:LPIPS_SPEC",
    "ssim": "ripbench.metrics.catalog:SSIM_SPEC",
    "psnr": "ripbench.metrics.catalog:PSNR_SPEC",
    "mse": "ripbench.metrics.catalog:MSE_SPEC",
    "dinov2": "ripbench.metrics.catalog:DINOV2_SPEC",
    "clip": "ripbench.metrics.catalog:CLIP_SPEC",
}

#: The default metrics, in their default order (the semantic ones, ``dinov2`` and ``clip``, need
#: network weights from the Hub or a local folder and are chosen explicitly).
METRIC_NAMES: tuple[str, ...] = ("lpips", "ssim", "psnr", "mse")

#: The metric registry (:class:`ripbench.registry.SpecRegistry`); the functions below are its public face.
METRICS: SpecRegistry[MetricSpec] = SpecRegistry("metric", MetricSpec, group=ENTRY_POINT_GROUP, builtins=BUILTIN_METRICS)
#: What a metric's ``"module:attr"`` reference (built-in, entry point) may name.
SPEC_REFERENCE = METRICS.expected
#: Forget a metric registered with :func:`register_metric` (built-ins and plug-ins stay).
unregister_metric = METRICS.unregister
#: Every known metric name -> where its spec comes from (built-ins first, then plug-ins).
available_metrics = METRICS.available


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Make ``spec`` available under ``spec.name`` (replacing an earlier registration of that name)."""
    return METRICS.register(spec)


def register_reference(ref: str) -> str:
    """Load the :class:`MetricSpec` a ``"module:attr"`` or ``"path/to/file.py:attr"`` reference names
    (checked to be a spec before anything is called; see :mod:`ripbench.references`), register it
    and return its name: ``metrics.names=[ssim,my_metrics:EDGE]`` becomes ``[ssim, edge]``, and the
    columns are named after the spec (``edge_orig``, ...).

    Refused (:class:`ConfigError`) when the spec takes the name of another metric.
    """
    spec = METRICS.load_reference(ref)
    if METRICS.referenced(spec.name) != ref and METRICS.registered(spec.name) is spec:
        return spec.name  # registered in code already
    METRICS.register(spec, reference=ref)
    return spec.name


def validate_metric_names(names: str | Iterable[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple without duplicates, or raise :class:`ConfigError`.

    Example:
        >>> validate_metric_names(["ssim", "mse", "ssim"])
        ('ssim', 'mse')
    """
    chosen = (names,) if isinstance(names, str) else tuple(names)
    chosen = tuple(register_reference(name) if ":" in name else name for name in chosen)
    known = available_metrics()
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise ConfigError(f"unknown metric name(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(known)}")
    if not chosen:
        raise ConfigError(f"no metrics chosen; allowed: {', '.join(known)}")
    return tuple(dict.fromkeys(chosen))


def get_metric_spec(name: str) -> MetricSpec:
    """The spec of a metric by name; :class:`ConfigError` naming the known ones otherwise."""
    return METRICS.lookup(name)


def column_name(metric: str, reference: str = "orig", region: str | None = None) -> str:
    """``("lpips", "orig", "never")`` -> ``"lpips_orig_never"``; ``region=None`` is the whole image."""
    return f"{metric}_{reference}" + (f"_{region}" if region else "")


def metric_columns(metric: str) -> list[str]:
    """Every results-table column a metric owns, in table order."""
    spec = get_metric_spec(metric)
    return [column_name(metric, ref, region) for ref in REFERENCES for region in (None, *spec.regions)]


_REGION_WORDS = {"current": "in the current mask", "outside": "outside the current mask",
                 "ever": "in pixels ever masked", "never": "in pixels never masked"}


def column_label(column: str) -> str | None:
    """Axis label of a metric column from its spec, e.g. ``"LPIPS to original (lower is better)"``.

    >>> column_label("ssim_prev_never")
    'SSIM to previous iteration, in pixels never masked (higher is better)'
    >>> column_label("halluc_score") is None
    True
    """
    spec = spec_for_column(column)
    if spec is None:
        return None
    head = spec.name
    rest = column[len(head) + 1 :]
    reference, _, region = rest.partition("_")
    label = spec.column_label(reference)
    if region:
        base, _, paren = label.partition(" (")
        label = f"{base}, {_REGION_WORDS[region]} ({paren}"
    return label


def spec_for_column(column: str) -> MetricSpec | None:
    """The spec of the metric a results column belongs to (``None`` for non-metric columns)."""
    for ref in REFERENCES:
        marker = f"_{ref}"
        head, sep, tail = column.rpartition(marker)
        if not sep or (tail and tail.lstrip("_") not in REGIONS) or (tail and not tail.startswith("_")):
            continue
        if head in available_metrics():
            return get_metric_spec(head)
    return None


def adopt_recorded_specs(record: dict[str, Any] | None) -> list[str]:
    """Make metrics known from a run's manifest (``manifest["metrics"]``) when their plug-in is missing.

    A table made with a plug-in metric can then be analysed where the plug-in is not installed:
    direction, label and range come from the spec recorded with the run, never from a guess.
    Returns the names adopted.

    >>> adopt_recorded_specs({"metrics": ["gone"], "gone": {"spec": {"name": "gone", "label": "Gone",
    ...     "higher_is_better": True, "range": [0, "inf"], "identity": "inf"}}})
    ['gone']
    >>> get_metric_spec("gone").direction
    -1
    >>> unregister_metric("gone")
    """
    names = (record or {}).get("metrics") or []
    return METRICS.adopt(((name, ((record or {}).get(name) or {}).get("spec")) for name in names), _recorded_spec)


def _recorded_spec(name: str, recorded: Mapping[str, Any], compute: Callable[..., Any]) -> MetricSpec:
    """A metric's spec from the fields a run's manifest recorded (``compute`` refuses to run)."""
    low, high = (float(v) for v in recorded.get("range", (-math.inf, math.inf)))
    return MetricSpec(
        name=name, label=recorded.get("label", name), higher_is_better=bool(recorded["higher_is_better"]),
        range=(low, high), identity=float(recorded.get("identity", "nan")) if "identity" in recorded else low,
        compute=compute, units=recorded.get("units", ""),
        regions=tuple(recorded.get("regions", ())), description=recorded.get("description", "") +
        " (from a run's manifest; plug-in not installed)",
        collapse_threshold=None if recorded.get("collapse_threshold") is None
        else float(recorded["collapse_threshold"]),
        inf_value=float(recorded.get("inf_value", 100.0)))
