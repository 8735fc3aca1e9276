"""Hallucination detectors and content baselines as plug-ins: specs, registry, built-ins, suite.

* :mod:`~ripbench.detectors.spec` -- :class:`DetectorSpec` (name, label, kind, direction, needs,
  batched function) and :class:`DetectorBatch` (what an iteration offers a detector);
* :mod:`~ripbench.detectors.registry` -- built-ins, plug-ins (entry-point group
  ``ripbench.detectors``) and ``"module:attr"`` references;
* :mod:`~ripbench.detectors.catalog` -- the built-ins' specs as plain data (no torch);
* :mod:`~ripbench.detectors.builtins` -- the x0-variance score variants (kind ``"detector"``) and
  the content baselines (kind ``"baseline"``: controls with no model in them), imported on first call;
* :mod:`~ripbench.detectors.suite` -- what the run loop calls every iteration.

A run writes one column per enabled detector, :func:`detector_column` (``det_<name>`` with
``-`` as ``_``), and records the enabled specs in its manifest (``"detectors"``).

>>> [(s.name, s.kind) for s in resolve_detectors(["x0-variance-current", "foreground-pixels"])]
[('x0-variance-current', 'detector'), ('foreground-pixels', 'baseline')]
"""

from ripbench.detectors.registry import (
    BUILTIN_DETECTORS,
    ENTRY_POINT_GROUP,
    adopt_recorded_detectors,
    available_detectors,
    get_detector,
    register_detector,
    resolve_detectors,
    unregister_detector,
)
from ripbench.detectors.spec import (
    DIRECTIONS,
    KINDS,
    NEEDS,
    DetectorBatch,
    DetectorSpec,
    detector_column,
    region_mean,
)
from ripbench.detectors.suite import ALIASES, DetectorSuite

__all__ = [
    "ALIASES",
    "BUILTIN_DETECTORS",
    "DIRECTIONS",
    "ENTRY_POINT_GROUP",
    "KINDS",
    "NEEDS",
    "DetectorBatch",
    "DetectorSpec",
    "DetectorSuite",
    "adopt_recorded_detectors",
    "available_detectors",
    "detector_column",
    "get_detector",
    "region_mean",
    "register_detector",
    "resolve_detectors",
    "unregister_detector",
]
