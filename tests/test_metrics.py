"""Tests of ripbench.metrics against published LPIPS values and scikit-image references.

Genuine LPIPS backbone weights are looked up (never copied into the repo) in
``$RIPBENCH_TEST_LPIPS_WEIGHTS``, then in ``../shared/lpips-weights`` next to the repository,
then through torchvision's normal cache/download; without any of them the LPIPS tests skip, or fail
under ``RIPBENCH_REQUIRE_LPIPS=1`` (what ``.ci/run`` sets when ``../shared/lpips-weights`` exists).
"""

from __future__ import annotations

import copy
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from ripbench.errors import ConfigError, InputError, WeightsError
from ripbench.metrics import (
    FEATURE_FILES,
    METRIC_NAMES,
    WEIGHTS_ENV_VAR,
    MetricSuite,
    load_lpips,
    lpips_distance,
    lpips_metric,
    mse,
    psnr,
    resolve_weights,
    ssim,
    ssim_map,
    validate_metric_names,
)
from tests.conftest import SHARED_WEIGHTS, TEST_WEIGHTS_ENV, _weights_dir, genuine_weights, skip_without_lpips

# sha256 of the files in ../shared/lpips-weights (from its README).
SHA256 = {
    "alex": "d6f747d1db300e743dbb5ae026b6370e1133379cdccf66231c91d0cef8c28eea",
    "squeeze": "05a16bc92abc25dccc2bcc5e19b5e8dc1d3ee3dda066c8483a70a74bc382acc1",
}
# Published LPIPS v0.1 distances (ex_ref vs ex_p0, ex_ref vs ex_p1); squeeze from the weights README.
PUBLISHED = {"alex": (0.7219, 0.1375), "squeeze": (0.711048, 0.147902)}
SKIMAGE_SSIM = {
    "channel_axis": -1,
    "data_range": 1.0,
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
}


def _example(name: str) -> torch.Tensor:
    """One LPIPS example image as a 1 x 3 x H x W float tensor in [0, 1], decoded as 8-bit RGB."""
    folder = _weights_dir()
    if folder is None or not (folder / f"{name}.png").is_file():
        skip_without_lpips(
            f"LPIPS example image {name}.png not found (looked in {TEST_WEIGHTS_ENV}, {SHARED_WEIGHTS})"
        )
    from PIL import Image

    array = np.array(Image.open(folder / f"{name}.png").convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255.0


def _to_hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).double().numpy()


@pytest.fixture(autouse=True)
def _no_ambient_weights_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set RIPBENCH_LPIPS_WEIGHTS themselves when they need it."""
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of 3 random images and noisy copies of them (40 x 52)."""
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 3, 40, 52, generator=g)
    b = (a + 0.15 * torch.randn(3, 3, 40, 52, generator=g)).clamp(0, 1)
    return a, b


@pytest.fixture
def astronaut_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Three 96 x 96 crops of skimage's astronaut, and blurred + noisy versions of them."""
    image = torch.from_numpy(skdata.astronaut().copy()).permute(2, 0, 1).float() / 255.0
    a = torch.stack([image[:, y : y + 96, x : x + 96] for y, x in ((0, 0), (100, 180), (300, 250))])
    g = torch.Generator().manual_seed(2)
    blurred = torch.nn.functional.avg_pool2d(a, 3, stride=1, padding=1, count_include_pad=False)
    b = (blurred + 0.03 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    return a, b


@pytest.fixture
def half_mask() -> torch.Tensor:
    """Per-item masks of a 40 x 52 batch of 3: top half, a box touching the border, and empty."""
    mask = torch.zeros(3, 1, 40, 52)
    mask[0, :, :20] = 1
    mask[1, :, 25:, 30:] = 1
    return mask


# ----------------------------------------------------------------------------------------------- LPIPS


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_lpips_reproduces_published_distances(net: str) -> None:
    ref, p0, p1 = _example("ex_ref"), _example("ex_p0"), _example("ex_p1")
    weights = genuine_weights(net)
    got = lpips_distance(torch.cat([ref, ref]), torch.cat([p0, p1]), net=net, weights=weights)
    assert got.shape == (2,)
    assert got.tolist() == pytest.approx(PUBLISHED[net], abs=5e-4)


def test_lpips_equals_lpips_package_forward_and_spatial_map() -> None:
    metric = load_lpips("alex", genuine_weights("alex"))
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 3, 64, 80, generator=g), torch.rand(2, 3, 64, 80, generator=g)
    whole, spatial = metric.distances(a, b)
    with torch.no_grad():
        reference = metric.model(a, b, normalize=True).flatten()
        spatial_model = copy.deepcopy(metric.model)
        spatial_model.spatial = True
        reference_map = spatial_model(a, b, normalize=True)
    torch.testing.assert_close(whole, reference, atol=1e-6, rtol=1e-5)
    assert spatial.shape == (2, 1, 64, 80)
    torch.testing.assert_close(spatial, reference_map, atol=1e-6, rtol=1e-5)


