"""Full-size Stable Diffusion inpainting architectures with random weights, for timing anywhere.

The configurations below are the public ``config.json`` files of the
``stable-diffusion-v1-5/stable-diffusion-inpainting`` and
``stabilityai/stable-diffusion-2-inpainting`` checkpoints (UNet with 9 input channels,
VAE, CLIP text encoder, scheduler), written into the code so that nothing is
downloaded. The weights are random: the images are meaningless, but the amount of
computation per step -- and therefore throughput and memory -- is that of the real
models. No tokenizer is included; :class:`~ripbench.models.diffusers_backend.DiffusersInpainter`
then conditions on zero prompt embeddings of the right shape (77 x 768 for SD-1.5,
77 x 1024 for SD-2).

Example
-------
>>> pipe = full_size_pipeline("sd2-inpainting", dtype=torch.float16, device="cuda")  # doctest: +SKIP
>>> DiffusersInpainter(pipe, steps=50)                                                # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError

_VAE: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

_UNET_COMMON: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 9,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-5,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

_SCHEDULER_COMMON: dict[str, Any] = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
}

_CLIP_COMMON: dict[str, Any] = {
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
}

#: name -> UNet config, CLIP text config, scheduler class name, scheduler config.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "sd15-inpainting": {
        "unet": {**_UNET_COMMON, "attention_head_dim": 8, "cross_attention_dim": 768},
        "text_encoder": {
            **_CLIP_COMMON,
            "hidden_act": "quick_gelu",
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_attention_heads": 12,
            "num_hidden_layers": 12,
            "projection_dim": 768,
        },
        "scheduler": ("PNDMScheduler", _SCHEDULER_COMMON),
    },
    "sd2-inpainting": {
        "unet": {
            **_UNET_COMMON,
            "attention_head_dim": [5, 10, 20, 20],
            "cross_attention_dim": 1024,
            "use_linear_projection": True,
        },
        "text_encoder": {
            **_CLIP_COMMON,
            "hidden_act": "gelu",
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_attention_heads": 16,
            "num_hidden_layers": 23,
            "projection_dim": 512,
        },
        "scheduler": ("DDIMScheduler", {**_SCHEDULER_COMMON, "prediction_type": "epsilon"}),
    },
}


def full_size_pipeline(
    arch: str,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    *,
    with_text_encoder: bool = False,
    seed: int = 0,
) -> Any:
    """Build a randomly initialised full-size SD inpainting pipeline (no download).

    Args:
        arch: ``"sd15-inpainting"`` or ``"sd2-inpainting"``.
        dtype: parameter dtype (``torch.float16`` / ``torch.bfloat16`` on a GPU).
        device: where the modules are created (creating them on the GPU is much faster).
        with_text_encoder: also build the CLIP text encoder (only for memory accounting:
            without a tokenizer it is never run; prompts are zero embeddings).
        seed: seed of the random initialisation.

    Returns:
        A ``StableDiffusionInpaintPipeline`` without tokenizer and safety checker.

    Example:
        >>> pipe = full_size_pipeline("sd15-inpainting")  # doctest: +SKIP
        >>> pipe.unet.config.in_channels                   # doctest: +SKIP
        9
    """
    import diffusers
    from diffusers import AutoencoderKL, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown full-size architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    spec = ARCHITECTURES[arch]
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**spec["unet"])
        vae = AutoencoderKL(**_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**spec["text_encoder"])) if with_text_encoder else None
    scheduler_name, scheduler_config = spec["scheduler"]
    scheduler = getattr(diffusers, scheduler_name).from_config(scheduler_config)
    pipe = StableDiffusionInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=None,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, **({"dtype": dtype} if dtype != torch.float32 else {}))
