"""Train the small pixel-space DDPM on Simple Shapes that ships with ripbench.

The bundled weights in ``ripbench/weights/shapes-ddpm/`` were made by ``ripbench train shapes``
with its defaults (:class:`ShapesTrainingConfig`); :func:`train_shapes` writes the configuration,
the command that reruns it and the library versions to ``training_config.json`` next to them.
Training is reproducible: the learning rate is a function of the step count (never of the wall
clock) and every random draw comes from the seed, so the same seed, torch build and thread count
give bitwise the same weights (``tests/test_shapes.py`` checks it on a tiny run).

Design choices (small, because the model runs inside a recursive-inpainting loop on CPU):

* a diffusers :class:`~diffusers.UNet2DModel` on the authors' 64 x 64 greyscale images, four
  levels of plain ResNet blocks (no attention), widths 8-16-32-64, about 0.6 M parameters;
* :class:`~diffusers.DDPMScheduler` with T = 1000 linear betas, epsilon prediction and
  ``clip_sample=False``: the predicted clean image x0 is *not* clipped to ``[-1, 1]``,
  because its variance over the last steps is the hallucination score (clipping would
  hide exactly the overshoot the detector looks for);
* an exponential moving average of the weights is what gets saved.

Output folder layout (the diffusers pipeline layout, loadable with
``DDPMPipeline.from_pretrained``)::

    model_index.json  unet/config.json  unet/diffusion_pytorch_model.safetensors
    scheduler/scheduler_config.json  training_config.json  loss_curve.csv
    evaluation.json  (labelled unconditional samples, when asked for)

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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..datasets.shapes import generate_shapes, label_shapes, summarise_labels
from ..errors import ConfigError
from ..hallucination.shapes_truth import generation_labels
from ..io import atomic_write_text
from .config import ShapesTrainingConfig
from .ema import ema_update, warmup_decay


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


def _write_training_config(out_dir: Path, config: ShapesTrainingConfig, run: dict[str, Any]) -> None:
    """``training_config.json``: the configuration, the command that reruns it, versions and the run's facts."""
    import diffusers

    payload = {
        "config": {**asdict(config), "block_out_channels": list(config.block_out_channels)},
        "command": config.command(out_dir),
        "written_by": "ripbench.training.shapes.train_shapes",
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
        "reproducible": "same seed, torch build and num_threads give the same weights, unless stopped_early",
        **run,
    }
    atomic_write_text(out_dir / "training_config.json", json.dumps(payload, indent=2) + "\n")


def _save(out_dir: Path, ema_unet: Any, scheduler: Any, config: ShapesTrainingConfig,
          losses: list[tuple[int, float, float]], run: dict[str, Any]) -> None:
    from diffusers import DDPMPipeline

    out_dir.mkdir(parents=True, exist_ok=True)
    DDPMPipeline(unet=ema_unet, scheduler=scheduler).save_pretrained(out_dir, safe_serialization=True)
    for weights in out_dir.rglob("*.safetensors"):
        weights.chmod(0o644)  # safetensors writes 0600; keep shipped weights readable by everyone
    _write_training_config(out_dir, config, run)
    with open(out_dir / "loss_curve.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss", "elapsed_s"])
        writer.writerows((s, f"{loss:.6f}", f"{t:.1f}") for s, loss, t in losses)


