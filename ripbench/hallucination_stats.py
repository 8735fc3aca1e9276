"""The old name of :mod:`ripbench.hallucination.stats`, kept importable: the hallucination section's
numbers from a results table now live in the :mod:`ripbench.hallucination` package."""

from __future__ import annotations

from .hallucination.stats import *  # noqa: F403
from .hallucination.stats import __all__ as __all__
