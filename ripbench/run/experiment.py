"""Running an experiment: plan, load each model, run its batches, store the rows, keep the manifest.

:func:`run_experiment` is the library entry point behind ``ripbench run``::

    config ─> plan (trajectories, inputs checked) ─> per model: build it, batches ─> run_batch
           ─> store (one Parquet part per finished batch; manifest) ─> table

A run that was interrupted is resumed by calling it again with the same config: trajectories
whose rows are on disk are skipped. A folder holding a run of a *different* config is
refused unless ``overwrite`` is set.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import __version__
from ..config import ExperimentConfig, ModelConfig
from ..errors import ResultsError, WeightsError
from ..metrics import MetricSuite
from ..models import Inpainter, create_inpainter, resolve_factory
from ..models.base import resolve_device
from ..store import RunStore
from .annotators import annotator_for
from .keys import KEY_VERSION
from .loop import run_batch
from .plan import Trajectory, plan
from .provenance import device_info, git_commit, now, versions

__all__ = ["RunResult", "build_model", "run_experiment"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What :func:`run_experiment` returns."""

    run_dir: Path
    table: pd.DataFrame
    manifest: dict[str, Any]
    skipped: int = 0


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


def metric_suite(config: ExperimentConfig, device: torch.device) -> MetricSuite:
    """The configured metrics on ``device``; without LPIPS weights, the quick preset drops LPIPS with a warning."""
    names = list(config.metrics.names)
    options = {name: config.metric_options(name) for name in names}
    try:
        return MetricSuite(names=names, options=options, device=device)
    except WeightsError as exc:
        if config.metrics.lpips_required or config.metrics.lpips_weights is not None or "lpips" not in names:
            raise
        warnings.warn(f"LPIPS dropped from this run: {exc}", stacklevel=2)
        names.remove("lpips")
        if not names:
            raise
        return MetricSuite(names=names, options={n: options[n] for n in names}, device=device)


def _check_same(before: dict[str, Any] | None, current: dict[str, Any], what: str, resuming: bool) -> None:
    """Refuse to add rows made with other settings (dtype, weights, metrics) to a run being resumed."""
    if not resuming or not before:
        return

    def strip(d: Any) -> Any:  # where files or devices live does not change results
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ("device", "weights_source", "weights_origin")}
        return d

    old = strip(json.loads(json.dumps(before, default=str)))
    new = strip(json.loads(json.dumps(current, default=str)))
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
                   progress: bool = True, on_start: Callable[[Path, int, int], None] | None = None) -> RunResult:
    """Run (or resume) an experiment and return its table.

    Args:
        config: a validated experiment config.
        run_dir: results folder; default ``config.output_dir / config.name``.
        overwrite: discard an existing run in ``run_dir`` whose config differs.
        progress: show a progress bar (trajectories x iterations).
        on_start: called as ``on_start(run_dir, trajectories, already_finished)`` once every input is
            checked, just before anything is written.
    """
    from tqdm.auto import tqdm

    from ..hallucination import DEFAULT_WINDOW, resolve_window

    store = RunStore(run_dir if run_dir is not None else config.output_dir / config.name)
    previous = store.read_manifest()
    fingerprint = config.fingerprint()
    if previous is not None and (previous.get("fingerprint") != fingerprint
                                 or previous.get("random_keys") != KEY_VERSION):
        if not overwrite:
            why = (f"a different config (fingerprint {previous.get('fingerprint')} != {fingerprint})"
                   if previous.get("fingerprint") != fingerprint else
                   f"another ripbench's random streams ({previous.get('random_keys')} != {KEY_VERSION})")
            raise ResultsError(f"{store.run_dir} holds a run made with {why}; pass --overwrite to replace it "
                               "or --name to write elsewhere")
        store.clear()
        previous = None

    device = resolve_device(config.device)
    for mcfg in config.models:
        resolve_factory(mcfg.name)  # an unknown or unimportable model fails before anything is written
    groups = plan(config)  # validates inputs, masks and sizes before anything is written
    done = store.finished_trajectories() if previous is not None else set()
    pending = [(m, [t for t in ts if t.id not in done]) for m, ts in groups]
    planned = {m.display_name: len(ts) for m, ts in groups}
    total = sum(planned.values())
    skipped = total - sum(len(ts) for _, ts in pending)
    if on_start is not None:
        on_start(store.run_dir, total, skipped)

    manifest: dict[str, Any] = {
        "ripbench_version": __version__,
        "name": config.name,
        "fingerprint": fingerprint,
        "random_keys": KEY_VERSION,
        "config": config.model_dump(mode="json"),
        "status": "running",
        "started": (previous or {}).get("started", now()),
        "resumed": [*(previous or {}).get("resumed", []), now()] if previous is not None else [],
        "versions": versions(),
        "git_commit": git_commit(),
        "command": " ".join(sys.argv),
        "device": device_info(device),
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
    suites: dict[str, MetricSuite] = {}
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
                        len(trajs) < planned[mcfg.display_name])
            manifest["models"][mcfg.display_name] = identity
            store.write_manifest(manifest)
            dev_key = str(model.device)
            if dev_key not in suites:
                suites[dev_key] = metric_suite(config, model.device)
                provenance = suites[dev_key].provenance()
                _check_same(manifest.get("metrics"), provenance, "metrics", bool(done))
                manifest["metrics"] = provenance
            bar.set_description(f"RIP {mcfg.display_name}")
            annotate = annotator_for(mcfg.inputs or config.inputs)
            for batch in _batches(trajs, config.batch_size):
                rows = run_batch(model, batch, config, suites[dev_key], window, store.image_dir, bar.update,
                                 annotate)
                store.write_part(rows)
                model_time += float(rows["model_seconds"].sum())
                overhead_time += float(rows["overhead_seconds"].sum())
            del model
    except KeyboardInterrupt:
        manifest.update(status="interrupted", interrupted=now())
        store.write_manifest(manifest)
        raise
    except BaseException:
        if previous is None and not existed and not store.part_files():
            store.remove()  # nothing finished: leave no half-made run folder behind
        else:
            manifest.update(status="failed", failed=now())
            store.write_manifest(manifest)
        raise
    finally:
        bar.close()

    table = store.load_table()
    manifest.update(status="complete", finished=now(), timing={
        "model_seconds": model_time, "overhead_seconds": overhead_time,
        "overhead_share": overhead_time / model_time if model_time else None,
    })
    store.write_manifest(manifest)
    table.attrs["manifest"] = manifest
    return RunResult(run_dir=store.run_dir, table=table, manifest=manifest, skipped=skipped)
