"""Tests of the model-independent hallucination detector (ripbench.hallucination)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from ripbench.errors import ConfigError, InputError
from ripbench.hallucination import (
    DEFAULT_BAND,
    DEFAULT_WINDOW,
    PAPER_BAND,
    NoiseBand,
    ScoreWindow,
    auroc,
    band_variance,
    calibrate_threshold,
    detection_report,
    hallucination_columns,
    in_band,
    parse_band,
    resolve_window,
    roc_curve,
    trajectory_variance,
)
from ripbench.models.base import InpaintResult

# --- trajectory_variance -------------------------------------------------------------------------------


def test_constant_trajectory_scores_zero() -> None:
    x0 = torch.full((10, 4, 3, 5, 5), 0.7)
    assert torch.equal(trajectory_variance(x0), torch.zeros(4))


def test_known_variance_matches_population_variance() -> None:
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(7, 5, 2, 3, 3, generator=gen, dtype=torch.float64)
    expected = np.var(x0.numpy(), axis=0, ddof=0).reshape(5, -1).mean(axis=1)
    np.testing.assert_allclose(trajectory_variance(x0).numpy(), expected, rtol=1e-12)
    # Two values a, b per coordinate: variance ((a - b) / 2)^2.
    pair = torch.stack([torch.zeros(2, 4), torch.full((2, 4), 3.0)])
    assert trajectory_variance(pair).tolist() == [2.25, 2.25]


def test_point_and_scalar_trajectories() -> None:
    x0 = torch.zeros(10, 3, 2)
    x0[:, 1] = torch.arange(10.0)[:, None]
    assert trajectory_variance(x0).tolist() == [0.0, 8.25, 0.0]
    assert trajectory_variance(x0[:, :, 0]).tolist() == [0.0, 8.25, 0.0]  # K x B scalars


def test_half_precision_input_is_scored_in_float32() -> None:
    x0 = torch.stack([torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)]).half()
    out = trajectory_variance(x0)
    assert out.dtype == torch.float32
    assert out.tolist() == [0.25, 0.25]


def test_window_uses_only_the_last_steps() -> None:
    x0 = torch.zeros(10, 2, 1, 4, 4)
    x0[:7] = torch.randn(7, 2, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 5  # noisy early steps
    assert torch.equal(trajectory_variance(x0, window=3), torch.zeros(2))
    assert (trajectory_variance(x0, window=4) > 0).all()
    assert torch.equal(trajectory_variance(x0, window=10), trajectory_variance(x0))


@pytest.mark.parametrize("window", [0, 1, 11, 2.5, True])
def test_bad_window_is_a_config_error(window: object) -> None:
    with pytest.raises(ConfigError):
        trajectory_variance(torch.zeros(10, 2, 3), window=window)  # type: ignore[arg-type]


def test_malformed_trajectory_is_an_input_error() -> None:
    with pytest.raises(InputError):
        trajectory_variance(torch.zeros(5))
    with pytest.raises(InputError):
        trajectory_variance(torch.zeros(1, 2, 3))  # one step has no variance


def _step_variance_map(batch: int, channels: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A K=2 trajectory whose per-coordinate variance is a known map ``var`` (B x C x size x size)."""
    gen = torch.Generator().manual_seed(2)
    half_range = torch.rand(batch, channels, size, size, generator=gen, dtype=torch.float64)
    x0 = torch.stack([-half_range, half_range])  # variance = half_range ** 2
    return x0, half_range**2


def test_region_restricts_the_mean_same_resolution() -> None:
    x0, var = _step_variance_map(2, 3, 8)
    region = torch.zeros(2, 1, 8, 8)
    region[0, :, :4, :4] = 1
    region[1, :, 2:, 5:] = 1
    out = trajectory_variance(x0, region=region)
    for b in range(2):
        m = region[b, 0].bool()
        assert out[b].item() == pytest.approx(var[b][:, m].mean().item(), rel=1e-12)
    # B x h x w regions are accepted too, and a single region broadcasts over the batch.
    assert torch.allclose(trajectory_variance(x0, region=region[:, 0]), out)
    shared = trajectory_variance(x0, region=region[:1])
    assert shared[0] == out[0]
    assert shared[1].item() == pytest.approx(var[1][:, :4, :4].mean().item(), rel=1e-12)


