"""Cost of ripbench's metrics against scikit-image, per image pair and per inpaint.

* ``skimage SSIM``: ``skimage.metrics.structural_similarity`` on one whole image pair (the
  settings ripbench reproduces: Gaussian window, sigma 1.5, population covariance), on
  8-bit-derived float64 images as a research script would pass them;
* ``ripbench ssim()``: :func:`ripbench.metrics.ssim` on one pair (the same value);
* ``tracker SSIM, all changed``: what the run loop pays per inpaint for SSIM when the model
  changed every pixel (SD without paste-back): the new image's statistics, its maps vs the
  original and vs the previous image, and the whole-image value plus four regions of each;
* ``tracker SSIM, box changed``: the same when the model changed one square of
  ``--box`` pixels (a classical inpainter, paste-back): only the box and its window are
  recomputed (bit-identical values);
* the same two lines for all four metrics, and for LPIPS alone (when weights are given).

    python benchmarks/bench_metrics.py [--size 512] [--batch-size 6] [--box 64] [--threads 1] [--repeat 5]
        [--lpips-weights PATH]

Times are medians over ``--repeat`` runs, in milliseconds of wall-clock time.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from ripbench.metrics import DriftTracker, MetricSuite, ssim


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall-clock milliseconds of ``fn()`` over ``repeat`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def tracker_ms(suite: MetricSuite, original: torch.Tensor, box: int | None, repeat: int) -> float:
    """Milliseconds per inpaint of one tracker step (changed pixels: all, or one ``box`` square per image)."""
    g = torch.Generator().manual_seed(1)
    b, _, h, w = original.shape
    mask = torch.zeros(b, 1, h, w)
    if box is None:
        mask[:] = 1
    else:
        for i in range(b):
            y, x = (i * 37) % (h - box), (i * 53) % (w - box)
            mask[i, :, y : y + box, x : x + box] = 1
    new = torch.where(mask > 0.5, torch.rand(original.shape, generator=g), original)

    def step() -> None:
        tracker = DriftTracker(suite, original)
        tracker.step(original.clone(), torch.zeros_like(mask))  # warm: previous != original from now on
        start = time.perf_counter()
        tracker.step(new, mask)
        spent.append(time.perf_counter() - start)

    spent: list[float] = []
    for _ in range(repeat + 1):
        step()
    return 1e3 * statistics.median(spent[1:]) / b


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=6)
    p.add_argument("--box", type=int, default=64, help="side of the changed square per image")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--lpips-weights", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    size, b = args.size, args.batch_size
    a = torch.rand(b, 3, size, size, generator=g)
    noisy = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    a8 = (a[0].permute(1, 2, 0).numpy() * 255).round().astype(np.float64) / 255
    b8 = (noisy[0].permute(1, 2, 0).numpy() * 255).round().astype(np.float64) / 255
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}; "
          f"{size}px, batch {b}, changed box {args.box}px, medians of {args.repeat}")
    rows = [
        ("skimage SSIM, one pair", median_ms(lambda: structural_similarity(
            a8, b8, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False), args.repeat)),
        ("ripbench ssim(), one pair", median_ms(lambda: ssim(a, noisy), args.repeat) / b),
    ]
    sets = [("SSIM", ("ssim",)), ("PSNR+MSE", ("psnr", "mse")), ("all four", ("lpips", "ssim", "psnr", "mse"))]
    if args.lpips_weights:
        sets.insert(0, ("LPIPS", ("lpips",)))
    for label, names in sets:
        if "lpips" in names and not args.lpips_weights:
            names = tuple(n for n in names if n != "lpips")
            label += " (no LPIPS: no --lpips-weights)"
        suite = MetricSuite(names=names, lpips_weights=args.lpips_weights)
        rows.append((f"tracker {label}, all changed, per inpaint", tracker_ms(suite, a, None, args.repeat)))
        rows.append((f"tracker {label}, box changed, per inpaint", tracker_ms(suite, a, args.box, args.repeat)))
    width = max(len(name) for name, _ in rows)
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:8.2f} ms")


if __name__ == "__main__":
    main()
