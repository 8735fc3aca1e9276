"""Any diffusers inpainting pipeline as a ripbench model.

:class:`DiffusersInpainter` wraps whatever ``AutoPipelineForInpainting`` can load -- a
Hugging Face id, a local directory written by ``save_pretrained``, or an already built
pipeline object. Plain text-to-image checkpoints (4-channel UNet) run through the
inpainting pipeline's latent-blending mode.

What it does for recursive inpainting (see ``RESEARCH.md`` section 3):

* ``height``/``width`` are always passed explicitly, so the resolution never changes
  between iterations;
* the unmasked region is pasted back in pixel space (on the device) by default, so
  drift is confined to the masks (``paste_back=False`` keeps the VAE round trip);
* the safety checker is off by default (it blacks out flagged images); NaN or
  all-black outputs mark the item as failed;
* one pipeline call inpaints a whole batch, with one ``torch.Generator`` per item,
  tensors in and out (no PIL), prompt embeddings computed once; when the prompt and
  negative prompt embeddings are identical (the paper's empty prompt), classifier-free
  guidance cannot change the result and only the conditional pass is run;
* the x0 predictions of the last ``K`` steps are recorded for the hallucination
  detector (see :mod:`ripbench.models._x0_capture`).

Example
-------
>>> model = DiffusersInpainter("stabilityai/stable-diffusion-2-inpainting", steps=50)  # doctest: +SKIP
>>> out = model.inpaint(images, masks, seeds=[0, 1], trajectory_steps=10)             # doctest: +SKIP
>>> out.images.shape, out.x0_trajectory.shape                                          # doctest: +SKIP
(torch.Size([2, 3, 512, 512]), torch.Size([10, 2, 4, 64, 64]))
"""

from __future__ import annotations

import copy
import inspect
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, InputError, ModelNotFoundError, WeightsError
from ._x0_capture import X0Recorder, x0_source
from .base import DEVICE_OPTION, Inpainter, InpaintResult, ModelOption, resolve_device, resolve_dtype
from .registry import PATH_PREFIXES as _PATH_PREFIXES

#: Scheduler short names -> (diffusers class name, extra config). Any diffusers
#: scheduler class name (e.g. ``"DEISMultistepScheduler"``) is accepted as well.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "kdpm2": ("KDPM2DiscreteScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}

_ATTENTION = ("sdpa", "eager", "xformers", "default")
#: Fallback text length when a pipeline has neither tokenizer nor text encoder.
_DEFAULT_TEXT_LENGTH = 77


def make_scheduler(name: str, config: Any) -> Any:
    """Build the scheduler ``name`` (see :data:`SCHEDULERS`) from a pipeline's scheduler config.

    >>> from diffusers import PNDMScheduler
    >>> type(make_scheduler("euler-a", PNDMScheduler().config)).__name__
    'EulerAncestralDiscreteScheduler'
    """
    import diffusers

    class_name, extra = SCHEDULERS.get(name.lower(), (name, {}))
    cls = getattr(diffusers, class_name, None)
    if cls is None or not hasattr(cls, "from_config") or not class_name.endswith("Scheduler"):
        raise ConfigError(
            f"unknown scheduler {name!r}; use one of {sorted(SCHEDULERS)} or a diffusers class name"
        )
    return cls.from_config(config, **extra)


def _not_found_message(spec: str, exc: BaseException) -> str:
    if spec.startswith(_PATH_PREFIXES) or os.path.isabs(spec) or os.path.exists(os.path.expanduser(spec)):
        path = Path(spec).expanduser()
        if not path.exists():
            return f"diffusers model directory {spec!r} does not exist"
        return f"{spec!r} is not a diffusers pipeline directory (no loadable model_index.json): {exc}"
    return (
        f"cannot load diffusers model {spec!r}: no internet / not in the Hugging Face cache (or no such "
        f"repository). Download it once with `hf download {spec}` (or `huggingface-cli download {spec}`) "
        f"on a machine with internet, or pass a local directory written by save_pretrained"
    )


