"""The recursive inpainting loop.

:func:`run_experiment` turns a validated :class:`~ripbench.config.ExperimentConfig`
into trajectories (model x image x mask policy x seed), runs them in batches through
the model for ``iterations`` rounds, computes the metrics every round on the model's
device, and hands finished batches to the :class:`~ripbench.store.RunStore`.

One round of one trajectory::

    mask_k  = policy(H, W, k, seed)                  # pure function -> reproducible
    image_k = model.inpaint(image_{k-1}, mask_k, seed_k)
    metrics(image_k vs original), metrics(image_k vs image_{k-1}), inside / outside mask_k

State (original, current image) stays on the device for the whole trajectory; metric
values are gathered on the device and copied to the host once per batch. Only
snapshot iterations leave the device (as PNG files).
"""

from __future__ import annotations

import inspect
import json
import logging
import platform
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import __version__
from .config import ExperimentConfig, InputsConfig, ModelConfig
from .errors import ConfigError, ResultsError, WeightsError
from .inputs import InputImage, load_folder, load_list, load_sample, load_shapes
from .io import atomic_save
from .masks import build_mask_policy, mask_stats_batch
from .metrics import DriftTracker, MetricSuite
from .models import Inpainter, create_inpainter, resolve_factory
from .models.base import resolve_device
from .store import RunStore

log = logging.getLogger(__name__)

#: Columns that identify a trajectory (the key of a row together with ``iteration``).
KEY_COLUMNS = ["model", "image_id", "category", "mask_policy", "mask_label", "seed"]
#: Columns whose values are wall-clock timings (they differ between otherwise identical runs).
TIMING_COLUMNS = ["model_seconds", "overhead_seconds"]


@dataclass(eq=False)
class Trajectory:
    """One image under one mask policy and seed, run through one model."""

    model_label: str
    image: InputImage
    mask_spec: dict[str, Any]
    seed: int
    policy: Any = field(repr=False)

    @property
    def id(self) -> str:
        raw = f"{self.model_label}__{self.image.id}__{self.policy.label}__s{self.seed}"
        return re.sub(r"[^A-Za-z0-9_.=-]+", "-", raw)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.image.pixels.shape[-2:])  # type: ignore[return-value]


@dataclass
class RunResult:
    """What :func:`run_experiment` returns."""

    run_dir: Path
    table: pd.DataFrame
    manifest: dict[str, Any]
    skipped: int = 0


def derive_seed(seed: int, iteration: int) -> int:
    """Seed of the model's noise at ``iteration`` of a trajectory started with ``seed``."""
    return int(np.random.SeedSequence([seed, iteration, 0x52495042]).generate_state(1)[0])


def _load_inputs(spec: InputsConfig, size: int, fit: str, seed: int = 0) -> list[InputImage]:
    if spec.source == "samples":
        from .inputs import SAMPLE_IMAGES

        images = [load_sample(n, size, fit) for n in (spec.names or list(SAMPLE_IMAGES))]  # type: ignore[arg-type]
    elif spec.source == "folder":
        images = load_folder(spec.path, size, fit)  # type: ignore[arg-type]
    elif spec.source == "list":
        images = load_list(spec.path, size, fit)  # type: ignore[arg-type]
    else:
        images = load_shapes(spec.count, size, seed)
    return images[: spec.limit] if spec.limit else images


def plan(config: ExperimentConfig) -> list[tuple[ModelConfig, list[Trajectory]]]:
    """Expand a config into trajectories, grouped by model (loads and checks inputs)."""
    cache: dict[str, list[InputImage]] = {}
    out = []
    for mcfg in config.models:
        inputs = mcfg.inputs or config.inputs
        size = mcfg.size or config.size
        key = json.dumps([inputs.model_dump(mode="json"), size, config.fit])
        if key not in cache:
            cache[key] = _load_inputs(inputs, size, config.fit)
        policies = []
        for spec in mcfg.masks or config.masks:
            policy = build_mask_policy(spec)
            policy.validate(size, size)
            policies.append((spec, policy))
        trajs = [
            Trajectory(mcfg.display_name, img, spec, seed, policy)
            for img in cache[key]
            for spec, policy in policies
            for seed in config.seeds
        ]
        ids = [t.id for t in trajs]
        if len(set(ids)) != len(ids):
            dupe = next(i for i in ids if ids.count(i) > 1)
            raise ConfigError(f"two trajectories would share the id {dupe!r}: give each mask policy of model "
                              f"{mcfg.display_name!r} different settings (labels: {[p.label for _, p in policies]})")
        _check_metric_size(config, size)
        out.append((mcfg, trajs))
    return out


