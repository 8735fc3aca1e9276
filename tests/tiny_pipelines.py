"""Tiny randomly initialised diffusers inpainting pipelines for offline tests (no hub access).

Built from small configs in the style of diffusers' own ``get_dummy_components``; the
tokenizers are built locally (a CLIP BPE vocabulary/merges file written to a folder, a
word-level T5-style tokenizer in memory), so nothing is downloaded. Every builder takes the
folder for its tokenizer files and a ``seed`` for the random weights, runs on 32 x 32 px
images on CPU in well under a second per call, and can be saved with ``save_pretrained``
and loaded back by path (except ``denoiser="mixture"``).

* :func:`tiny_sd_inpaint`: Stable Diffusion inpainting, 9-channel or 4-channel UNet
  (``denoiser="mixture"``: a UNet that is an exact denoiser, see :class:`MixtureDenoiserUNet`);
* :func:`tiny_sdxl_inpaint`: SDXL inpainting (two text encoders, aesthetic-score conditioning);
* :func:`tiny_sd3_inpaint`: SD3 inpainting (flow matching, MMDiT transformer, 16 latent channels);
* :func:`tiny_flux_fill`: Flux Fill (flow matching, packed 2 x 2 latent tokens, masked-image
  conditioning, dynamic shifting as the real checkpoint);
* :func:`sample_batch`: random images and masks to feed them.

Example
-------
>>> pipe = tiny_sd_inpaint(tmp_path, in_channels=9)   # doctest: +SKIP
>>> images, masks = sample_batch(2)                    # doctest: +SKIP
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


def _tiny_vae(latent_channels: int = 4, flow: bool = False) -> Any:
    """A VAE that downsamples by 2; ``flow=True``: SD3/Flux style (shift factor, no quant convs)."""
    from diffusers import AutoencoderKL

    extra: dict[str, Any] = {}
    if flow:
        extra = {"use_quant_conv": False, "use_post_quant_conv": False, "shift_factor": 0.0609,
                 "scaling_factor": 1.5035}
    return AutoencoderKL(
        block_out_channels=[16, 32],
        in_channels=3,
        out_channels=3,
        latent_channels=latent_channels,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        norm_num_groups=8,
        sample_size=32,
        force_upcast=False,
        **extra,
    )


def tiny_t5_tokenizer(folder: Path) -> Any:
    """A word-level tokenizer with T5's special tokens (``<pad>``, ``</s>``, ``<unk>``), saved to ``folder``.

    Any word outside its small vocabulary becomes ``<unk>``; every text ends with ``</s>``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in ("a", "cat", "dog", "photo", "of", "the"):
        vocab[word] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def _tiny_t5(d_model: int = 32) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=16, d_model=d_model, d_kv=8, d_ff=37, num_layers=1, num_heads=4,
                                   pad_token_id=0, eos_token_id=1, dropout_rate=0.0)).eval()


class MixtureDenoiserUNet:
    """Mixin making a ``UNet2DConditionModel`` the exact denoiser of a known latent distribution.

    A randomly initialised UNet is no denoiser: its x0 prediction jumps from step to step
    with the timestep embedding, so x0-variance scores of a random UNet say nothing about a
    real model. This one predicts the noise of the Bayes-optimal denoiser of latents whose
    coordinates are independent two-mode Gaussian mixtures, ``0.5 N(-1, s^2) + 0.5 N(1, s^2)``:
    with ``x = x0 + sigma eps`` (the variance-exploding view of the model input),
    ``E[x0 | x] = sum_k w_k(x) (s^2 x + sigma^2 mu_k) / (s^2 + sigma^2)`` and
    ``eps = (x - E[x0 | x]) / sigma``. Its x0 predictions change smoothly along the sampler's
    trajectory, like a trained model's. Only the first 4 input channels are used (the
    masked-image channels of a 9-channel UNet are ignored). ``sigma(t)`` interpolates the
    training sigmas linearly in ``t``, as diffusers' Euler-type schedulers do.
    """

    mode_std: float = 0.1
    train_sigmas: torch.Tensor  # sqrt((1 - abar_t) / abar_t), t = 0..T-1

    def _sigma(self, timestep: Any) -> torch.Tensor:
        t = torch.as_tensor(timestep, dtype=torch.float64).reshape(-1)[:1]
        sigmas = self.train_sigmas
        low = t.floor().clamp(0, len(sigmas) - 1).long()
        high = (low + 1).clamp(max=len(sigmas) - 1)
        frac = t - low
        return sigmas[low] * (1 - frac) + sigmas[high] * frac

    def forward(self, sample: torch.Tensor, timestep: Any, *args: Any, return_dict: bool = True,
                **kwargs: Any) -> Any:
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        sigma = self._sigma(timestep).item()
        x = sample[:, :4].double() * (1 + sigma**2) ** 0.5  # VP model input -> VE sample
        s2, var = self.mode_std**2, self.mode_std**2 + sigma**2
        modes = torch.tensor([-1.0, 1.0], dtype=torch.float64).view(2, 1, 1, 1, 1)
        log_w = -((x.unsqueeze(0) - modes) ** 2) / (2 * var)
        weights = torch.softmax(log_w, dim=0)
        x0 = (weights * (s2 * x.unsqueeze(0) + sigma**2 * modes) / var).sum(dim=0)
        eps = ((x - x0) / sigma).to(sample.dtype)
        return UNet2DConditionOutput(sample=eps) if return_dict else (eps,)


