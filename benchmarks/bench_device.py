"""The device benchmark: naive research loop vs ripbench's harness, side by side in one run.

On a GPU it builds the full-size Stable Diffusion 2 inpainting architecture from its config
with random weights (:func:`ripbench.models.sd_configs.full_size_pipeline`; nothing is
downloaded: the images are meaningless, the computation per step is the real model's), and
times, in one process:

* **naive**: what a research script does (the RIP authors' demo): one pipeline call per image
  per iteration, PIL images in and out, the prompt encoded on every call, classifier-free
  guidance run although the prompt is empty, LPIPS and SSIM per image on the CPU;
* **model alone**: :meth:`DiffusersInpainter.inpaint` on batches of trajectories (the
  harness's model calls without the harness), to state the harness's overhead;
* **harness**: :func:`ripbench.run.run_experiment` on the same images, masks and seeds:
  batches, tensors on the device, prompt embeddings cached, redundant CFG skipped, all four
  metrics in five regions vs the original and the previous image on the device, the
  hallucination score, results written in the background;

at batch 1, 8 and 16, eager and with ``torch.compile`` (UNet and VAE). It prints a table
(images/s, ratio to naive, harness overhead over the model alone, peak GPU memory, warm-up
time) and writes ``results/benchmarks/<device>.json`` after every row (a run cut short keeps
what it measured). Without a GPU it runs a small CPU variant (a tiny random pipeline, no
compile) that prints the same table in a few minutes.

    bash benchmarks/device.sh                      # what it runs: python benchmarks/bench_device.py
    python benchmarks/bench_device.py --steps 50 --batch-sizes 1,8,16 --compile auto --budget-s 480

``--budget-s`` stops starting new configurations once that many seconds have passed (the rows
not run are listed as skipped), so the whole command fits a time limit.

**Semantic metrics** (``--semantic auto``: on a GPU): one more eager harness row at the largest batch
of at most 8 with the DINOv2 and CLIP metrics added (randomly initialised DINOv2-small and CLIP
ViT-B/32 checkpoints, ``--semantic-size full``; nothing downloaded), with its extra time per inpaint
over the plain harness row of that batch, a direct per-image comparison on the device of the
semantic metrics' work (both backbones) with LPIPS-alex's, and the time of the population metrics
(FD, KID, CMMD with intervals, from the stored features) as a share of the run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.tiny_pipelines for the CPU variant, ripbench from a checkout

from ripbench.config import ExperimentConfig  # noqa: E402
from ripbench.io import atomic_write_text  # noqa: E402
from ripbench.models import Inpainter, register_inpainter  # noqa: E402
from ripbench.models.base import resolve_device, resolve_dtype  # noqa: E402
from ripbench.models.diffusers_backend import DiffusersInpainter  # noqa: E402
from ripbench.run import run_experiment  # noqa: E402
from ripbench.run.plan import Trajectory, plan  # noqa: E402

MODEL_NAME = "bench-device"
SAMPLES = ("astronaut", "chelsea", "coffee", "china", "brick", "hubble")
_CURRENT: list[Inpainter] = []


def _current_model(**_: Any) -> Inpainter:
    """Factory of the harness runs: the model built once by this script (eager, then compiled)."""
    return _CURRENT[0]


def device_name(device: torch.device) -> str:
    """The card's name (``NVIDIA H200``) or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "CPU " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"CPU {platform.processor() or platform.machine()}"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def default_lpips_weights() -> str | None:
    for candidate in (os.environ.get("RIPBENCH_LPIPS_WEIGHTS"), REPO / ".lpips", REPO.parent / "shared" / "lpips-weights"):
        if candidate and Path(candidate).is_dir() and (Path(candidate) / "alexnet_features.pth").is_file():
            return str(candidate)
    return None


def build_pipeline(arch: str, dtype: torch.dtype, device: torch.device) -> Any:
    """``tiny`` (random 9-channel SD inpainting with a tokenizer) or a full-size architecture (random)."""
    if arch == "tiny":
        from tests.tiny_pipelines import tiny_sd_inpaint

        pipe = tiny_sd_inpaint(Path(tempfile.mkdtemp(prefix="ripbench-tiny-")), in_channels=9)
        return pipe.to(device=device, dtype=dtype)
    from ripbench.models.sd_configs import full_size_pipeline

    return full_size_pipeline(arch, dtype=dtype, device=device, with_text_encoder=True)


