"""How much time does the harness add beyond the model call?

Runs the quick preset's images and masks with a chosen model and metric set and prints,
per inpaint (one trajectory x one iteration): model time, harness time (masks, metrics,
snapshots, bookkeeping) and the harness share of model time, then how the harness time
splits into metrics (the drift tracker) and everything else. Also runs an "identity" model
(returns its input) to isolate the pure harness cost.

    python benchmarks/bench_harness.py [--model biharmonic] [--iterations 10] [--size 128]
        [--metrics lpips,ssim,psnr,mse] [--lpips-weights PATH] [--device auto] [--threads 1] [--repeat 3]
        [--dinov2-model PATH] [--clip-model PATH] [--random-backbones]

With the semantic metrics (``--metrics dinov2,clip``) their checkpoints come from ``--dinov2-model`` /
``--clip-model`` (Hub id or folder), or, with ``--random-backbones``, from randomly initialised
checkpoints of the default architectures (DINOv2-small, CLIP ViT-B/32; nothing downloaded: the
values mean nothing, the cost is the real one). The population metrics (FD, KID, CMMD with their
bootstrap intervals, as the report computes them from the stored features) are then timed too, as
a share of the run's wall time.

With ``--repeat N`` every measurement runs N times and the medians are printed. The numbers
depend on the machine (and on what else runs on it); report them with its description.

It also prints the cost of the hand-off between iterations (config ``handoff``: ``uint8``, ``png``,
``jpeg:95``, ``jpeg:75``) per inpaint, on a batch of ``--handoff-batch`` images of ``--handoff-size``
px (default 8 x 512 px, the rip-paper batch) on the chosen device; ``--handoff-only`` prints only that:

    python benchmarks/bench_harness.py --handoff-only [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ripbench.config import apply_overrides, load_preset
from ripbench.handoff import Handoff
from ripbench.models import Inpainter, InpaintResult
from ripbench.run import run_experiment


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


@contextmanager
def metric_timer() -> Iterator[list[float]]:
    """Seconds spent in the drift tracker's steps (the metrics), while the block runs."""
    import ripbench.run.loop as loop

    spent = [0.0]
    original = loop.DriftTracker

    class Timed(original):  # type: ignore[misc, valid-type]
        def step(self, new, mask):
            start = time.perf_counter()
            out = super().step(new, mask)
            if new.device.type == "cuda":
                torch.cuda.synchronize(new.device)
            spent[0] += time.perf_counter() - start
            return out

    loop.DriftTracker = Timed  # type: ignore[misc]
    try:
        yield spent
    finally:
        loop.DriftTracker = original  # type: ignore[misc]


def measure(model: str, args: argparse.Namespace) -> dict[str, float]:
    """One harness run of ``model``: inpaints, wall seconds, and per-inpaint milliseconds."""
    with tempfile.TemporaryDirectory() as out, metric_timer() as spent:
        sets = [f"iterations={args.iterations}", f"size={args.size}", f"output_dir={out}", f"device={args.device}",
                f"metrics.names=[{args.metrics}]", f"models=[{{name: '{model}', label: bench}}]",
                "snapshots=[0]", f"batch_size={args.batch_size}"]
        if args.lpips_weights:
            sets.append(f"metrics.lpips_weights={args.lpips_weights}")
        for kind, folder in (args.backbones or {}).items():
            if kind in args.metrics.split(","):
                sets.append(f"metrics.options.{kind}.model={folder}")
        cfg = apply_overrides(load_preset("quick"), sets)
        start = time.perf_counter()
        result = run_experiment(cfg, progress=False)
        wall = time.perf_counter() - start
        population_s = math.nan
        if {"dinov2", "clip"} & set(args.metrics.split(",")):
            from ripbench.analysis import load_runs, population_drift

            start = time.perf_counter()
            population_drift(load_runs(result.run_dir), ["model", "mask_label"], n_boot=200)
            population_s = time.perf_counter() - start
    t = result.manifest["timing"]
    n = int((result.table["iteration"] > 0).sum())
    harness_ms = 1e3 * t["overhead_seconds"] / n
    metrics_ms = 1e3 * spent[0] / n
    return {"inpaints": n, "wall_s": wall, "model_ms": 1e3 * t["model_seconds"] / n,
            "harness_ms": harness_ms, "metrics_ms": metrics_ms, "other_ms": harness_ms - metrics_ms,
            "population_s": population_s}


