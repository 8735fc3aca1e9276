"""One recorded x0 per scheduler timestep, checked against an independent computation.

For every scheduler the diffusers backend names (and for the flow-matching pipelines), a
forward hook on the denoiser records what the model saw and returned at each call; x0 is then
computed from that with the scheduler's parametrisation (VE sigmas for the Euler family,
``alphas_cumprod`` for the variance-preserving ones, LCM's boundary scalings, ``x - sigma v``
for flow matching) and compared with what :class:`DiffusersInpainter` returns. Multi-evaluation
samplers (Heun, KDPM2, PNDM's first PLMS step) must contribute only their evaluation at the
sampler's own state of each timestep.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from ripbench.hallucination import NoiseBand, sigma_levels  # noqa: E402
from ripbench.models._x0_capture import X0Recorder, is_committed_call, noise_level, schedule_levels, x0_source  # noqa: E402
from ripbench.models.diffusers_backend import SCHEDULERS, DiffusersInpainter  # noqa: E402
from tests.tiny_pipelines import sample_batch, tiny_flux_fill, tiny_sd3_inpaint, tiny_sd_inpaint  # noqa: E402

STEPS = 5
#: Schedulers whose model input is the VE sample scaled by 1 / sqrt(sigma^2 + 1).
VE_SCHEDULERS = {"euler", "euler-a", "lms", "heun", "kdpm2", "kdpm2-a"}
#: Schedulers that call the model twice per timestep (the second call at a trial point or midpoint).
TWO_CALLS = {"heun", "kdpm2", "kdpm2-a"}


@pytest.fixture(scope="module")
def sd9(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tiny_sd_inpaint(tmp_path_factory.mktemp("x0") / "sd9", in_channels=9)


class DenoiserTap:
    """Forward hook on a UNet or transformer: (model input, timestep, model output) per call."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls: list[tuple[torch.Tensor, float, torch.Tensor]] = []
        self.handle = module.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        sample = args[0] if args else kwargs["hidden_states"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        out = output[0] if isinstance(output, tuple) else output.sample
        self.calls.append((sample.detach().clone(), float(torch.as_tensor(timestep).reshape(-1)[0]), out.clone()))


def _committed(name: str, calls: list[Any]) -> list[Any]:
    if name in TWO_CALLS:
        return calls[::2]  # t0, (trial at t1), t1, (trial at t2), ...: the evaluations at the sampler's state
    if name == "pndm":
        return [c for i, c in enumerate(calls) if i != 1]  # call 1 re-evaluates t1 at a trial point
    return calls


def _expected_x0(name: str, scheduler: Any, x_in: torch.Tensor, t: float, eps: torch.Tensor) -> torch.Tensor:
    abar = scheduler.alphas_cumprod.double()
    if name in VE_SCHEDULERS:  # x = x0 + sigma eps, the model sees x / sqrt(sigma^2 + 1)
        train_sigmas = ((1 - abar) / abar).sqrt().numpy()
        sigma = float(np.interp(t, np.arange(len(train_sigmas)), train_sigmas))
        return x_in.double() * (sigma**2 + 1) ** 0.5 - sigma * eps.double()
    a = abar[int(round(t))]
    x0 = (x_in.double() - (1 - a).sqrt() * eps.double()) / a.sqrt()
    if name == "lcm":  # LCM commits to its boundary-condition mix of x0 and the sample
        c_skip, c_out = scheduler.get_scalings_for_boundary_condition_discrete(int(round(t)))
        return c_out * x0 + c_skip * x_in.double()
    return x0


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_one_x0_per_timestep_matches_unet_hook(sd9: Any, name: str) -> None:
    model = DiffusersInpainter(copy.deepcopy(sd9), scheduler=name, steps=STEPS, device="cpu")
    assert model.returns_x0_trajectory and model.identity()["scheduler"] == SCHEDULERS[name][0]
    tap = DenoiserTap(model.pipe.unet)
    images, masks = sample_batch(2)
    out = model.inpaint(images, masks, [0, 1], x0_band=NoiseBand(0.0, math.inf))
    committed = _committed(name, tap.calls)
    assert len(tap.calls) == model.x0_steps  # every model call was seen ...
    assert out.x0_trajectory.shape == (len(committed), 2, 4, 16, 16)  # ... one x0 per timestep kept
    assert len(committed) == (STEPS if name != "lcm" else len(model.pipe.scheduler.timesteps))
    expected = torch.stack(
        [_expected_x0(name, model.pipe.scheduler, x[:, :4], t, eps) for x, t, eps in committed]
    ).float()
    torch.testing.assert_close(out.x0_trajectory, expected, atol=2e-4, rtol=1e-4)
    # sigma/sqrt(alpha_bar) of the timestep the model saw (interpolated in t, as the Euler family does)
    train_sigmas = sigma_levels(model.pipe.scheduler.alphas_cumprod).numpy()
    levels = [float(np.interp(t, np.arange(len(train_sigmas)), train_sigmas)) for _, t, _ in committed]
    assert out.x0_noise_unit == "sigma"
    np.testing.assert_allclose(out.x0_noise_levels.numpy(), levels, rtol=1e-5)
    assert all(a > b for a, b in zip(levels, levels[1:]))  # noisiest first, no level twice
    assert torch.isfinite(out.x0_trajectory).all() and not out.failed.any()
    assert model.pipe.scheduler.__dict__.get("step") is None  # wrapper removed after the call


def test_recorder_keeps_only_the_band_and_restores_step() -> None:
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000)
    sched.set_timesteps(10)
    x = torch.randn(1, 2, 4, 4)
    start = x.clone()
    with X0Recorder(sched, band=NoiseBand(0.0, 0.35, "t/T")) as rec:  # the old unit: exactly as before
        for t in sched.timesteps:
            x = sched.step(torch.zeros_like(x), t, x).prev_sample
    x0, levels = rec.trajectory()
    assert levels.tolist() == [0.3, 0.2, 0.1, 0.0] and x0.shape == (4, 1, 2, 4, 4) and rec.calls == 10
    assert "step" not in sched.__dict__
    # in sigma (betas 1e-4..0.02): t = 300 is at sigma 1.24, t = 200 at 0.72; a band [0, 1] keeps t <= 200
    x = start.clone()
    with X0Recorder(sched, band=NoiseBand(0.0, 1.0)) as rec:
        for t in sched.timesteps:
            x = sched.step(torch.zeros_like(x), t, x).prev_sample
    torch.testing.assert_close(rec.trajectory()[1], sigma_levels(sched.alphas_cumprod)[[200, 100, 0]])
    assert rec.unit == "sigma"
    with X0Recorder(sched, band=(0.99, 1.0)) as rec:
        pass
    assert rec.trajectory() == (None, None)


