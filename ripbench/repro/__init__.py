"""Reproductions of published results, each runnable as a ``ripbench repro ...`` command.

* :func:`run_toy_repro` (``ripbench repro hallucination-toy``): the Gaussian toy results of
  Aithal et al., "Understanding Hallucinations in Diffusion Models through Mode Interpolation".
* :func:`run_shapes_rip` (``ripbench repro shapes-rip``): recursive inpainting of Simple Shapes
  with the bundled DDPM, hallucinations counted by the labeller.

Importing this package is cheap: a reproduction's module (and torch) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ripbench.repro.shapes_rip import run_shapes_rip
    from ripbench.repro.toy_gaussians import run_toy_repro

__all__ = ["SHAPES_HALLUCINATION", "run_shapes_rip", "run_toy_repro"]

#: What ``shapes-rip`` counts as a hallucination (its ``--help``, its report and the README say this).
SHAPES_HALLUCINATION = (
    "A hallucination is a generation whose repainted column holds two or more copies of its own shape (the "
    "paper's mode interpolation). Empty images, shapes in another shape's column and unreadable blobs are "
    "invalid but not hallucinations: they are counted apart and left out of the AUROC, which compares "
    "duplicates with valid generations."
)


def __getattr__(name: str) -> Any:
    if name == "run_toy_repro":
        from ripbench.repro.toy_gaussians import run_toy_repro

        return run_toy_repro
    if name == "run_shapes_rip":
        from ripbench.repro.shapes_rip import run_shapes_rip

        return run_shapes_rip
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