def test_lpips_region_is_spatial_map_mean_and_cached(half_mask: torch.Tensor) -> None:
    weights = genuine_weights("alex")
    metric = load_lpips("alex", weights)
    assert load_lpips("alex", weights) is metric  # cached per (net, weights file, device)
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(3, 3, 40, 52, generator=g), torch.rand(3, 3, 40, 52, generator=g)
    _, spatial = metric.distances(a, b)
    inside = lpips_distance(a, b, half_mask, weights=weights)
    for i in range(2):
        assert inside[i].item() == pytest.approx(spatial[i, 0][half_mask[i, 0] > 0].mean().item(), rel=1e-5)
    assert inside[2].isnan()


def test_lpips_provenance_records_weights_file() -> None:
    weights = genuine_weights("alex")
    provenance = MetricSuite(names=("lpips",), lpips_weights=weights).provenance()["lpips"]
    assert provenance["net"] == "alex" and provenance["version"] == "0.1"
    if weights is not None:
        assert provenance["weights_source"] == str((weights / FEATURE_FILES["alex"]).resolve())
        assert provenance["weights_sha256"] == SHA256["alex"]


def test_lpips_weights_from_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _weights_dir()
    if folder is None or not (folder / FEATURE_FILES["squeeze"]).is_file():
        skip_without_lpips(f"needs the local weights folder ({TEST_WEIGHTS_ENV} or {SHARED_WEIGHTS})")
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(folder / FEATURE_FILES["squeeze"]))
    source = resolve_weights("squeeze")
    assert (
        source.origin == f"${WEIGHTS_ENV_VAR}"
        and source.path == (folder / FEATURE_FILES["squeeze"]).resolve()
    )
    assert load_lpips("squeeze").provenance["weights_sha256"] == SHA256["squeeze"]
    # The explicit argument wins over the environment variable.
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(folder / "does-not-exist.pth"))
    assert resolve_weights("squeeze", folder).origin == "argument"


