"""Tiny randomly initialised diffusers pipelines for offline tests (no hub access).

Built from small configs in the style of diffusers' own ``get_dummy_components``; the
CLIP tokenizer is built from a small vocabulary/merges file written to a local folder.

Example
-------
>>> pipe = tiny_sd_inpaint(tmp_path, in_channels=9)   # doctest: +SKIP
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import torch


def tiny_clip_tokenizer(folder: Path) -> Any:
    """A CLIP tokenizer over single letters (plus a few merges), written to ``folder``."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    merges = [("c", "a"), ("ca", "t</w>")]
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)


def _clip_config(projection_dim: int | None = None) -> Any:
    from transformers import CLIPTextConfig

    extra = {"projection_dim": projection_dim, "hidden_act": "gelu"} if projection_dim else {}
    return CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=16,
        intermediate_size=24,
        layer_norm_eps=1e-5,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=100,
        max_position_embeddings=77,
        **extra,
    )


def _tiny_vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[16, 32],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        norm_num_groups=8,
        sample_size=32,
        force_upcast=False,
    )


def tiny_sd_inpaint(folder: Path, *, in_channels: int = 9, seed: int = 0) -> Any:
    """``StableDiffusionInpaintPipeline`` with a 9-channel (inpainting) or 4-channel (text-to-image) UNet.

    32 x 32 px images give 16 x 16 latents (the tiny VAE downsamples by 2).
    """
    from diffusers import PNDMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=8,
    )
    vae = _tiny_vae()
    text_encoder = CLIPTextModel(_clip_config())
    scheduler = PNDMScheduler.from_config(
        {  # as in the SD-1.5 checkpoints (clip_sample is for DDIM)
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "skip_prk_steps": True,
            "set_alpha_to_one": False,
            "steps_offset": 1,
            "clip_sample": False,
        }
    )
    pipe = StableDiffusionInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny_clip_tokenizer(folder / "tokenizer"),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sdxl_inpaint(folder: Path, *, seed: int = 0) -> Any:
    """``StableDiffusionXLInpaintPipeline``: 4-channel UNet, two text encoders, aesthetic-score conditioning."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=56,  # 5 time ids * 8 + 16 pooled text dims
        cross_attention_dim=32,
        norm_num_groups=8,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        steps_offset=1,
        beta_schedule="scaled_linear",
        timestep_spacing="leading",
    )
    tokenizer = tiny_clip_tokenizer(folder / "tokenizer")
    pipe = StableDiffusionXLInpaintPipeline(
        vae=_tiny_vae(),
        text_encoder=CLIPTextModel(_clip_config()),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(projection_dim=16)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
        requires_aesthetics_score=True,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_batch(batch: int = 2, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images in [0, 1] and a square mask (1 = regenerate) per item, at different places."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, size, size, generator=gen)
    masks = torch.zeros(batch, 1, size, size)
    quarter = size // 4
    for i in range(batch):
        top = (i * quarter) % (size - 2 * quarter)
        masks[i, :, top : top + 2 * quarter, quarter : 3 * quarter] = 1.0
    return images, masks