#: Smallest square image each LPIPS backbone accepts (its pooling stack needs this much).
_LPIPS_MIN_SIZE = {"alex": 31, "squeeze": 17, "vgg": 16}


def _check_metric_size(config: ExperimentConfig, size: int) -> None:
    from .metrics.ssim import WIN_SIZE

    names = config.metrics.names
    if "lpips" in names and size < _LPIPS_MIN_SIZE[config.metrics.lpips_net]:
        raise ConfigError(f"images of {size} px are too small for LPIPS-{config.metrics.lpips_net} (needs at least "
                          f"{_LPIPS_MIN_SIZE[config.metrics.lpips_net]} px); raise size or drop lpips from metrics.names")
    if "ssim" in names and size < WIN_SIZE:
        raise ConfigError(f"images of {size} px are too small for SSIM (needs at least {WIN_SIZE} px)")


def build_model(mcfg: ModelConfig, device: torch.device) -> Inpainter:
    """Instantiate a configured model, passing ``device`` when its factory takes one."""
    options = dict(mcfg.options)
    factory = resolve_factory(mcfg.name)
    try:
        params = inspect.signature(factory).parameters
        takes_device = "device" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        takes_device = False
    if takes_device and "device" not in options:
        options["device"] = str(device)
    return create_inpainter(mcfg.name, **options)


