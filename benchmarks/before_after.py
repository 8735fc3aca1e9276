"""Before/after table: the harness and metric benchmarks of an older commit and of this checkout, interleaved.

Checks the older commit out into a temporary git worktree and runs, alternately (old, new,
new, old, ...) so that a busy machine slows both alike:

* ``benchmarks/bench_harness.py`` of each tree, with each metric set (its per-model line
  ``harness N ms`` is parsed), and
* this checkout's ``benchmarks/bench_metrics.py`` against each tree's ``ripbench`` package.

Every run is a fresh process with one CPU thread (``OMP_NUM_THREADS=1``). Prints medians over
``--repeat`` rounds as a Markdown table, with the machine and its load.

    python benchmarks/before_after.py --ref 904984c --size 512 --iterations 5 --repeat 3 \\
        --lpips-weights ../shared/lpips-weights
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HARNESS_LINE = re.compile(r"^\s*(\S+): (\d+) inpaints in [\d.]+ s; per inpaint: model ([\d.]+) ms, harness ([\d.]+) ms")
METRIC_LINE = re.compile(r"^(.+?)\s{2,}([\d.]+) ms$")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return model


def machine() -> str:
    """CPU model, cores, load average, Python and torch versions."""
    model = cpu_model()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    import torch

    return (f"{model}, {os.cpu_count()} cores, load average {load}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def run(cmd: list[str], tree: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}) in {tree}: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="the older commit (before)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=6)
    p.add_argument("--model", default="biharmonic")
    p.add_argument("--metric-sets", default="lpips;lpips,ssim,psnr,mse;ssim;psnr,mse",
                   help="';'-separated metric sets for bench_harness")
    p.add_argument("--lpips-weights", default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-metrics", action="store_true", help="only bench_harness")
    args = p.parse_args()
    sets = args.metric_sets.split(";")
    print(f"machine at start: {machine()}", flush=True)
    harness: dict[tuple[str, str, str], list[float]] = defaultdict(list)  # (tree, set, model) -> harness ms
    model_ms: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    metrics: dict[tuple[str, str], list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="ripbench-before-") as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.ref], cwd=REPO, check=True,
                       capture_output=True)
        trees = {"before": old, "after": REPO}
        try:
            for rnd in range(args.repeat):
                order = ["before", "after"] if rnd % 2 == 0 else ["after", "before"]
                for metric_set in sets:
                    for label in order:
                        tree = trees[label]
                        cmd = [sys.executable, str(tree / "benchmarks" / "bench_harness.py"), "--size", str(args.size),
                               "--iterations", str(args.iterations), "--batch-size", str(args.batch_size),
                               "--metrics", metric_set, "--model", args.model]
                        if args.lpips_weights:
                            cmd += ["--lpips-weights", str(Path(args.lpips_weights).resolve())]
                        for line in run(cmd, tree).splitlines():
                            m = HARNESS_LINE.match(line)
                            if m:
                                harness[(label, metric_set, m.group(1))].append(float(m.group(4)))
                                model_ms[(label, metric_set, m.group(1))].append(float(m.group(3)))
                        print(f"round {rnd + 1}: {label} {metric_set} done", file=sys.stderr, flush=True)
                if not args.skip_metrics:
                    for label in order:
                        cmd = [sys.executable, str(HERE / "bench_metrics.py"), "--size", str(args.size),
                               "--batch-size", str(args.batch_size), "--repeat", "3"]
                        if args.lpips_weights:
                            cmd += ["--lpips-weights", str(Path(args.lpips_weights).resolve())]
                        for line in run(cmd, trees[label]).splitlines():
                            m = METRIC_LINE.match(line)
                            if m:
                                metrics[(label, m.group(1).strip())].append(float(m.group(2)))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, capture_output=True)

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    print(f"\nmachine at end: {machine()}")
    print(f"before = {args.ref}, after = this checkout; {args.size} px, {args.iterations} iterations, "
          f"batch {args.batch_size}, one thread; medians of {args.repeat} interleaved rounds\n")
    print("| metrics | model | harness ms per inpaint, before | after | speed-up |")
    print("|---|---|---:|---:|---:|")
    models = sorted({k[2] for k in harness})
    for metric_set in sets:
        for model in models:
            before, after = med(harness[("before", metric_set, model)]), med(harness[("after", metric_set, model)])
            print(f"| {metric_set} | {model} | {before:.1f} | {after:.1f} | {before / after:.1f}x |")
    full, alone = "lpips,ssim,psnr,mse", "lpips"
    if full in sets and alone in sets:
        for model in models:
            for label in ("before", "after"):
                ratio = med(harness[(label, full, model)]) / med(harness[(label, alone, model)])
                print(f"\n{label}, {model}: harness with all four metrics = {ratio:.2f}x harness with LPIPS alone",
                      end="")
        print()
    for model in models:
        model_times = [v for (lbl, _, mdl), vals in model_ms.items() if mdl == model for v in vals]
        print(f"\nmodel time of {model}: median {med(model_times):.1f} ms per inpaint", end="")
    print()
    if metrics:
        print("\n| bench_metrics | before ms | after ms | speed-up |")
        print("|---|---:|---:|---:|")
        names = list(dict.fromkeys(name for _, name in metrics))
        for name in names:
            before, after = med(metrics[("before", name)]), med(metrics[("after", name)])
            print(f"| {name} | {before:.1f} | {after:.1f} | {before / after:.1f}x |")


if __name__ == "__main__":
    main()
