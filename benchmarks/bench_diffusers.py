"""Throughput of recursive inpainting with a diffusers model: naive research loop vs ripbench's harness.

(a) naive loop, as the RIP authors' Gradio demo does it: one pipeline call per image per
    iteration, PIL images in and out, default settings (the prompt is encoded on every
    call, classifier-free guidance on), LPIPS and SSIM per image on the CPU;
(b) ripbench's harness (:func:`ripbench.harness.run_experiment`) on the same model, images,
    masks and steps: batches of trajectories, tensors on the device, prompt embeddings
    cached, redundant CFG skipped, batched metrics;
(c) the model alone (``DiffusersInpainter.inpaint`` in the same batches, no metrics), to
    state the harness's overhead as a share of pure model time.

Prints inpaint-iterations per second (trajectory x iteration) for each, the ratio b/a and
the overhead share. ``--arch tiny`` is a tiny random pipeline that runs anywhere;
``--arch sd2-inpainting`` / ``sd15-inpainting`` are the full-size architectures with random
weights (meaningful timings need a GPU).

Example::

    python benchmarks/bench_diffusers.py --arch tiny --size 64 --steps 10 --batch-sizes 1,4,8,16
    python benchmarks/bench_diffusers.py --arch sd2-inpainting --size 512 --steps 50 --dtype fp16 \\
        --batch-sizes 1,4,8 --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.tiny_pipelines when run from a checkout

from ripbench.config import ExperimentConfig  # noqa: E402
from ripbench.harness import derive_seed, run_experiment  # noqa: E402
from ripbench.inputs import SAMPLE_IMAGES, load_sample  # noqa: E402
from ripbench.masks import build_mask_policy  # noqa: E402
from ripbench.metrics import load_lpips  # noqa: E402
from ripbench.models import register_inpainter  # noqa: E402
from ripbench.models.base import resolve_device, resolve_dtype  # noqa: E402
from ripbench.models.diffusers_backend import DiffusersInpainter  # noqa: E402

MODEL_NAME = "bench-diffusers"


def build_pipeline(arch: str, dtype: str, device: str) -> Any:
    """The pipeline under test: ``tiny`` (random, 9-channel) or a full-size SD architecture."""
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if arch == "tiny":
        from tests.tiny_pipelines import tiny_sd_inpaint

        pipe = tiny_sd_inpaint(Path(tempfile.mkdtemp(prefix="ripbench-tiny-")), in_channels=9)
        return pipe.to(device=dev, **({"dtype": torch_dtype} if torch_dtype != torch.float32 else {}))
    from ripbench.models.sd_configs import full_size_pipeline

    return full_size_pipeline(arch, dtype=torch_dtype, device=dev)


def make_model(
    arch: str = "tiny", steps: int = 10, dtype: str = "auto", device: str = "auto", **options: Any
) -> DiffusersInpainter:
    """Factory registered as ``bench-diffusers`` for the harness run."""
    return DiffusersInpainter(
        build_pipeline(arch, dtype, device), steps=steps, dtype=dtype, device=device, **options
    )


def default_lpips_weights() -> Path | None:
    env = os.environ.get("RIPBENCH_LPIPS_WEIGHTS")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "lpips-weights"]:
        if cand.exists():
            return cand
    return None


def trajectories(n_images: int, n_seeds: int, size: int) -> list[tuple[str, torch.Tensor, int]]:
    names = list(SAMPLE_IMAGES)[:n_images]
    return [(n, load_sample(n, size=size).pixels, seed) for n in names for seed in range(n_seeds)]


def naive_loop(
    pipe: Any,
    trajs: list[tuple[str, torch.Tensor, int]],
    args: argparse.Namespace,
    lpips_weights: Path | None,
) -> float:
    """(a) one pipeline call per image per iteration, PIL in/out, per-image CPU metrics. Returns seconds."""
    from PIL import Image
    from skimage.metrics import structural_similarity

    policy = build_mask_policy({"policy": "grid", "size": args.mask_size})
    lpips_net = load_lpips("alex", lpips_weights, "cpu").model

    def to_pil(t: torch.Tensor) -> Image.Image:
        return Image.fromarray((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))

    def to_t(im: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None]

    start = time.perf_counter()
    for _, pixels, seed in trajs:
        original = to_pil(pixels)
        current = original
        for k in range(1, args.iterations + 1):
            mask = Image.fromarray(policy(args.size, args.size, k, seed).astype(np.uint8) * 255)
            current = pipe(
                prompt="",
                image=current,
                mask_image=mask,
                height=args.size,
                width=args.size,
                num_inference_steps=args.steps,
                generator=torch.Generator().manual_seed(derive_seed(seed, k)),
            ).images[0]
            with torch.no_grad():
                float(lpips_net(to_t(original) * 2 - 1, to_t(current) * 2 - 1, normalize=False).item())
            float(structural_similarity(np.asarray(original), np.asarray(current), channel_axis=2))
    return time.perf_counter() - start


def model_only(
    model: DiffusersInpainter,
    trajs: list[tuple[str, torch.Tensor, int]],
    batch_size: int,
    args: argparse.Namespace,
) -> float:
    """(c) ``model.inpaint`` alone on the same batches, masks and seeds. Returns seconds."""
    policy = build_mask_policy({"policy": "grid", "size": args.mask_size})
    device = model.device
    total = 0.0
    for lo in range(0, len(trajs), batch_size):
        chunk = trajs[lo : lo + batch_size]
        current = torch.stack([p for _, p, _ in chunk]).to(device)
        for k in range(1, args.iterations + 1):
            masks = torch.from_numpy(
                np.stack([policy(args.size, args.size, k, s) for _, _, s in chunk])[:, None]
            )
            masks = masks.to(device=device, dtype=current.dtype)
            seeds = [derive_seed(s, k) for _, _, s in chunk]
            _sync(device)
            t0 = time.perf_counter()
            current = model.inpaint(current, masks, seeds).images
            _sync(device)
            total += time.perf_counter() - t0
    return total


def harness_run(
    trajs_images: list[str],
    n_seeds: int,
    batch_size: int,
    args: argparse.Namespace,
    lpips_weights: Path | None,
    out_dir: Path,
) -> dict[str, Any]:
    """(b) ripbench's harness; returns its timing (loop only, model build excluded) and wall time."""
    config = ExperimentConfig.model_validate(
        {
            "name": f"bench-b{batch_size}",
            "iterations": args.iterations,
            "size": args.size,
            "seeds": list(range(n_seeds)),
            "inputs": {"source": "samples", "names": trajs_images},
            "masks": [{"policy": "grid", "size": args.mask_size}],
            "models": [
                {"name": MODEL_NAME, "options": {"arch": args.arch, "steps": args.steps, "dtype": args.dtype}}
            ],
            "metrics": {
                "names": ["lpips", "ssim"],
                "lpips_weights": str(lpips_weights) if lpips_weights else None,
            },
            "hallucination": {"enabled": False},
            "snapshots": [],
            "batch_size": batch_size,
            "device": args.device,
            "output_dir": str(out_dir),
        }
    )
    t0 = time.perf_counter()
    result = run_experiment(config, overwrite=True, progress=False)
    wall = time.perf_counter() - t0
    timing = result.manifest["timing"]
    return {
        "loop_seconds": timing["model_seconds"] + timing["overhead_seconds"],
        "wall_seconds": wall,
        "model_seconds": timing["model_seconds"],
        "overhead_seconds": timing["overhead_seconds"],
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="tiny", choices=["tiny", "sd2-inpainting", "sd15-inpainting"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--images", type=int, default=8, help=f"sample images (at most {len(SAMPLE_IMAGES)})")
    parser.add_argument("--mask-size", type=int, default=None, help="grid square size (default size/4)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    args.mask_size = args.mask_size or args.size // 4
    if args.threads:
        torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    register_inpainter(MODEL_NAME, make_model, description="benchmark model (tiny or full-size random)")
    n_images = min(args.images, len(SAMPLE_IMAGES))
    n_seeds = math.ceil(max(batch_sizes) / n_images)
    trajs = trajectories(n_images, n_seeds, args.size)
    n_inpaints = len(trajs) * args.iterations
    lpips_weights = default_lpips_weights()
    model = make_model(args.arch, args.steps, args.dtype, args.device)
    print(
        f"arch={args.arch} size={args.size} steps={args.steps} dtype={model.dtype} device={model.device} "
        f"trajectories={len(trajs)} iterations={args.iterations} threads={torch.get_num_threads()} "
        f"cfg_skipped={model.cfg_skipped}",
        flush=True,
    )
    model.inpaint(
        trajs[0][1][None].to(model.device), torch.ones(1, 1, args.size, args.size, device=model.device), [0]
    )  # warm-up
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "inpaints": n_inpaints}
    if not args.skip_naive:
        naive = naive_loop(model.pipe, trajs, args, lpips_weights)
        report["naive_it_per_s"] = n_inpaints / naive
        print(
            f"(a) naive loop          : {n_inpaints / naive:8.2f} inpaint-it/s  ({naive:.1f} s)", flush=True
        )
    rows = []
    with tempfile.TemporaryDirectory(prefix="ripbench-bench-") as tmp:
        for bs in batch_sizes:
            pure = model_only(model, trajs, bs, args)
            h = harness_run(
                [t for t in list(SAMPLE_IMAGES)[:n_images]], n_seeds, bs, args, lpips_weights, Path(tmp)
            )
            row = {
                "batch_size": bs,
                "model_it_per_s": n_inpaints / pure,
                "harness_it_per_s": n_inpaints / h["loop_seconds"],
                "harness_wall_it_per_s": n_inpaints / h["wall_seconds"],
                "overhead_share_vs_model_only": (h["loop_seconds"] - pure) / pure,
                "harness_reported_overhead_share": h["overhead_seconds"] / h["model_seconds"],
            }
            if "naive_it_per_s" in report:
                row["ratio_b_over_a"] = row["harness_it_per_s"] / report["naive_it_per_s"]
            rows.append(row)
            ratio = f"{row['ratio_b_over_a']:6.2f}x" if "ratio_b_over_a" in row else "   n/a"
            print(
                f"(b) harness  batch {bs:3d}: {row['harness_it_per_s']:8.2f} inpaint-it/s  b/a={ratio}  "
                f"model-only {row['model_it_per_s']:8.2f} it/s  "
                f"overhead {100 * row['overhead_share_vs_model_only']:5.1f}% "
                f"of model time (harness-reported {100 * row['harness_reported_overhead_share']:5.1f}%, "
                f"wall incl. model build {row['harness_wall_it_per_s']:.2f} it/s)",
                flush=True,
            )
    report["batches"] = rows
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