def _sd_scheduler_config() -> dict[str, Any]:
    return {  # as in the SD-1.5 checkpoints (clip_sample is for DDIM)
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "skip_prk_steps": True,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "clip_sample": False,
    }


def tiny_sd_inpaint(folder: Path, *, in_channels: int = 9, seed: int = 0, denoiser: str = "random") -> Any:
    """``StableDiffusionInpaintPipeline`` with a 9-channel (inpainting) or 4-channel (text-to-image) UNet.

    32 x 32 px images give 16 x 16 latents (the tiny VAE downsamples by 2). The scheduler is
    PNDM with the SD-1.5 training schedule (swap it with ``DiffusersInpainter(scheduler=...)``).

    Args:
        folder: where the tiny CLIP tokenizer is written.
        in_channels: 9 (inpainting UNet) or 4 (text-to-image UNet, latent-blending mode).
        seed: seed of the random weights.
        denoiser: ``"random"`` (a randomly initialised UNet) or ``"mixture"`` (the same UNet
            class answering as the exact denoiser of a known latent distribution, see
            :class:`MixtureDenoiserUNet`: use it where x0 trajectories must behave like a
            trained model's, e.g. to compare hallucination scores across samplers). A
            ``"mixture"`` pipeline is for in-memory use (``save_pretrained`` stores a plain UNet).
    """
    from diffusers import PNDMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    if denoiser not in ("random", "mixture"):
        raise ValueError(f"denoiser must be 'random' or 'mixture', got {denoiser!r}")
    unet_class = UNet2DConditionModel
    if denoiser == "mixture":
        unet_class = type("MixtureUNet2DConditionModel", (MixtureDenoiserUNet, UNet2DConditionModel), {})
    torch.manual_seed(seed)
    unet = unet_class(
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
    scheduler = PNDMScheduler.from_config(_sd_scheduler_config())
    if denoiser == "mixture":
        abar = scheduler.alphas_cumprod.double()
        unet.train_sigmas = ((1 - abar) / abar).sqrt()
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


def tiny_sd3_inpaint(folder: Path, *, seed: int = 0) -> Any:
    """``StableDiffusion3InpaintPipeline``: flow matching, a 1-layer MMDiT, 16 latent channels.

    Two tiny CLIP text encoders with projection and a tiny T5. The transformer has 16 input
    channels, so masks are applied by latent blending (the SD3 inpainting pipeline's mode for
    base checkpoints).
    """
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3InpaintPipeline,
    )
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=16,
        patch_size=1,
        in_channels=16,
        out_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=32,  # = the two CLIP hidden sizes side by side
        caption_projection_dim=32,
        pooled_projection_dim=64,  # = the two CLIP projections side by side
    )
    tokenizer = tiny_clip_tokenizer(folder / "tokenizer")
    pipe = StableDiffusion3InpaintPipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_tiny_vae(latent_channels=16, flow=True),
        text_encoder=CLIPTextModelWithProjection(_clip_config(projection_dim=32)),
        tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(projection_dim=32)),
        tokenizer_2=tokenizer,
        text_encoder_3=_tiny_t5(32),
        tokenizer_3=tiny_t5_tokenizer(folder / "tokenizer_3"),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_flux_fill(folder: Path, *, seed: int = 0) -> Any:
    """``FluxFillPipeline``: flow matching, a 1+1-layer Flux transformer, packed latents.

    The transformer sees the packed latents (4 latent channels x 2 x 2 = 16 features per
    token), the packed masked-image latents (16) and the packed mask (16): 48 input
    features. CLIP (pooled, 16) and a tiny T5 (32) text encoders; the scheduler shifts its
    sigmas with the image size (``use_dynamic_shifting``), as FLUX.1-Fill-dev does.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=48,
        out_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # T5 width
        pooled_projection_dim=16,  # CLIP width
        axes_dims_rope=[4, 4, 8],
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipe = FluxFillPipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=_tiny_vae(latent_channels=4, flow=True),
        text_encoder=CLIPTextModel(_clip_config()),
        tokenizer=tiny_clip_tokenizer(folder / "tokenizer"),
        text_encoder_2=_tiny_t5(32),
        tokenizer_2=tiny_t5_tokenizer(folder / "tokenizer_2"),
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