def _metric_suite(config: ExperimentConfig, device: torch.device) -> MetricSuite:
    names = list(config.metrics.names)
    try:
        return MetricSuite(names=names, lpips_net=config.metrics.lpips_net,
                           lpips_weights=config.metrics.lpips_weights, device=device)
    except WeightsError as exc:
        if config.metrics.lpips_required or config.metrics.lpips_weights is not None or "lpips" not in names:
            raise
        warnings.warn(f"LPIPS dropped from this run: {exc}", stacklevel=2)
        names.remove("lpips")
        if not names:
            raise
        return MetricSuite(names=names, device=device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    arr = np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[0] in (1, 3):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    atomic_save(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "ripbench": __version__}
    for pkg in ("torch", "torchvision", "diffusers", "transformers", "lpips", "scikit-image", "numpy",
                "pandas", "opencv-python-headless"):
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return found


def _device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device), "platform": platform.platform(),
                            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Batch:
    """Runs one batch of trajectories (same model, same image size) for all iterations."""

    def __init__(self, model: Inpainter, trajs: Sequence[Trajectory], config: ExperimentConfig,
                 suite: Any, window: int, store: RunStore, on_step: Callable[[int], None],
                 annotate: Annotator | None = None) -> None:
        self.model, self.trajs, self.config = model, list(trajs), config
        self.suite, self.window, self.store, self.on_step = suite, window, store, on_step
        self.annotate = annotate

    @torch.no_grad()
    def run(self) -> pd.DataFrame:
        from .hallucination import trajectory_variance

        model, trajs, device = self.model, self.trajs, self.model.device
        n_iter, b = self.config.iterations, len(self.trajs)
        h, w = trajs[0].size
        snaps = set(self.config.snapshot_iterations())
        original = torch.stack([t.image.pixels for t in trajs]).to(device)
        tracker = DriftTracker(self.suite, original)  # holds the previous image: the next model input
        ever = torch.zeros(b, 1, h, w, dtype=torch.bool, device=device)
        if 0 in snaps:
            self._snapshot(0, original, None)

        per_iter: dict[str, list[torch.Tensor]] = {}
        host: dict[str, list[float]] = {"model_seconds": [], "overhead_seconds": []}
        extras: dict[str, list[Sequence[Any]]] = {}
        start_extras = self.annotate(original) if self.annotate else {}
        no_failure = torch.zeros(b, dtype=torch.bool, device=device)
        _sync(device)
        for k in range(1, n_iter + 1):
            t_start = time.perf_counter()
            masks_np = np.stack([t.policy(h, w, k, t.seed) for t in trajs])
            masks = torch.from_numpy(masks_np[:, None]).to(device).to(original.dtype)
            seeds = [derive_seed(t.seed, k) for t in trajs]
            t_model = time.perf_counter()  # the device is idle: the previous iteration ended with a sync
            result = model.inpaint(tracker.previous, masks, seeds, trajectory_steps=self.window)
            _sync(device)
            model_time = time.perf_counter() - t_model
            new = result.images.to(device=device, dtype=original.dtype).clamp(0.0, 1.0)

            for name, v in tracker.step(new, masks).items():
                per_iter.setdefault(name, []).append(v)
            if self.window and result.x0_trajectory is not None and result.x0_trajectory.shape[0] >= 2:
                traj = result.x0_trajectory  # a model may run fewer steps than announced (strength < 1)
                window = min(self.window, traj.shape[0])
                per_iter.setdefault("halluc_score", []).append(trajectory_variance(traj, window))
                per_iter.setdefault("halluc_score_in", []).append(trajectory_variance(traj, window, masks))
            for name, v in mask_stats_batch(masks).items():
                per_iter.setdefault(f"mask_{name}", []).append(v)
            ever |= masks.bool()
            per_iter.setdefault("cum_mask_area", []).append(ever.float().mean(dim=(1, 2, 3)))
            fail = no_failure if result.failed is None else result.failed.to(device=device, dtype=torch.bool)
            per_iter.setdefault("failed", []).append(fail)
            for name, vals in result.extras.items():
                extras.setdefault(name, []).append(list(vals))
            if self.annotate:
                for name, vals in self.annotate(new).items():
                    extras.setdefault(name, []).append(list(vals))

            if k in snaps:
                self._snapshot(k, new, masks)
            _sync(device)
            total = time.perf_counter() - t_start
            host["model_seconds"].extend([model_time / b] * b)
            host["overhead_seconds"].extend([(total - model_time) / b] * b)
            self.on_step(b)
        return self._rows(per_iter, host, extras, start_extras)

    def _snapshot(self, k: int, images: torch.Tensor, masks: torch.Tensor | None) -> None:
        imgs = images.float().cpu().numpy()
        msk = masks.float().cpu().numpy() if masks is not None else None
        for i, t in enumerate(self.trajs):
            folder = self.store.image_dir(t.id)
            _save_png(folder / f"iter_{k:04d}.png", imgs[i])
            if msk is not None:
                _save_png(folder / f"mask_{k:04d}.png", msk[i])

    def _rows(self, per_iter: dict[str, list[torch.Tensor]], host: dict[str, list[float]],
              extras: dict[str, list[Sequence[Any]]], start_extras: dict[str, Sequence[Any]]) -> pd.DataFrame:
        n_iter, b = self.config.iterations, len(self.trajs)
        # one host transfer for all device-side values: (iterations x B) per column
        cols = {name: torch.stack(vals).cpu().numpy().reshape(-1) for name, vals in per_iter.items()}
        iters = np.repeat(np.arange(1, n_iter + 1), b)
        item = np.tile(np.arange(b), n_iter)
        frame = {
            "trajectory_id": [self.trajs[i].id for i in item],
            "model": [self.trajs[i].model_label for i in item],
            "image_id": [self.trajs[i].image.id for i in item],
            "category": [self.trajs[i].image.category for i in item],
            "mask_policy": [self.trajs[i].mask_spec["policy"] for i in item],
            "mask_label": [self.trajs[i].policy.label for i in item],
            "seed": [self.trajs[i].seed for i in item],
            "iteration": iters,
            **host,
            **cols,
        }
        for name, per_k in extras.items():
            frame[name] = [v for vals in per_k for v in vals]
        body = pd.DataFrame(frame)
        # iteration 0: the original itself; only "distance to the original" is defined
        start = body[body["iteration"] == 1].copy()
        start["iteration"] = 0
        for col in body.columns:
            if col in KEY_COLUMNS or col in ("trajectory_id", "iteration"):
                continue
            start[col] = _IDENTITY.get(col, np.nan) if body[col].dtype.kind in "fc" else None
        start[["mask_area", "cum_mask_area"]] = 0.0
        start[["mask_y0", "mask_x0", "mask_y1", "mask_x1"]] = -1
        start["failed"] = False
        for name, vals in start_extras.items():
            start[name] = list(vals)
        table = pd.concat([start, body], ignore_index=True)
        # a failed trajectory keeps its rows up to and including its first failing iteration
        first_fail = table[table["failed"]].groupby("trajectory_id")["iteration"].min()
        if len(first_fail):
            limit = table["trajectory_id"].map(first_fail).fillna(np.inf)
            table = table[table["iteration"] <= limit]
        return table.sort_values(["trajectory_id", "iteration"], kind="stable").reset_index(drop=True)


