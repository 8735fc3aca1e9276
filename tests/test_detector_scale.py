"""Hallucination scores of one model are on one scale across samplers and step counts.

The window is a fixed band of noise levels (``DEFAULT_BAND``), not a number of final steps,
and every sampler contributes one x0 per timestep. On a tiny SD inpainting pipeline whose UNet
is an exact denoiser (``tiny_sd_inpaint(..., denoiser="mixture")``; a random UNet is no
denoiser and its x0 jumps with the timestep embedding), the same inputs scored after Euler,
Heun and DPM-Solver++ at 20 and 40 steps give median scores within a factor of
:data:`MAX_FACTOR` of each other.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
import torch

pytest.importorskip("diffusers")

from ripbench.hallucination import DEFAULT_BAND, ScoreWindow, hallucination_columns  # noqa: E402
from ripbench.models.diffusers_backend import DiffusersInpainter  # noqa: E402
from tests.tiny_pipelines import sample_batch, tiny_sd_inpaint  # noqa: E402

#: Largest allowed ratio between the median scores of two (sampler, steps) settings.
MAX_FACTOR = 2.5
SETTINGS = [(s, n) for s in ("euler", "heun", "dpm++") for n in (20, 40)]


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], dict[str, Any]]:
    pipe = tiny_sd_inpaint(tmp_path_factory.mktemp("scale"), in_channels=9, denoiser="mixture")
    images, masks = sample_batch(4, seed=3)
    out = {}
    for scheduler, steps in SETTINGS:
        model = DiffusersInpainter(copy.deepcopy(pipe), scheduler=scheduler, steps=steps, device="cpu")
        result = model.inpaint(images, masks, [0, 1, 2, 3], x0_band=DEFAULT_BAND)
        out[(scheduler, steps)] = hallucination_columns(result, masks, ScoreWindow(DEFAULT_BAND))
    return out


def test_every_setting_scores_with_enough_steps(scores: dict[tuple[str, int], dict[str, Any]]) -> None:
    for (scheduler, steps), cols in scores.items():
        assert cols["halluc_status"] == ["ok"] * 4, (scheduler, steps)
        # one x0 per timestep: Heun (two model calls per timestep) holds as many steps as Euler
        assert cols["halluc_steps"].tolist() == [steps / 5] * 4, (scheduler, steps)
        assert torch.isfinite(cols["halluc_score"]).all() and (cols["halluc_score"] > 0).all()


def test_median_scores_agree_across_samplers_and_step_counts(
    scores: dict[tuple[str, int], dict[str, Any]],
) -> None:
    medians = {key: float(cols["halluc_score"].median()) for key, cols in scores.items()}
    for a, b in itertools.combinations(SETTINGS, 2):
        ratio = medians[a] / medians[b]
        assert 1 / MAX_FACTOR <= ratio <= MAX_FACTOR, f"{a} vs {b}: median ratio {ratio:.2f} ({medians})"
