"""Pixel-space diffusion inpainting with any unconditional diffusers ``UNet2DModel``.

Two ways to make an unconditional DDPM inpaint:

* ``method="replace"`` (fast, one model call per step): before every reverse step the
  known region of the current sample is replaced by the original image noised to that
  step's level (Song et al. 2021 "replacement"; the DDPM scheduler does the step);
* ``method="repaint"``: diffusers' :class:`~diffusers.RePaintScheduler` (Lugmayr et al.
  2022) with its resampling jumps (``jump_length``, ``jump_n_sample``), which harmonises
  the filled region better at several times the cost. RePaint's mask convention is
  1 = keep; it is converted here, the public convention stays 1 = regenerate.

Either way the known pixels of the output are the input pixels, bit for bit, and the
predicted clean image x0 of the timesteps in a noise band can be returned, unclipped, with
their noise levels in the band's unit (``sigma/sqrt(alpha_bar)`` by default, ``t/T`` on request;
:meth:`PixelDDPMInpainter.noise_levels`), for the hallucination score (one x0 per timestep: for RePaint,
whose resampling jumps visit a timestep several times, the last visit, the one the output
descends from). The scheduler's ``clip_sample`` is switched off for that reason.

``model="shapes"`` (the default) loads the small Simple Shapes DDPM bundled with ripbench
(``ripbench/weights/shapes-ddpm``, see :mod:`ripbench.training.shapes`); a folder written
by ``save_pretrained`` (pipeline layout with ``unet/`` and ``scheduler/``, or a bare UNet
folder) or a Hub id (needs internet the first time) works too.

Example
-------
>>> import torch
>>> from ripbench.models.pixel_ddpm import PixelDDPMInpainter
>>> from ripbench.datasets.shapes import shapes_images
>>> model = PixelDDPMInpainter("shapes", steps=20)  # doctest: +SKIP
>>> images, _ = shapes_images(2, seed=0)
>>> masks = torch.zeros(2, 1, 64, 64); masks[..., :, 21:42] = 1  # repaint the middle column
>>> out = model.inpaint(images, masks, [0, 1], x0_band=NoiseBand(0.0, 0.3))  # doctest: +SKIP
>>> tuple(out.x0_trajectory.shape), [round(v, 3) for v in out.x0_noise_levels.tolist()]  # doctest: +SKIP
((2, 2, 1, 64, 64), [0.176, 0.01])
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, InputError, WeightsError
from ..io import sha256_file
from ..noise_band import as_band, in_band, sigma_levels
from ..references import model_factory
from .base import (
    DEVICE_OPTION,
    Inpainter,
    InpaintResult,
    ModelOption,
    jsonable_config,
    resolve_device,
    resolve_dtype,
)

#: Folder of the bundled Simple Shapes DDPM.
BUNDLED_SHAPES_DIR = Path(__file__).resolve().parent.parent / "weights" / "shapes-ddpm"

_METHODS = ("replace", "repaint")
_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def _sha256_state_dict(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


#: Key of the scheduler config under which a substituted default says why (``identity()["scheduler_config"]``).
SUBSTITUTED_KEY = "_ripbench_substituted"


def _default_scheduler_config(reason: str) -> dict[str, Any]:
    """diffusers' default ``DDPMScheduler`` config, with a one-line warning saying why it replaces the model's."""
    from diffusers import DDPMScheduler

    warnings.warn(f"pixel-ddpm: {reason}; using diffusers' default DDPMScheduler config (1000 linear steps), "
                  "which may not be the schedule the model was trained with (give scheduler_config to set it)",
                  stacklevel=3)
    return {**dict(DDPMScheduler().config), SUBSTITUTED_KEY: reason}


def _load_local(folder: Path) -> tuple[Any, dict[str, Any], Path]:
    """UNet, scheduler config and weights file of a local ``save_pretrained`` folder."""
    from diffusers import DDPMScheduler, UNet2DModel

    unet_dir = folder / "unet" if (folder / "unet" / "config.json").is_file() else folder
    if not (unet_dir / "config.json").is_file():
        raise WeightsError(f"{folder} holds no diffusers UNet (no config.json there or in unet/)")
    weights = next((unet_dir / name for name in _WEIGHT_FILES if (unet_dir / name).is_file()), None)
    if weights is None:
        raise WeightsError(f"{unet_dir} holds no UNet weights file ({' or '.join(_WEIGHT_FILES)})")
    try:
        unet = UNet2DModel.from_pretrained(unet_dir, local_files_only=True)
    except Exception as exc:  # corrupt or foreign files
        raise WeightsError(f"cannot load a UNet2DModel from {unet_dir}: {exc}") from exc
    for sched_dir in (folder / "scheduler", folder):
        if (sched_dir / "scheduler_config.json").is_file():
            return unet, dict(DDPMScheduler.load_config(sched_dir)), weights
    return unet, _default_scheduler_config(f"{folder} holds no scheduler_config.json (in scheduler/ or itself)"), weights


def _load_hub(repo_id: str) -> tuple[Any, dict[str, Any]]:
    from diffusers import DDPMScheduler, UNet2DModel

    errors = []
    for subfolder in ("unet", None):
        try:
            unet = UNet2DModel.from_pretrained(repo_id, subfolder=subfolder)
            break
        except Exception as exc:  # two attempts at most
            errors.append(str(exc).splitlines()[0])
    else:
        raise WeightsError(f"cannot load diffusion model {repo_id!r} (not a local folder; from the Hub: {errors[-1]})")
    try:
        config = dict(DDPMScheduler.load_config(repo_id, subfolder="scheduler"))
    except Exception as exc:  # no scheduler/ in the repo, offline, ...: said, and recorded in the manifest
        reason = (str(exc).strip().splitlines() or [""])[0]
        config = _default_scheduler_config(f"no scheduler config loaded for {repo_id!r} ({type(exc).__name__}: {reason})")
    return unet, config


class PixelDDPMInpainter(Inpainter):
    """Inpainting with an unconditional pixel-space DDPM (replacement or RePaint).

    Args:
        model: ``"shapes"`` (bundled Simple Shapes DDPM), a local ``save_pretrained``
            folder, a Hub id, or a ``UNet2DModel`` instance.
        method: ``"replace"`` (one UNet call per step) or ``"repaint"`` (resampling).
        steps: reverse steps (of the ``T`` training steps, evenly strided); formerly ``num_inference_steps``.
        jump_length: RePaint: steps per jump back in time.
        jump_n_sample: RePaint: how many times each jump is resampled.
        device: torch device (default: CUDA if available, else CPU).
        dtype: ``"float32"``/``"fp32"``, ``"float16"``/``"fp16"``, ``"bfloat16"``/``"bf16"``, ``"auto"`` or a ``torch.dtype``.
        scheduler_config: overrides the scheduler configuration that came with the model
            (needed when ``model`` is a ``UNet2DModel`` instance trained with a non-default schedule).

    Images of any channel count are accepted as RGB ``[0, 1]``: a greyscale model sees the
    channel mean and its output is replicated to three channels. The image size must equal
    the UNet's ``sample_size``. Each item draws its noise from its own generator seeded with
    its seed, so an item's output does not depend on the batch.
    """

    returns_x0_trajectory = True
    space = "pixel"  # a pixel-space UNet: no VAE
    option_specs = (
        ModelOption("model", "shapes", "'shapes' (bundled), a save_pretrained folder or a Hub id of a UNet2DModel",
                    type=(str, Path)),
        ModelOption("method", "replace", "replace (one UNet call per step) or repaint (resampling)",
                    choices=("replace", "repaint")),
        ModelOption("steps", 50, "reverse denoising steps per inpainting", aliases=("num_inference_steps",)),
        ModelOption("jump_length", 10, "RePaint: steps per jump back in time"),
        ModelOption("jump_n_sample", 10, "RePaint: resamplings of each jump"),
        DEVICE_OPTION,
        ModelOption("dtype", "float32", "fp32, fp16, bf16 or auto"),
        ModelOption("scheduler_config", None, "overrides of the model's scheduler config", type=dict),
    )

    def __init__(
        self,
        model: str | Path | Any = "shapes",
        method: str = "replace",
        steps: int = 50,
        jump_length: int = 10,
        jump_n_sample: int = 10,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "float32",
        scheduler_config: dict[str, Any] | None = None,
    ) -> None:
        from diffusers import DDPMScheduler, RePaintScheduler, UNet2DModel

        if method not in _METHODS:
            raise ConfigError(f"unknown pixel-ddpm method {method!r}; choose one of {', '.join(_METHODS)}")
        if steps < 1 or jump_length < 1 or jump_n_sample < 1:
            raise ConfigError(
                f"steps, jump_length and jump_n_sample must be >= 1, got {steps}, {jump_length}, {jump_n_sample}"
            )
        self._device = resolve_device(device)
        num_inference_steps = steps
        self.dtype = resolve_dtype(dtype, self._device)
        self.method = method
        self.num_inference_steps = num_inference_steps
        self.jump_length = jump_length
        self.jump_n_sample = jump_n_sample

        if isinstance(model, UNet2DModel):  # documented: the default schedule unless scheduler_config says otherwise
            unet, self.weights_path = model, "<in-memory UNet2DModel>"
            config = {**dict(DDPMScheduler().config), SUBSTITUTED_KEY: "an in-memory UNet2DModel comes without one"}
            self.weights_sha256 = _sha256_state_dict(model)
            self.name = "pixel-ddpm"
        elif str(model) == "shapes":
            if not BUNDLED_SHAPES_DIR.is_dir():
                raise WeightsError(
                    f"the bundled shapes-ddpm weights are missing from {BUNDLED_SHAPES_DIR}; "
                    "reinstall ripbench or run 'ripbench train shapes'"
                )
            unet, config, weights = _load_local(BUNDLED_SHAPES_DIR)
            self.weights_path, self.weights_sha256 = str(weights), sha256_file(weights)
            self.name = "shapes-ddpm"
        elif Path(model).exists():
            unet, config, weights = _load_local(Path(model))
            self.weights_path, self.weights_sha256 = str(weights), sha256_file(weights)
            self.name = "pixel-ddpm"
        else:
            unet, config = _load_hub(str(model))
            self.weights_path, self.weights_sha256 = str(model), _sha256_state_dict(unet)
            self.name = "pixel-ddpm"
        self.model_spec = model if isinstance(model, (str, Path)) else "<UNet2DModel>"
        # diffusers re-applies its defaults to the keys listed here, overriding what is set below
        config.pop("_use_default_values", None)
        substituted = config.pop(SUBSTITUTED_KEY, None)
        #: where the scheduler config came from (recorded by :meth:`identity`): the model's files, or
        #: diffusers' default and why, plus the names of the keys ``scheduler_config`` overrode.
        self.scheduler_config_source = "model" if substituted is None else f"diffusers default ({substituted})"
        if scheduler_config:
            config.update(scheduler_config)
            self.scheduler_config_source += f", overridden: {', '.join(sorted(scheduler_config))}"
        config["clip_sample"] = False  # keep x0 unclipped: its variance is the hallucination score
        unet = unet.to(self._device)
        if unet.dtype != self.dtype:  # a bare .to(dtype) makes diffusers warn even when nothing changes
            unet = unet.to(dtype=self.dtype)
        self.unet = unet.eval().requires_grad_(False)
        if method == "replace":
            self.scheduler = DDPMScheduler.from_config(config)
        else:
            if config.get("prediction_type", "epsilon") != "epsilon":
                raise ConfigError("method='repaint' needs an epsilon-prediction model")
            self.scheduler = RePaintScheduler.from_config(config)
        size = self.unet.config.sample_size
        self.sample_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)
        self.channels: int = int(self.unet.config.in_channels)
        self._set_timesteps()
        self.x0_steps = self._num_model_calls

    @property
    def device(self) -> torch.device:
        """Device of the UNet (inputs are moved there)."""
        return self._device

    def _set_timesteps(self) -> None:
        if self.method == "replace":
            self.scheduler.set_timesteps(self.num_inference_steps, device=self._device)
            self._num_model_calls = len(self.scheduler.timesteps)
        else:
            self.scheduler.set_timesteps(
                self.num_inference_steps, self.jump_length, self.jump_n_sample, device=self._device
            )
            steps = self.scheduler.timesteps.tolist()
            self._num_model_calls = sum(1 for prev, t in zip([steps[0] + 1] + steps, steps) if t < prev)

    def identity(self) -> dict[str, Any]:
        """Model name and class, weights path and sha256, method and step settings, and the scheduler config
        actually used with where it came from (``scheduler_config_source``: a substituted default shows)."""
        out = super().identity()
        out.update(
            model=str(self.model_spec),
            weights_path=self.weights_path,
            weights_sha256=self.weights_sha256,
            method=self.method,
            steps=self.num_inference_steps,
            num_model_calls=self._num_model_calls,
            scheduler=type(self.scheduler).__name__,
            scheduler_config=jsonable_config(self.scheduler.config),
            scheduler_config_source=self.scheduler_config_source,
            sample_size=list(self.sample_size),
            channels=self.channels,
            dtype=str(self.dtype).removeprefix("torch."),
        )
        if self.method == "repaint":
            out.update(jump_length=self.jump_length, jump_n_sample=self.jump_n_sample)
        return out

    # ------------------------------------------------------------------ inference

    def _to_model_space(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels == 1:
            images = images.mean(dim=1, keepdim=True)
        elif images.shape[1] != self.channels:
            raise InputError(f"the UNet takes {self.channels} channels; cannot feed {images.shape[1]}-channel images")
        return images.to(self._device, self.dtype) * 2 - 1

    def _check(self, images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int]) -> None:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise InputError(f"images must be B x 3 x H x W, got shape {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != self.sample_size:
            raise InputError(
                f"image size {tuple(images.shape[-2:])} does not match the UNet's sample_size {self.sample_size}"
            )
        if masks.shape != (images.shape[0], 1, *images.shape[-2:]):
            raise InputError(f"masks must be B x 1 x H x W matching images, got shape {tuple(masks.shape)}")
        if len(seeds) != images.shape[0]:
            raise InputError(f"got {len(seeds)} seeds for {images.shape[0]} images")

    @torch.inference_mode()
    def inpaint(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        seeds: Sequence[int],
        *,
        x0_band: tuple[float, float] | None = None,
    ) -> InpaintResult:
        """Fill ``masks == 1`` of ``images``; see :class:`PixelDDPMInpainter`.

        With ``x0_band``, ``x0_trajectory`` is ``K x B x C x H x W`` in the model's ``[-1, 1]``
        space, unclipped, ``C`` the UNet's channel count: one x0 per timestep whose noise level
        (in the band's unit, :meth:`noise_levels`; a plain pair is read in sigma) lies in the band,
        noisiest first (for RePaint the last visit of each timestep), with the levels in
        ``x0_noise_levels`` and their unit in ``x0_noise_unit``.
        """
        from diffusers.utils.torch_utils import randn_tensor

        self._check(images, masks, seeds)
        images = images.to(self._device)
        regen = masks.to(self._device) > 0.5
        original = self._to_model_space(images)
        m = regen.to(self.dtype)
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        shape = original.shape

        def noise() -> torch.Tensor:
            return randn_tensor(shape, generator=generators, device=self._device, dtype=self.dtype)

        self._set_timesteps()  # RePaint's scheduler state is per call
        x = noise() * self.scheduler.init_noise_sigma
        band = None if x0_band is None else as_band(x0_band)
        levels = self.noise_levels(band.unit) if band is not None else None
        recorded: dict[int, torch.Tensor] = {}  # timestep -> x0 of its last visit

        def record(t: torch.Tensor, x0: torch.Tensor) -> None:
            if band is not None and levels is not None and in_band(float(levels[int(t)]), band):
                recorded[int(t)] = x0.float().clone()

        if self.method == "replace":
            for t in self.scheduler.timesteps:
                t_batch = t.expand(shape[0]).to(self._device)
                known = self.scheduler.add_noise(original, noise(), t_batch)
                x = m * x + (1 - m) * known
                eps = self.unet(x, t_batch).sample
                step = self.scheduler.step(eps, t, x, generator=generators)
                x = step.prev_sample
                record(t, step.pred_original_sample)
        else:
            keep = 1 - m  # RePaint: 1 = keep
            t_last = self.scheduler.timesteps[0] + 1
            for t in self.scheduler.timesteps:
                if t < t_last:
                    eps = self.unet(x, t.expand(shape[0])).sample
                    step = self.scheduler.step(eps, t, x, original, keep, generator=generators)
                    x = step.prev_sample
                    record(t, step.pred_original_sample)
                else:
                    x = self.scheduler.undo_step(x, t_last, generator=generators)
                t_last = t

        filled = ((x.float() + 1) / 2).clamp(0, 1)
        if filled.shape[1] == 1:
            filled = filled.expand(-1, images.shape[1], -1, -1)
        out = torch.where(regen, filled.to(images.dtype), images)
        result = InpaintResult(images=out, x0_space="pixel")
        if band is not None and levels is not None:
            order = sorted(recorded, reverse=True)  # noisiest first
            result.x0_trajectory = (
                torch.stack([recorded[t] for t in order]) if order else torch.zeros((0, shape[0]), device=self._device)
            )
            result.x0_noise_levels = levels[order] if order else torch.zeros(0, dtype=torch.float64)
            result.x0_noise_unit = band.unit
        return result

    def noise_levels(self, unit: str = "sigma") -> torch.Tensor:
        """Noise level of each training timestep ``t = 0..T-1`` in ``unit`` (float64, CPU).

        ``"sigma"``: ``sqrt((1 - abar_t) / abar_t)`` of the scheduler's ``alphas_cumprod``;
        ``"t/T"``: ``t / T``.

        Example:
            >>> [round(v, 4) for v in PixelDDPMInpainter("shapes").noise_levels()[[0, 9]].tolist()]  # doctest: +SKIP
            [0.01, 0.0436]
        """
        if unit == "t/T":
            total = int(self.scheduler.config.num_train_timesteps)
            return torch.arange(total, dtype=torch.float64) / total
        if unit != "sigma":
            raise ConfigError(f"unknown noise-level unit {unit!r}")
        return sigma_levels(self.scheduler.alphas_cumprod)

    def sample(self, seeds: Sequence[int]) -> torch.Tensor:
        """Unconditional samples, one per seed: ``B x 3 x H x W`` in ``[0, 1]`` (an all-ones mask).

        Example:
            >>> PixelDDPMInpainter("shapes").sample([0, 1]).shape  # doctest: +SKIP
            torch.Size([2, 3, 32, 32])
        """
        b = len(seeds)
        images = torch.zeros(b, 3, *self.sample_size, device=self._device)
        masks = torch.ones(b, 1, *self.sample_size, device=self._device)
        return self.inpaint(images, masks, seeds).images


@model_factory
def shapes_ddpm(**options: Any) -> PixelDDPMInpainter:
    """Simple Shapes DDPM bundled with ripbench (64 x 64 greyscale), replacement inpainting."""
    return PixelDDPMInpainter(model="shapes", **options)


shapes_ddpm.space = "pixel"  # type: ignore[attr-defined]
shapes_ddpm.option_specs = tuple(o for o in PixelDDPMInpainter.option_specs if o.name != "model")  # type: ignore[attr-defined]
