"""Pixel-space DDPM inpainting (replacement and RePaint) and the bundled Simple Shapes weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from ripbench.errors import ConfigError, InputError
from ripbench.hallucination import NoiseBand, sigma_levels
from ripbench.models.pixel_ddpm import BUNDLED_SHAPES_DIR, PixelDDPMInpainter

SIZE = 16


def _tiny_unet(channels: int = 1):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=SIZE, in_channels=channels, out_channels=channels, block_out_channels=(8, 16),
        layers_per_block=1, norm_num_groups=4, down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
    )


@pytest.fixture(scope="module")
def tiny_model() -> PixelDDPMInpainter:
    return PixelDDPMInpainter(_tiny_unet(), steps=8, device="cpu")


def _inputs(batch: int = 3, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(batch, 3, size, size, generator=gen)
    masks = torch.zeros(batch, 1, size, size)
    masks[..., 4:12, 2:10] = 1
    return images, masks


def test_output_shape_range_and_known_region_exact(tiny_model: PixelDDPMInpainter) -> None:
    images, masks = _inputs()
    out = tiny_model.inpaint(images, masks, [0, 1, 2]).images
    assert out.shape == images.shape and out.dtype == images.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    keep = (masks == 0).expand_as(images)
    assert torch.equal(out[keep], images[keep])
    # greyscale model: the filled region is grey (equal channels) and differs from the input
    hole = (masks == 1).expand(-1, 1, -1, -1)
    assert torch.equal(out[:, :1][hole], out[:, 2:][hole])
    assert not torch.allclose(out[:, :1][hole], images[:, :1][hole])


def test_items_do_not_depend_on_the_batch(tiny_model: PixelDDPMInpainter) -> None:
    images, masks = _inputs()
    batch = tiny_model.inpaint(images, masks, [7, 8, 9], x0_band=NoiseBand(0.0, 1.0))
    alone = tiny_model.inpaint(images[1:2], masks[1:2], [8], x0_band=NoiseBand(0.0, 1.0))
    torch.testing.assert_close(batch.images[1:2], alone.images, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.x0_trajectory[:, 1:2], alone.x0_trajectory, atol=1e-4, rtol=1e-4)
    again = tiny_model.inpaint(images[1:2], masks[1:2], [8]).images
    assert torch.equal(again, alone.images)
    other_seed = tiny_model.inpaint(images[1:2], masks[1:2], [10]).images
    assert not torch.equal(other_seed, alone.images)


def test_trajectory_band_levels_and_last_entry_matches_output(tiny_model: PixelDDPMInpainter) -> None:
    images, masks = _inputs()
    result = tiny_model.inpaint(images, masks, [0, 1, 2], x0_band=NoiseBand(0.0, 0.4, "t/T"))
    assert result.x0_space == "pixel" and result.x0_noise_unit == "t/T"
    # 8 of 1000 steps, "leading" spacing: t = 875, 750, ..., 125, 0; the band keeps t <= 400
    assert result.x0_noise_levels.tolist() == [0.375, 0.25, 0.125, 0.0]
    assert result.x0_trajectory.shape == (4, 3, 1, SIZE, SIZE)
    assert tiny_model.x0_steps == 8
    last = ((result.x0_trajectory[-1] + 1) / 2).clamp(0, 1)
    hole = masks == 1
    torch.testing.assert_close(last[hole], result.images[:, :1][hole], atol=1e-5, rtol=0)
    assert tiny_model.inpaint(images, masks, [0, 1, 2]).x0_trajectory is None
    empty = tiny_model.inpaint(images, masks, [0, 1, 2], x0_band=NoiseBand(0.9, 1.0, "t/T"))
    assert empty.x0_trajectory.shape[:2] == (0, 3) and len(empty.x0_noise_levels) == 0


def test_trajectory_levels_in_sigma_units(tiny_model: PixelDDPMInpainter) -> None:
    """The default unit: sigma/sqrt(alpha_bar) of each kept timestep on the model's own schedule."""
    images, masks = _inputs()
    in_t = tiny_model.inpaint(images, masks, [0, 1, 2], x0_band=NoiseBand(0.0, 0.4, "t/T"))
    # betas 1e-4..0.02 (the shapes schedule): t = 125 is at sigma 0.44, t = 250 at 0.96, t = 375 at 1.5
    band = NoiseBand(0.0, 1.0)
    result = tiny_model.inpaint(images, masks, [0, 1, 2], x0_band=band)
    expected = sigma_levels(tiny_model.scheduler.alphas_cumprod)[[250, 125, 0]]
    assert result.x0_noise_unit == "sigma"
    torch.testing.assert_close(result.x0_noise_levels, expected)
    torch.testing.assert_close(result.x0_trajectory, in_t.x0_trajectory[1:])  # the same steps, fewer of them
    assert tiny_model.inpaint(images, masks, [0, 1, 2], x0_band=(0.0, 1.0)).x0_noise_unit == "sigma"  # plain pair


