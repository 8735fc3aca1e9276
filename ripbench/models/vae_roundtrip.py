"""The VAE round trip alone, as a control model: encode and decode the whole image, no denoising.

:class:`VAERoundTrip` takes the VAE of any diffusers pipeline (Hub id or ``save_pretrained`` folder,
loaded as the diffusers backend loads pipelines: ``revision``, ``variant``, ``local_files_only``,
fp16 / bf16) or a VAE folder of its own (an ``AutoencoderKL``), and at every iteration encodes the
whole image and decodes it again. It ignores the mask and the seeds (the latent is the
posterior's mode), so a RIP run with it measures how far the VAE alone moves an image over the
iterations: the part of a latent-diffusion loop's drift that no denoiser causes (REED-VAE, arXiv
2504.18989; VAE-LFA, arXiv 2605.08250). The ``rip-paper-vae`` preset runs it under the rip-paper
protocol; ``ripbench report`` puts it next to the rip-paper run and its paste-back ablation
(the drift decomposition, see the README).

The latent goes through the pipeline's own scaling (``(z - shift) * scale`` and back), the batch
in one encoder and one decoder call on the device, and the output is ``(decode + 1) / 2``
clamped to ``[0, 1]`` as a pipeline's post-processing does. NaN outputs mark the item failed.

Example
-------
>>> model = VAERoundTrip("stabilityai/stable-diffusion-2-inpainting", dtype="fp16")  # doctest: +SKIP
>>> model.inpaint(images, masks, seeds).images.shape                                 # doctest: +SKIP
torch.Size([8, 3, 512, 512])
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError, InputError, ModelNotFoundError, WeightsError
from ..hub import use_cache_only
from .base import (
    DEVICE_OPTION,
    DeviceLabels,
    Inpainter,
    InpaintResult,
    ModelOption,
    captures_options,
    jsonable_config,
    resolve_device,
    resolve_dtype,
    signature_options,
)
from .diffusers_backend import CHECKPOINT_OPTIONS, is_local_checkpoint, not_found_message

__all__ = ["VAERoundTrip", "load_vae"]

_FAILURES = ("", "nan")


def load_vae(model: str | os.PathLike[str], *, dtype: torch.dtype = torch.float32, revision: str | None = None,
             variant: str | None = None, local_files_only: bool = False) -> Any:
    """The VAE of a diffusers pipeline (its ``vae`` component) or a VAE folder / Hub id of its own.

    Raises:
        ModelNotFoundError: the id or folder cannot be resolved, or holds no VAE.
        WeightsError: it exists but its weights cannot be loaded.
    """
    import diffusers
    from diffusers import AutoencoderKL, DiffusionPipeline

    spec = os.path.expanduser(os.fspath(model))
    local_files_only, offline = use_cache_only(local_files_only, is_local_checkpoint(spec))  # offline: the cache only
    common = {"revision": revision, "local_files_only": local_files_only}
    cls: Any = AutoencoderKL
    subfolder: str | None = None
    try:
        index = DiffusionPipeline.load_config(spec, **common)
    except (OSError, ValueError) as pipeline_exc:
        try:  # not a pipeline: a VAE of its own (config.json of an AutoencoderKL)
            config = AutoencoderKL.load_config(spec, **common)
        except (OSError, ValueError):
            raise ModelNotFoundError(not_found_message(spec, pipeline_exc, offline)) from pipeline_exc
        cls = getattr(diffusers, str(config.get("_class_name", "AutoencoderKL")), AutoencoderKL)
    else:
        entry = index.get("vae")
        if not isinstance(entry, (list, tuple)) or len(entry) != 2 or entry[1] is None:
            raise ModelNotFoundError(f"diffusers pipeline {spec!r} has no VAE component (model_index.json: no 'vae')")
        cls = getattr(diffusers, str(entry[1]), None)
        if cls is None:
            raise ModelNotFoundError(f"the VAE of {spec!r} is a {entry[1]}, which this diffusers does not have")
        subfolder = "vae"
    try:
        return cls.from_pretrained(spec, subfolder=subfolder, variant=variant, torch_dtype=dtype, **common)
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"cannot load the VAE weights of {spec!r}: {exc}") from exc


class VAERoundTrip(Inpainter):
    """Encode and decode the whole image with a diffusers VAE at every iteration (a control: no denoiser).

    Args:
        model: Hugging Face id or local folder of a diffusers pipeline (its VAE is used) or of a VAE
            itself; or an in-memory pipeline (its ``vae``) or VAE module.
        dtype: ``"auto"`` (fp16 on CUDA, fp32 on CPU), ``"fp16"``, ``"bf16"``, ``"fp32"``. A VAE that
            declares ``force_upcast`` (SDXL's) runs in fp32 under fp16, as its pipeline does.
        device: ``"auto"`` (CUDA if available) or a torch device.
        revision, variant, local_files_only: passed to ``from_pretrained``.
        vae_slicing, vae_tiling: the VAE's memory savers.
    """

    space = "latent"
    ignores = frozenset({"mask", "seeds"})

    @captures_options
    def __init__(self, model: Any, *, dtype: str | torch.dtype = "auto", device: str | torch.device = "auto",
                 revision: str | None = None, variant: str | None = None, local_files_only: bool = False,
                 vae_slicing: bool = False, vae_tiling: bool = False) -> None:
        self._device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self._device)
        if isinstance(model, (str, os.PathLike)):
            self.model_ref = os.fspath(model)
            vae = load_vae(model, dtype=self.dtype, revision=revision, variant=variant,
                           local_files_only=local_files_only)
        else:
            vae = getattr(model, "vae", model)
            if not isinstance(vae, torch.nn.Module) or not hasattr(vae, "encode") or not hasattr(vae, "decode"):
                raise ConfigError(f"vae-roundtrip needs a pipeline with a VAE or a VAE module, got {type(model).__name__}")
            self.model_ref = str(getattr(model, "config", {}).get("_name_or_path") or
                                 f"in-memory:{type(model).__name__}")
        self.name = "vae-roundtrip--" + (re.sub(r"[^A-Za-z0-9._-]+", "--", self.model_ref.strip("/")) or "vae")
        upcast = self.dtype == torch.float16 and bool(vae.config.get("force_upcast", False))
        self.compute_dtype = torch.float32 if upcast else self.dtype
        if vae.dtype != self.compute_dtype:
            vae = vae.to(dtype=self.compute_dtype)
        self.vae = vae.to(device=self._device).eval()
        if vae_slicing:
            self.vae.enable_slicing()
        if vae_tiling:
            self.vae.enable_tiling()
        blocks = len(vae.config.get("block_out_channels") or [0, 0, 0, 0])
        self._size_multiple = 2 ** max(blocks - 1, 0)

    option_specs = signature_options(__init__, (
        ModelOption("model", None, "Hugging Face id or local folder of a diffusers pipeline (its VAE) or of a VAE",
                    type=str),
        ModelOption("dtype", ..., "auto (fp16 on CUDA, fp32 on CPU), fp16, bf16 or fp32", type=str),
        DEVICE_OPTION,
        *CHECKPOINT_OPTIONS,
        ModelOption("vae_slicing", ..., "encode and decode the batch one image at a time"),
        ModelOption("vae_tiling", ..., "encode and decode in tiles (large images)"),
    ))

    @property
    def device(self) -> torch.device:
        return self._device

    def inpaint(self, images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int], *,
                x0_band: tuple[float, float] | None = None) -> InpaintResult:
        """Encode and decode every image of the batch (the masks and seeds are not used)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"images must be B x 3 x H x W, got {tuple(images.shape)}")
        h, w = images.shape[2:]
        m = self._size_multiple
        if h % m or w % m:
            raise InputError(f"image size {h}x{w} is not a multiple of {m} (needed by {self.name})")
        cfg = self.vae.config
        scale = float(cfg.get("scaling_factor", 1.0) or 1.0)
        shift = float(cfg.get("shift_factor", 0.0) or 0.0)
        with torch.no_grad():
            x = images.to(device=self._device, dtype=self.compute_dtype) * 2.0 - 1.0
            z = (self.vae.encode(x).latent_dist.mode() - shift) * scale  # the latent a pipeline works with
            raw = self.vae.decode(z / scale + shift).sample.to(torch.float32)
        is_nan = torch.isnan(raw.flatten(1)).any(dim=1)
        out = torch.nan_to_num((raw + 1.0) / 2.0, nan=0.0).clamp_(0.0, 1.0)
        return InpaintResult(images=out, failed=is_nan,
                             extras={"failure": DeviceLabels(is_nan.to(torch.int64), _FAILURES)})

    def identity(self) -> dict[str, Any]:
        """The VAE, its configuration and the numerics."""
        import diffusers

        return {
            **super().identity(),
            "model": self.model_ref,
            "revision": self.config["revision"],
            "variant": self.config["variant"],
            "vae": type(self.vae).__name__,
            "vae_config": jsonable_config(self.vae.config),
            "latent": "posterior mode",
            "dtype": str(self.dtype).removeprefix("torch."),
            "compute_dtype": str(self.compute_dtype).removeprefix("torch."),
            "device": self._device.type,
            "vae_slicing": self.config["vae_slicing"],
            "vae_tiling": self.config["vae_tiling"],
            "diffusers_version": diffusers.__version__,
            "torch_version": torch.__version__,
        }