#: The hand-off forms timed (``float`` costs nothing: it hands the output on as it is).
HANDOFFS = ("uint8", "png", "jpeg:95", "jpeg:75")


def handoff_cost(device: str, size: int, batch: int, repeat: int) -> dict[str, float]:
    """Milliseconds per inpaint (one image) of each hand-off in :data:`HANDOFFS`, median of ``repeat`` batches."""
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(batch, 3, size // 16, size // 16, generator=g)
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear").to(dev)
    images = (images + 0.02 * torch.randn(images.shape, generator=g).to(dev)).clamp(0, 1)  # photo-like texture
    out = {}
    for form in HANDOFFS:
        handoff = Handoff.parse(form)
        handoff.apply(images)  # warm-up (codec initialisation)
        times = []
        for _ in range(max(3, repeat)):
            output = images.clone()  # the loop hands on its own copy of the output, in place
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            handoff.apply(output, inplace=True)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - start)
        out[form] = 1e3 * statistics.median(times) / batch
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="biharmonic")
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=6)
    p.add_argument("--metrics", default="lpips,ssim,psnr,mse")
    p.add_argument("--lpips-weights", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 gives the steadiest numbers)")
    p.add_argument("--repeat", type=int, default=1, help="run every measurement this often; print medians")
    p.add_argument("--handoff-size", type=int, default=512, help="image side of the hand-off timing")
    p.add_argument("--handoff-batch", type=int, default=8, help="images per batch of the hand-off timing")
    p.add_argument("--handoff-only", action="store_true", help="time only the hand-off between iterations")
    p.add_argument("--dinov2-model", default=None, help="DINOv2 checkpoint (Hub id or folder) for --metrics dinov2")
    p.add_argument("--clip-model", default=None, help="CLIP checkpoint (Hub id or folder) for --metrics clip")
    p.add_argument("--random-backbones", action="store_true",
                   help="randomly initialised DINOv2-small / CLIP-B/32 checkpoints for the semantic metrics")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        args.backbones = semantic_backbones(args, folder)
        run_all(args)


def semantic_backbones(args: argparse.Namespace, folder: str) -> dict[str, str]:
    """Checkpoint of each semantic metric: the given one, else a random full-size one with ``--random-backbones``."""
    out = {kind: model for kind, model in (("dinov2", args.dinov2_model), ("clip", args.clip_model)) if model}
    if args.random_backbones:
        from ripbench.metrics.semantic import save_random_checkpoint

        for kind in ("dinov2", "clip"):
            if kind not in out:
                out[kind] = str(save_random_checkpoint(kind, f"{folder}/{kind}", size="full"))
    return out


def run_all(args: argparse.Namespace) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"cuda: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    cost = handoff_cost(args.device, args.handoff_size, args.handoff_batch, max(5, args.repeat))
    print(f"hand-off per inpaint ({args.handoff_size} px, batches of {args.handoff_batch}, {args.device}): "
          + ", ".join(f"{form} {ms:.2f} ms" for form, ms in cost.items()))
    if args.handoff_only:
        return
    print(f"{args.size}px, {args.iterations} iterations, batch {args.batch_size}, metrics {args.metrics}"
          + (f", medians of {args.repeat} runs" if args.repeat > 1 else ""))
    for model in (f"{__name__}:Identity" if __name__ != "__main__" else "__main__:Identity", args.model):
        runs = [measure(model, args) for _ in range(max(1, args.repeat))]
        r = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        share = r["harness_ms"] / r["model_ms"] if r["model_ms"] > 1e-3 else float("nan")
        print(f"{model.split(':')[-1]:>12}: {int(r['inpaints'])} inpaints in {r['wall_s']:.1f} s; per inpaint: model "
              f"{r['model_ms']:.2f} ms, harness {r['harness_ms']:.2f} ms ({100 * share:.1f}% of model time): "
              f"metrics {r['metrics_ms']:.2f} ms, other {r['other_ms']:.2f} ms")
        if not math.isnan(r["population_s"]):
            print(f"{'':>12}  population metrics (FD, KID, CMMD, 200 resamples, every iteration and group): "
                  f"{r['population_s']:.2f} s = {100 * r['population_s'] / r['wall_s']:.2f}% of the run's wall time")


if __name__ == "__main__":
    main()