#: Values of ``<metric>_orig`` at iteration 0 (an image compared with itself).
_IDENTITY = {"lpips_orig": 0.0, "ssim_orig": 1.0, "psnr_orig": np.inf, "mse_orig": 0.0}


#: Computes ground-truth columns from a batch of images (``B x 3 x H x W``): name -> B values.
Annotator = Callable[[torch.Tensor], dict[str, Sequence[Any]]]


def shapes_annotations(images: torch.Tensor) -> dict[str, list[Any]]:
    """Ground truth for Simple Shapes images: the labeller's verdict per image.

    ``shapes_label`` is the image's kind (:data:`~ripbench.datasets.shapes.KINDS`):
    ``"duplicate"`` is the paper's hallucination (a column holding two or more copies of its
    shape); ``"empty"``, ``"wrong_shape"`` and ``"malformed"`` are other invalid images, not
    hallucinations; ``"valid"`` could come from the data set. ``shapes_valid`` is
    ``shapes_label == "valid"``; ``shapes_reason`` lists every problem found (``"ok"`` if none).
    """
    from .datasets.shapes import label_shapes

    labels = label_shapes(images.float().mean(dim=1).cpu().numpy())
    return {"shapes_label": [lab.kind for lab in labels], "shapes_valid": [lab.is_valid for lab in labels],
            "shapes_reason": [lab.reason for lab in labels]}


def annotator_for(inputs: InputsConfig) -> Annotator | None:
    """The ground-truth annotator of an input source, if it has one (Simple Shapes has)."""
    return shapes_annotations if inputs.source == "shapes" else None


def _check_same(before: dict[str, Any] | None, now: dict[str, Any], what: str, resuming: bool) -> None:
    """Refuse to add rows made with other settings (dtype, weights, metrics) to a run being resumed."""
    if not resuming or not before:
        return

    def strip(d: Any) -> Any:  # where files or devices live does not change results
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ("device", "weights_source", "weights_origin")}
        return d

    old, new = strip(json.loads(json.dumps(before, default=str))), strip(json.loads(json.dumps(now, default=str)))
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise ResultsError(
            f"cannot resume: {what} differs from the finished part of this run ({', '.join(diff)}); "
            "pass --overwrite to start again or --name to write elsewhere"
        )


def _batches(trajs: Sequence[Trajectory], size: int) -> Iterator[list[Trajectory]]:
    by_size: dict[tuple[int, int], list[Trajectory]] = {}
    for t in trajs:
        by_size.setdefault(t.size, []).append(t)
    for group in by_size.values():
        for i in range(0, len(group), size):
            yield group[i : i + size]


