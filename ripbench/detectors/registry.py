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

import sys
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ripbench.detectors.spec import NEEDS, DetectorBatch, DetectorSpec
from ripbench.errors import ConfigError
from ripbench.references import Expected, plugin_references, resolve_reference

__all__ = [
    "BUILTIN_DETECTORS",
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

_REGISTERED: dict[str, DetectorSpec] = {}


def register_detector(spec: DetectorSpec) -> DetectorSpec:
    """Make ``spec`` available under ``spec.name`` (replacing an earlier registration of that name;
    a built-in name is refused)."""
    if not isinstance(spec, DetectorSpec):
        raise ConfigError(f"register_detector expects a DetectorSpec, got {type(spec).__name__}")
    if spec.name in BUILTIN_DETECTORS:
        raise ConfigError(f"detector name {spec.name!r} is a built-in; choose another name")
    _REGISTERED[spec.name] = spec
    _lookup_for.cache_clear()
    return spec


def unregister_detector(name: str) -> None:
    """Forget a detector registered with :func:`register_detector` (built-ins and plug-ins stay)."""
    _REGISTERED.pop(name, None)
    _lookup_for.cache_clear()


def _plugin_refs() -> dict[str, str]:
    return plugin_references(ENTRY_POINT_GROUP, BUILTIN_DETECTORS, "detector")



def available_detectors() -> dict[str, str]:
    """Every known detector name -> where its spec comes from (built-ins first, then plug-ins)."""
    out: dict[str, str] = {name: "built-in" for name in BUILTIN_DETECTORS}
    out.update({name: f"plug-in {ref}" for name, ref in _plugin_refs().items()})
    out.update({name: "registered" for name in _REGISTERED if name not in out})
    return out


def _unknown(name: str) -> ConfigError:
    return ConfigError(f"unknown detector {name!r}; available: {', '.join(available_detectors())} "
                       f"(or a 'module:attr' reference; plug-ins register in the entry-point group "
                       f"'{ENTRY_POINT_GROUP}')")


#: What a detector's ``"module:attr"`` reference (config, built-in, entry point) may name.
SPEC_REFERENCE = Expected("a ripbench DetectorSpec", instance_of=(DetectorSpec,))


def _load(ref: str, what: str) -> DetectorSpec:
    spec: DetectorSpec = resolve_reference(ref, SPEC_REFERENCE, f"detector {what}")
    return spec


@lru_cache(maxsize=64)
def _lookup_for(name: str, path: tuple[str, ...]) -> DetectorSpec:
    if name in _REGISTERED:
        return _REGISTERED[name]
    ref = BUILTIN_DETECTORS.get(name) or _plugin_refs().get(name)
    if ref is None:
        raise _unknown(name)
    spec = _load(ref, repr(name))
    if spec.name != name:
        raise ConfigError(f"detector registered as {name!r} ({ref!r}) calls itself {spec.name!r}")
    return spec


def get_detector(name: str) -> DetectorSpec:
    """The spec of a detector by name or ``"module:attr"`` reference; :class:`ConfigError` naming the
    known ones otherwise."""
    if not isinstance(name, str):
        raise ConfigError(f"a detector is given by name or 'module:attr', got {type(name).__name__}")
    if ":" in name:
        spec = _load(name, repr(name))
        known = available_detectors()
        if spec.name in known and _lookup_for(spec.name, tuple(sys.path)) is not spec:
            raise ConfigError(f"detector {name!r} calls itself {spec.name!r}, the name of another detector "
                              f"({known[spec.name]})")
        return spec
    return _lookup_for(name, tuple(sys.path))


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


def _not_installed(name: str) -> Any:
    def compute(batch: DetectorBatch) -> Any:
        raise ConfigError(f"detector {name!r} is known only from a run's manifest (its plug-in is not installed "
                          "here): it can be analysed but not computed")

    return compute


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
    adopted = []
    for record in (manifest or {}).get("detectors") or []:
        name = record.get("name") if isinstance(record, dict) else None
        if not name or name in available_detectors():
            continue
        register_detector(DetectorSpec(
            name=name, label=record.get("label", name), kind=record.get("kind", "detector"),
            direction=record.get("direction", "higher-is-suspect"),
            needs=tuple(n for n in record.get("needs", ()) if n in NEEDS), compute=_not_installed(name),
            description=record.get("description", "") + " (from a run's manifest; plug-in not installed)"))
        adopted.append(name)
    return adopted
