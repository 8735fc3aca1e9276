"""Train the small pixel-space DDPM on Simple Shapes that ships with ripbench.

The bundled weights in ``ripbench/weights/shapes-ddpm/`` were made with
:func:`train_shapes` (its arguments are stored in ``training_config.json`` next to them),
so ``ripbench train shapes`` can remake them on a CPU in about half an hour.

Design choices (small, because the model runs inside a recursive-inpainting loop on CPU):

* a diffusers :class:`~diffusers.UNet2DModel` on 32 x 32 greyscale images, three levels
  of plain ResNet blocks (no attention), about 0.3-0.8 M parameters;
* :class:`~diffusers.DDPMScheduler` with T = 1000 linear betas, epsilon prediction and
  ``clip_sample=False``: the predicted clean image x0 is *not* clipped to ``[-1, 1]``,
  because its variance over the last steps is the hallucination score (clipping would
  hide exactly the overshoot the detector looks for);
* an exponential moving average of the weights is what gets saved.

Output folder layout (the diffusers pipeline layout, loadable with
``DDPMPipeline.from_pretrained``)::

    model_index.json  unet/config.json  unet/diffusion_pytorch_model.safetensors
    scheduler/scheduler_config.json  training_config.json  loss_curve.csv

Example
-------
>>> report = train_shapes("/tmp/shapes-ddpm", steps=2, batch_size=4, progress=False)  # doctest: +SKIP
>>> report.steps  # doctest: +SKIP
2
"""

from __future__ import annotations

import copy
import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..datasets.shapes import generate_shapes, label_shapes, summarise_labels
from ..errors import ConfigError