def test_region_at_image_resolution_for_a_latent_trajectory() -> None:
    x0, var = _step_variance_map(2, 4, 8)  # latent 8 x 8 for a 64 x 64 image
    region = torch.zeros(2, 1, 64, 64)
    region[0, :, :16, :16] = 1  # aligned: latent cells 0..1 x 0..1
    region[1, :, 4:12, 30:31] = 1  # unaligned: touches latent rows 0..1, column 3 only
    out = trajectory_variance(x0, region=region)
    assert out[0].item() == pytest.approx(var[0][:, :2, :2].mean().item(), rel=1e-12)
    assert out[1].item() == pytest.approx(var[1][:, 0:2, 3:4].mean().item(), rel=1e-12)


def test_empty_region_scores_nan() -> None:
    x0, _ = _step_variance_map(2, 1, 4)
    region = torch.zeros(2, 1, 4, 4)
    region[1, 0, 0, 0] = 1
    out = trajectory_variance(x0, region=region)
    assert math.isnan(out[0].item()) and math.isfinite(out[1].item())


@pytest.mark.parametrize("shape", [(2, 2, 4, 4), (3, 1, 4, 4), (2, 1, 1, 4, 4)])
def test_malformed_region_is_an_input_error(shape: tuple[int, ...]) -> None:
    x0, _ = _step_variance_map(2, 1, 4)
    with pytest.raises(InputError):
        trajectory_variance(x0, region=torch.ones(shape))


# --- resolve_window ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "steps", "expected"),
    [
        (DEFAULT_WINDOW, 1000, 10),
        (DEFAULT_WINDOW, 50, 3),
        (DEFAULT_WINDOW, 2, 2),
        (0.1, 50, 5),
        (1.0, 30, 30),
        (5, 50, 5),
        (2, 2, 2),
    ],
)
def test_resolve_window(window: float, steps: int, expected: int) -> None:
    assert resolve_window(window, steps) == expected


@pytest.mark.parametrize(
    ("window", "steps"),
    [
        (0, 50),
        (1, 50),
        (51, 50),
        (0.0, 50),
        (1.5, 50),
        (float("nan"), 50),
        (True, 50),
        ("10", 50),
        (0.01, 1),
        (0.01, 2.5),
    ],
)
def test_resolve_window_rejects_bad_values(window: object, steps: object) -> None:
    with pytest.raises(ConfigError):
        resolve_window(window, steps)  # type: ignore[arg-type]


# --- noise-level band ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, DEFAULT_BAND),
        (0.1, (0.0, 0.1)),
        (1, (0.0, 1.0)),
        ([0.02, 0.2], (0.02, 0.2)),
        ((0, 0.009), PAPER_BAND),
        (np.array([0.1, 0.5]), (0.1, 0.5)),
        (NoiseBand(0.0, 0.3), (0.0, 0.3)),
    ],
)
def test_parse_band(spec: object, expected: tuple[float, float]) -> None:
    band = parse_band(spec)
    assert isinstance(band, NoiseBand) and band == expected


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (10, "looks like a number of steps"),
        (0, r"\[0, 0\]"),
        (1.5, "1.5"),
        (-0.1, "-0.1"),
        ([0.3, 0.1], r"\[0.3, 0.1\]"),
        ([0.1, 0.2, 0.3], "0.3"),
        ("0.1", "0.1"),
        (True, "True"),
        ([float("nan"), 0.1], "nan"),
        ([0.0, True], "True"),
    ],
)
def test_parse_band_rejects_bad_values_with_a_clear_message(spec: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        parse_band(spec)
    assert "band of noise levels t/T" in str(info.value)


def test_paper_band_is_the_last_10_of_1000_ddpm_steps() -> None:
    levels = np.arange(1000)[::-1] / 1000  # a 1000-step DDPM, t = 999..0
    assert sum(in_band(level, PAPER_BAND) for level in levels) == 10
    assert sum(in_band(level, DEFAULT_BAND) for level in levels) == 201
    # edges count, whatever the float round-off of t / T
    assert in_band(200 / 1000, DEFAULT_BAND) and in_band(0.2 + 1e-9, DEFAULT_BAND)
    assert not in_band(0.2001, DEFAULT_BAND)


def test_band_variance_uses_only_in_band_steps_in_any_order() -> None:
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 3, 2, 4, 4, generator=gen)
    levels = torch.tensor([0.9, 0.5, 0.2, 0.1, 0.05, 0.0])
    scores, n = band_variance(x0, levels, (0.0, 0.2))
    assert n == 4
    torch.testing.assert_close(scores, trajectory_variance(x0[2:]))
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    shuffled, _ = band_variance(x0[perm], levels[perm].tolist(), (0.0, 0.2))
    torch.testing.assert_close(shuffled, scores)
    region = torch.zeros(3, 1, 4, 4)
    region[:, :, :2] = 1
    torch.testing.assert_close(band_variance(x0, levels, (0.0, 0.2), region)[0], trajectory_variance(x0[2:], region=region))


