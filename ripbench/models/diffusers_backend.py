"""Any diffusers inpainting pipeline as a ripbench model.

:class:`DiffusersInpainter` wraps whatever ``AutoPipelineForInpainting`` can load -- a
Hugging Face id, a local directory written by ``save_pretrained``, or an already built
pipeline object. Plain text-to-image checkpoints (4-channel UNet) run through the
inpainting pipeline's latent-blending mode.

What it does for recursive inpainting (the README, "Stable Diffusion and other diffusers pipelines", says why):

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
* the x0 prediction of every timestep whose noise level lies in the requested band is
  recorded for the hallucination detector, one per timestep even for multi-evaluation
  samplers, with its noise level in the band's unit (``sigma/sqrt(alpha_bar)`` by default,
  ``s/(1-s)`` for flow matching; ``t/T`` on request; see :mod:`ripbench.models._x0_capture`);
  flow-matching pipelines (SD3 inpainting, Flux Fill / Flux inpainting) give
  ``x0 = x_t - sigma * v``, Flux's packed latents unpacked to ``C x h x w``.

Example
-------
>>> model = DiffusersInpainter("stabilityai/stable-diffusion-2-inpainting", steps=50)  # doctest: +SKIP
>>> out = model.inpaint(images, masks, seeds=[0, 1], x0_band=NoiseBand(0.0, 0.1, "t/T"))  # doctest: +SKIP
>>> out.images.shape, out.x0_trajectory.shape, out.x0_noise_levels.tolist()            # doctest: +SKIP
(torch.Size([2, 3, 512, 512]), torch.Size([5, 2, 4, 64, 64]), [0.081, 0.061, 0.041, 0.021, 0.001])
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
from ..hub import HUB_PROBE_SECONDS, hub_offline_reason, use_cache_only  # noqa: F401 (re-exported: old home)
from ..noise_band import as_band
from ._x0_capture import X0Recorder, x0_source
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
    "dpm++-sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "dpm++-single": ("DPMSolverSinglestepScheduler", {}),
    "kdpm2-a": ("KDPM2AncestralDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}

_ATTENTION = ("sdpa", "eager", "xformers", "default")
_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Options that change speed and memory, not what is computed (bar numerics); recorded as given.
_SPEED_OPTIONS = ("attention", "compile_unet", "compile_vae", "compile_mode", "vae_slicing", "vae_tiling",
                  "cpu_offload", "channels_last")
#: Failure reasons of one pipeline call, by code (first match wins: NaN, then NSFW, then all black).
_FAILURES = ("", "nan", "nsfw", "all-black")
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


#: How a checkpoint is fetched, the same for every loader of diffusers checkpoints (the pipeline backend,
#: the VAE control): each takes these keywords, with its own defaults.
CHECKPOINT_OPTIONS = (
    ModelOption("revision", ..., "from_pretrained revision", type=str),
    ModelOption("variant", ..., "from_pretrained variant (e.g. fp16)", type=str),
    ModelOption("local_files_only", ..., "never contact the Hub"),
)


def is_local_checkpoint(spec: str) -> bool:
    """Whether ``spec`` names a local folder (a path prefix, absolute, or existing), not a Hub id."""
    return spec.startswith(_PATH_PREFIXES) or os.path.isabs(spec) or os.path.exists(os.path.expanduser(spec))


def not_found_message(spec: str, exc: BaseException, offline: str | None = None) -> str:
    """One line saying why a diffusers checkpoint ``spec`` (folder or Hub id) could not be loaded."""
    if is_local_checkpoint(spec):
        path = Path(spec).expanduser()
        if not path.exists():
            return f"diffusers model directory {spec!r} does not exist"
        return f"{spec!r} is not a diffusers pipeline directory (no loadable model_index.json): {exc}"
    if offline is not None:
        return (f"cannot load diffusers model {spec!r}: offline ({offline}) and it is not in the Hugging Face cache; "
                f"download it once with `hf download {spec}` on a machine with internet (then "
                f"--model-opt local_files_only=true reads the cache without contacting the Hub), or pass its local "
                f"diffusers folder instead of the id: --model ./path/to/folder")
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
    local_files_only, offline = use_cache_only(local_files_only, is_local_checkpoint(spec))  # offline: the cache only
    try:
        index = DiffusionPipeline.load_config(spec, revision=revision, local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(not_found_message(spec, exc, offline)) from exc
    # A pipeline that is itself an inpainting one (e.g. FluxFillPipeline, which the auto
    # mapping would turn into FluxInpaintPipeline) is loaded as its own class.
    import diffusers

    own_class = getattr(diffusers, str(index.get("_class_name", "")), None)
    is_inpainting = own_class is not None and "mask_image" in inspect.signature(own_class.__call__).parameters
    loader = DiffusionPipeline if is_inpainting else AutoPipelineForInpainting
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
        return loader.from_pretrained(spec, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"cannot load the weights of diffusers model {spec!r}: {exc}") from exc


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
        compile_unet: ``torch.compile`` the denoiser (UNet or transformer; first call slow).
        compile_vae: ``torch.compile`` the VAE's encoder and decoder.
        compile_mode: ``torch.compile`` mode (``"default"``, ``"reduce-overhead"``: CUDA graphs,
            ``"max-autotune"``).
        vae_slicing, vae_tiling: VAE memory savers.
        cpu_offload: ``enable_model_cpu_offload`` (modules move to the GPU one at a time).
        channels_last: denoiser and VAE in channels-last memory format.
        progress_bar: show diffusers' per-call progress bar.

    Example:
        >>> model = DiffusersInpainter("stable-diffusion-v1-5/stable-diffusion-inpainting",
        ...                            scheduler="ddim", steps=25)      # doctest: +SKIP
    """

    returns_x0_trajectory = True  # per instance: False for schedulers that expose no x0
    space = "latent"  # every output is decoded by the pipeline's VAE
    @captures_options
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
        compile_vae: bool = False,
        compile_mode: str = "default",
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
        for option in type(self).option_specs:  # the choices declared there (attention, compile_mode)
            if option.choices is not None:
                option.check(self.config[option.name], "diffusers")
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
        #: the speed and memory settings, recorded in the manifest as given
        self.options = {name: self.config[name] for name in _SPEED_OPTIONS}
        self._place_and_speed_up(progress_bar)
        self._embeds, self.cfg_skipped, self.zero_prompt_embeddings = self._encode_prompts(skip_redundant_cfg)
        self.effective_guidance_scale = 1.0 if self.cfg_skipped else self.guidance_scale
        self.returns_x0_trajectory = x0_source(pipe.scheduler) is not None
        self.x0_steps = self._count_steps()
        self._packed = hasattr(type(pipe), "_unpack_latents")  # Flux: 2 x 2 latent patches packed as tokens
        self._size_multiple = max(8, int(getattr(pipe, "vae_scale_factor", 8)) * (2 if self._packed else 1))

    #: The constructor's options in display order; their names and defaults are its signature's
    #: (declared once, there), :func:`~ripbench.models.base.signature_options` checks the two agree.
    option_specs = signature_options(__init__, (
        ModelOption("model", None, "Hugging Face id or local save_pretrained folder of the pipeline", type=str),
        ModelOption("prompt", ..., "text prompt (the RIP paper uses none)"),
        ModelOption("negative_prompt", ..., "negative prompt; null = the pipeline's default", type=str),
        ModelOption("guidance", ..., "classifier-free guidance weight; null = the pipeline's default",
                    type=float, aliases=("guidance_scale",)),
        ModelOption("steps", ..., "denoising steps per inpainting", aliases=("num_inference_steps",)),
        ModelOption("strength", ..., "share of the steps run (< 1 starts from a noised input); null = pipeline's",
                    type=float),
        ModelOption("scheduler", ..., f"scheduler: {', '.join(SCHEDULERS)} or a diffusers class name", type=str),
        ModelOption("eta", ..., "DDIM eta"),
        ModelOption("dtype", ..., "auto (fp16 on CUDA, fp32 on CPU), fp16, bf16 or fp32", type=str),
        DEVICE_OPTION,
        *CHECKPOINT_OPTIONS,
        ModelOption("paste_back", ..., "copy unmasked input pixels back after decoding (false = whole output)"),
        ModelOption("safety_checker", ..., "run the safety checker; flagged items end their trajectory"),
        ModelOption("skip_redundant_cfg", ..., "skip the unconditional pass when it cannot change the output"),
        ModelOption("decode_trajectory", ..., "decode the recorded x0 predictions to pixels"),
        ModelOption("attention", ..., "attention processors", choices=_ATTENTION),
        ModelOption("compile_unet", ..., "torch.compile the UNet (or transformer)"),
        ModelOption("compile_vae", ..., "torch.compile the VAE encoder and decoder"),
        ModelOption("compile_mode", ..., "torch.compile mode", choices=_COMPILE_MODES),
        ModelOption("vae_slicing", ..., "decode the batch one image at a time"),
        ModelOption("vae_tiling", ..., "decode in tiles (large images)"),
        ModelOption("cpu_offload", ..., "enable_model_cpu_offload"),
        ModelOption("channels_last", ..., "denoiser and VAE in channels-last memory format"),
        ModelOption("progress_bar", ..., "show diffusers' per-call progress bar"),
    ))

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
        for component in pipe.components.values():  # a pipeline built in memory may be in training mode (dropout)
            if isinstance(component, torch.nn.Module):
                component.eval()
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
        if opts["channels_last"]:
            for module in (denoiser, vae):
                if module is not None:
                    module.to(memory_format=torch.channels_last)
        # compiled in place (nn.Module.compile): the pipeline keeps its own module objects and configs
        if opts["compile_unet"] and denoiser is not None:
            denoiser.compile(mode=opts["compile_mode"])
        if opts["compile_vae"] and vae is not None:
            for part in ("encoder", "decoder"):
                module = getattr(vae, part, None)
                if isinstance(module, torch.nn.Module):
                    module.compile(mode=opts["compile_mode"])

    @property
    def _exec_device(self) -> torch.device:
        return torch.device(self.pipe._execution_device)

    def _encode_prompts(self, skip_redundant_cfg: bool) -> tuple[dict[str, torch.Tensor] | None, bool, bool]:
        """Encode prompt and negative prompt once (batch 1); decide whether CFG is redundant.

        Three families: SD (``prompt_embeds``, ``negative_prompt_embeds``), SDXL and SD3 (plus
        pooled embeddings), and Flux (``prompt_embeds`` and pooled, no negative prompt: its
        guidance is distilled into the transformer).
        """
        pipe, params = self.pipe, self._call_params
        if "prompt_embeds" not in params or not hasattr(pipe, "encode_prompt"):
            return None, False, False  # generic pipeline: it encodes the prompt strings itself
        encode_params = set(inspect.signature(pipe.encode_prompt).parameters)
        pooled = "pooled_prompt_embeds" in params
        guided = "do_classifier_free_guidance" in encode_params
        if guided and ("negative_prompt_embeds" not in params or (pooled and "negative_pooled_prompt_embeds" not in params)):
            return None, False, False
        names = ("text_encoder", "text_encoder_2", "text_encoder_3")
        text_encoders = [getattr(pipe, n, None) for n in names]
        tokenizers = [getattr(pipe, n.replace("text_encoder", "tokenizer"), None) for n in names]
        if all(m is None for m in text_encoders) or all(t is None for t in tokenizers):
            return self._zero_embeddings(pooled, guided), False, True
        kwargs: dict[str, Any] = {"prompt": self.prompt, "device": self._exec_device, "num_images_per_prompt": 1}
        kwargs.update({k: None for k in ("prompt_2", "prompt_3") if k in encode_params})  # same prompt everywhere
        with torch.no_grad():
            if not guided:  # Flux
                out = pipe.encode_prompt(**kwargs)
                embeds = {"prompt_embeds": out[0]}
                if pooled:
                    embeds["pooled_prompt_embeds"] = out[1]
                return embeds, False, False
            out = pipe.encode_prompt(
                **kwargs, do_classifier_free_guidance=True, negative_prompt=self.negative_prompt
            )
        keys = ["prompt_embeds", "negative_prompt_embeds"]
        if pooled:
            keys += ["pooled_prompt_embeds", "negative_pooled_prompt_embeds"]
        embeds = dict(zip(keys, out))
        identical = torch.equal(embeds["prompt_embeds"], embeds["negative_prompt_embeds"]) and (
            not pooled or torch.equal(embeds["pooled_prompt_embeds"], embeds["negative_pooled_prompt_embeds"])
        )
        return embeds, skip_redundant_cfg and self._cfg_is_redundant(identical), False

    def _cfg_is_redundant(self, identical_embeddings: bool) -> bool:
        """CFG changes nothing when both passes see identical conditioning."""
        unet = getattr(self.pipe, "unet", None)
        guidance_embedded = unet is not None and unet.config.get("time_cond_proj_dim") is not None
        # SDXL refiner-style conditioning feeds different aesthetic scores to the two passes.
        aesthetic = bool(self.pipe.config.get("requires_aesthetics_score", False))
        return identical_embeddings and self.guidance_scale > 1 and not guidance_embedded and not aesthetic

    def _zero_embeddings(self, pooled: bool, guided: bool = True) -> dict[str, torch.Tensor]:
        """Zero prompt embeddings of the right shape for pipelines without tokenizer/text encoder."""
        if self.prompt or self.negative_prompt:
            raise ConfigError(
                "this pipeline has no tokenizer/text encoder: only the empty prompt is supported"
            )
        unet = getattr(self.pipe, "unet", None)
        pooled_dim = 0
        if unet is not None:
            dim = unet.config.cross_attention_dim
            dim = dim[0] if isinstance(dim, (list, tuple)) else dim
            if pooled:
                n_time_ids = 5 if self.pipe.config.get("requires_aesthetics_score", False) else 6
                pooled_dim = (
                    unet.config.projection_class_embeddings_input_dim
                    - n_time_ids * unet.config.addition_time_embed_dim
                )
        else:  # SD3 / Flux transformer
            config = self.pipe.transformer.config
            dim, pooled_dim = config.joint_attention_dim, config.pooled_projection_dim
        zeros = torch.zeros(1, _DEFAULT_TEXT_LENGTH, dim, device=self._exec_device, dtype=self.dtype)
        embeds = {"prompt_embeds": zeros}
        if guided:
            embeds["negative_prompt_embeds"] = zeros
        if pooled:
            zero_pooled = torch.zeros(1, pooled_dim, device=self._exec_device, dtype=self.dtype)
            embeds["pooled_prompt_embeds"] = zero_pooled
            if guided:
                embeds["negative_pooled_prompt_embeds"] = zero_pooled
        return embeds

    def _count_steps(self) -> int:
        """Number of model calls one pipeline call makes (the timesteps ``strength`` keeps, times the order).

        Uses the pipeline's own ``get_timesteps`` on a copy of the scheduler where it has one
        (SD rounds ``steps * strength`` down, SD3/Flux do not).
        """
        pipe = self.pipe
        original = pipe.scheduler
        scheduler = pipe.scheduler = copy.deepcopy(original)
        try:
            # resolution-dependent shifting (Flux) moves the sigmas, not their number
            shift = {"mu": 0.0} if scheduler.config.get("use_dynamic_shifting") else {}
            scheduler.set_timesteps(self.steps, **shift)
            if hasattr(pipe, "get_timesteps"):
                return len(pipe.get_timesteps(self.steps, self.strength, None)[0])
            init = min(int(self.steps * self.strength), self.steps)
            return len(scheduler.timesteps[max(self.steps - init, 0) * scheduler.order :])
        finally:
            pipe.scheduler = original

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
        x0_band: tuple[float, float] | None = None,
    ) -> InpaintResult:
        """Inpaint a batch in one pipeline call (see :meth:`Inpainter.inpaint`).

        Returns ``failed`` and ``extras["failure"]`` (``""``, ``"nan"``, ``"all-black"`` or
        ``"nsfw"`` per item), ``extras["nsfw_flagged"]`` when the safety checker is on, and,
        when ``x0_band`` is given, ``x0_trajectory`` (``K x B x C x h x w``, one x0 per
        timestep whose noise level lies in the band, noisiest first; ``K`` may be 0) with
        ``x0_noise_levels`` (``K`` values in the band's unit, a plain pair being read in sigma)
        and ``x0_noise_unit``.
        """
        self._check_inputs(images, masks, seeds)
        b, _, h, w = images.shape
        images = images.to(device=self._exec_device, dtype=torch.float32)
        masks = masks.to(device=self._exec_device, dtype=torch.float32)
        kwargs = self._call_kwargs(images, masks, seeds)
        recorder = (
            X0Recorder(self.pipe.scheduler, as_band(x0_band))
            if (x0_band is not None and self.returns_x0_trajectory)
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
                trajectory, levels = recorder.trajectory()
                if trajectory is None:
                    trajectory = torch.zeros((0, b), device=self._exec_device)
                    levels = torch.zeros(0, dtype=torch.float64)
                else:
                    if self._packed:
                        trajectory = self._unpack(trajectory, h, w)
                    if self.decode_trajectory:
                        trajectory = self._decode(trajectory)
                result.x0_trajectory = trajectory
                result.x0_noise_levels = levels
                result.x0_noise_unit = recorder.unit
                result.x0_space = "pixel" if self.decode_trajectory else "latent"
        return result

    def _unpack(self, packed: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Flux's ``K x B x tokens x (4 C)`` packed latents as ``K x B x C x h/f x w/f``."""
        k, b = packed.shape[:2]
        flat = self.pipe._unpack_latents(packed.flatten(0, 1), h, w, self.pipe.vae_scale_factor)
        return flat.unflatten(0, (k, b))

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
        # codes into _FAILURES, kept on the device: read once the batch is over (no sync per call)
        codes = torch.where(is_nan, 1, torch.where(flagged, 2, torch.where(black, 3, 0)))
        reasons = DeviceLabels(codes, _FAILURES)
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
        in_channels: Any = unet.config.in_channels if unet is not None else None  # an untyped diffusers config
        if unet is not None:
            inpaint_mode = {9: "9-channel", 4: "4-channel latent blending"}.get(in_channels, "pipeline")
        elif getattr(pipe, "transformer", None) is not None and getattr(pipe, "vae", None) is not None:
            channels = pipe.transformer.config.in_channels
            latent = pipe.vae.config.latent_channels * (4 if self._packed else 1)
            inpaint_mode = f"{channels}-channel" + (" latent blending" if channels == latent else "")
        else:
            inpaint_mode = "pipeline"
        return {
            **super().identity(),
            "model": self.model_ref,
            "revision": self.config["revision"],
            "variant": self.config["variant"],
            "pipeline": type(pipe).__name__,
            "inpaint_mode": inpaint_mode,
            "scheduler": type(pipe.scheduler).__name__,
            "scheduler_config": jsonable_config(pipe.scheduler.config),
            "steps": self.steps,
            "strength": self.strength,
            "num_steps": self.x0_steps,
            "eta": self.eta,
            "prompt": self.config["prompt"],
            "negative_prompt": self.config["negative_prompt"],
            "zero_prompt_embeddings": self.zero_prompt_embeddings,
            "guidance_scale": self.guidance_scale,
            "cfg_skipped": self.cfg_skipped,
            "effective_guidance_scale": self.effective_guidance_scale,
            "paste_back": self.config["paste_back"],
            "safety_checker": self.safety_checker,
            "decode_trajectory": self.config["decode_trajectory"],
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": self._device.type,
            **self.options,
            "diffusers_version": diffusers.__version__,
            "torch_version": torch.__version__,
        }
