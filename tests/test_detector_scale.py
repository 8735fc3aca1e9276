"""Hallucination scores of one model are on one scale across samplers and step counts.

The window is a fixed band of noise levels (``DEFAULT_BAND``, in sigma/sqrt(alpha_bar) units),
not a number of final steps, and every sampler contributes one x0 per timestep. On a tiny SD
inpainting pipeline whose UNet is an exact denoiser (``tiny_sd_inpaint(..., denoiser="mixture")``;
a random UNet is no denoiser and its x0 jumps with the timestep embedding), the same inputs scored
after Euler, Heun and DPM-Solver++ at :data:`STEP_COUNTS` = 25 and 50 steps (the rip-paper
sampler's 50 and half that) give median scores within a factor of :data:`MAX_FACTOR` of each
other. This is also why the default band is not narrower: with one octave less (half its upper
edge, twice the paper's) the same trajectories at 50 steps spread over more than that factor.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
import torch

pytest.importorskip("diffusers")

from ripbench.hallucination import (  # noqa: E402
    DEFAULT_BAND,
    MIN_BAND_STEPS,
    NoiseBand,
    ScoreWindow,
    hallucination_columns,
)
from ripbench.models.diffusers_backend import DiffusersInpainter  # noqa: E402
from tests.tiny_pipelines import sample_batch, tiny_sd_inpaint  # noqa: E402

#: Largest allowed ratio between the median scores of two (sampler, steps) settings.
MAX_FACTOR = 2.5
#: The step counts the recipe names: rip-paper's 50 and half that.
STEP_COUNTS = (25, 50)
SETTINGS = [(s, n) for s in ("euler", "heun", "dpm++") for n in STEP_COUNTS]


#: One octave narrower than the default (twice the paper's edge).
NARROWER = NoiseBand(0.0, DEFAULT_BAND.hi / 2)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Any]:
    pipe = tiny_sd_inpaint(tmp_path_factory.mktemp("scale"), in_channels=9, denoiser="mixture")
    images, masks = sample_batch(4, seed=3)
    out = {}
    for scheduler, steps in SETTINGS:
        model = DiffusersInpainter(copy.deepcopy(pipe), scheduler=scheduler, steps=steps, device="cpu")
        out[(scheduler, steps)] = (model.inpaint(images, masks, [0, 1, 2, 3], x0_band=DEFAULT_BAND), masks)
    return out


@pytest.fixture(scope="module")
def scores(results: dict[tuple[str, int], Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {key: hallucination_columns(result, masks, ScoreWindow(DEFAULT_BAND)) for key, (result, masks) in results.items()}


def _medians(columns: dict[tuple[str, int], dict[str, Any]]) -> dict[tuple[str, int], float]:
    return {key: float(cols["halluc_score"].median()) for key, cols in columns.items()}


def test_every_setting_scores_with_enough_steps(scores: dict[tuple[str, int], dict[str, Any]]) -> None:
    for (scheduler, steps), cols in scores.items():
        assert cols["halluc_status"] == ["ok"] * 4, (scheduler, steps)
        assert cols["halluc_band_unit"] == ["sigma"] * 4
        assert (cols["halluc_steps"] >= MIN_BAND_STEPS).all(), (scheduler, steps)
        assert torch.isfinite(cols["halluc_score"]).all() and (cols["halluc_score"] > 0).all()
    for steps in STEP_COUNTS:  # one x0 per timestep: Heun (two model calls per timestep) holds as many as Euler
        assert scores[("heun", steps)]["halluc_steps"].tolist() == scores[("euler", steps)]["halluc_steps"].tolist()


def test_median_scores_agree_across_samplers_and_step_counts(
    scores: dict[tuple[str, int], dict[str, Any]],
) -> None:
    medians = _medians(scores)
    print("\nmedian scores:", {f"{k[0]}@{k[1]}": round(v, 5) for k, v in medians.items()},
          "steps:", {f"{k[0]}@{k[1]}": int(c["halluc_steps"][0]) for k, c in scores.items()})
    for a, b in itertools.combinations(SETTINGS, 2):
        ratio = medians[a] / medians[b]
        assert 1 / MAX_FACTOR <= ratio <= MAX_FACTOR, f"{a} vs {b}: median ratio {ratio:.2f} ({medians})"


def test_one_octave_narrower_band_depends_on_the_sampler(results: dict[tuple[str, int], Any]) -> None:
    """Half the default's edge: 3-4 steps at 50 sampler steps, and median scores that spread over more than
    MAX_FACTOR (the band scores whichever noise levels each sampler's grid puts in it). The narrower band is
    the default band's recording restricted to its steps, exactly as if it had been recorded alone."""
    narrow = {key: hallucination_columns(result, masks, ScoreWindow(NARROWER))
              for key, (result, masks) in results.items() if key[1] == 50}
    assert all((cols["halluc_steps"] >= MIN_BAND_STEPS).all() for cols in narrow.values())
    medians = _medians(narrow)
    print("\none octave narrower, 50 steps:", {k[0]: round(v, 5) for k, v in medians.items()})
    assert max(medians.values()) / min(medians.values()) > MAX_FACTOR