def test_trajectory_matches_unet_hook(tiny_model: PixelDDPMInpainter) -> None:
    """Every recorded x0 equals (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) from the UNet's own input and output."""
    calls: list[tuple[torch.Tensor, int, torch.Tensor]] = []

    def hook(module, args, output):
        calls.append((args[0].clone(), int(args[1].reshape(-1)[0]), output.sample.clone()))

    handle = tiny_model.unet.register_forward_hook(hook)
    try:
        images, masks = _inputs(2)
        result = tiny_model.inpaint(images, masks, [3, 4], x0_band=NoiseBand(0.0, 1.0, "t/T"))
    finally:
        handle.remove()
    abar = tiny_model.scheduler.alphas_cumprod
    expected = torch.stack([(x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt() for x, t, eps in calls])
    assert result.x0_noise_levels.tolist() == [t / 1000 for _, t, _ in calls]
    assert tiny_model.scheduler.config.clip_sample is False  # an in-memory UNet's default config too
    assert expected.abs().max() > 1.5  # unclipped
    torch.testing.assert_close(result.x0_trajectory, expected, atol=1e-4, rtol=1e-5)


def test_repaint_runs_and_keeps_the_known_region() -> None:
    model = PixelDDPMInpainter(_tiny_unet(), method="repaint", steps=6, jump_length=2,
                               jump_n_sample=2, device="cpu")
    images, masks = _inputs(2)
    result = model.inpaint(images, masks, [0, 1], x0_band=NoiseBand(0.0, 1.0, "t/T"))
    keep = (masks == 0).expand_as(images)
    assert torch.equal(result.images[keep], images[keep])
    assert model.x0_steps > 6  # resampling jumps repeat model calls ...
    # ... but the trajectory holds one x0 per timestep (its last visit), noisiest first
    timesteps = sorted(set(model.scheduler.timesteps.tolist()), reverse=True)
    assert result.x0_noise_levels.tolist() == [t / 1000 for t in timesteps if t < 1000]
    assert result.x0_trajectory.shape == (6, 2, 1, SIZE, SIZE)
    alone = model.inpaint(images[1:], masks[1:], [1]).images
    torch.testing.assert_close(result.images[1:], alone, atol=1e-5, rtol=1e-5)
    assert model.identity()["jump_n_sample"] == 2


def test_rgb_model() -> None:
    model = PixelDDPMInpainter(_tiny_unet(3), steps=3, device="cpu")
    images, masks = _inputs(2)
    out = model.inpaint(images, masks, [0, 1], x0_band=NoiseBand(0.0, 0.4, "t/T"))
    assert out.x0_trajectory.shape == (2, 2, 3, SIZE, SIZE)  # t = 333, 0 of 666, 333, 0
    assert not torch.equal(out.images[:, 0], out.images[:, 1])


def test_size_mismatch_and_bad_options(tiny_model: PixelDDPMInpainter) -> None:
    images, masks = _inputs(1, size=8)
    with pytest.raises(InputError, match=r"\(8, 8\).*\(16, 16\)"):
        tiny_model.inpaint(images, masks, [0])
    with pytest.raises(ConfigError):
        PixelDDPMInpainter(_tiny_unet(), method="magic")
    with pytest.raises(ConfigError):
        PixelDDPMInpainter(_tiny_unet(), dtype="float8")


def test_bundled_weights_load_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = PixelDDPMInpainter("shapes", steps=10, device="cpu")
    assert model.name == "shapes-ddpm" and model.sample_size == (64, 64) and model.channels == 1
    ident = model.identity()
    weights = Path(ident["weights_path"])
    assert weights.parent.parent == BUNDLED_SHAPES_DIR and weights.suffix == ".safetensors"
    assert ident["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (ident["method"], ident["steps"]) == ("replace", 10)
    assert model.scheduler.config.clip_sample is False
    for name in ("training_config.json", "loss_curve.csv"):
        assert (BUNDLED_SHAPES_DIR / name).is_file()


@pytest.mark.slow
def test_bundled_model_repaints_a_column_validly() -> None:
    """What the recursive loop asks of the bundled model: repaint one column of a Simple Shapes image.

    (Its unconditional samples are mostly invalid, see the README; inpainting is anchored by the
    two known columns.)
    """
    from ripbench.training.shapes import _column_repaints

    model = PixelDDPMInpainter("shapes", steps=25, device="cpu")
    labels = _column_repaints(model, 24, seed=0, batch_size=24)
    assert sum(label == "valid" for label in labels) >= 18, labels


# -- the scheduler config: substitutions are said and recorded -------------------------------------------


def test_scheduler_config_from_the_model_folder_is_recorded(tmp_path: Path) -> None:
    import warnings

    from diffusers import DDPMScheduler

    _tiny_unet().save_pretrained(tmp_path / "unet")
    DDPMScheduler(num_train_timesteps=200, beta_schedule="squaredcos_cap_v2").save_pretrained(tmp_path / "scheduler")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing substituted: nothing to say
        ident = PixelDDPMInpainter(tmp_path, steps=4, device="cpu").identity()
    assert ident["scheduler_config_source"] == "model"
    config = ident["scheduler_config"]
    assert (config["num_train_timesteps"], config["beta_schedule"], config["clip_sample"]) == (
        200, "squaredcos_cap_v2", False)
    assert json.loads(json.dumps(ident)) == ident  # the manifest can hold it


def test_missing_scheduler_config_warns_and_the_manifest_shows_the_default(tmp_path: Path) -> None:
    _tiny_unet().save_pretrained(tmp_path)  # a bare UNet folder: no scheduler_config.json anywhere
    with pytest.warns(UserWarning, match=r"holds no scheduler_config.json .*using diffusers' default DDPMScheduler"):
        model = PixelDDPMInpainter(tmp_path, steps=4, device="cpu")
    ident = model.identity()
    assert ident["scheduler_config_source"].startswith("diffusers default (") and str(tmp_path) in \
        ident["scheduler_config_source"]
    assert ident["scheduler_config"]["num_train_timesteps"] == 1000
    assert ident["scheduler_config"]["beta_schedule"] == "linear"


def test_hub_scheduler_failure_warns_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any exception loading a Hub model's scheduler config: one warning naming it, then the default."""
    import warnings

    from diffusers import DDPMScheduler, UNet2DModel

    unet = _tiny_unet()
    monkeypatch.setattr(UNet2DModel, "from_pretrained", classmethod(lambda cls, *a, **k: unet))

    def no_scheduler(cls, *args, **kwargs):
        raise OSError("owner/ddpm has no file scheduler/scheduler_config.json\nsecond line")

    monkeypatch.setattr(DDPMScheduler, "load_config", classmethod(no_scheduler))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PixelDDPMInpainter("owner/ddpm", steps=4, device="cpu")
    messages = [str(w.message) for w in caught if "pixel-ddpm" in str(w.message)]
    assert len(messages) == 1 and "\n" not in messages[0], messages
    assert "no scheduler config loaded for 'owner/ddpm' (OSError: owner/ddpm has no file" in messages[0]
    assert model.identity()["scheduler_config_source"].startswith("diffusers default (no scheduler config loaded")


def test_in_memory_unet_records_default_and_overrides() -> None:
    ident = PixelDDPMInpainter(_tiny_unet(), steps=4, device="cpu",
                               scheduler_config={"num_train_timesteps": 500}).identity()
    assert ident["scheduler_config"]["num_train_timesteps"] == 500
    assert ident["scheduler_config_source"] == ("diffusers default (an in-memory UNet2DModel comes without one), "
                                                "overridden: num_train_timesteps")
