"""The old name of :mod:`ripbench.hallucination.stats` and :mod:`ripbench.hallucination.baselines`, kept
importable: the hallucination section's numbers from a results table now live in the
:mod:`ripbench.hallucination` package."""

from __future__ import annotations

from .hallucination import baselines as _baselines
from .hallucination import stats as _stats
from .hallucination.baselines import *  # noqa: F403
from .hallucination.stats import *  # noqa: F403

__all__ = [*_stats.__all__, *_baselines.__all__]