def train_shapes(
    out_dir: str | Path,
    size: int = ShapesTrainingConfig.size,  # the config's defaults (which made the bundled weights)
    steps: int = ShapesTrainingConfig.steps,
    seed: int = ShapesTrainingConfig.seed,
    progress: bool = True,
    *,
    eval_samples: int = 0,
    **options: Any,
) -> TrainingReport:
    """Train a DDPM on Simple Shapes on the CPU and save it (diffusers layout) to ``out_dir``.

    Deterministic: the learning rate depends on the step count only and all randomness comes
    from ``seed``, so a rerun with the same arguments, torch build and thread count writes the
    same weights (unless ``time_limit_s`` stops it early, which the run records).

    Args:
        out_dir: output folder (created; existing files are overwritten).
        size: image side: 64 (the authors' images) or 32/16 (block averages).
        steps: optimiser steps.
        seed: seeds data, weights and noise.
        progress: show a progress bar.
        eval_samples: after training, draw this many unconditional samples, label them and
            write the summary to ``evaluation.json`` and the report (0 = skip).
        **options: any other :class:`ShapesTrainingConfig` field (``batch_size``,
            ``time_limit_s``, ``num_threads``, ``block_out_channels``, ...).

    Returns:
        A :class:`TrainingReport`.

    Example:
        >>> train_shapes("out/shapes-ddpm", steps=3000)  # doctest: +SKIP
    """
    unknown = set(options) - set(ShapesTrainingConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown training options: {sorted(unknown)}")
    if "block_out_channels" in options:
        options["block_out_channels"] = tuple(options["block_out_channels"])
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

    gen = torch.Generator().manual_seed(config.seed)
    params = list(unet.parameters())
    ema_params = list(ema_unet.parameters())
    losses: list[tuple[int, float, float]] = []
    window: list[float] = []
    all_losses: list[float] = []
    start = time.monotonic()
    elapsed = 0.0
    step = 0
    stopped_early = False
    bar = tqdm(total=config.steps, disable=not progress, desc="train shapes-ddpm")
    unet.train()
    for step in range(1, config.steps + 1):
        for group in optimiser.param_groups:
            group["lr"] = config.learning_rate_at(step - 1)
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
        ema_update(ema_params, params, warmup_decay(step, config.ema_decay))
        window.append(loss.item())
        all_losses.append(window[-1])
        elapsed = time.monotonic() - start
        if step % 10 == 0 or step == config.steps:
            losses.append((step, sum(window) / len(window), elapsed))
            bar.set_postfix(loss=f"{losses[-1][1]:.4f}")
            window = []
        bar.update(1)
        if config.save_every and step % config.save_every == 0 and step < config.steps:
            _save(out_dir, ema_unet, scheduler, config, losses,
                  {"steps_done": step, "finished": False, "wall_time_s": round(elapsed, 1)})
        if config.time_limit_s is not None and elapsed > config.time_limit_s and step < config.steps:
            stopped_early = True
            break
    bar.close()
    if window:
        losses.append((step, sum(window) / len(window), time.monotonic() - start))
    wall = time.monotonic() - start
    final_loss = sum(all_losses[-100:]) / max(1, len(all_losses[-100:]))
    run: dict[str, Any] = {"steps_done": step, "finished": not stopped_early, "stopped_early": stopped_early,
                           "wall_time_s": round(wall, 1), "final_loss": final_loss,
                           "num_parameters": sum(p.numel() for p in params),
                           "threads": torch.get_num_threads()}
    _save(out_dir, ema_unet, scheduler, config, losses, run)
    report = TrainingReport(out_dir, step, wall, final_loss, run["num_parameters"])
    if eval_samples:
        report.evaluation = evaluate_shapes_model(out_dir, eval_samples, seed=config.seed, save=True)
    return report


def _column_repaints(inpainter: Any, count: int, seed: int, batch_size: int) -> list[str]:
    """Repaint one random column of ``count`` fresh Simple Shapes images once; the generation labels."""
    import numpy as np
    import pandas as pd

    from ..datasets.shapes import column_bounds

    data = generate_shapes(count, inpainter.sample_size[0], seed=seed + 1)
    images = torch.from_numpy(data.images)[:, None].expand(-1, 3, -1, -1)
    columns = np.random.default_rng(seed).integers(0, 3, count)
    bounds = column_bounds(inpainter.sample_size[0])
    masks = torch.zeros(count, 1, *inpainter.sample_size)
    for i, k in enumerate(columns):
        masks[i, :, :, bounds[k][0] : bounds[k][1]] = 1
    outputs = torch.cat([
        inpainter.inpaint(images[lo : lo + batch_size], masks[lo : lo + batch_size],
                          list(range(seed + lo, seed + min(lo + batch_size, count)))).images
        for lo in range(0, count, batch_size)
    ])
    before, after = label_shapes(images), label_shapes(outputs)
    x0 = [bounds[k][0] for k in columns]
    x1 = [bounds[k][1] for k in columns]
    table = pd.DataFrame({
        "trajectory_id": [f"i{i}" for i in range(count)] * 2, "iteration": [0] * count + [1] * count,
        "shapes_layout": [lbl.layout for lbl in before + after], "shapes_label": [lbl.kind for lbl in before + after],
        "mask_x0": [None] * count + x0, "mask_x1": [None] * count + x1,
        "mask_y0": [None] * count + [0] * count, "mask_y1": [None] * count + [inpainter.sample_size[0]] * count,
    })
    return generation_labels(table, inpainter.sample_size[0]).tolist()


def evaluate_shapes_model(
    model: str | Path = "shapes",
    num_samples: int = 500,
    *,
    seed: int = 0,
    batch_size: int = 100,
    save: bool = False,
    **model_options: Any,
) -> dict[str, Any]:
    """Label what a Simple Shapes DDPM makes: unconditional samples, and one-column repaints.

    Args:
        model: what :class:`~ripbench.models.pixel_ddpm.PixelDDPMInpainter` accepts as ``model``.
        num_samples: number of samples, and of repainted images (seeds ``seed ..``).
        batch_size: images per batch.
        save: also write the result to ``evaluation.json`` in the model's folder.
        **model_options: e.g. ``steps``.

    Returns:
        ``{"sample": ..., "column": ..., "settings": ...}``. ``sample``:
        :func:`~ripbench.datasets.shapes.summarise_labels` of unconditional samples. ``column``:
        the share of each generation label (:func:`ripbench.hallucination.shapes_truth.generation_labels`)
        when one random column of a fresh Simple Shapes image is repainted, what the recursive
        inpainting loop does. Shares of valid images and duplicates carry 95% Wilson intervals;
        ``samples_per_s`` is machine-dependent.
    """
    from ..models.pixel_ddpm import BUNDLED_SHAPES_DIR, PixelDDPMInpainter
    from ..stats import proportion_ci

    inpainter = PixelDDPMInpainter(model=model, **model_options)
    start = time.monotonic()
    samples = torch.cat([
        inpainter.sample(list(range(seed + lo, seed + min(lo + batch_size, num_samples))))
        for lo in range(0, num_samples, batch_size)
    ])
    elapsed = time.monotonic() - start
    sample: dict[str, Any] = dict(summarise_labels(label_shapes(samples)))
    for name in ("valid_share", "hallucination_rate"):
        sample[f"{name}_ci95"] = list(proportion_ci(round(sample[name] * num_samples), num_samples)[1:])
    generations = _column_repaints(inpainter, num_samples, seed, batch_size)
    column: dict[str, Any] = {"n": num_samples}
    for label in ("valid", "duplicate", "empty", "wrong_shape", "malformed"):
        hits = sum(g == label for g in generations)
        column[f"{label}_share"] = hits / max(num_samples, 1)
        if label in ("valid", "duplicate"):
            column[f"{label}_share_ci95"] = list(proportion_ci(hits, num_samples)[1:])
    summary = {
        "sample": sample,
        "column": column,
        "settings": {"model": str(model), "seeds": f"{seed}..{seed + num_samples - 1}", "steps": inpainter.x0_steps,
                     "samples_per_s": round(num_samples / elapsed, 2), "threads": torch.get_num_threads(),
                     "written_by": "ripbench.training.shapes.evaluate_shapes_model"},
    }
    if save:
        folder = BUNDLED_SHAPES_DIR if str(model) == "shapes" else Path(model)
        atomic_write_text(folder / "evaluation.json", json.dumps(summary, indent=2) + "\n")
    return summary