def test_torchvision_cache_path_is_used_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full torchvision checkpoint in $TORCH_HOME/hub/checkpoints is found and gives the same LPIPS."""
    folder = _weights_dir()
    if folder is None or not (folder / FEATURE_FILES["alex"]).is_file():
        skip_without_lpips(f"needs the local weights folder ({TEST_WEIGHTS_ENV} or {SHARED_WEIGHTS})")
    features = torch.load(folder / FEATURE_FILES["alex"], weights_only=True)
    checkpoint = {f"features.{k}": v for k, v in features.items()}
    checkpoint["classifier.1.weight"] = torch.zeros(2, 2)  # full checkpoints carry a classifier too
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target = lpips_metric._torchvision_checkpoint_path("alex")
    target.parent.mkdir(parents=True)
    torch.save(checkpoint, target)
    metric = lpips_metric._build("alex", resolve_weights("alex"), torch.device("cpu"))
    assert metric.provenance["weights_source"] == "torchvision"
    assert metric.provenance["weights_sha256"] is not None
    g = torch.Generator().manual_seed(5)
    a, b = torch.rand(1, 3, 64, 64, generator=g), torch.rand(1, 3, 64, 64, generator=g)
    torch.testing.assert_close(metric.distances(a, b)[0], lpips_distance(a, b, weights=folder))


def test_weights_error_says_how_to_supply_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(net: str) -> dict[str, torch.Tensor]:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(lpips_metric, "_torchvision_state_dict", offline)
    monkeypatch.setattr(lpips_metric, "_CACHE", {})  # nothing built earlier may answer
    how_to = ["metrics.lpips_weights", "--lpips-weights PATH", WEIGHTS_ENV_VAR, "$TORCH_HOME/hub/checkpoints"]
    with pytest.raises(WeightsError) as missing_everything:
        MetricSuite()
    with pytest.raises(WeightsError, match="does not exist") as bad_path:
        load_lpips("alex", tmp_path / "nope.pth")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="has no alexnet_features.pth") as empty_folder:
        load_lpips("alex", tmp_path / "empty")
    for error in (missing_everything, bad_path, empty_folder):
        message = str(error.value)
        assert all(part in message for part in how_to), message
        assert "alexnet-owt-7be5be79.pth" in message


def test_wrong_or_corrupt_weights_file_is_refused(tmp_path: Path) -> None:
    folder = _weights_dir()
    if folder is None or not (folder / FEATURE_FILES["squeeze"]).is_file():
        skip_without_lpips(f"needs the local weights folder ({TEST_WEIGHTS_ENV} or {SHARED_WEIGHTS})")
    with pytest.raises(WeightsError, match=r"alexnet\(\)\.features weights that LPIPS net 'alex' needs"):
        load_lpips("alex", folder / FEATURE_FILES["squeeze"])
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read LPIPS weights file"):
        load_lpips("squeeze", garbage)


def test_unknown_lpips_net_is_config_error() -> None:
    with pytest.raises(ConfigError, match="allowed: alex, vgg, squeeze"):
        load_lpips("resnet")


def test_lpips_backbone_has_no_random_weights() -> None:
    """Every backbone parameter equals the file's tensor (guards against a silent partial load)."""
    folder = _weights_dir()
    if folder is None or not (folder / FEATURE_FILES["alex"]).is_file():
        skip_without_lpips(f"needs the local weights folder ({TEST_WEIGHTS_ENV} or {SHARED_WEIGHTS})")
    features = torch.load(folder / FEATURE_FILES["alex"], weights_only=True)
    backbone = {k.split(".", 1)[1]: v for k, v in load_lpips("alex", folder).model.net.state_dict().items()}
    assert backbone.keys() == features.keys()
    assert all(torch.equal(backbone[k], features[k]) for k in features)


@pytest.mark.slow
def test_vgg_features_map_onto_lpips_slices() -> None:
    """The generic key mapping covers VGG (no genuine VGG file exists here, so this checks keys/shapes only)."""
    model = lpips_metric._new_lpips("vgg")
    features = {
        k.split(".", 1)[1]: v + 1.0 for k, v in model.net.state_dict().items()
    }  # vgg16().features keys
    assert {k.split(".")[0] for k in features} == {
        "0",
        "2",
        "5",
        "7",
        "10",
        "12",
        "14",
        "17",
        "19",
        "21",
        "24",
        "26",
        "28",
    }
    lpips_metric._load_backbone(model, features, "vgg", "test dict")
    loaded = {k.split(".", 1)[1]: v for k, v in model.net.state_dict().items()}
    assert all(torch.equal(loaded[k], features[k]) for k in features)


# ------------------------------------------------------------------------------------------------ SSIM


@pytest.mark.parametrize("images", ["pair", "astronaut_pair"])
def test_ssim_matches_skimage(images: str, request: pytest.FixtureRequest) -> None:
    a, b = request.getfixturevalue(images)
    ours = ssim(a, b)
    full = ssim_map(a, b)
    for i in range(a.shape[0]):
        value, reference_map = structural_similarity(_to_hwc(a[i]), _to_hwc(b[i]), full=True, **SKIMAGE_SSIM)
        assert ours[i].item() == pytest.approx(value, abs=1e-3)
        np.testing.assert_allclose(_to_hwc(full[i]), reference_map, atol=1e-3)