def test_noise_level_units_and_schedule_levels() -> None:
    from diffusers import DDPMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler

    ddpm = DDPMScheduler()
    assert noise_level(ddpm, torch.tensor([250]), "t/T") == 0.25
    assert noise_level(ddpm, 250) == pytest.approx(float(sigma_levels(ddpm.alphas_cumprod)[250]))
    euler = EulerDiscreteScheduler(use_karras_sigmas=True)  # sigmas off the training grid: read the table
    euler.set_timesteps(7)
    assert noise_level(euler, euler.timesteps[3]) == pytest.approx(float(euler.sigmas[3]))
    flow = FlowMatchEulerDiscreteScheduler(shift=3.0)
    flow.set_timesteps(5)
    s = float(flow.sigmas[2])
    assert noise_level(flow, flow.timesteps[2]) == pytest.approx(s / (1 - s))
    assert noise_level(flow, flow.timesteps[2], "t/T") == pytest.approx(s, rel=1e-5)
    levels = schedule_levels(flow)
    assert levels[0] == 0 and levels[500] == pytest.approx(1.0)  # s = 1/2: as much noise as signal
    assert schedule_levels(ddpm, "t/T")[500] == 0.5


def test_pndm_and_heun_call_classification() -> None:
    from diffusers import HeunDiscreteScheduler, PNDMScheduler

    heun = HeunDiscreteScheduler()
    heun.set_timesteps(3)
    flags = []
    x = torch.zeros(1, 1, 2, 2)
    for t in heun.timesteps:
        flags.append(is_committed_call(heun))
        x = heun.step(torch.zeros_like(x), t, x).prev_sample
    assert flags == [True, False, True, False, True]
    pndm = PNDMScheduler(skip_prk_steps=True)
    pndm.set_timesteps(4)
    flags = []
    for t in pndm.timesteps:
        flags.append(is_committed_call(pndm))
        x = pndm.step(torch.zeros_like(x), t, x).prev_sample
    assert flags == [True, False, True, True, True]
    assert x0_source(heun) == "pred_original_sample" and x0_source(pndm) == "alphas_cumprod"