def load_inpainting_pipeline(
    model: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.float32,
    revision: str | None = None,
    variant: str | None = None,
    local_files_only: bool = False,
    safety_checker: bool = False,
) -> Any:
    """Load ``model`` (Hub id or local directory) with ``AutoPipelineForInpainting``.

    Text-to-image checkpoints come back as their family's inpainting pipeline. Without
    ``safety_checker`` the checker is not even loaded.

    Raises:
        ModelNotFoundError: the id/path cannot be resolved (offline and not cached, no
            such directory, not a pipeline).
        WeightsError: the pipeline exists but its weights cannot be loaded (e.g. a
            missing ``variant``).
    """
    from diffusers import AutoPipelineForInpainting, DiffusionPipeline

    spec = os.fspath(model)
    if spec.startswith("~"):
        spec = os.path.expanduser(spec)
    try:
        index = DiffusionPipeline.load_config(spec, revision=revision, local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(_not_found_message(spec, exc)) from exc
    from diffusers.utils import deprecation_utils

    dtype_key = "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"  # renamed in 0.4x
    kwargs: dict[str, Any] = {
        dtype_key: dtype,
        "revision": revision,
        "variant": variant,
        "local_files_only": local_files_only,
    }
    if not safety_checker and "safety_checker" in index:
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        return AutoPipelineForInpainting.from_pretrained(spec, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"cannot load the weights of diffusers model {spec!r}: {exc}") from exc


def _jsonable(config: Any) -> dict[str, Any]:
    """The JSON-friendly entries of a diffusers config (for the manifest)."""
    out: dict[str, Any] = {}
    for key, value in dict(config).items():
        if key.startswith("_") and key != "_class_name":
            continue
        if isinstance(value, (str, int, float, bool, type(None))):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
            out[key] = list(value)
    return out


class DiffusersInpainter(Inpainter):
    """A diffusers inpainting pipeline as a batched, device-resident ripbench model.

    Args:
        model: Hugging Face id, local ``save_pretrained`` directory, or a pipeline object
            (an inpainting pipeline, or a text-to-image one, converted with
            ``AutoPipelineForInpainting.from_pipe``).
        prompt: text prompt (the RIP paper uses none).
        negative_prompt: negative prompt; ``None`` = the pipeline's own default (SDXL:
            zero embeddings).
        guidance: classifier-free guidance weight (diffusers' ``guidance_scale``); ``None`` = the
            pipeline's default.
        steps: ``num_inference_steps``.
        strength: ``None`` = the pipeline's default (1.0; SDXL 0.9999). Only the last
            ``int(steps * strength)`` steps run.
        scheduler: a name from :data:`SCHEDULERS` or a diffusers scheduler class name,
            built ``from_config`` of the pipeline's scheduler; ``None`` keeps it.
        eta: DDIM eta (ignored by schedulers that do not take it).
        dtype: ``"auto"`` (fp16 on CUDA, fp32 on CPU), ``"fp16"``, ``"bf16"``, ``"fp32"``.
        device: ``"auto"`` (CUDA if available) or a torch device.
        revision, variant, local_files_only: passed to ``from_pretrained``.
        paste_back: copy the input's unmasked pixels into the output (default True).
        safety_checker: load and run the safety checker (default False); flagged items
            are reported in ``extras["nsfw_flagged"]`` and marked failed.
        skip_redundant_cfg: run only the conditional pass when the prompt and negative
            prompt embeddings are identical (exactly equivalent; default True).
        decode_trajectory: decode the recorded x0 predictions with the VAE
            (``x0_space="pixel"``, values in about ``[0, 1]``, unclamped).
        attention: ``"sdpa"`` (default), ``"eager"``, ``"xformers"`` or ``"default"``
            (leave the pipeline's processors as they are).
        compile_unet: ``torch.compile`` the UNet (first call slow).
        vae_slicing, vae_tiling: VAE memory savers.
        cpu_offload: ``enable_model_cpu_offload`` (modules move to the GPU one at a time).
        channels_last: UNet in channels-last memory format.
        progress_bar: show diffusers' per-call progress bar.

    Example:
        >>> model = DiffusersInpainter("stable-diffusion-v1-5/stable-diffusion-inpainting",
        ...                            scheduler="ddim", steps=25)      # doctest: +SKIP
    """

    returns_x0_trajectory = True  # per instance: False for schedulers that expose no x0
    option_specs = (
        ModelOption("model", None, "Hugging Face id or local save_pretrained folder of the pipeline", type=str),
        ModelOption("prompt", "", "text prompt (the RIP paper uses none)"),
        ModelOption("negative_prompt", "", "negative prompt; null = the pipeline's default", type=str),
        ModelOption("guidance", None, "classifier-free guidance weight; null = the pipeline's default",
                    type=float, aliases=("guidance_scale",)),
        ModelOption("steps", 50, "denoising steps per inpainting", aliases=("num_inference_steps",)),
        ModelOption("strength", None, "share of the steps run (< 1 starts from a noised input); null = pipeline's",
                    type=float),
        ModelOption("scheduler", None, f"scheduler: {', '.join(SCHEDULERS)} or a diffusers class name", type=str),
        ModelOption("eta", 0.0, "DDIM eta"),
        ModelOption("dtype", "auto", "auto (fp16 on CUDA, fp32 on CPU), fp16, bf16 or fp32"),
        DEVICE_OPTION,
        ModelOption("revision", None, "from_pretrained revision", type=str),
        ModelOption("variant", None, "from_pretrained variant (e.g. fp16)", type=str),
        ModelOption("local_files_only", False, "never contact the Hub"),
        ModelOption("paste_back", True, "copy unmasked input pixels back after decoding (false = whole output)"),
        ModelOption("safety_checker", False, "run the safety checker; flagged items end their trajectory"),
        ModelOption("skip_redundant_cfg", True, "skip the unconditional pass when it cannot change the output"),
        ModelOption("decode_trajectory", False, "decode the recorded x0 predictions to pixels"),
        ModelOption("attention", "sdpa", "attention processors", choices=("sdpa", "eager", "xformers", "default")),
        ModelOption("compile_unet", False, "torch.compile the UNet"),
        ModelOption("vae_slicing", False, "decode the batch one image at a time"),
        ModelOption("vae_tiling", False, "decode in tiles (large images)"),
        ModelOption("cpu_offload", False, "enable_model_cpu_offload"),
        ModelOption("channels_last", False, "UNet in channels-last memory format"),
        ModelOption("progress_bar", False, "show diffusers' per-call progress bar"),
    )

    def __init__(
        self,
        model: Any,
        *,
        prompt: str = "",
        negative_prompt: str | None = "",
        guidance: float | None = None,
        steps: int = 50,
        strength: float | None = None,
        scheduler: str | None = None,
        eta: float = 0.0,
        dtype: str | torch.dtype = "auto",
        device: str | torch.device = "auto",
        revision: str | None = None,
        variant: str | None = None,
        local_files_only: bool = False,
        paste_back: bool = True,
        safety_checker: bool = False,
        skip_redundant_cfg: bool = True,
        decode_trajectory: bool = False,
        attention: str = "sdpa",
        compile_unet: bool = False,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        cpu_offload: bool = False,
        channels_last: bool = False,
        progress_bar: bool = False,
    ) -> None:
        if steps < 1:
            raise ConfigError(f"steps must be >= 1, got {steps}")
        if strength is not None and not 0.0 < strength <= 1.0:
            raise ConfigError(f"strength must be in (0, 1], got {strength}")
        if attention not in _ATTENTION:
            raise ConfigError(f"unknown attention {attention!r}; use one of {list(_ATTENTION)}")
        self._device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self._device)
        self.revision, self.variant = revision, variant
        if isinstance(model, (str, os.PathLike)):
            self.model_ref = os.fspath(model)
            pipe = load_inpainting_pipeline(
                model,
                dtype=self.dtype,
                revision=revision,
                variant=variant,
                local_files_only=local_files_only,
                safety_checker=safety_checker,
            )
        else:
            pipe = self._as_inpainting_pipeline(model)
            self.model_ref = str(pipe.config.get("_name_or_path") or f"in-memory:{type(pipe).__name__}")
        self.name = re.sub(r"[^A-Za-z0-9._-]+", "--", self.model_ref.strip("/")) or "diffusers"
        if not safety_checker and getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None
        self.safety_checker = getattr(pipe, "safety_checker", None) is not None
        if scheduler is not None:
            pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
        self.pipe = pipe
        self.prompt, self.negative_prompt = prompt, negative_prompt
        self.steps, self.eta = int(steps), float(eta)
        self._call_params = set(inspect.signature(pipe.__call__).parameters)
        defaults = {k: p.default for k, p in inspect.signature(pipe.__call__).parameters.items()}
        self.strength = float(strength if strength is not None else defaults.get("strength", 1.0))
        self.guidance_scale = float(
            guidance if guidance is not None else defaults.get("guidance_scale", 7.5)
        )
        self.paste_back, self.decode_trajectory = paste_back, decode_trajectory
        self.options = {
            "attention": attention,
            "compile_unet": compile_unet,
            "vae_slicing": vae_slicing,
            "vae_tiling": vae_tiling,
            "cpu_offload": cpu_offload,
            "channels_last": channels_last,
        }
        self._place_and_speed_up(progress_bar)
        self._embeds, self.cfg_skipped, self.zero_prompt_embeddings = self._encode_prompts(skip_redundant_cfg)
        self.effective_guidance_scale = 1.0 if self.cfg_skipped else self.guidance_scale
        self.returns_x0_trajectory = x0_source(pipe.scheduler) is not None
        self.x0_steps = self._count_steps()
        self._size_multiple = max(8, int(getattr(pipe, "vae_scale_factor", 8)))

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _as_inpainting_pipeline(pipe: Any) -> Any:
        from diffusers import AutoPipelineForInpainting

        if "mask_image" in inspect.signature(pipe.__call__).parameters:
            return pipe
        try:
            return AutoPipelineForInpainting.from_pipe(pipe)
        except (ValueError, KeyError) as exc:
            raise ModelNotFoundError(
                f"{type(pipe).__name__} has no inpainting counterpart in diffusers: {exc}"
            ) from exc

    def _place_and_speed_up(self, progress_bar: bool) -> None:
        pipe, opts = self.pipe, self.options
        pipe.set_progress_bar_config(disable=not progress_bar)
        if opts["cpu_offload"]:
            if self._device.type == "cpu":
                raise ConfigError("cpu_offload needs an accelerator device (e.g. device='cuda')")
            if pipe.dtype != self.dtype:
                pipe.to(dtype=self.dtype)
            pipe.enable_model_cpu_offload(device=self._device)
        else:
            pipe.to(device=self._device, **({"dtype": self.dtype} if pipe.dtype != self.dtype else {}))
        vae = getattr(pipe, "vae", None)
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        if opts["attention"] in ("sdpa", "eager"):
            from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

            processor_cls = AttnProcessor2_0 if opts["attention"] == "sdpa" else AttnProcessor
            for module in (denoiser, vae):
                if (
                    module is not None
                    and hasattr(module, "set_attn_processor")
                    and hasattr(module, "attn_processors")
                ):
                    if all(
                        type(p).__name__ in ("AttnProcessor", "AttnProcessor2_0")
                        for p in module.attn_processors.values()
                    ):
                        module.set_attn_processor(processor_cls())
        elif opts["attention"] == "xformers":
            pipe.enable_xformers_memory_efficient_attention()
        if vae is not None and opts["vae_slicing"]:
            vae.enable_slicing()
        if vae is not None and opts["vae_tiling"]:
            vae.enable_tiling()
        if denoiser is not None and opts["channels_last"]:
            denoiser.to(memory_format=torch.channels_last)
        if opts["compile_unet"]:
            if getattr(pipe, "unet", None) is not None:
                pipe.unet = torch.compile(pipe.unet)
            elif getattr(pipe, "transformer", None) is not None:
                pipe.transformer = torch.compile(pipe.transformer)

    @property
    def _exec_device(self) -> torch.device:
        return torch.device(self.pipe._execution_device)

    def _encode_prompts(self, skip_redundant_cfg: bool) -> tuple[dict[str, torch.Tensor] | None, bool, bool]:
        """Encode prompt and negative prompt once (batch 1); decide whether CFG is redundant."""
        pipe, params = self.pipe, self._call_params
        if not {"prompt_embeds", "negative_prompt_embeds"} <= params or not hasattr(pipe, "encode_prompt"):
            return None, False, False  # generic pipeline: it encodes the prompt strings itself
        sdxl = "pooled_prompt_embeds" in params
        if sdxl and "negative_pooled_prompt_embeds" not in params:
            return None, False, False
        text_encoders = [getattr(pipe, n, None) for n in ("text_encoder", "text_encoder_2")]
        tokenizers = [getattr(pipe, n, None) for n in ("tokenizer", "tokenizer_2")]
        if all(m is None for m in text_encoders) or all(t is None for t in tokenizers):
            return self._zero_embeddings(sdxl), False, True
        with torch.no_grad():
            if sdxl:
                pe, ne, pp, npp = pipe.encode_prompt(
                    prompt=self.prompt,
                    device=self._exec_device,
                    num_images_per_prompt=1,
                    do_classifier_free_guidance=True,
                    negative_prompt=self.negative_prompt,
                )
                embeds = {
                    "prompt_embeds": pe,
                    "negative_prompt_embeds": ne,
                    "pooled_prompt_embeds": pp,
                    "negative_pooled_prompt_embeds": npp,
                }
            else:
                pe, ne = pipe.encode_prompt(
                    prompt=self.prompt,
                    device=self._exec_device,
                    num_images_per_prompt=1,
                    do_classifier_free_guidance=True,
                    negative_prompt=self.negative_prompt,
                )
                embeds = {"prompt_embeds": pe, "negative_prompt_embeds": ne}
        identical = torch.equal(pe, ne) and (
            not sdxl or torch.equal(embeds["pooled_prompt_embeds"], embeds["negative_pooled_prompt_embeds"])
        )
        return embeds, skip_redundant_cfg and self._cfg_is_redundant(identical), False

    def _cfg_is_redundant(self, identical_embeddings: bool) -> bool:
        """CFG changes nothing when both passes see identical conditioning."""
        unet = getattr(self.pipe, "unet", None)
        guidance_embedded = unet is not None and unet.config.get("time_cond_proj_dim") is not None
        # SDXL refiner-style conditioning feeds different aesthetic scores to the two passes.
        aesthetic = bool(self.pipe.config.get("requires_aesthetics_score", False))
        return identical_embeddings and self.guidance_scale > 1 and not guidance_embedded and not aesthetic

    def _zero_embeddings(self, sdxl: bool) -> dict[str, torch.Tensor]:
        """Zero prompt embeddings of the right shape for pipelines without tokenizer/text encoder."""
        if self.prompt or self.negative_prompt:
            raise ConfigError(
                "this pipeline has no tokenizer/text encoder: only the empty prompt is supported"
            )
        unet = self.pipe.unet
        dim = unet.config.cross_attention_dim
        dim = dim[0] if isinstance(dim, (list, tuple)) else dim
        zeros = torch.zeros(1, _DEFAULT_TEXT_LENGTH, dim, device=self._exec_device, dtype=self.dtype)
        embeds = {"prompt_embeds": zeros, "negative_prompt_embeds": zeros}
        if sdxl:
            n_time_ids = 5 if self.pipe.config.get("requires_aesthetics_score", False) else 6
            pooled_dim = (
                unet.config.projection_class_embeddings_input_dim
                - n_time_ids * unet.config.addition_time_embed_dim
            )
            pooled = torch.zeros(1, pooled_dim, device=self._exec_device, dtype=self.dtype)
            embeds.update(pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=pooled)
        return embeds

    def _count_steps(self) -> int:
        """Number of scheduler steps one call runs (``int(steps * strength)`` times the order)."""
        scheduler = copy.deepcopy(self.pipe.scheduler)
        scheduler.set_timesteps(self.steps)
        init = min(int(self.steps * self.strength), self.steps)
        t_start = max(self.steps - init, 0)
        return len(scheduler.timesteps[t_start * scheduler.order :])

    # ------------------------------------------------------------------ inference
    @property
    def prompt_embeds(self) -> torch.Tensor | None:
        """The cached conditional prompt embeddings (``1 x L x D``), ``None`` for generic pipelines."""
        return None if self._embeds is None else self._embeds["prompt_embeds"]

    @property
    def device(self) -> torch.device:
        """Device of the inputs and outputs (the execution device under CPU offload)."""
        return self._device

    def _check_inputs(self, images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int]) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"images must be B x 3 x H x W, got {tuple(images.shape)}")
        b, _, h, w = images.shape
        if tuple(masks.shape) != (b, 1, h, w):
            raise InputError(f"masks must be {b} x 1 x {h} x {w}, got {tuple(masks.shape)}")
        if len(seeds) != b:
            raise InputError(f"got {len(seeds)} seeds for a batch of {b} images")
        m = self._size_multiple
        if h % m or w % m:
            raise InputError(f"image size {h}x{w} is not a multiple of {m} (needed by {self.name})")

    def _call_kwargs(self, images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int]) -> dict[str, Any]:
        b, _, h, w = images.shape
        device = self._exec_device
        kwargs: dict[str, Any] = {
            "image": images,
            "mask_image": masks,
            "height": h,
            "width": w,
            "num_inference_steps": self.steps,
            "strength": self.strength,
            "guidance_scale": self.effective_guidance_scale,
            "eta": self.eta,
            "generator": [torch.Generator(device=device).manual_seed(int(s)) for s in seeds],
            "output_type": "pt",
            "return_dict": True,
        }
        if self._embeds is None:
            kwargs.update(
                prompt=[self.prompt] * b,
                negative_prompt=None if self.negative_prompt is None else [self.negative_prompt] * b,
            )
        else:
            use_negative = self.effective_guidance_scale > 1
            for key, value in self._embeds.items():
                if key.startswith("negative") and not use_negative:
                    continue
                kwargs[key] = value.expand(b, *value.shape[1:]).contiguous()
        return {k: v for k, v in kwargs.items() if k in self._call_params}

    def inpaint(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        seeds: Sequence[int],
        *,
        trajectory_steps: int = 0,
    ) -> InpaintResult:
        """Inpaint a batch in one pipeline call (see :meth:`Inpainter.inpaint`).

        Returns ``failed`` and ``extras["failure"]`` (``""``, ``"nan"``, ``"all-black"`` or
        ``"nsfw"`` per item), ``extras["nsfw_flagged"]`` when the safety checker is on,
        and ``x0_trajectory`` (``K x B x C x h x w``) when ``trajectory_steps > 0``.
        """
        self._check_inputs(images, masks, seeds)
        images = images.to(device=self._exec_device, dtype=torch.float32)
        masks = masks.to(device=self._exec_device, dtype=torch.float32)
        kwargs = self._call_kwargs(images, masks, seeds)
        recorder = (
            X0Recorder(self.pipe.scheduler, trajectory_steps)
            if (trajectory_steps > 0 and self.returns_x0_trajectory)
            else None
        )
        with torch.no_grad():  # not inference_mode: callers may update the outputs in place
            if recorder is None:
                output = self.pipe(**kwargs)
            else:
                with recorder:
                    output = self.pipe(**kwargs)
            raw = output.images.to(dtype=torch.float32)
            nsfw = getattr(output, "nsfw_content_detected", None)
            result = self._finish(images, masks, raw, nsfw)
            if recorder is not None:
                trajectory = recorder.trajectory()
                if trajectory is not None and self.decode_trajectory:
                    trajectory = self._decode(trajectory)
                result.x0_trajectory = trajectory
                result.x0_space = "pixel" if self.decode_trajectory else "latent"
        return result

    def _finish(
        self, images: torch.Tensor, masks: torch.Tensor, raw: torch.Tensor, nsfw: Sequence[bool] | None
    ) -> InpaintResult:
        """Failure flags and paste-back of the unmasked region (all on the device)."""
        flat = raw.flatten(1)
        is_nan = torch.isnan(flat).any(dim=1)
        black = (torch.nan_to_num(flat, nan=1.0).amax(dim=1) <= 1 / 255) & (
            images.flatten(1).amax(dim=1) > 1 / 255
        )
        flagged = torch.tensor(
            [bool(x) for x in nsfw] if nsfw is not None else [False] * raw.shape[0], device=raw.device
        )
        failed = is_nan | black | flagged
        reasons = [
            "nan" if n else "nsfw" if f else "all-black" if k else ""
            for n, k, f in zip(is_nan.tolist(), black.tolist(), flagged.tolist())
        ]
        out = torch.nan_to_num(raw, nan=0.0)
        if self.paste_back:
            out = torch.where(masks >= 0.5, out, images)
        extras: dict[str, Sequence[Any]] = {"failure": reasons}
        if self.safety_checker:
            extras["nsfw_flagged"] = flagged.tolist()
        return InpaintResult(images=out, failed=failed, extras=extras)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE-decode ``K x B x C x h x w`` latents to ``K x B x 3 x H x W`` in about [0, 1]."""
        vae = self.pipe.vae
        cfg = vae.config
        # SDXL-style pipelines decode in fp32 when the VAE overflows in fp16 (force_upcast)
        upcast = (
            vae.dtype == torch.float16 and bool(cfg.get("force_upcast")) and hasattr(self.pipe, "upcast_vae")
        )
        if upcast:
            vae.to(dtype=torch.float32)
        k, b = latents.shape[:2]
        out = []
        try:
            for chunk in latents.flatten(0, 1).split(b):
                z = chunk.to(vae.dtype)
                mean, std = cfg.get("latents_mean"), cfg.get("latents_std")
                if mean is not None and std is not None:
                    shape = (1, len(mean), 1, 1)
                    z = z * torch.tensor(std, device=z.device, dtype=z.dtype).view(
                        shape
                    ) / cfg.scaling_factor + torch.tensor(mean, device=z.device, dtype=z.dtype).view(shape)
                else:
                    z = z / cfg.scaling_factor + (cfg.get("shift_factor") or 0.0)
                out.append((vae.decode(z, return_dict=False)[0].float() + 1) / 2)
        finally:
            if upcast:
                vae.to(dtype=torch.float16)
        return torch.cat(out).unflatten(0, (k, b))

    # ------------------------------------------------------------------ manifest
    def identity(self) -> dict[str, Any]:
        """Everything that changes the output: weights, pipeline, scheduler, sampling and numerics."""
        import diffusers

        pipe = self.pipe
        unet = getattr(pipe, "unet", None)
        in_channels = unet.config.in_channels if unet is not None else None
        return {
            **super().identity(),
            "model": self.model_ref,
            "revision": self.revision,
            "variant": self.variant,
            "pipeline": type(pipe).__name__,
            "inpaint_mode": {9: "9-channel", 4: "4-channel latent blending"}.get(in_channels, "pipeline"),
            "scheduler": type(pipe.scheduler).__name__,
            "scheduler_config": _jsonable(pipe.scheduler.config),
            "steps": self.steps,
            "strength": self.strength,
            "num_steps": self.x0_steps,
            "eta": self.eta,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "zero_prompt_embeddings": self.zero_prompt_embeddings,
            "guidance_scale": self.guidance_scale,
            "cfg_skipped": self.cfg_skipped,
            "effective_guidance_scale": self.effective_guidance_scale,
            "paste_back": self.paste_back,
            "safety_checker": self.safety_checker,
            "decode_trajectory": self.decode_trajectory,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": self._device.type,
            **self.options,
            "diffusers_version": diffusers.__version__,
            "torch_version": torch.__version__,
        }