def test_masked_ssim_is_mean_of_skimage_full_map(
    pair: tuple[torch.Tensor, torch.Tensor], half_mask: torch.Tensor
) -> None:
    a, b = pair
    ours = ssim(a, b, half_mask)
    for i in range(2):
        _, reference_map = structural_similarity(_to_hwc(a[i]), _to_hwc(b[i]), full=True, **SKIMAGE_SSIM)
        selected = half_mask[i, 0].numpy() > 0.5
        assert ours[i].item() == pytest.approx(reference_map[selected].mean(), abs=1e-3)
    assert ours[2].isnan()


def test_ssim_rejects_tiny_images() -> None:
    with pytest.raises(InputError, match="at least 11 x 11"):
        ssim(torch.rand(1, 3, 8, 32), torch.rand(1, 3, 8, 32))


# ------------------------------------------------------------------------------------------- PSNR, MSE


def test_psnr_and_mse_match_skimage(astronaut_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = astronaut_pair
    ours_mse, ours_psnr = mse(a, b), psnr(a, b)
    for i in range(a.shape[0]):
        x, y = _to_hwc(a[i]), _to_hwc(b[i])
        assert ours_mse[i].item() == pytest.approx(mean_squared_error(x, y), rel=1e-4)
        assert ours_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0), abs=1e-3)
    assert psnr(a, a).isinf().all()


def test_masked_mse_is_mean_over_region_pixels(
    pair: tuple[torch.Tensor, torch.Tensor], half_mask: torch.Tensor
) -> None:
    a, b = pair
    ours = mse(a, b, half_mask)
    for i in range(2):
        selected = half_mask[i, 0].numpy() > 0.5
        expected = ((a[i].double().numpy() - b[i].double().numpy()) ** 2)[:, selected].mean()
        assert ours[i].item() == pytest.approx(expected, rel=1e-5)
    assert ours[2].isnan()


# ----------------------------------------------------------------------------------------------- suite


def test_suite_region_split_on_hand_made_example() -> None:
    a = torch.full((2, 3, 32, 32), 0.5)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    b = a.clone()
    b[:, :, 8:24, 8:24] += torch.tensor([0.1, 0.2])[:, None, None, None]  # item 0 by 0.1, item 1 by 0.2
    out = MetricSuite(names=("psnr", "mse", "ssim")).compute(a, b, mask)
    torch.testing.assert_close(out["mse_current"], torch.tensor([0.01, 0.04]))
    torch.testing.assert_close(out["mse_outside"], torch.zeros(2))
    torch.testing.assert_close(out["mse"], torch.tensor([0.01, 0.04]) * 256 / 1024)
    torch.testing.assert_close(out["psnr_current"], torch.tensor([20.0, 10 * np.log10(25)], dtype=torch.float32))
    assert out["psnr_outside"].isinf().all()
    assert (out["ssim_current"] < out["ssim_outside"]).all() and (out["ssim_outside"] <= 1).all()
    empty = MetricSuite(names=("mse",)).compute(a, b, torch.zeros_like(mask))
    assert empty["mse_current"].isnan().all()
    torch.testing.assert_close(empty["mse_outside"], empty["mse"])


def test_suite_full_keys_and_batch_independence(
    pair: tuple[torch.Tensor, torch.Tensor], half_mask: torch.Tensor
) -> None:
    weights = genuine_weights("alex")
    suite = MetricSuite(lpips_weights=weights)
    a, b = pair
    batched = suite.compute(a, b, half_mask)
    keys = suite.keys(("current", "outside"))
    assert tuple(batched) == keys
    assert keys[:3] == ("lpips", "lpips_current", "lpips_outside") and len(keys) == 12
    for value in batched.values():
        assert value.shape == (3,) and value.dtype == torch.float32
    for i in range(3):
        single = suite.compute(a[i : i + 1], b[i : i + 1], half_mask[i : i + 1])
        for key, value in single.items():
            torch.testing.assert_close(value[0], batched[key][i], atol=1e-5, rtol=1e-5, equal_nan=True)
    torch.testing.assert_close(batched["ssim"], ssim(a, b))
    torch.testing.assert_close(
        batched["lpips_current"], lpips_distance(a, b, half_mask, weights=weights), equal_nan=True
    )
    torch.testing.assert_close(batched["mse_outside"], mse(a, b, 1 - half_mask))


