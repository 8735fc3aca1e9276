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
    DEFAULT_WIDENING,
    LEGACY_DEFAULT_BAND,
    MIN_BAND_STEPS,
    PAPER_BAND,
    NoiseBand,
    ScoreWindow,
    as_band,
    auroc,
    band_variance,
    calibrate_threshold,
    detection_report,
    flow_sigma_levels,
    hallucination_columns,
    in_band,
    paper_band,
    paper_window_levels,
    parse_band,
    roc_curve,
    sigma_levels,
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


# --- noise-level band ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "unit", "expected"),
    [
        (None, None, DEFAULT_BAND),
        ("default", None, DEFAULT_BAND),
        ("paper", None, PAPER_BAND),
        (" Paper ", "t/T", NoiseBand(0.0, 0.009, "t/T")),
        (None, "t/T", NoiseBand(0.0, 0.2, "t/T")),  # the old default, exactly
        (0.1, None, NoiseBand(0.0, 0.1)),
        (1, None, NoiseBand(0.0, 1.0)),
        (1.5, None, NoiseBand(0.0, 1.5)),  # sigma has no upper limit ...
        ([0.5, math.inf], None, NoiseBand(0.5, math.inf)),
        ([0.02, 0.2], None, NoiseBand(0.02, 0.2, "sigma")),  # ... and a bare pair is read in sigma
        ([0.02, 0.2], "t/T", NoiseBand(0.02, 0.2, "t/T")),
        ((0, 0.009), "t/T", NoiseBand(0.0, 0.009, "t/T")),
        (np.array([0.1, 0.5]), None, NoiseBand(0.1, 0.5)),
        (NoiseBand(0.0, 0.3, "t/T"), None, NoiseBand(0.0, 0.3, "t/T")),
        ({"band": [0, 0.3], "unit": "t/T"}, None, NoiseBand(0.0, 0.3, "t/T")),
        ({"band": "paper"}, None, PAPER_BAND),
    ],
)
def test_parse_band(spec: object, unit: str | None, expected: NoiseBand) -> None:
    band = parse_band(spec, unit)
    assert isinstance(band, NoiseBand) and band == expected and band.unit == expected.unit