# --------------------------------------------------------------------------- flow matching
@pytest.fixture(scope="module")
def flow_pipes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("flow")
    return {"sd3": tiny_sd3_inpaint(root / "sd3"), "flux-fill": tiny_flux_fill(root / "flux")}


@pytest.mark.parametrize("kind", ["sd3", "flux-fill"])
def test_flow_matching_x0_is_sample_minus_sigma_v(flow_pipes: dict[str, Any], kind: str) -> None:
    pipe = copy.deepcopy(flow_pipes[kind])
    model = DiffusersInpainter(pipe, steps=STEPS, strength=1.0, device="cpu")
    assert x0_source(model.pipe.scheduler) == "flow_sigma" and model.x0_steps == STEPS
    tap = DenoiserTap(model.pipe.transformer)
    images, masks = sample_batch(2)
    out = model.inpaint(images, masks, [0, 1], x0_band=NoiseBand(0.0, math.inf))
    assert len(tap.calls) == STEPS and out.x0_space == "latent" and out.x0_noise_unit == "sigma"
    expected, levels = [], []
    for hidden, t, v in tap.calls:
        sigma = t / 1000 if kind == "sd3" else t  # SD3 passes t in [0, 1000], Flux t / 1000
        if kind == "flux-fill":  # packed tokens: the latents come first, then the masked-image conditioning
            x0 = hidden[..., : v.shape[-1]] - sigma * v
            x0 = model.pipe._unpack_latents(x0, 32, 32, model.pipe.vae_scale_factor)
        else:
            x0 = hidden - sigma * v
        expected.append(x0)
        levels.append(sigma / (1 - sigma) if sigma < 1 else math.inf)  # s / (1 - s): noise relative to the data
    torch.testing.assert_close(out.x0_trajectory, torch.stack(expected).float(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out.x0_noise_levels.numpy(), levels, rtol=1e-5)
    channels = model.pipe.vae.config.latent_channels
    assert out.x0_trajectory.shape == (STEPS, 2, channels, 16, 16)
    keep = (masks < 0.5).expand_as(images)
    assert torch.equal(out.images[keep], images[keep]) and not out.failed.any()


def test_flow_matching_pipelines_load_by_path(flow_pipes: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "flux-fill"
    flow_pipes["flux-fill"].save_pretrained(folder)
    model = DiffusersInpainter(str(folder), local_files_only=True, steps=3, device="cpu")
    ident = model.identity()
    assert ident["pipeline"] == "FluxFillPipeline" and ident["inpaint_mode"] == "48-channel"
    assert not ident["cfg_skipped"] and ident["guidance_scale"] == 30.0  # distilled guidance, no negative pass
    images, masks = sample_batch(1)
    out = model.inpaint(images, masks, [0], x0_band=NoiseBand(0.0, math.inf))
    assert out.x0_trajectory.shape == (3, 1, 4, 16, 16)


def test_flow_pipelines_prompt_handling(flow_pipes: dict[str, Any]) -> None:
    sd3 = DiffusersInpainter(copy.deepcopy(flow_pipes["sd3"]), steps=2, device="cpu")
    assert sd3.cfg_skipped and set(sd3._embeds) == {
        "prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"}
    flux = DiffusersInpainter(copy.deepcopy(flow_pipes["flux-fill"]), prompt="a cat", steps=2, device="cpu")
    assert set(flux._embeds) == {"prompt_embeds", "pooled_prompt_embeds"} and not flux.cfg_skipped
    images, masks = sample_batch(1)
    for kind, pipe in flow_pipes.items():  # no tokenizers / text encoders: zero embeddings of the right shape
        blank = {k: None for k in pipe.components if k.startswith(("tokenizer", "text_encoder"))}
        bare = DiffusersInpainter(type(pipe)(**{**copy.deepcopy(pipe.components), **blank}), steps=2, device="cpu")
        assert bare.zero_prompt_embeddings, kind
        assert bare.inpaint(images, masks, [0]).images.shape == images.shape


@pytest.mark.parametrize("kind", ["sd3", "flux-fill"])
def test_flow_matching_models_pass_the_conformance_kit(flow_pipes: dict[str, Any], kind: str) -> None:
    from ripbench.testing import check_inpainter

    model = DiffusersInpainter(copy.deepcopy(flow_pipes[kind]), steps=3, strength=1.0, device="cpu")
    assert check_inpainter(model, size=32, batch=2) == []


def _model_with_levels(levels: list[float] | None, sigmas: list[float] | None = None, unit: bool = True) -> Any:
    """A toy diffusion-like model that returns 4 recorded x0 with the given noise levels.

    ``levels`` are its t/T levels, ``sigmas`` its sigma levels (default: ``levels``, i.e. a model that
    ignores the unit); ``unit=False`` is a model written for the old t/T contract (no ``x0_noise_unit``).
    """
    from ripbench.models import Inpainter, InpaintResult

    class Model(Inpainter):
        name = "toy-x0"
        returns_x0_trajectory = True

        def inpaint(self, images, masks, seeds, *, x0_band=None):  # type: ignore[no-untyped-def]
            out = InpaintResult(images=torch.where(masks > 0.5, 0.5, images))
            if x0_band is not None:
                out.x0_trajectory = torch.zeros(4, images.shape[0], 1, 4, 4)
                in_sigma = getattr(x0_band, "unit", "sigma") == "sigma" and sigmas is not None
                out.x0_noise_levels = sigmas if in_sigma else levels
                if unit:
                    out.x0_noise_unit = x0_band.unit
            return out

    return Model()


SIGMAS = [3.0, 0.9, 0.3, 0.01]


@pytest.mark.parametrize(
    ("levels", "sigmas", "unit", "message"),
    [
        ([0.6, 0.3, 0.3, 0.0], SIGMAS, True, "repeat a level: one x0 per timestep"),  # the old Heun recording
        (None, None, True, "without x0_noise_levels"),
        ([0.3, 0.0], [0.9, 0.01], True, "2 values for 4 steps"),
        ([1.5, 0.3, 0.1, 0.0], SIGMAS, True, "outside the band"),
        ([0.6, 0.3, 0.1, 0.0], None, True, "ignores x0_band.unit"),
        ([0.6, 0.3, 0.1, 0.0], SIGMAS, False, "x0_noise_unit is None"),  # the old t/T contract
    ],
)
def test_conformance_kit_checks_noise_levels(levels: list[float] | None, sigmas: list[float] | None,
                                             unit: bool, message: str) -> None:
    from ripbench.errors import ModelContractError
    from ripbench.testing import check_inpainter

    with pytest.raises(ModelContractError, match=message):
        check_inpainter(_model_with_levels(levels, sigmas, unit))
    assert check_inpainter(_model_with_levels([0.6, 0.3, 0.1, 0.0], SIGMAS)) == []
