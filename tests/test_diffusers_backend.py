"""The diffusers backend on tiny random pipelines (offline, CPU, fp32)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("diffusers")

from ripbench.errors import ConfigError, InputError, ModelNotFoundError  # noqa: E402
from ripbench.hallucination import NoiseBand  # noqa: E402
from ripbench.models.diffusers_backend import DiffusersInpainter  # noqa: E402
from ripbench.models.registry import looks_like_diffusers_model  # noqa: E402
from ripbench.models.sd_configs import full_size_pipeline  # noqa: E402
from tests.tiny_pipelines import sample_batch, tiny_sd_inpaint, tiny_sdxl_inpaint  # noqa: E402

#: Every denoising step (sigma levels are finite except flow matching's first, which is inf).
ALL_STEPS = NoiseBand(0.0, math.inf)

ATOL = 1e-5


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_pipes")


@pytest.fixture(scope="module")
def sd9(workdir: Path) -> Any:
    return tiny_sd_inpaint(workdir / "sd9", in_channels=9)


@pytest.fixture(scope="module")
def sd4(workdir: Path) -> Any:
    return tiny_sd_inpaint(workdir / "sd4", in_channels=4, seed=1)


def fresh(pipe: Any, **options: Any) -> DiffusersInpainter:
    """A model on a copy of ``pipe`` (options such as the scheduler change the pipeline)."""
    options.setdefault("steps", 3)
    return DiffusersInpainter(copy.deepcopy(pipe), device="cpu", **options)


# --------------------------------------------------------------------------- semantics
def test_batch_independence_and_trajectory(sd9: Any) -> None:
    model = fresh(sd9, scheduler="euler-a")  # ancestral: consumes per-item noise every step
    images, masks = sample_batch(3)
    batch = model.inpaint(images, masks, [5, 6, 7], x0_band=ALL_STEPS)
    assert batch.images.shape == images.shape and batch.images.device.type == "cpu"
    assert batch.x0_trajectory.shape == (3, 3, 4, 16, 16) and batch.x0_space == "latent"
    for i, seed in enumerate([5, 6, 7]):
        single = model.inpaint(images[i : i + 1], masks[i : i + 1], [seed], x0_band=ALL_STEPS)
        torch.testing.assert_close(single.images[0], batch.images[i], atol=ATOL, rtol=0)
        torch.testing.assert_close(
            single.x0_trajectory[:, 0], batch.x0_trajectory[:, i], atol=1e-4, rtol=1e-4
        )
    other_seed = model.inpaint(images[:1], masks[:1], [99])
    assert (other_seed.images[0] - batch.images[0]).abs().max() > 1e-3


def test_paste_back_is_exact_and_off_switch_drifts(sd9: Any) -> None:
    images, masks = sample_batch(2)
    on = fresh(sd9).inpaint(images, masks, [0, 1])
    off = fresh(sd9, paste_back=False).inpaint(images, masks, [0, 1])
    keep = (masks < 0.5).expand_as(images)
    assert torch.equal(on.images[keep], images[keep])  # bit-identical outside the mask
    assert (off.images[keep] - images[keep]).abs().mean() > 1e-3  # VAE round trip changes them
    torch.testing.assert_close(on.images[~keep], off.images[~keep], atol=0, rtol=0)
    assert not on.failed.any() and on.extras["failure"] == ["", ""]
    on.images.clamp_(0.0, 1.0)  # ordinary tensors (the harness updates them in place)


def test_redundant_cfg_is_skipped_and_matches_guided_run(sd9: Any) -> None:
    images, masks = sample_batch(2)
    skipped = fresh(sd9, guidance=7.5)
    guided = fresh(sd9, guidance=7.5, skip_redundant_cfg=False)
    assert skipped.identity()["cfg_skipped"] and skipped.identity()["effective_guidance_scale"] == 1.0
    assert not guided.identity()["cfg_skipped"]
    a = skipped.inpaint(images, masks, [3, 4], x0_band=ALL_STEPS)
    b = guided.inpaint(images, masks, [3, 4], x0_band=ALL_STEPS)
    torch.testing.assert_close(a.images, b.images, atol=ATOL, rtol=0)
    torch.testing.assert_close(a.x0_trajectory, b.x0_trajectory, atol=1e-4, rtol=0)
    prompted = fresh(sd9, prompt="a cat", guidance=7.5)
    assert not prompted.cfg_skipped
    assert (prompted.inpaint(images, masks, [3, 4]).images - a.images).abs().max() > 1e-4


# --------------------------------------------------------------------------- x0 capture
# (one x0 per timestep for every scheduler, checked against a UNet hook: tests/test_x0_capture.py)
def test_strength_sets_num_steps_and_short_trajectory(sd9: Any) -> None:
    model = fresh(sd9, scheduler="ddim", steps=4, strength=0.5)
    assert model.x0_steps == 2 and model.identity()["strength"] == 0.5
    images, masks = sample_batch(1)
    out = model.inpaint(images, masks, [0], x0_band=ALL_STEPS)
    assert out.x0_trajectory.shape[0] == 2 and len(out.x0_noise_levels) == 2


def test_band_selects_steps_by_noise_level(sd9: Any) -> None:
    model = fresh(sd9, scheduler="ddim", steps=10)  # "leading" spacing, offset 1: t = 901, 801, ..., 1
    images, masks = sample_batch(1)
    out = model.inpaint(images, masks, [0], x0_band=NoiseBand(0.0, 0.25, "t/T"))
    assert out.x0_noise_levels.tolist() == [0.201, 0.101, 0.001] and out.x0_noise_unit == "t/T"
    assert out.x0_trajectory.shape == (3, 1, 4, 16, 16)
    # sigma/sqrt(alpha_bar) on SD's scaled-linear schedule: t = 101 is at 0.35, t = 201 at 0.57
    in_sigma = model.inpaint(images, masks, [0], x0_band=NoiseBand(0.0, 0.5))
    abar = model.pipe.scheduler.alphas_cumprod.double()
    torch.testing.assert_close(in_sigma.x0_noise_levels, ((1 - abar) / abar).sqrt()[[101, 1]])
    assert in_sigma.x0_noise_unit == "sigma"
    torch.testing.assert_close(in_sigma.x0_trajectory, out.x0_trajectory[1:])  # the same steps, fewer of them
    none = model.inpaint(images, masks, [0], x0_band=NoiseBand(0.95, 1.0, "t/T"))
    assert none.x0_trajectory.shape[:2] == (0, 1) and len(none.x0_noise_levels) == 0
    assert model.inpaint(images, masks, [0]).x0_trajectory is None


def test_decoded_trajectory_is_pixel_space(sd9: Any) -> None:
    model = fresh(sd9, scheduler="ddim", decode_trajectory=True)
    images, masks = sample_batch(2)
    out = model.inpaint(images, masks, [0, 1], x0_band=NoiseBand(0.0, 0.5, "t/T"))
    assert out.x0_space == "pixel" and out.x0_trajectory.shape == (2, 2, 3, 32, 32)  # t = 334, 1 of 667, 334, 1


# --------------------------------------------------------------------------- pipeline kinds
def test_text_to_image_unet_via_four_channel_mode(sd4: Any) -> None:
    from diffusers import StableDiffusionPipeline

    text_to_image = StableDiffusionPipeline(**copy.deepcopy(sd4.components))
    model = DiffusersInpainter(text_to_image, steps=3, scheduler="ddim", device="cpu")
    ident = model.identity()
    assert ident["pipeline"] == "StableDiffusionInpaintPipeline"
    assert ident["inpaint_mode"] == "4-channel latent blending"
    images, masks = sample_batch(2)
    out = model.inpaint(images, masks, [0, 1], x0_band=ALL_STEPS)
    keep = (masks < 0.5).expand_as(images)
    assert torch.equal(out.images[keep], images[keep])
    assert out.x0_trajectory.shape == (3, 2, 4, 16, 16)


def test_sdxl_inpaint(workdir: Path) -> None:
    model = DiffusersInpainter(tiny_sdxl_inpaint(workdir / "sdxl"), steps=3, device="cpu")
    ident = model.identity()
    # the aesthetic-score conditioning differs between the two CFG passes: CFG must run
    assert ident["pipeline"] == "StableDiffusionXLInpaintPipeline" and not ident["cfg_skipped"]
    assert ident["strength"] == pytest.approx(0.9999) and model.x0_steps == 2
    images, masks = sample_batch(2)
    out = model.inpaint(images, masks, [0, 1], x0_band=ALL_STEPS)
    single = model.inpaint(images[1:], masks[1:], [1], x0_band=ALL_STEPS)
    torch.testing.assert_close(single.images[0], out.images[1], atol=ATOL, rtol=0)
    assert out.x0_trajectory.shape == (2, 2, 4, 16, 16) and not out.failed.any()


def test_saved_pipeline_loads_by_path_offline(sd9: Any, tmp_path: Path) -> None:
    folder = tmp_path / "tiny-sd-inpaint"
    sd9.save_pretrained(folder)
    assert looks_like_diffusers_model(str(folder))
    loaded = DiffusersInpainter(str(folder), local_files_only=True, steps=3, device="cpu", dtype="auto")
    assert loaded.identity()["model"] == str(folder) and loaded.identity()["dtype"] == "float32"
    images, masks = sample_batch(2)
    reference = fresh(sd9).inpaint(images, masks, [0, 1])
    torch.testing.assert_close(
        loaded.inpaint(images, masks, [0, 1]).images, reference.images, atol=ATOL, rtol=0
    )


def test_pipeline_without_text_encoder_uses_zero_embeddings(sd9: Any) -> None:
    components = {**copy.deepcopy(sd9.components), "tokenizer": None, "text_encoder": None}
    pipe = type(sd9)(**components)
    model = DiffusersInpainter(pipe, steps=2, device="cpu")
    assert model.identity()["zero_prompt_embeddings"] and model.prompt_embeds.shape == (1, 77, 16)
    images, masks = sample_batch(1)
    assert model.inpaint(images, masks, [0]).images.shape == images.shape
    with pytest.raises(ConfigError, match="only the empty prompt"):
        DiffusersInpainter(type(sd9)(**components), prompt="a cat", device="cpu")


@pytest.mark.parametrize(
    ("arch", "dim", "unet_params"),
    [
        ("sd15-inpainting", 768, 859_535_364),
        ("sd2-inpainting", 1024, 865_925_124),
    ],
)
def test_full_size_architectures(arch: str, dim: int, unet_params: int) -> None:
    pipe = full_size_pipeline(arch, device="meta")  # shapes only, no memory, no download
    assert sum(p.numel() for p in pipe.unet.parameters()) == unet_params
    assert sum(p.numel() for p in pipe.vae.parameters()) == 83_653_863
    model = DiffusersInpainter(pipe, device="meta", dtype="fp32")
    assert model.prompt_embeds.shape == (1, 77, dim) and model.cfg_skipped is False
    assert model.x0_steps == 50 + (arch == "sd15-inpainting")  # PNDM's PLMS repeats one step


# --------------------------------------------------------------------------- failures and errors
def test_nan_and_black_outputs_are_flagged(sd9: Any) -> None:
    model = fresh(sd9)
    conv_out = model.pipe.vae.decoder.conv_out
    images, masks = sample_batch(2)
    with torch.no_grad():
        conv_out.weight.zero_()
        conv_out.bias.fill_(-10.0)  # decodes to -10 -> clamps to black
    out = model.inpaint(images, masks, [0, 1])
    assert out.failed.tolist() == [True, True] and out.extras["failure"] == ["all-black", "all-black"]
    with torch.no_grad():
        conv_out.bias.fill_(float("nan"))
    out = model.inpaint(images, masks, [0, 1])
    assert out.failed.all() and out.extras["failure"] == ["nan", "nan"]
    assert torch.isfinite(out.images).all()


def test_safety_checker_flags_are_recorded(sd9: Any) -> None:
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    tiny = {"hidden_size": 16, "intermediate_size": 24, "num_attention_heads": 2, "num_hidden_layers": 1}
    checker = StableDiffusionSafetyChecker(
        CLIPConfig(
            text_config=tiny,
            vision_config={**tiny, "image_size": 32, "patch_size": 8},
            projection_dim=8,
        )
    )
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(-2.0)  # cosine - (-2) > 0: every image is "flagged"
    pipe = type(sd9)(
        **{
            **copy.deepcopy(sd9.components),
            "safety_checker": checker,
            "feature_extractor": CLIPImageProcessor(size=32, crop_size=32),
        }
    )
    assert DiffusersInpainter(copy.deepcopy(pipe), device="cpu").identity()["safety_checker"] is False
    model = DiffusersInpainter(pipe, safety_checker=True, steps=2, device="cpu")
    images, masks = sample_batch(2)
    out = model.inpaint(images, masks, [0, 1])
    assert out.extras["nsfw_flagged"] == [True, True] and out.extras["failure"] == ["nsfw", "nsfw"]
    assert out.failed.all() and (out.images[(masks > 0.5).expand_as(images)] == 0).all()


def test_input_errors(sd9: Any) -> None:
    model = fresh(sd9)
    images, masks = sample_batch(2)
    with pytest.raises(InputError, match="multiple of 8"):
        model.inpaint(torch.rand(2, 3, 36, 36), torch.ones(2, 1, 36, 36), [0, 1])
    with pytest.raises(InputError, match="masks"):
        model.inpaint(images, masks[:, :, :16], [0, 1])
    with pytest.raises(InputError, match="seeds"):
        model.inpaint(images, masks, [0])
    with pytest.raises(ConfigError, match="scheduler"):
        fresh(sd9, scheduler="no-such-sampler")


def test_unloadable_models_raise_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache.*hf download"):
        DiffusersInpainter("ripbench-test/no-such-model", local_files_only=True, device="cpu")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        DiffusersInpainter(str(tmp_path / "missing"), device="cpu")
    with pytest.raises(ModelNotFoundError, match="not a diffusers pipeline directory"):
        DiffusersInpainter(str(tmp_path), device="cpu")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("stabilityai/stable-diffusion-2-inpainting", True),
        ("./models/my-inpainter", True),
        ("/abs/path/model", True),
        ("biharmonic", False),
        ("my_pkg.models:make_model", False),
        ("not a/model id", False),
    ],
)
def test_looks_like_diffusers_model(spec: str, expected: bool) -> None:
    assert looks_like_diffusers_model(spec) is expected


def test_identity_records_output_changing_settings(sd9: Any) -> None:
    ident = fresh(sd9, scheduler="dpm++", guidance=5.0, eta=0.0).identity()
    for key in (
        "model",
        "pipeline",
        "scheduler",
        "scheduler_config",
        "steps",
        "strength",
        "num_steps",
        "prompt",
        "negative_prompt",
        "guidance_scale",
        "cfg_skipped",
        "paste_back",
        "safety_checker",
        "dtype",
        "device",
        "attention",
        "compile_unet",
        "diffusers_version",
    ):
        assert key in ident
    assert ident["scheduler"] == "DPMSolverMultistepScheduler"
    assert ident["scheduler_config"]["algorithm_type"] == "dpmsolver++"
    assert ident["safety_checker"] is False and ident["paste_back"] is True


def test_speed_switches_are_applied_and_recorded(sd9: Any) -> None:
    """compile of UNet and VAE (in place, lazily: nothing is compiled until a call), channels-last, dtype."""
    model = fresh(sd9, compile_unet=True, compile_vae=True, compile_mode="max-autotune", channels_last=True)
    pipe = model.pipe
    for module in (pipe.unet, pipe.vae.encoder, pipe.vae.decoder):
        assert module._compiled_call_impl is not None  # nn.Module.compile() was called
    assert type(pipe.unet).__name__ == "UNet2DConditionModel"  # the pipeline keeps its own module
    weight = next(p for p in pipe.vae.parameters() if p.dim() == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    ident = model.identity()
    assert ident["compile_unet"] and ident["compile_vae"] and ident["compile_mode"] == "max-autotune"
    assert ident["channels_last"] and ident["dtype"] == "float32"
    with pytest.raises(ConfigError, match="compile_mode"):
        fresh(sd9, compile_mode="fastest")


def test_failure_reasons_stay_on_the_device_until_read(sd9: Any) -> None:
    from ripbench.models import DeviceLabels

    images, masks = sample_batch(2)
    out = fresh(sd9).inpaint(images, masks, [0, 1])
    assert isinstance(out.extras["failure"], DeviceLabels) and out.extras["failure"]._values is None
    assert list(out.extras["failure"]) == ["", ""]


def test_options_are_declared_once_and_captured(sd9: Any) -> None:
    import inspect

    from ripbench.models.base import signature_options

    params = dict(list(inspect.signature(DiffusersInpainter.__init__).parameters.items())[1:])
    specs = DiffusersInpainter.option_specs
    assert len(specs) == 26 and [o.name for o in specs] == list(params)  # the 26 options (model first), in order
    assert all(o.default == params[o.name].default for o in specs[1:]) and specs[0].default is None
    model = fresh(sd9, steps=2, attention="eager", eta=0.5)
    assert {k: v for k, v in model.config.items() if k != "model"} == {
        **{o.name: o.default for o in specs[1:]}, "steps": 2, "attention": "eager", "eta": 0.5, "device": "cpu"}
    assert copy.deepcopy(model.config).keys() == model.config.keys()  # deep-copyable (a dict)
    identity = model.identity()
    assert identity["attention"] == "eager" and identity["eta"] == 0.5 and identity["paste_back"] is True
    assert identity["prompt"] == "" and identity["revision"] is None and identity["compile_mode"] == "default"
    with pytest.raises(ConfigError, match="option 'attention' must be one of sdpa, eager, xformers, default"):
        fresh(sd9, attention="flash")
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        DiffusersInpainter(sd9, device="cpu", no_such_option=1)
    with pytest.raises(TypeError, match="are not both parameters and described"):
        signature_options(DiffusersInpainter.__init__, specs[:-1])