@pytest.mark.parametrize(
    ("spec", "unit", "match"),
    [
        (10, None, "looks like a number of steps"),
        (0, None, r"\[0, 0\]"),
        (1.5, "t/T", "1.5"),
        (-0.1, None, "-0.1"),
        ([0.3, 0.1], None, r"\[0.3, 0.1\]"),
        ([0.1, 0.2, 0.3], None, "0.3"),
        ("0.1", None, "0.1"),
        ("last", None, "a name \\['default', 'paper'\\]"),
        (True, None, "True"),
        ([float("nan"), 0.1], None, "nan"),
        ([0.0, True], None, "True"),
        (0.1, "steps", "must be one of"),
        (NoiseBand(0, 0.1, "t/T"), "sigma", "is in 't/T', not in 'sigma'"),
        ({"band": 0.1, "units": "t/T"}, None, "takes the keys"),
    ],
)
def test_parse_band_rejects_bad_values_with_a_clear_message(spec: object, unit: str | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        parse_band(spec, unit)
    if unit is None and not isinstance(spec, (NoiseBand, dict)):  # says how a bare pair is read
        assert "band of noise levels in 'sigma' units" in str(info.value)
        assert "a bare pair is read in sigma units, add unit: t/T for the old meaning" in str(info.value)


def test_noise_band_is_a_pair_with_a_unit() -> None:
    import copy
    import pickle

    band = NoiseBand(0, 0.2, "t/T")
    lo, hi = band
    assert (lo, hi) == (0.0, 0.2) and band == (0.0, 0.2) and tuple(band) == (0.0, 0.2) and len(band) == 2
    assert band != NoiseBand(0, 0.2) and NoiseBand(0, 0.2) == NoiseBand(0.0, 0.2, "sigma")
    assert pickle.loads(pickle.dumps(band)).unit == "t/T" and copy.deepcopy(band) == band
    assert as_band((0, 0.5)) == NoiseBand(0, 0.5, "sigma") and as_band(band) is band
    assert band.label() == "t/T in [0, 0.2]" and DEFAULT_BAND.label().startswith("sigma in [0, ")
    with pytest.raises(AttributeError):
        band.unit = "sigma"  # type: ignore[misc]
    with pytest.raises(ConfigError, match="unit"):
        NoiseBand(0, 1, "steps")


def test_sigma_levels_of_vp_and_flow_schedules() -> None:
    abar = torch.tensor([0.99, 0.5, 0.2])
    torch.testing.assert_close(sigma_levels(abar), torch.tensor([0.01 / 0.99, 1.0, 4.0], dtype=torch.float64).sqrt())
    # flow matching x_t = (1 - s) x0 + s eps is the VP x_t scaled: the same level for the same SNR
    s = torch.tensor([0.1, 0.5, 0.8], dtype=torch.float64)
    abar_equiv = (1 - s) ** 2 / ((1 - s) ** 2 + s**2)
    torch.testing.assert_close(flow_sigma_levels(s), sigma_levels(abar_equiv))


def test_paper_band_is_derived_from_the_authors_schedule() -> None:
    """The authors' toy schedule: T = 1000, linear betas 0.001..0.2, score window t = 9..0."""
    betas = np.linspace(0.001, 0.2, 1000)
    abar = np.cumprod(1 - betas)
    sigma = np.sqrt((1 - abar) / abar)
    window = sigma[:10]
    np.testing.assert_allclose(paper_window_levels().numpy(), window, rtol=1e-12)
    assert PAPER_BAND == paper_band() and PAPER_BAND.unit == "sigma"
    assert PAPER_BAND.lo == 0.0 and PAPER_BAND.hi == pytest.approx(sigma[9], rel=1e-12)
    # its 10 steps and nothing more: t = 9..0 inside, t = 10 outside
    assert all(in_band(v, PAPER_BAND) for v in window) and not in_band(sigma[10], PAPER_BAND)
    assert window[0] == pytest.approx(0.0316, abs=5e-5) and PAPER_BAND.hi == pytest.approx(0.138, abs=5e-4)
    # the lower edge is 0, not sigma(t = 0) of the toy: other schedules end with less noise than that
    sd_beta0 = 0.00085  # scaled-linear: (sqrt(0.00085) ... sqrt(0.012))^2 starts at 0.00085
    for beta0 in (sd_beta0, 1e-4):  # Stable Diffusion, the shapes DDPM
        assert math.sqrt(beta0 / (1 - beta0)) < window[0] and in_band(math.sqrt(beta0 / (1 - beta0)), PAPER_BAND)
    # in t/T it is the old PAPER_BAND: the last 10 of a 1000-step DDPM
    in_t = paper_band("t/T")
    assert in_t == NoiseBand(0.0, 0.009, "t/T")
    levels = np.arange(1000)[::-1] / 1000
    assert sum(in_band(level, in_t) for level in levels) == 10
    assert sum(in_band(level, LEGACY_DEFAULT_BAND) for level in levels) == 201


@pytest.mark.parametrize("unit", ["sigma", "t/T"])
def test_paper_band_known_without_torch_is_the_torch_computation_exactly(unit: str) -> None:
    """The band edge ripbench.noise_band derives in plain floats (so a config needs no torch) is,
    bit for bit, the last level torch computes: config fingerprints and stored bands stay the same."""
    edge = float(paper_window_levels(unit)[-1])
    assert paper_band(unit).hi == edge  # exact, not approx
    if unit == "sigma":
        assert PAPER_BAND.hi == edge and DEFAULT_BAND.hi == DEFAULT_WIDENING * edge
        assert repr(DEFAULT_BAND.hi) == "0.5537500628849693"  # the value every run since bands had units recorded
    # edges count, whatever the float round-off of t / T
    assert in_band(200 / 1000, LEGACY_DEFAULT_BAND) and in_band(0.2 + 1e-9, LEGACY_DEFAULT_BAND)
    assert not in_band(0.2001, LEGACY_DEFAULT_BAND)


def test_default_band_is_the_paper_band_widened() -> None:
    assert DEFAULT_BAND == NoiseBand(0.0, DEFAULT_WIDENING * PAPER_BAND.hi, "sigma")
    assert DEFAULT_BAND.hi == pytest.approx(0.554, abs=5e-4) and MIN_BAND_STEPS == 3


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


def _result(levels: list[float] | None, steps: int = 5, batch: int = 2, unit: str | None = "sigma") -> InpaintResult:
    gen = torch.Generator().manual_seed(2)
    traj = torch.randn(steps, batch, 4, 4, 4, generator=gen)
    return InpaintResult(images=torch.zeros(batch, 3, 8, 8), x0_trajectory=traj, x0_noise_levels=levels,
                         x0_noise_unit=unit)


def test_hallucination_columns_ok_row() -> None:
    masks = torch.zeros(2, 1, 8, 8)
    masks[:, :, :4] = 1
    result = _result([0.9, 0.25, 0.1, 0.05, 0.0])
    cols = hallucination_columns(result, masks)
    assert set(cols) == {"halluc_score", "halluc_score_current", "halluc_steps", "halluc_band_lo",
                         "halluc_band_hi", "halluc_band_unit", "halluc_status"}
    assert cols["halluc_status"] == ["ok", "ok"] and cols["halluc_steps"].tolist() == [4.0, 4.0]
    assert cols["halluc_band_lo"].tolist() == [0.0, 0.0] and cols["halluc_band_unit"] == ["sigma", "sigma"]
    assert cols["halluc_band_hi"].tolist() == pytest.approx([DEFAULT_BAND.hi] * 2)
    traj = result.x0_trajectory
    torch.testing.assert_close(cols["halluc_score"], trajectory_variance(traj[1:]))
    torch.testing.assert_close(cols["halluc_score_current"], trajectory_variance(traj[1:], region=masks))
    assert all(v.shape == (2,) for v in cols.values() if isinstance(v, torch.Tensor))


def test_hallucination_columns_say_why_there_is_no_score() -> None:
    masks = torch.ones(2, 1, 8, 8)
    few = hallucination_columns(_result([0.9, 0.8, 0.7, 0.6, 0.1]), masks)
    assert few["halluc_status"] == ["too-few-steps"] * 2 and few["halluc_steps"].tolist() == [1.0, 1.0]
    assert torch.isnan(few["halluc_score"]).all() and torch.isnan(few["halluc_score_current"]).all()
    relaxed = hallucination_columns(_result([0.9, 0.7, 0.5, 0.2, 0.1]), masks, ScoreWindow.from_spec(None, 2))
    assert relaxed["halluc_status"] == ["ok", "ok"]
    none = hallucination_columns(InpaintResult(images=torch.zeros(2, 3, 8, 8)), masks,
                                 ScoreWindow.from_spec(0.5, unit="t/T"))
    assert none["halluc_status"] == ["no-trajectory"] * 2 and none["halluc_band_hi"].tolist() == [0.5, 0.5]
    assert none["halluc_band_unit"] == ["t/T", "t/T"]
    assert torch.isnan(none["halluc_score"]).all() and none["halluc_steps"].tolist() == [0.0, 0.0]
    with pytest.raises(InputError, match="without x0_noise_levels"):
        hallucination_columns(_result(None), masks)
    with pytest.raises(InputError, match="5 steps but 2 noise levels"):
        hallucination_columns(_result([0.1, 0.0]), masks)


def test_hallucination_columns_check_the_unit_of_the_levels() -> None:
    masks = torch.ones(2, 1, 8, 8)
    levels = [0.4, 0.15, 0.1, 0.05, 0.0]
    legacy = _result(levels, unit=None)  # a model written for the old t/T contract
    old_window = ScoreWindow.from_spec([0, 0.2], unit="t/T")
    assert hallucination_columns(legacy, masks, old_window)["halluc_status"] == ["ok", "ok"]
    with pytest.raises(InputError, match="without x0_noise_unit, but the band is in 'sigma' units"):
        hallucination_columns(legacy, masks)
    with pytest.raises(InputError, match="in 't/T' units but was asked for the band sigma in"):
        hallucination_columns(_result(levels, unit="t/T"), masks)


def test_t_over_T_unit_reproduces_the_old_scores_exactly() -> None:
    """``unit: t/T`` with the old default band scores exactly what ripbench scored before bands had units."""
    from ripbench.config import validate_config

    cfg = validate_config({"hallucination": {"window": [0, 0.2], "unit": "t/T"}}).hallucination
    window = ScoreWindow.from_spec(cfg.band, cfg.min_steps, unit=cfg.unit)
    assert window.band == LEGACY_DEFAULT_BAND and window.band.unit == "t/T"
    assert validate_config({"hallucination": {"unit": "t/T"}}).hallucination.noise_band == LEGACY_DEFAULT_BAND
    masks = torch.zeros(2, 1, 8, 8)
    masks[:, :, 2:6] = 1
    levels = [0.96, 0.56, 0.2, 0.16, 0.08, 0.04, 0.0][2:]  # a 25-step sampler's last steps, t/T
    result = _result(levels, unit=None)
    cols = hallucination_columns(result, masks, window)
    # the old rule: steps with t/T <= 0.2 (+ 1e-6), variance over them, whole image and in the mask
    keep = [i for i, v in enumerate(levels) if v <= 0.2 + 1e-6]
    traj = result.x0_trajectory[keep]
    assert torch.equal(cols["halluc_score"], trajectory_variance(traj).float())
    assert torch.equal(cols["halluc_score_current"], trajectory_variance(traj, region=masks).float())
    assert cols["halluc_steps"].tolist() == [5.0, 5.0] and cols["halluc_band_hi"].tolist() == pytest.approx([0.2] * 2)


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


# --- the bands on real schedules -----------------------------------------------------------------------

#: Sampler step counts of the step-count table.
STEP_COUNTS = (25, 50, 100)


def _schedulers() -> dict[str, object]:
    """The schedules the bands are checked on, built from real diffusers schedulers.

    ``sd-ddim`` is the rip-paper sampler: Stable Diffusion 2 inpainting's own scheduler config
    (DDIM, scaled-linear betas 0.00085..0.012, ``steps_offset`` 1; ``ripbench.models.sd_configs``);
    ``sd-pndm`` SD-1.5 inpainting's. ``shapes-ddpm`` is the bundled model's scheduler (linear betas
    1e-4..0.02); ``flow-sd3`` flow matching with SD3's shift 3, ``flow`` without shift.
    """
    diffusers = pytest.importorskip("diffusers")
    from ripbench.models.diffusers_backend import make_scheduler
    from ripbench.models.pixel_ddpm import BUNDLED_SHAPES_DIR
    from ripbench.models.sd_configs import ARCHITECTURES

    sd2_class, sd2_config = ARCHITECTURES["sd2-inpainting"]["scheduler"]
    sd15_class, sd15_config = ARCHITECTURES["sd15-inpainting"]["scheduler"]
    sd = getattr(diffusers, sd2_class).from_config(sd2_config)
    return {
        "shapes-ddpm": diffusers.DDPMScheduler.from_pretrained(BUNDLED_SHAPES_DIR, subfolder="scheduler"),
        "sd-ddim": sd,
        "sd-pndm": getattr(diffusers, sd15_class).from_config(sd15_config),
        "sd-euler": make_scheduler("euler", sd.config),
        "sd-heun": make_scheduler("heun", sd.config),
        "sd-dpm++": make_scheduler("dpm++", sd.config),
        "flow-sd3": diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
        "flow": diffusers.FlowMatchEulerDiscreteScheduler(shift=1.0),
    }


def _sampler_levels(scheduler: object, steps: int) -> torch.Tensor:
    """The sigma level of every timestep a ``steps``-step sampler records (one per timestep)."""
    import copy

    from ripbench.models._x0_capture import X0Recorder

    sched = copy.deepcopy(scheduler)
    sched.set_timesteps(steps)  # type: ignore[attr-defined]
    x = torch.zeros(1, 1, 2, 2)
    with X0Recorder(sched, band=NoiseBand(0.0, math.inf)) as rec:
        for t in sched.timesteps:  # type: ignore[attr-defined]
            if hasattr(sched, "scale_model_input"):
                sched.scale_model_input(x, t)  # type: ignore[attr-defined]
            x = sched.step(torch.zeros_like(x), t, x).prev_sample  # type: ignore[attr-defined]
    levels = rec.trajectory()[1]
    assert levels is not None
    return levels


@pytest.fixture(scope="module")
def step_table() -> dict[tuple[str, int], dict[str, int]]:
    """Steps in the paper's and the default band, per schedule and sampler step count."""
    table = {}
    for name, sched in _schedulers().items():
        for steps in STEP_COUNTS:
            levels = _sampler_levels(sched, steps)
            table[(name, steps)] = {band: sum(in_band(v, b) for v in levels.tolist())
                                    for band, b in (("paper", PAPER_BAND), ("default", DEFAULT_BAND))}
    print("\nsteps in band (paper, default):", {f"{k[0]}@{k[1]}": (v["paper"], v["default"]) for k, v in table.items()})
    return table


def test_default_band_covers_the_same_sigma_range_on_every_schedule() -> None:
    """Shapes DDPM, SD's scaled-linear schedule and flow matching: the band picks the training
    timesteps whose noise lies in it, so it covers one sigma range (up to each schedule's grid of
    1000 timesteps) and a different share of t/T on each."""
    from ripbench.models._x0_capture import schedule_levels

    scheds = _schedulers()
    reach = {}
    for name in ("shapes-ddpm", "sd-ddim", "flow"):
        levels = schedule_levels(scheds[name])
        inside = [t for t, v in enumerate(levels.tolist()) if in_band(v, DEFAULT_BAND)]
        t_max = max(inside)
        assert inside == list(range(t_max + 1)), name  # a band [0, hi] is a prefix of the schedule
        assert levels[t_max] <= DEFAULT_BAND.hi < levels[t_max + 1], name
        assert DEFAULT_BAND.hi - levels[t_max] < levels[t_max + 1] - levels[t_max]  # within one timestep
        reach[name] = t_max / len(levels)
        # the same holds for the noise levels a sampler records: all of them in [0, hi]
        recorded = _sampler_levels(scheds[name], 50)
        kept = recorded[(recorded >= DEFAULT_BAND.lo) & (recorded <= DEFAULT_BAND.hi)]
        assert kept.numel() >= MIN_BAND_STEPS and float(kept.max()) <= DEFAULT_BAND.hi, name
    # ... but in t/T the band reaches different depths: t/T is not a noise level
    assert reach == {"shapes-ddpm": 0.158, "sd-ddim": 0.192, "flow": 0.356}


def test_band_step_counts(step_table: dict[tuple[str, int], dict[str, int]]) -> None:
    """The numbers quoted by DEFAULT_BAND's docstring and the README."""
    t = step_table
    # rip-paper's sampler (SD-2 inpainting, 50 steps): the paper's band holds 1 step (2 of 100), the default 10
    assert t[("sd-ddim", 50)] == {"paper": 1, "default": 10} and t[("sd-ddim", 100)]["paper"] == 2
    assert t[("sd-pndm", 50)] == {"paper": 1, "default": 10} and t[("sd-pndm", 100)]["paper"] == 2
    # every SD sampler keeps >= 4 steps in the default band at 25 steps, at most 1 in the paper's
    for name in ("sd-ddim", "sd-pndm", "sd-euler", "sd-heun", "sd-dpm++"):
        assert t[(name, 25)]["default"] >= 4 and t[(name, 25)]["paper"] <= 1, name
        assert t[(name, 100)]["paper"] == 2, name
    # the bundled shapes DDPM and flow matching keep >= min_steps at 25 steps already
    for name in ("shapes-ddpm", "flow-sd3", "flow"):
        assert t[(name, 25)]["default"] >= MIN_BAND_STEPS, name
    assert t[("shapes-ddpm", 25)]["default"] == 4  # the quick preset's 25 steps
    # the shapes DDPM at 100 steps holds enough steps in the paper's band (shapes-rip reports both bands)
    assert t[("shapes-ddpm", 100)]["paper"] == 4 and t[("shapes-ddpm", 50)]["paper"] == 2


def test_default_band_edge_sits_between_two_rip_paper_steps() -> None:
    """The rip-paper sampler steps at t = 1, 21, ..., 181, 201, ...: the default band's edge lies between
    t = 181 (inside) and t = 201 (outside), clear of both; on SD's schedule the band ends at t = 192,
    close to ripbench's old t/T default [0, 0.2], and on the shapes DDPM's at t = 158."""
    from ripbench.models._x0_capture import schedule_levels

    scheds = _schedulers()
    sigma = sigma_levels(scheds["sd-ddim"].alphas_cumprod)  # type: ignore[attr-defined]
    assert sigma[181] < DEFAULT_BAND.hi < sigma[201]
    assert DEFAULT_BAND.hi / sigma[181] > 1.03 and sigma[201] / DEFAULT_BAND.hi > 1.03
    last = {name: max(i for i, v in enumerate(schedule_levels(scheds[name]).tolist()) if in_band(v, DEFAULT_BAND))
            for name in ("sd-ddim", "shapes-ddpm")}
    assert last == {"sd-ddim": 192, "shapes-ddpm": 158}


def test_data_scale() -> None:
    """How the band relates to the data: sigma is noise in units of the data."""
    from ripbench.datasets.shapes import shapes_images
    from ripbench.repro.toy_gaussians import grid2d

    grid = grid2d()  # normalised to a standard deviation of 1 per coordinate, like SD latents (x 0.18215)
    per_coord = float(((grid.modes**2).mean() + grid.std**2).sqrt())
    assert per_coord == pytest.approx(1.0, abs=1e-6)
    assert 0.5 < DEFAULT_BAND.hi / per_coord < 0.6  # the default band ends at noise about half the data's spread
    images, _ = shapes_images(64, seed=0)
    pixels = images[:, 0] * 2 - 1  # the shapes DDPM's [-1, 1] space
    spread = float(pixels.std())
    # mostly black: a pixel standard deviation of about 0.3, against 1 for SD latents and the toy grid, so
    # the same sigma is about 3x more noise relative to the shapes' spread (a shape's edge is a step of 2)
    assert spread == pytest.approx(0.3, abs=0.03)
