"""How much time does the harness add beyond the model call?

Runs the quick preset's images and masks with a chosen model and metric set and prints,
per inpaint (one trajectory x one iteration): model time, harness time (masks, metrics,
snapshots, bookkeeping) and the harness share of model time. Also runs an "identity" model
(returns its input) to isolate the pure harness cost.

    python benchmarks/bench_harness.py [--model biharmonic] [--iterations 10] [--size 128]
        [--metrics lpips,ssim,psnr,mse] [--lpips-weights PATH] [--device auto]

The numbers depend on the machine; report them with its description.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch

from ripbench.config import apply_overrides, load_preset
from ripbench.harness import run_experiment
from ripbench.models import Inpainter, InpaintResult


class Identity(Inpainter):
    """Returns its input: the model costs nothing, so all measured time is the harness's."""

    name = "identity"

    def __init__(self, device: str = "cpu") -> None:
        self._device = torch.device(device)

    @property
    def device(self) -> torch.device:
        return self._device

    def inpaint(self, images, masks, seeds):
        return InpaintResult(images=images.clone())


def measure(model: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        sets = [f"iterations={args.iterations}", f"size={args.size}", f"output_dir={out}", f"device={args.device}",
                f"metrics.names=[{args.metrics}]", f"models=[{{name: '{model}', label: bench}}]",
                "snapshots=[0]", f"batch_size={args.batch_size}"]
        if args.lpips_weights:
            sets.append(f"metrics.lpips_weights={args.lpips_weights}")
        cfg = apply_overrides(load_preset("quick"), sets)
        start = time.perf_counter()
        result = run_experiment(cfg, progress=False)
        wall = time.perf_counter() - start
    t = result.manifest["timing"]
    n = int((result.table["iteration"] > 0).sum())
    return {"inpaints": n, "wall_s": wall, "model_ms": 1e3 * t["model_seconds"] / n,
            "harness_ms": 1e3 * t["overhead_seconds"] / n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="biharmonic")
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=6)
    p.add_argument("--metrics", default="lpips,ssim,psnr,mse")
    p.add_argument("--lpips-weights", default=None)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"cuda: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print(f"{args.size}px, {args.iterations} iterations, batch {args.batch_size}, metrics {args.metrics}")
    for model in (f"{__name__}:Identity" if __name__ != "__main__" else "__main__:Identity", args.model):
        r = measure(model, args)
        share = r["harness_ms"] / r["model_ms"] if r["model_ms"] > 1e-3 else float("nan")
        print(f"{model.split(':')[-1]:>12}: {r['inpaints']} inpaints in {r['wall_s']:.1f} s; per inpaint: model "
              f"{r['model_ms']:.2f} ms, harness {r['harness_ms']:.2f} ms ({100 * share:.1f}% of model time)")


if __name__ == "__main__":
    main()