def test_suite_provenance_without_lpips() -> None:
    record = MetricSuite(names=("ssim", "psnr")).provenance()
    assert record["metrics"] == ["ssim", "psnr"] and "lpips" not in record
    assert record["ssim"]["sigma"] == 1.5 and record["ssim"]["spec"]["higher_is_better"] is True and record["ssim"]["use_sample_covariance"] is False
    assert record["psnr"]["identical_images"].startswith("inf")


def test_metric_name_validation() -> None:
    assert validate_metric_names(["mse", "ssim", "mse"]) == ("mse", "ssim")
    assert validate_metric_names("psnr") == ("psnr",)
    with pytest.raises(ConfigError, match="unknown metric name.*'fid'.*allowed: lpips, ssim, psnr, mse"):
        MetricSuite(names=("ssim", "fid"))
    with pytest.raises(ConfigError, match="no metrics chosen"):
        validate_metric_names([])
    assert METRIC_NAMES == ("lpips", "ssim", "psnr", "mse")


def test_bad_inputs_are_input_errors() -> None:
    suite = MetricSuite(names=("mse",))
    a = torch.rand(2, 3, 16, 16)
    with pytest.raises(InputError, match="differ in shape"):
        suite.compute(a, a[:1], torch.ones(2, 1, 16, 16))
    with pytest.raises(InputError, match="B x 1 x H x W"):
        suite.compute(a, a, torch.ones(2, 3, 16, 16))
    with pytest.raises(InputError, match="B x 3 x H x W"):
        mse(a[:, :1], a[:, :1])


