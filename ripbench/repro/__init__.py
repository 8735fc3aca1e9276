"""Reproductions of published results, each runnable as a ``ripbench repro ...`` command.

* :func:`run_toy_repro` (``ripbench repro hallucination-toy``): the Gaussian toy results of
  Aithal et al., "Understanding Hallucinations in Diffusion Models through Mode Interpolation".

Importing this package is cheap: a reproduction's module (and torch) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ripbench.repro.toy_gaussians import run_toy_repro

__all__ = ["run_toy_repro"]


def __getattr__(name: str) -> Any:
    if name == "run_toy_repro":
        from ripbench.repro.toy_gaussians import run_toy_repro

        return run_toy_repro
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