def split(batch: int) -> tuple[int, int]:
    """``batch`` trajectories as (images, seeds): as many sample images as divide it (at most 6)."""
    images = max(d for d in range(1, min(batch, len(SAMPLES)) + 1) if batch % d == 0)
    return images, batch // images


def make_config(args: argparse.Namespace, name: str, batch: int, out: Path, metrics: list[str],
                lpips_weights: str | None) -> ExperimentConfig:
    images, seeds = split(batch)
    return ExperimentConfig.model_validate({
        "name": name, "iterations": args.iterations, "size": args.size, "seeds": list(range(seeds)),
        "inputs": {"source": "samples", "names": list(SAMPLES[:images])},
        "masks": [{"policy": "grid", "size": args.size // 4}],
        "models": [{"name": MODEL_NAME, "label": "bench"}],
        "metrics": {"names": metrics, "lpips_weights": lpips_weights},
        "snapshots": [], "batch_size": batch, "device": args.device, "output_dir": str(out),
    })


def trajectories(config: ExperimentConfig) -> list[Trajectory]:
    return [t for _, ts in plan(config) for t in ts]


def naive_loop(pipe: Any, trajs: list[Trajectory], args: argparse.Namespace, device: torch.device,
               lpips_weights: str | None) -> float:
    """The research-script loop; returns seconds for ``len(trajs) * iterations`` inpaints."""
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    lpips_net = None
    if lpips_weights:
        from ripbench.metrics import load_lpips

        lpips_net = load_lpips("alex", lpips_weights, "cpu").model

    def to_pil(t: torch.Tensor) -> Image.Image:
        return Image.fromarray((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))

    def to_tensor(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]

    def prompt() -> dict[str, Any]:  # encoded on every call, as a script calling pipe(prompt="") does
        if getattr(pipe, "tokenizer", None) is not None:
            return {"prompt": ""}
        ids = torch.full((1, 77), pipe.text_encoder.config.eos_token_id, device=device)
        ids[0, 0] = pipe.text_encoder.config.bos_token_id
        with torch.no_grad():
            embeds = pipe.text_encoder(ids)[0]
        return {"prompt_embeds": embeds, "negative_prompt_embeds": embeds}

    size = args.size
    _sync(device)
    start = time.perf_counter()
    for t in trajs:
        original = to_pil(t.image.pixels)
        current = original
        for k in range(1, args.iterations + 1):
            mask = Image.fromarray(t.policy(size, size, k, t.key).astype(np.uint8) * 255)
            current = pipe(image=current, mask_image=mask, height=size, width=size, num_inference_steps=args.steps,
                           generator=torch.Generator(device).manual_seed(t.noise_seed(k)), **prompt()).images[0]
            a, b = np.asarray(original), np.asarray(current)
            if lpips_net is not None:
                with torch.no_grad():
                    float(lpips_net(to_tensor(original) * 2 - 1, to_tensor(current) * 2 - 1).item())
            float(structural_similarity(a, b, channel_axis=2))
            float(peak_signal_noise_ratio(a, b))
    return time.perf_counter() - start


def model_alone(model: DiffusersInpainter, trajs: list[Trajectory], args: argparse.Namespace,
                band: tuple[float, float] | None) -> float:
    """The harness's model calls without the harness (same batch, masks, seeds); returns seconds."""
    device = model.device
    size = args.size
    current = torch.stack([t.image.pixels for t in trajs]).to(device)
    record = {"x0_band": band} if band is not None else {}
    _sync(device)
    start = time.perf_counter()
    for k in range(1, args.iterations + 1):
        masks = torch.from_numpy(np.stack([t.policy(size, size, k, t.key) for t in trajs])[:, None])
        masks = masks.to(device=device, dtype=current.dtype)
        current = model.inpaint(current, masks, [t.noise_seed(k) for t in trajs], **record).images.clamp(0, 1)
    _sync(device)
    return time.perf_counter() - start


class Report:
    """The table and the JSON file, rewritten after every row."""

    COLUMNS = ("configuration", "batch", "compile", "img/s", "x naive", "model alone img/s", "overhead %",
               "harness-reported %", "peak GiB", "warm-up s")

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.data: dict[str, Any] = {**header, "rows": [], "skipped": [], "errors": []}

    def save(self) -> None:
        text = json.dumps(self.data, indent=2) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, text)
        if os.environ.get("OUT"):  # a remote runner's output folder: a run killed at its time limit keeps its rows
            atomic_write_text(Path(os.environ["OUT"]) / self.path.name, text)

    def add(self, row: dict[str, Any]) -> None:
        self.data["rows"].append(row)
        self.save()
        print(self.line(row), flush=True)

    def note(self, kind: str, text: str) -> None:
        self.data[kind].append(text)
        self.save()
        print(f"  {kind[:-1] if kind.endswith('s') else kind}: {text}", flush=True)

    @staticmethod
    def _fmt(value: Any, spec: str) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

    def line(self, row: dict[str, Any]) -> str:
        f = self._fmt
        return (f"| {row['configuration']} | {row['batch']} | {'yes' if row['compile'] else 'no'} | "
                f"{f(row['img_per_s'], '.3f')} | {f(row.get('ratio_to_naive'), '.2f')} | "
                f"{f(row.get('model_alone_img_per_s'), '.3f')} | {f(row.get('overhead_pct'), '.1f')} | "
                f"{f(row.get('harness_reported_overhead_pct'), '.1f')} | {f(row.get('peak_gib'), '.1f')} | "
                f"{f(row.get('warmup_s'), '.1f')} |")

    def table(self) -> str:
        head = "| " + " | ".join(self.COLUMNS) + " |\n|" + "---|" * len(self.COLUMNS)
        return "\n".join([head, *(self.line(r) for r in self.data["rows"])])


def _median_ms(fn: Any, device: torch.device, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def semantic_row(report: Report, model: DiffusersInpainter, args: argparse.Namespace, out: Path, metrics: list[str],
                 lpips_weights: str | None, device: torch.device, t0: float) -> None:
    """The harness with DINOv2 and CLIP added (random backbones of the default sizes), against the plain row."""
    from ripbench.metrics import MetricSuite
    from ripbench.metrics.semantic import save_random_checkpoint

    batch = max([b for b in report.data["batch_sizes"] if b <= 8] or [min(report.data["batch_sizes"])])
    label = f"harness + DINOv2 + CLIP, batch {batch}, eager"
    if time.perf_counter() - t0 > args.budget_s:
        report.note("skipped", f"{label}: time budget of {args.budget_s:.0f} s spent")
        return
    try:
        folders = {kind: str(save_random_checkpoint(kind, out / f"backbone-{kind}", size=args.semantic_size))
                   for kind in ("dinov2", "clip")}
        config = make_config(args, f"sem-b{batch}", batch, out, [*metrics, "dinov2", "clip"], lpips_weights)
        config = config.model_copy(update={"metrics": config.metrics.model_copy(
            update={"options": {kind: {"model": folder} for kind, folder in folders.items()}})})
        _reset_memory(device)
        result = run_experiment(config, overwrite=True, progress=False)
        timing = result.manifest["timing"]
        loop = timing["model_seconds"] + timing["overhead_seconds"]
        n = batch * args.iterations
        plain = next((r for r in report.data["rows"] if r["configuration"] == "harness" and r["batch"] == batch
                      and not r["compile"]), None)
        from ripbench.analysis import load_runs, population_drift

        start = time.perf_counter()
        population_drift(load_runs(result.run_dir), ["model", "mask_label"], n_boot=200)
        population_s = time.perf_counter() - start
        images = torch.rand(batch, 3, args.size, args.size, device=device,
                            generator=torch.Generator(device=device).manual_seed(0))
        semantic = MetricSuite(["dinov2", "clip"], {k: {"model": f} for k, f in folders.items()}, device)
        per_image = {"semantic_ms_per_image": _median_ms(lambda: semantic.prepare(images), device) / batch}
        if lpips_weights:
            lpips = MetricSuite(["lpips"], {"lpips": {"weights": lpips_weights}}, device)
            per_image["lpips_alex_ms_per_image"] = _median_ms(lambda: lpips.prepare(images), device) / batch
        report.add({
            "configuration": "harness + DINOv2 + CLIP", "batch": batch, "compile": False, "img_per_s": n / loop,
            "ratio_to_naive": (n / loop) / plain["img_per_s"] * plain["ratio_to_naive"] if plain else None,
            "peak_gib": _peak_gib(device), "inpaints": n, "seconds": loop,
            "extra_ms_per_inpaint": 1e3 * (loop - plain["seconds"]) / n if plain else None,
            "population_s": population_s, "population_share_of_run": population_s / loop,
            "backbones": f"random {args.semantic_size} DINOv2-small / CLIP-B/32 architectures", **per_image,
        })
        row = report.data["rows"][-1]
        extra = row["extra_ms_per_inpaint"]
        print(f"  semantic: {'-' if extra is None else f'{extra:.1f}'} ms per inpaint over the plain harness; per "
              f"image on the device: DINOv2 + CLIP {per_image['semantic_ms_per_image']:.2f} ms"
              + (f", LPIPS-alex {per_image['lpips_alex_ms_per_image']:.2f} ms" if lpips_weights else "")
              + f"; population metrics {population_s:.2f} s = {100 * population_s / loop:.2f}% of the run", flush=True)
    except torch.cuda.OutOfMemoryError as exc:
        report.note("errors", f"{label}: out of GPU memory ({exc})")
        torch.cuda.empty_cache()
    except Exception as exc:
        report.note("errors", f"{label}: {type(exc).__name__}: {exc}")
        traceback.print_exc()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--arch", default="auto", help="sd2-inpainting (GPU default), sd15-inpainting or tiny (CPU default)")
    p.add_argument("--size", type=int, default=None, help="image side (default 512 on a GPU, 64 on the CPU)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default 50 on a GPU, 10 on the CPU)")
    p.add_argument("--iterations", type=int, default=2, help="RIP iterations per trajectory")
    p.add_argument("--batch-sizes", default="1,8,16")
    p.add_argument("--dtype", default="auto", help="auto (fp16 on CUDA, fp32 on CPU), fp16, bf16, fp32")
    p.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                   help="also time torch.compile of UNet and VAE (auto: on CUDA only)")
    p.add_argument("--naive-images", type=int, default=2, help="trajectories of the naive loop")
    p.add_argument("--lpips-weights", default=None, help="LPIPS backbone weights (default: $RIPBENCH_LPIPS_WEIGHTS, "
                   ".lpips/ or ../shared/lpips-weights; without them LPIPS is left out of both loops)")
    p.add_argument("--budget-s", type=float, default=480.0, help="start no new configuration after this many seconds")
    p.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--semantic", default="auto", choices=["auto", "on", "off"],
                   help="add a harness row with the DINOv2 and CLIP metrics (auto: on CUDA only)")
    p.add_argument("--semantic-size", default="full", choices=["full", "tiny"],
                   help="random backbones of the default architectures (full) or tiny ones (tests)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    args.device = str(device)
    gpu = device.type == "cuda"
    args.arch = args.arch if args.arch != "auto" else ("sd2-inpainting" if gpu else "tiny")
    args.size = args.size or (512 if gpu else 64)
    args.steps = args.steps or (50 if gpu else 10)
    compile_on = args.compile == "on" or (args.compile == "auto" and gpu)
    semantic_on = args.semantic == "on" or (args.semantic == "auto" and gpu)
    dtype = resolve_dtype(args.dtype, device)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    lpips_weights = args.lpips_weights or default_lpips_weights()
    metrics = (["lpips"] if lpips_weights else []) + ["ssim", "psnr", "mse"]
    name = device_name(device)
    import diffusers

    report = Report(args.out / f"{slug(name)}.json", {
        "device": name, "device_type": device.type, "arch": args.arch, "size": args.size, "steps": args.steps,
        "iterations": args.iterations, "dtype": str(dtype).removeprefix("torch."), "batch_sizes": batches,
        "compile": compile_on, "semantic": semantic_on, "harness_metrics": metrics, "naive_metrics": (["lpips"] if lpips_weights else [])
        + ["ssim (skimage)", "psnr (skimage)"], "torch": torch.__version__, "diffusers": diffusers.__version__,
        "cuda": torch.version.cuda if gpu else None, "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "what": "img/s = inpaints (trajectory x iteration) per second of loop time (model build, compile and "
                "warm-up excluded); overhead % = (harness loop - model alone) / model alone; harness-reported % "
                "= the harness's own overhead_seconds / model_seconds (device-event timeline on CUDA)",
    })
    print(f"{name}: {args.arch} at {args.size} px, {args.steps} steps, {args.iterations} iterations, {dtype}, "
          f"batches {batches}, compile {'eager + compiled' if compile_on else 'eager only'}, metrics {metrics}"
          + ("" if lpips_weights else " (no LPIPS weights found: LPIPS left out of both loops)"), flush=True)
    pipe = build_pipeline(args.arch, dtype, device)
    register_inpainter(MODEL_NAME, _current_model, description="device benchmark model")
    print(f"built in {time.perf_counter() - t0:.0f} s", flush=True)
    print(report.table().split("\n", 2)[0] + "\n" + report.table().split("\n", 2)[1], flush=True)

    options = {"steps": args.steps, "dtype": dtype, "device": device, "paste_back": False}
    with tempfile.TemporaryDirectory(prefix="ripbench-device-") as tmp:
        out = Path(tmp)
        # (a) naive loop, eager, before anything is compiled
        naive_trajs = trajectories(make_config(args, "naive", args.naive_images, out, metrics, lpips_weights))
        naive_rate = float("nan")
        try:
            warm = time.perf_counter()
            naive_loop(pipe, naive_trajs[:1], argparse.Namespace(**{**vars(args), "iterations": 1}), device, None)
            warm_s = time.perf_counter() - warm
            _reset_memory(device)
            seconds = naive_loop(pipe, naive_trajs, args, device, lpips_weights)
            naive_rate = len(naive_trajs) * args.iterations / seconds
            report.add({"configuration": "naive loop", "batch": 1, "compile": False, "img_per_s": naive_rate,
                        "ratio_to_naive": 1.0, "peak_gib": _peak_gib(device), "warmup_s": warm_s,
                        "inpaints": len(naive_trajs) * args.iterations, "seconds": seconds})
        except Exception as exc:  # one clear line, and the other rows still run
            report.note("errors", f"naive loop: {type(exc).__name__}: {exc}")
            traceback.print_exc()
        phases = [False, True] if compile_on else [False]
        for compiled in phases:
            model = DiffusersInpainter(pipe, compile_unet=compiled, compile_vae=compiled, **options)
            band = None
            _CURRENT[:] = [model]
            for batch in batches:
                label = f"harness, batch {batch}, {'compiled' if compiled else 'eager'}"
                if time.perf_counter() - t0 > args.budget_s:
                    report.note("skipped", f"{label}: time budget of {args.budget_s:.0f} s spent")
                    continue
                try:
                    config = make_config(args, f"b{batch}-{int(compiled)}", batch, out, metrics, lpips_weights)
                    if config.hallucination.enabled and model.returns_x0_trajectory:
                        from ripbench.hallucination import ScoreWindow

                        band = ScoreWindow.from_spec(config.hallucination.band, config.hallucination.min_steps,
                                                     unit=config.hallucination.unit).band
                    trajs = trajectories(config)
                    warm = time.perf_counter()
                    model_alone(model, trajs, argparse.Namespace(**{**vars(args), "iterations": 1}), band)
                    warm_s = time.perf_counter() - warm
                    alone = model_alone(model, trajs, args, band)
                    _reset_memory(device)
                    result = run_experiment(config, overwrite=True, progress=False)
                    timing = result.manifest["timing"]
                    loop = timing["model_seconds"] + timing["overhead_seconds"]
                    n = batch * args.iterations
                    rate = n / loop
                    report.add({
                        "configuration": "harness", "batch": batch, "compile": compiled, "img_per_s": rate,
                        "ratio_to_naive": rate / naive_rate, "model_alone_img_per_s": n / alone,
                        "overhead_pct": 100 * (loop - alone) / alone,
                        "harness_reported_overhead_pct": 100 * timing["overhead_seconds"] / timing["model_seconds"],
                        "peak_gib": _peak_gib(device), "warmup_s": warm_s, "inpaints": n, "seconds": loop,
                        "cfg_skipped": model.cfg_skipped,
                    })
                except torch.cuda.OutOfMemoryError as exc:
                    report.note("errors", f"{label}: out of GPU memory ({exc})")
                    torch.cuda.empty_cache()
                except Exception as exc:
                    report.note("errors", f"{label}: {type(exc).__name__}: {exc}")
                    traceback.print_exc()
            if semantic_on and not compiled:
                semantic_row(report, model, args, out, metrics, lpips_weights, device, t0)
    report.data["elapsed_s"] = time.perf_counter() - t0
    report.save()
    print(f"\n{name}, {args.arch} {args.size} px, {args.steps} steps, {report.data['dtype']}; "
          f"{report.data['elapsed_s']:.0f} s in all\n{report.table()}\nwritten: {report.path}", flush=True)
    return report.data


if __name__ == "__main__":
    main()