def test_drift_tracker_equals_separate_comparisons(astronaut_pair) -> None:
    """The tracker's feature reuse gives exactly what comparing the images directly gives."""
    from ripbench.metrics import DriftTracker

    suite = MetricSuite(lpips_weights=genuine_weights("alex"))
    original, first = astronaut_pair
    half_mask = torch.zeros(3, 1, 96, 96)
    half_mask[0, :, :48] = 1
    half_mask[1, :, 20:70, 30:90] = 1
    half_mask[2, :, :, :10] = 1
    second = (first + 0.1 * half_mask).clamp(0, 1)
    tracker = DriftTracker(suite, original)
    tracker.step(first, half_mask)
    got = tracker.step(second, half_mask)
    to_orig = suite.compute(second, original, half_mask)
    to_prev = suite.compute(second, first, half_mask)
    for key in suite.keys(("current", "outside")):
        torch.testing.assert_close(got[DriftTracker.column(key, "orig")], to_orig[key], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got[DriftTracker.column(key, "prev")], to_prev[key], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ fast paths, same values


def test_region_means_equal_masked_mean_and_keep_nonfinite_values_out() -> None:
    from ripbench.metrics.regions import RegionSet, masked_mean, region_means

    g = torch.Generator().manual_seed(3)
    values = torch.rand(3, 2, 20, 24, generator=g)
    regions = (torch.rand(3, 4, 20, 24, generator=g) > 0.6).float()
    regions[2, 1] = 0  # an empty region
    got = region_means(values, regions)
    for j in range(4):
        torch.testing.assert_close(got[:, j], masked_mean(values, regions[:, j : j + 1]), equal_nan=True)
    assert got[2, 1].isnan() and not got[:2].isnan().any()
    # an inf pixel counts only in the regions holding it (the product alone would poison them all)
    regions[0, :, 5, 5] = torch.tensor([1.0, 0.0, 1.0, 0.0])
    values[0, 1, 5, 5] = float("inf")
    got = region_means(values, regions)
    assert got[0, 0] == float("inf") and got[0, 2] == float("inf")
    torch.testing.assert_close(got[0, 1], masked_mean(values[:1], regions[:1, 1:2])[0])
    assert torch.isfinite(got[1]).all()
    named = RegionSet({"a": regions[:, :1], "b": regions[:, 1:2]}).means(values)
    torch.testing.assert_close(named["b"], got[:, 1], equal_nan=True)


def test_region_set_of_iteration_equals_region_masks() -> None:
    from ripbench.metrics.regions import REGIONS, RegionSet, region_masks

    g = torch.Generator().manual_seed(4)
    current = (torch.rand(2, 1, 16, 16, generator=g) > 0.7).float()
    ever = torch.maximum(current, (torch.rand(2, 1, 16, 16, generator=g) > 0.5).float())
    fast = RegionSet.of_iteration(current, ever)
    slow = RegionSet(region_masks(current, ever))
    assert fast.names == slow.names == REGIONS
    torch.testing.assert_close(fast.stack, slow.stack)
    torch.testing.assert_close(fast.counts, slow.counts)


def test_ssim_cpu_filter_equals_the_convolution_path() -> None:
    from ripbench.metrics.ssim import _gaussian_filter, _gaussian_filter_conv

    x = torch.rand(2, 3, 37, 50, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(_gaussian_filter(x), _gaussian_filter_conv(x), rtol=0, atol=1e-6)


def test_psnr_and_mse_share_one_map_and_keep_their_values(astronaut_pair, half_mask) -> None:
    a, b = astronaut_pair
    mask = torch.zeros(3, 1, 96, 96)
    mask[0, :, :40] = 1
    both = MetricSuite(names=("psnr", "ssim", "mse"))
    assert ["psnr", "mse"] in both.groups and ["ssim"] in both.groups
    together = both.compute(a, b, mask)
    for name in ("psnr", "mse", "ssim"):
        alone = MetricSuite(names=(name,)).compute(a, b, mask)
        for key, value in alone.items():
            torch.testing.assert_close(together[key], value, equal_nan=True)
    torch.testing.assert_close(together["mse"], mse(a, b))
    torch.testing.assert_close(together["psnr_current"], psnr(a, b, mask), equal_nan=True)


@pytest.mark.parametrize("name", ["ssim", "mse", "psnr"])
def test_builtin_fast_path_declarations_hold(name: str, astronaut_pair) -> None:
    """What the suite relies on: whole value from the map, the self-map, and locality on crops."""
    from ripbench.metrics import get_metric_spec

    a, b = astronaut_pair
    metric = get_metric_spec(name).build("cpu")
    pa, pb = metric.prepare(a), metric.prepare(b)
    whole, full = metric.compare(pa, pb)
    border = metric.border
    crop = full[:, :, border : full.shape[2] - border, border : full.shape[3] - border]
    torch.testing.assert_close(metric.finish(crop.flatten(1).mean(1)), whole)
    assert torch.equal(metric.compare_map(pa, pa), torch.full_like(full, metric.pixel_identity))
    # a crop's map equals the full map wherever the crop holds the whole neighbourhood
    r = metric.radius
    y0, y1, x0, x1 = 20, 70, 0, 60  # touches the left edge: reflected like the image there
    part = metric.compare_map(metric.prepare(a[:, :, y0:y1, x0:x1]), metric.prepare(b[:, :, y0:y1, x0:x1]))
    assert torch.equal(part[:, :, r : part.shape[2] - r, : part.shape[3] - r], full[:, :, y0 + r : y1 - r, x0 : x1 - r])


def test_drift_tracker_local_recomputation_equals_full_recomputation() -> None:
    """On the CPU only the boxes around changed pixels are recomputed; the values are bit-identical."""
    from ripbench.metrics import DriftTracker

    g = torch.Generator().manual_seed(6)
    suite = MetricSuite(names=("ssim", "psnr", "mse"))
    b, h, w = 4, 96, 80
    original = torch.rand(b, 3, h, w, generator=g)
    local, full = DriftTracker(suite, original, local=True), DriftTracker(suite, original, local=False)
    current = original
    for k in range(6):
        mask = torch.zeros(b, 1, h, w)
        mask[0, :, 10 * k : 10 * k + 12, 3:20] = 1
        mask[1, :, :7, w - 9 :] = 1  # a corner: reflection at two image edges
        if k % 2 == 0:
            mask[2, :, 40:60, 30:50] = 1  # item 3 keeps its image on odd iterations
        if k == 2:
            mask[3] = 1  # one whole image: its box is the whole image
        if k == 3:
            mask[2:] = 1  # boxes over half the batch: this step recomputes everything
        new = torch.where(mask > 0.5, torch.rand(b, 3, h, w, generator=g), current)
        got, expected = local.step(new, mask), full.step(new, mask)
        assert list(got) == list(expected)
        for key, value in expected.items():
            assert torch.equal(got[key].nan_to_num(-7.0), value.nan_to_num(-7.0)), (k, key)
        current = new
    assert local.local_steps == 5 and full.local_steps == 0
    assert torch.equal(original, local.original)  # the original's statistics were never updated in place


def test_metric_with_its_own_region_reduction_is_still_honoured() -> None:
    from ripbench.metrics import Metric, MetricSpec

    class MaxError(Metric):
        def __init__(self, device: torch.device) -> None:
            self.device = device

        def compare(self, a: torch.Tensor, b: torch.Tensor):
            error = (a - b).abs()
            return error.flatten(1).amax(1), error

        def reduce(self, per_pixel: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
            return torch.where(region.expand_as(per_pixel) > 0.5, per_pixel, 0.0).flatten(1).amax(1)

    spec = MetricSpec(name="maxerr", label="max error", higher_is_better=False, range=(0.0, 1.0), identity=0.0,
                      compute=MaxError)
    suite = MetricSuite.__new__(MetricSuite)
    suite.names, suite.device, suite.specs = ("maxerr",), torch.device("cpu"), {"maxerr": spec}
    suite.options = {"maxerr": {}}
    suite.metrics = {"maxerr": spec.build("cpu")}
    from ripbench.metrics.suite import _groups

    suite.groups = _groups(suite.metrics)
    a = torch.zeros(1, 3, 8, 8)
    b = a.clone()
    b[..., 0, 0] = 0.5
    b[..., 7, 7] = 0.25
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:, 4:] = 1
    out = suite.compute(a, b, mask)
    assert out["maxerr"].item() == 0.5 and out["maxerr_current"].item() == 0.25 and out["maxerr_outside"].item() == 0.5


def test_accelerator_code_paths_give_the_same_values(astronaut_pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """The code GPUs run (no host decisions, whole-tensor kernels) agrees with the CPU code, here on the CPU."""
    from ripbench.metrics import DriftTracker, regions

    original, first = astronaut_pair
    mask = torch.zeros(3, 1, 96, 96)
    mask[0, :, 10:40, 20:60] = 1
    mask[1] = 1
    suite = MetricSuite(names=("ssim", "psnr", "mse"))
    cpu_tracker = DriftTracker(suite, original)
    expected = [cpu_tracker.step(first, mask), cpu_tracker.step(original, mask)]
    monkeypatch.setattr(regions, "host_kernels", lambda tensor: False)
    monkeypatch.setattr("ripbench.metrics.suite.host_kernels", lambda tensor: False)
    tracker = DriftTracker(suite, original)
    assert not tracker.local
    got = [tracker.step(first, mask), tracker.step(original, mask)]
    for a, b in zip(got, expected):
        assert list(a) == list(b)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, equal_nan=True)
    torch.testing.assert_close(ssim(original, first), torch.tensor([structural_similarity(
        _to_hwc(o), _to_hwc(f), **SKIMAGE_SSIM) for o, f in zip(original, first)], dtype=torch.float32), atol=1e-4, rtol=0)


def test_ssim_of_channels_last_and_cropped_inputs(astronaut_pair) -> None:
    a, b = astronaut_pair
    expected = ssim(a, b)
    torch.testing.assert_close(ssim(a.contiguous(memory_format=torch.channels_last), b), expected)
    torch.testing.assert_close(ssim(a[:, :, 10:80, 5:90], b[:, :, 10:80, 5:90]),
                               ssim(a[:, :, 10:80, 5:90].clone(), b[:, :, 10:80, 5:90].clone()))


def test_require_lpips_turns_the_lpips_skips_into_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.conftest as conftest

    monkeypatch.setattr(conftest, "REQUIRE_LPIPS", True)
    with pytest.raises(pytest.fail.Exception, match="RIPBENCH_REQUIRE_LPIPS=1 but no weights here"):
        skip_without_lpips("no weights here")
    monkeypatch.setattr(conftest, "REQUIRE_LPIPS", False)
    with pytest.raises(pytest.skip.Exception, match="no weights here"):
        skip_without_lpips("no weights here")
