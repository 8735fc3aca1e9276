"""Finding detectors by name: built-ins, third-party plug-ins, ``module:attr`` references.

Three ways to make a detector known (all give a :class:`~ripbench.detectors.spec.DetectorSpec`):

1. :func:`register_detector` in your own code, before the run starts;
2. the ``ripbench.detectors`` entry-point group of an installed package::

       [project.entry-points."ripbench.detectors"]
       x0-last-change = "my_package.detectors:LAST_CHANGE"

3. a ``"package.module:ATTR"`` reference in the config, imported when the config is read.

Then ``hallucination: {detectors: [x0-variance-current, x0-last-change]}`` in a config (or
``--set hallucination.detectors=[...]``) writes its column (``det_x0_last_change``) and records
its spec in the run's manifest (``"detectors"``), so the run is analysed where the plug-in is
missing (:func:`adopt_recorded_detectors`).

Example
-------
>>> list(available_detectors())[:2]
['x0-variance', 'x0-variance-current']
>>> get_detector("edge-density").kind
'baseline'
>>> get_detector("nope")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ripbench.errors.ConfigError: unknown detector 'nope'; available: x0-variance, x0-variance-current, ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ripbench.detectors.spec import NEEDS, DetectorSpec
from ripbench.errors import ConfigError
from ripbench.registry import SpecRegistry

__all__ = [
    "BUILTIN_DETECTORS",
    "DETECTORS",
    "ENTRY_POINT_GROUP",
    "adopt_recorded_detectors",
    "available_detectors",
    "get_detector",
    "register_detector",
    "resolve_detectors",
    "unregister_detector",
]

ENTRY_POINT_GROUP = "ripbench.detectors"
#: Built-in detectors in their default order: their specs are plain data (:mod:`ripbench.detectors.catalog`,
#: torch-free); each names its function in :mod:`ripbench.detectors.builtins`, imported on first call.
BUILTIN_DETECTORS: dict[str, str] = {
    "x0-variance": "ripbench.detectors.catalog:X0_VARIANCE",
    "x0-variance-current": "ripbench.detectors.catalog:X0_VARIANCE_CURRENT",
    "x0-variance-eroded": "ripbench.detectors.catalog:X0_VARIANCE_ERODED",
    "x0-variance-component": "ripbench.detectors.catalog:X0_VARIANCE_COMPONENT",
    "x0-variance-current-paper": "ripbench.detectors.catalog:X0_VARIANCE_CURRENT_PAPER",
    "foreground-pixels": "ripbench.detectors.catalog:FOREGROUND_PIXELS",
    "edge-pixels": "ripbench.detectors.catalog:EDGE_PIXELS",
    "edge-density": "ripbench.detectors.catalog:EDGE_DENSITY",
}

#: The detector registry (:class:`ripbench.registry.SpecRegistry`); the functions below are its public face.
DETECTORS: SpecRegistry[DetectorSpec] = SpecRegistry(
    "detector", DetectorSpec, group=ENTRY_POINT_GROUP, builtins=BUILTIN_DETECTORS, fixed_builtins=True,
    unknown_hint="or a 'module:attr' reference; ")
#: What a detector's ``"module:attr"`` reference (config, built-in, entry point) may name.
SPEC_REFERENCE = DETECTORS.expected
#: Forget a detector registered with :func:`register_detector` (built-ins and plug-ins stay).
unregister_detector = DETECTORS.unregister
#: Every known detector name -> where its spec comes from (built-ins first, then plug-ins).
available_detectors = DETECTORS.available


def register_detector(spec: DetectorSpec) -> DetectorSpec:
    """Make ``spec`` available under ``spec.name`` (replacing an earlier registration of that name;
    a built-in name is refused)."""
    return DETECTORS.register(spec)


def get_detector(name: str) -> DetectorSpec:
    """The spec of a detector by name or ``"module:attr"`` reference; :class:`ConfigError` naming the
    known ones otherwise."""
    if not isinstance(name, str):
        raise ConfigError(f"a detector is given by name or 'module:attr', got {type(name).__name__}")
    return DETECTORS.load_reference(name) if ":" in name else DETECTORS.lookup(name)


def resolve_detectors(names: Sequence[str]) -> list[DetectorSpec]:
    """The specs of ``names`` in order; an unknown name or two detectors with one column raise
    :class:`ConfigError`.

    >>> [s.column for s in resolve_detectors(["x0-variance", "edge-density"])]
    ['det_x0_variance', 'det_edge_density']
    """
    if isinstance(names, str):
        names = [names]
    specs = [get_detector(n) for n in names]
    columns = [s.column for s in specs]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise ConfigError(f"hallucination.detectors names the column(s) {', '.join(dupes)} more than once")
    return specs


def adopt_recorded_detectors(manifest: dict[str, Any] | None) -> list[str]:
    """Make detectors known from a run's manifest (``manifest["detectors"]``) when their plug-in is missing.

    Label, kind, direction and needs then come from the spec recorded with the run, never from
    a guess. Returns the names adopted.

    >>> adopt_recorded_detectors({"detectors": [{"name": "gone", "column": "det_gone", "label": "Gone",
    ...     "kind": "detector", "direction": "higher-is-suspect", "needs": ["output"], "description": "x"}]})
    ['gone']
    >>> get_detector("gone").label
    'Gone'
    >>> unregister_detector("gone")
    """
    records = [r for r in (manifest or {}).get("detectors") or [] if isinstance(r, dict)]
    return DETECTORS.adopt(((r.get("name"), r) for r in records), _recorded_spec)


def _recorded_spec(name: str, record: Mapping[str, Any], compute: Callable[..., Any]) -> DetectorSpec:
    """A detector's spec from the fields a run's manifest recorded (``compute`` refuses to run)."""
    return DetectorSpec(
        name=name, label=record.get("label", name), kind=record.get("kind", "detector"),
        direction=record.get("direction", "higher-is-suspect"),
        needs=tuple(n for n in record.get("needs", ()) if n in NEEDS), compute=compute,
        description=record.get("description", "") + " (from a run's manifest; plug-in not installed)")
