"""ripbench: how stable are inpainting models under Recursive InPainting (RIP)?

Mask part of an image, let a model fill it, mask another part of the result, fill it
again, for many iterations; measure how far the image drifts from the original.

Public API::

    from ripbench import load_config, run_experiment, load
    result = run_experiment(load_config())          # the quick preset
    result.table.groupby(["model", "mask_label", "iteration"])["ssim_orig"].mean()  # lpips_orig with weights
    table = load("results/quick")                   # a finished run (several: analysis.load_runs(a, b))

Where things live: models plug in at :mod:`ripbench.models`; metrics are computed in
:mod:`ripbench.metrics`; results are written by :mod:`ripbench.store`; the loop is
:mod:`ripbench.run`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it, or ``(module, name there)``.
_LAZY: dict[str, str | tuple[str, str]] = {
    "ExperimentConfig": "ripbench.config",
    "load_config": "ripbench.config",
    "load_preset": "ripbench.config",
    "apply_overrides": "ripbench.config",
    "run_experiment": "ripbench.run",
    "RunResult": "ripbench.run",
    "load": ("ripbench.analysis", "load_runs"),  # the one public way to load runs (one or several)
    "write_report": "ripbench.report",
    "Inpainter": "ripbench.models",
    "InpaintResult": "ripbench.models",
    "register_inpainter": "ripbench.models",
    "create_inpainter": "ripbench.models",
    "available_inpainters": "ripbench.models",
    "model_factory": "ripbench.references",
    "RipbenchError": "ripbench.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import public names on first use so that ``import ripbench`` stays fast."""
    if name in _LAZY:
        import importlib

        where = _LAZY[name]
        module, attr = where if isinstance(where, tuple) else (where, name)
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ripbench' has no attribute {name!r}")