def test_band_variance_refuses_to_score_too_few_steps() -> None:
    x0 = torch.rand(4, 2, 5)
    scores, n = band_variance(x0, [0.6, 0.4, 0.3, 0.05], (0.0, 0.2))
    assert n == 1 and torch.isnan(scores).all()
    scores, n = band_variance(x0, [0.6, 0.4, 0.1, 0.05], (0.0, 0.2), min_steps=3)
    assert n == 2 and torch.isnan(scores).all()
    scores, n = band_variance(x0, [0.6, 0.4, 0.1, 0.05], (0.0, 0.2), min_steps=2)
    assert n == 2 and torch.isfinite(scores).all()
    scores, n = band_variance(torch.zeros(0, 2), [], (0.0, 0.2))  # nothing recorded
    assert n == 0 and scores.shape == (2,) and torch.isnan(scores).all()
    with pytest.raises(InputError, match="4 steps but 3 noise levels"):
        band_variance(x0, [0.3, 0.2, 0.1], (0.0, 0.2))


def _result(levels: list[float] | None, steps: int = 5, batch: int = 2) -> InpaintResult:
    gen = torch.Generator().manual_seed(2)
    traj = torch.randn(steps, batch, 4, 4, 4, generator=gen)
    return InpaintResult(images=torch.zeros(batch, 3, 8, 8), x0_trajectory=traj, x0_noise_levels=levels)


def test_hallucination_columns_ok_row() -> None:
    masks = torch.zeros(2, 1, 8, 8)
    masks[:, :, :4] = 1
    result = _result([0.4, 0.15, 0.1, 0.05, 0.0])
    cols = hallucination_columns(result, masks)
    assert set(cols) == {"halluc_score", "halluc_score_current", "halluc_steps", "halluc_band_lo",
                         "halluc_band_hi", "halluc_status"}
    assert cols["halluc_status"] == ["ok", "ok"] and cols["halluc_steps"].tolist() == [4.0, 4.0]
    assert cols["halluc_band_lo"].tolist() == [0.0, 0.0] and cols["halluc_band_hi"].tolist() == pytest.approx([0.2, 0.2])
    traj = result.x0_trajectory
    torch.testing.assert_close(cols["halluc_score"], trajectory_variance(traj[1:]))
    torch.testing.assert_close(cols["halluc_score_current"], trajectory_variance(traj[1:], region=masks))
    assert all(v.shape == (2,) for v in cols.values() if isinstance(v, torch.Tensor))