def run_experiment(config: ExperimentConfig, *, run_dir: str | Path | None = None, overwrite: bool = False,
                   progress: bool = True) -> RunResult:
    """Run (or resume) an experiment and return its table.

    Args:
        config: a validated experiment config.
        run_dir: results folder; default ``config.output_dir / config.name``.
        overwrite: discard an existing run in ``run_dir`` whose config differs.
        progress: show a progress bar (trajectories x iterations).

    A run that was interrupted is resumed by calling this again with the same config:
    trajectories whose rows are on disk are skipped. A folder holding a run of a
    *different* config is refused unless ``overwrite`` is set.
    """
    from tqdm.auto import tqdm

    from .hallucination import DEFAULT_WINDOW, resolve_window

    store = RunStore(run_dir if run_dir is not None else config.output_dir / config.name)
    previous = store.read_manifest()
    fingerprint = config.fingerprint()
    if previous is not None and previous.get("fingerprint") != fingerprint:
        if not overwrite:
            raise ResultsError(
                f"{store.run_dir} holds a run with a different config (fingerprint "
                f"{previous.get('fingerprint')} != {fingerprint}); pass --overwrite to replace it "
                "or --name to write elsewhere"
            )
        store.clear()
        previous = None

    device = resolve_device(config.device)
    for mcfg in config.models:
        resolve_factory(mcfg.name)  # an unknown or unimportable model fails before anything is written
    groups = plan(config)  # validates inputs and masks before anything is written
    done = store.finished_trajectories() if previous is not None else set()
    pending = [(m, [t for t in ts if t.id not in done]) for m, ts in groups]
    groups_by_label = [(m.display_name, ts) for m, ts in groups]
    total = sum(len(ts) for _, ts in groups)
    skipped = total - sum(len(ts) for _, ts in pending)

    manifest: dict[str, Any] = {
        "ripbench_version": __version__,
        "name": config.name,
        "fingerprint": fingerprint,
        "config": config.model_dump(mode="json"),
        "status": "running",
        "started": (previous or {}).get("started", _now()),
        "resumed": [*(previous or {}).get("resumed", []), _now()] if previous is not None else [],
        "versions": _versions(),
        "git_commit": _git_commit(),
        "command": " ".join(sys.argv),
        "device": _device_info(device),
        "trajectories": total,
        "inputs": {t.image.id: {"category": t.image.category, "source": t.image.source, "notes": t.image.notes}
                   for _, ts in groups for t in ts},
        "models": (previous or {}).get("models", {}),
        "masks": {t.policy.label: t.policy.params() for _, ts in groups for t in ts},
    }
    if previous is not None and previous.get("metrics"):
        manifest["metrics"] = previous["metrics"]
    existed = store.run_dir.exists()
    store.write_manifest(manifest)

    bar = tqdm(total=sum(len(ts) for _, ts in pending) * config.iterations, unit="inpaint",
               disable=not progress, dynamic_ncols=True, desc="RIP")
    earlier = (previous or {}).get("timing") or {}
    model_time = float(earlier.get("model_seconds") or 0.0)
    overhead_time = float(earlier.get("overhead_seconds") or 0.0)
    suites: dict[str, Any] = {}
    try:
        for mcfg, trajs in pending:
            if not trajs:
                continue
            model = build_model(mcfg, device)
            window = 0
            if config.hallucination.enabled and model.supports_trajectory and model.num_steps:
                window = resolve_window(config.hallucination.window or DEFAULT_WINDOW, model.num_steps)
            identity = {**model.identity(), "hallucination_window": window or None}
            _check_same(manifest["models"].get(mcfg.display_name), identity, f"model {mcfg.display_name!r}",
                        len(trajs) < len(dict(groups_by_label)[mcfg.display_name]))
            manifest["models"][mcfg.display_name] = identity
            store.write_manifest(manifest)
            dev_key = str(model.device)
            if dev_key not in suites:
                suites[dev_key] = _metric_suite(config, model.device)
                provenance = suites[dev_key].provenance()
                _check_same(manifest.get("metrics"), provenance, "metrics", bool(done))
                manifest["metrics"] = provenance
            bar.set_description(f"RIP {mcfg.display_name}")
            for batch in _batches(trajs, config.batch_size):
                rows = _Batch(model, batch, config, suites[dev_key], window, store, bar.update,
                              annotator_for(mcfg.inputs or config.inputs)).run()
                store.write_part(rows)
                model_time += float(rows["model_seconds"].sum())
                overhead_time += float(rows["overhead_seconds"].sum())
            del model
    except KeyboardInterrupt:
        manifest.update(status="interrupted", interrupted=_now())
        store.write_manifest(manifest)
        raise
    except BaseException:
        if previous is None and not existed and not store.part_files():
            store.remove()  # nothing finished: leave no half-made run folder behind
        else:
            manifest.update(status="failed", failed=_now())
            store.write_manifest(manifest)
        raise
    finally:
        bar.close()

    table = store.load_table()
    manifest.update(status="complete", finished=_now(), timing={
        "model_seconds": model_time, "overhead_seconds": overhead_time,
        "overhead_share": overhead_time / model_time if model_time else None,
    })
    store.write_manifest(manifest)
    table.attrs["manifest"] = manifest
    return RunResult(run_dir=store.run_dir, table=table, manifest=manifest, skipped=skipped)