@dataclass
class ShapesTrainingConfig:
    """Everything that determines a Simple Shapes DDPM training run.

    Attributes:
        size: image side in pixels (32 recommended on CPU; 64 is the paper's size).
        num_images: size of the training set (the paper uses 5,000).
        steps: optimiser steps.
        batch_size: images per step.
        learning_rate: AdamW peak learning rate (linear warm-up, cosine decay to 10 % at the
            last step or at the time limit, whichever comes first).
        warmup_steps: warm-up length.
        ema_decay: maximum decay of the weight average that is saved.
        num_train_timesteps: T of the DDPM.
        beta_schedule: diffusers beta schedule name.
        block_out_channels: UNet widths per resolution level.
        layers_per_block: ResNet blocks per level.
        norm_num_groups: GroupNorm groups.
        seed: seeds the data set, the initial weights and the noise.
        num_threads: torch CPU threads (``None`` keeps torch's setting). On a shared,
            loaded machine one thread can be several times faster than two.
        time_limit_s: stop early (and save) after this many seconds; ``None`` = no limit.
        save_every: also save a checkpoint every this many steps (0 = only at the end).
    """

    size: int = 32
    num_images: int = 5000
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    ema_decay: float = 0.999
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    block_out_channels: tuple[int, ...] = (16, 32, 64)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    seed: int = 0
    num_threads: int | None = None
    time_limit_s: float | None = None
    save_every: int = 500

    def validate(self) -> None:
        """Raise :class:`~ripbench.errors.ConfigError` for out-of-range values."""
        if self.size < 16 or self.size % 2 ** (len(self.block_out_channels) - 1):
            raise ConfigError(
                f"size {self.size} must be >= 16 and divisible by {2 ** (len(self.block_out_channels) - 1)}"
            )
        for name in ("num_images", "steps", "batch_size", "num_train_timesteps", "layers_per_block"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ConfigError(
                f"every block_out_channels value {self.block_out_channels} must be divisible by "
                f"norm_num_groups={self.norm_num_groups}"
            )


@dataclass
class TrainingReport:
    """What :func:`train_shapes` did.

    Attributes:
        out_dir: where the pipeline was saved.
        steps: optimiser steps actually run (fewer than asked if the time limit hit).
        wall_time_s: training time in seconds (without the final evaluation).
        final_loss: mean training loss over the last 100 steps.
        num_parameters: UNet parameter count.
        evaluation: sample-quality summary from :func:`evaluate_shapes_model` (empty if skipped).
    """

    out_dir: Path
    steps: int
    wall_time_s: float
    final_loss: float
    num_parameters: int
    evaluation: dict[str, float] = field(default_factory=dict)


def build_unet(config: ShapesTrainingConfig) -> Any:
    """The (randomly initialised) diffusers ``UNet2DModel`` described by ``config``."""
    from diffusers import UNet2DModel

    levels = len(config.block_out_channels)
    return UNet2DModel(
        sample_size=config.size,
        in_channels=1,
        out_channels=1,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        norm_num_groups=config.norm_num_groups,
        down_block_types=("DownBlock2D",) * levels,
        up_block_types=("UpBlock2D",) * levels,
    )


def build_scheduler(config: ShapesTrainingConfig) -> Any:
    """The DDPM scheduler (``clip_sample=False``, epsilon prediction) described by ``config``."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        clip_sample=False,
        prediction_type="epsilon",
        variance_type="fixed_small",
    )


def _write_training_config(out_dir: Path, config: ShapesTrainingConfig, extra: dict[str, Any]) -> None:
    payload = {"config": {**asdict(config), "block_out_channels": list(config.block_out_channels)}, **extra}
    (out_dir / "training_config.json").write_text(json.dumps(payload, indent=2) + "\n")


def _save(out_dir: Path, ema_unet: Any, scheduler: Any, config: ShapesTrainingConfig,
          losses: list[tuple[int, float, float]], extra: dict[str, Any]) -> None:
    from diffusers import DDPMPipeline

    out_dir.mkdir(parents=True, exist_ok=True)
    DDPMPipeline(unet=ema_unet, scheduler=scheduler).save_pretrained(out_dir, safe_serialization=True)
    for weights in out_dir.rglob("*.safetensors"):
        weights.chmod(0o644)  # safetensors writes 0600; keep shipped weights readable by everyone
    _write_training_config(out_dir, config, extra)
    with open(out_dir / "loss_curve.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss", "elapsed_s"])
        writer.writerows((s, f"{loss:.6f}", f"{t:.1f}") for s, loss, t in losses)


def train_shapes(
    out_dir: str | Path,
    size: int = 32,
    steps: int = 2000,
    seed: int = 0,
    progress: bool = True,
    *,
    eval_samples: int = 0,
    **options: Any,
) -> TrainingReport:
    """Train a DDPM on Simple Shapes on the CPU and save it (diffusers layout) to ``out_dir``.

    Args:
        out_dir: output folder (created; existing files are overwritten).
        size: image side (32 recommended on CPU).
        steps: optimiser steps.
        seed: seeds data, weights and noise.
        progress: show a progress bar.
        eval_samples: after training, draw this many unconditional samples, label them and
            store the summary in ``training_config.json`` and the report (0 = skip).
        **options: any other :class:`ShapesTrainingConfig` field (``batch_size``,
            ``time_limit_s``, ``num_threads``, ``block_out_channels``, ...).

    Returns:
        A :class:`TrainingReport`.

    Example:
        >>> train_shapes("out/shapes-ddpm", steps=4000, time_limit_s=1800)  # doctest: +SKIP
    """
    unknown = set(options) - set(ShapesTrainingConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown training options: {sorted(unknown)}")
    config = ShapesTrainingConfig(size=size, steps=steps, seed=seed, **options)
    config.validate()
    out_dir = Path(out_dir)
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)

    torch.manual_seed(config.seed)
    data = torch.from_numpy(generate_shapes(config.num_images, config.size, config.seed).images)
    data = data[:, None] * 2 - 1  # N x 1 x H x W in [-1, 1]
    unet = build_unet(config)
    ema_unet = copy.deepcopy(unet).requires_grad_(False)
    scheduler = build_scheduler(config)
    alphas_cumprod = scheduler.alphas_cumprod.float()
    optimiser = torch.optim.AdamW(unet.parameters(), lr=config.learning_rate, weight_decay=0.0)

    def lr_factor(step: int, elapsed: float) -> float:
        """Linear warm-up, then cosine decay to 10 % over the steps or the time limit, whichever ends first."""
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        done = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        if config.time_limit_s:
            done = max(done, elapsed / config.time_limit_s)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    gen = torch.Generator().manual_seed(config.seed)
    params = list(unet.parameters())
    ema_params = list(ema_unet.parameters())
    losses: list[tuple[int, float, float]] = []
    window: list[float] = []
    all_losses: list[float] = []
    start = time.monotonic()
    elapsed = 0.0
    step = 0
    bar = tqdm(total=config.steps, disable=not progress, desc="train shapes-ddpm")
    unet.train()
    for step in range(1, config.steps + 1):
        for group in optimiser.param_groups:
            group["lr"] = config.learning_rate * lr_factor(step - 1, elapsed)
        idx = torch.randint(0, len(data), (config.batch_size,), generator=gen)
        x0 = data[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, config.num_train_timesteps, (config.batch_size,), generator=gen)
        abar = alphas_cumprod[t].view(-1, 1, 1, 1)
        xt = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        loss = torch.nn.functional.mse_loss(unet(xt, t).sample, noise)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - decay)
        window.append(loss.item())
        all_losses.append(window[-1])
        elapsed = time.monotonic() - start
        if step % 10 == 0 or step == config.steps:
            losses.append((step, sum(window) / len(window), elapsed))
            bar.set_postfix(loss=f"{losses[-1][1]:.4f}")
            window = []
        bar.update(1)
        if config.save_every and step % config.save_every == 0:
            _save(out_dir, ema_unet, scheduler, config, losses, {"steps_done": step, "wall_time_s": elapsed})
        if config.time_limit_s is not None and elapsed > config.time_limit_s:
            break
    bar.close()
    if window:
        losses.append((step, sum(window) / len(window), time.monotonic() - start))
    wall = time.monotonic() - start
    final_loss = sum(all_losses[-100:]) / max(1, len(all_losses[-100:]))
    extra: dict[str, Any] = {"steps_done": step, "wall_time_s": round(wall, 1), "final_loss": final_loss,
                             "num_parameters": sum(p.numel() for p in params)}
    _save(out_dir, ema_unet, scheduler, config, losses, extra)
    report = TrainingReport(out_dir, step, wall, final_loss, extra["num_parameters"])
    if eval_samples:
        report.evaluation = evaluate_shapes_model(out_dir, eval_samples, seed=config.seed)
        extra["evaluation"] = report.evaluation
        _write_training_config(out_dir, config, extra)
    return report


def evaluate_shapes_model(
    model: str | Path = "shapes",
    num_samples: int = 500,
    *,
    seed: int = 0,
    batch_size: int = 100,
    **model_options: Any,
) -> dict[str, float]:
    """Draw unconditional samples from a Simple Shapes DDPM and label them.

    Args:
        model: what :class:`~ripbench.models.pixel_ddpm.PixelDDPMInpainter` accepts as ``model``.
        num_samples: number of samples (seeds ``seed .. seed + num_samples - 1``).
        batch_size: samples per batch.
        **model_options: e.g. ``num_inference_steps``.

    Returns:
        :func:`~ripbench.datasets.shapes.summarise_labels` of the samples plus ``samples_per_s``.
    """
    from ..models.pixel_ddpm import PixelDDPMInpainter

    inpainter = PixelDDPMInpainter(model=model, **model_options)
    start = time.monotonic()
    samples = torch.cat([
        inpainter.sample(list(range(seed + lo, seed + min(lo + batch_size, num_samples))))
        for lo in range(0, num_samples, batch_size)
    ])
    elapsed = time.monotonic() - start
    summary = summarise_labels(label_shapes(samples))
    summary["samples_per_s"] = num_samples / elapsed
    summary["num_inference_steps"] = float(inpainter.num_steps or 0)
    return summary
