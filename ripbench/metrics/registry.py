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
import sys
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from ripbench.errors import ConfigError
from ripbench.metrics.spec import REGIONS, MetricSpec
from ripbench.references import Expected, plugin_references, resolve_reference

__all__ = [
    "BUILTIN_METRICS",
    "adopt_recorded_specs",
    "ENTRY_POINT_GROUP",
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

_REGISTERED: dict[str, MetricSpec | str] = {}
#: Metrics registered from a ``module:attr`` reference in a config: name -> the reference.
_REFERENCED: dict[str, str] = {}
#: What a metric's ``"module:attr"`` reference (built-in, entry point) may name.
SPEC_REFERENCE = Expected("a ripbench MetricSpec", instance_of=(MetricSpec,))


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Make ``spec`` available under ``spec.name`` (replacing an earlier registration of that name)."""
    if not isinstance(spec, MetricSpec):
        raise ConfigError(f"register_metric expects a MetricSpec, got {type(spec).__name__}")
    _REGISTERED[spec.name] = spec
    _lookup_for.cache_clear()
    return spec


def _plugin_refs() -> dict[str, str]:
    return plugin_references(ENTRY_POINT_GROUP, BUILTIN_METRICS, "metric")


def unregister_metric(name: str) -> None:
    """Forget a metric registered with :func:`register_metric` (built-ins and plug-ins stay)."""
    _REGISTERED.pop(name, None)
    _REFERENCED.pop(name, None)
    _lookup_for.cache_clear()



def available_metrics() -> dict[str, str]:
    """Every known metric name -> where its spec comes from (built-ins first, then plug-ins)."""
    out: dict[str, str] = {name: "built-in" for name in BUILTIN_METRICS}
    out.update({name: f"plug-in {ref}" for name, ref in _plugin_refs().items()})
    out.update({name: f"reference {_REFERENCED[name]}" if name in _REFERENCED else "registered"
                for name in _REGISTERED if name not in BUILTIN_METRICS})
    return out


def register_reference(ref: str) -> str:
    """Load the :class:`MetricSpec` a ``"module:attr"`` or ``"path/to/file.py:attr"`` reference names
    (checked to be a spec before anything is called; see :mod:`ripbench.references`), register it
    and return its name: ``metrics.names=[ssim,my_metrics:EDGE]`` becomes ``[ssim, edge]``, and the
    columns are named after the spec (``edge_orig``, ...).

    Refused (:class:`ConfigError`) when the spec takes the name of another metric.
    """
    spec: MetricSpec = resolve_reference(ref, SPEC_REFERENCE, "metric")
    known = available_metrics()
    if spec.name in known and _REFERENCED.get(spec.name) != ref:
        if _REGISTERED.get(spec.name) is spec:
            return spec.name
        raise ConfigError(f"metric {ref!r} calls itself {spec.name!r}, the name of another metric ({known[spec.name]})")
    register_metric(spec)
    _REFERENCED[spec.name] = ref
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


def _lookup(name: str) -> MetricSpec:
    return _lookup_for(name, tuple(sys.path))


@lru_cache(maxsize=64)
def _lookup_for(name: str, path: tuple[str, ...]) -> MetricSpec:
    ref = _REGISTERED.get(name) or BUILTIN_METRICS.get(name) or _plugin_refs().get(name)
    if ref is None:
        raise ConfigError(f"unknown metric {name!r}; available: {', '.join(available_metrics())} "
                          f"(plug-ins register in the entry-point group '{ENTRY_POINT_GROUP}')")
    spec = resolve_reference(ref, SPEC_REFERENCE, f"metric {name!r}") if isinstance(ref, str) else ref
    if spec.name != name:
        raise ConfigError(f"metric registered as {name!r} ({ref!r}) calls itself {spec.name!r}")
    return spec


def get_metric_spec(name: str) -> MetricSpec:
    """The spec of a metric by name; :class:`ConfigError` naming the known ones otherwise."""
    return _lookup(name)


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


def _not_installed(name: str) -> Any:
    def compute(a: Any, b: Any) -> Any:
        raise ConfigError(f"metric {name!r} is known only from a run's manifest (its plug-in is not installed here): "
                          "it can be analysed but not computed")

    return compute


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
    adopted = []
    for name in (record or {}).get("metrics") or []:
        recorded = ((record or {}).get(name) or {}).get("spec")
        if name in available_metrics() or not recorded:
            continue
        low, high = (float(v) for v in recorded.get("range", (-math.inf, math.inf)))
        register_metric(MetricSpec(
            name=name, label=recorded.get("label", name), higher_is_better=bool(recorded["higher_is_better"]),
            range=(low, high), identity=float(recorded.get("identity", "nan")) if "identity" in recorded else low,
            compute=_not_installed(name), units=recorded.get("units", ""),
            regions=tuple(recorded.get("regions", ())), description=recorded.get("description", "") +
            " (from a run's manifest; plug-in not installed)",
            collapse_threshold=None if recorded.get("collapse_threshold") is None
            else float(recorded["collapse_threshold"]),
            inf_value=float(recorded.get("inf_value", 100.0))))
        adopted.append(name)
    return adopted