def test_hallucination_columns_say_why_there_is_no_score() -> None:
    masks = torch.ones(2, 1, 8, 8)
    few = hallucination_columns(_result([0.9, 0.7, 0.5, 0.3, 0.1]), masks)
    assert few["halluc_status"] == ["too-few-steps"] * 2 and few["halluc_steps"].tolist() == [1.0, 1.0]
    assert torch.isnan(few["halluc_score"]).all() and torch.isnan(few["halluc_score_current"]).all()
    relaxed = hallucination_columns(_result([0.9, 0.7, 0.5, 0.2, 0.1]), masks, ScoreWindow.from_spec(None, 2))
    assert relaxed["halluc_status"] == ["ok", "ok"]
    none = hallucination_columns(InpaintResult(images=torch.zeros(2, 3, 8, 8)), masks, ScoreWindow.from_spec(0.5))
    assert none["halluc_status"] == ["no-trajectory"] * 2 and none["halluc_band_hi"].tolist() == [0.5, 0.5]
    assert torch.isnan(none["halluc_score"]).all() and none["halluc_steps"].tolist() == [0.0, 0.0]
    with pytest.raises(InputError, match="without x0_noise_levels"):
        hallucination_columns(_result(None), masks)
    with pytest.raises(InputError, match="5 steps but 2 noise levels"):
        hallucination_columns(_result([0.1, 0.0]), masks)


@pytest.mark.parametrize("min_steps", [1, 0, 2.5, True, "3"])
def test_score_window_rejects_bad_min_steps(min_steps: object) -> None:
    with pytest.raises(ConfigError, match="min_steps"):
        ScoreWindow.from_spec(0.2, min_steps)  # type: ignore[arg-type]


# --- calibration and detection report ------------------------------------------------------------------


def test_calibrate_threshold_picks_the_keep_quantile() -> None:
    assert calibrate_threshold(np.arange(1, 101), keep=0.96) == 96.0
    assert calibrate_threshold(torch.arange(100, 0, -1).float(), keep=0.5) == 50.0
    assert calibrate_threshold([3.0, 1.0, 2.0], keep=1.0) == 3.0
    scores = np.random.default_rng(0).lognormal(size=1001)
    threshold = calibrate_threshold(scores, keep=0.96)
    kept = scores <= threshold
    assert kept.mean() >= 0.96
    assert (scores < threshold).mean() < 0.96  # the smallest threshold that keeps 96%
    assert calibrate_threshold([1.0, float("nan"), 2.0], keep=0.5) == 1.0  # NaN (empty regions) ignored


@pytest.mark.parametrize("keep", [0.0, 1.2, -0.5, True])
def test_calibrate_threshold_rejects_bad_keep(keep: object) -> None:
    with pytest.raises(ConfigError):
        calibrate_threshold([1.0, 2.0], keep=keep)  # type: ignore[arg-type]


def test_calibrate_threshold_needs_scores() -> None:
    with pytest.raises(InputError):
        calibrate_threshold([float("nan")])


def test_detection_report_counts() -> None:
    scores = torch.tensor([0.1, 0.2, 0.3, 5.0, 6.0, 0.25, 4.0])
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 0])
    r = detection_report(scores, labels, threshold=1.0)
    assert (r["n"], r["n_hallucinated"], r["n_in_support"], r["n_removed"]) == (7, 3, 4, 3)
    assert (r["hallucinated_removed"], r["in_support_kept"]) == (2, 3)
    assert r["detection_rate"] == pytest.approx(2 / 3)
    assert r["retention"] == pytest.approx(3 / 4)
    assert r["hallucination_rate_before"] == pytest.approx(3 / 7)
    assert r["hallucination_rate_after"] == pytest.approx(1 / 4)
    none = detection_report([1.0, 2.0], [False, False], threshold=1.5)
    assert math.isnan(none["detection_rate"]) and none["retention"] == 0.5


def test_detection_report_rejects_bad_input() -> None:
    with pytest.raises(InputError):
        detection_report([1.0, 2.0], [0, 1, 0], 1.0)
    with pytest.raises(InputError):
        detection_report([1.0, float("nan")], [0, 1], 1.0)
    with pytest.raises(InputError):
        detection_report([1.0, 2.0], [0, 2], 1.0)


# --- ROC / AUROC ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(500) < 0.3
    scores = rng.integers(0, 6, size=500) + labels * rng.integers(0, 3, size=500)  # many ties
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr, thr = roc_curve(torch.from_numpy(scores.astype(np.float32)), torch.from_numpy(labels))
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])
    assert thr[0] == np.inf


def test_auroc_hand_cases() -> None:
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auroc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5  # all tied


def test_auroc_needs_both_classes() -> None:
    with pytest.raises(InputError):
        auroc([0.1, 0.2], [1, 1])
