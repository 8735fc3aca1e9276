"""Running an experiment: plan, load each model, run its batches, store the rows, keep the manifest.

:func:`run_experiment` is the library entry point behind ``ripbench run``::

    config ─> plan (trajectories, inputs checked) ─> per model: build it, batches ─> run_batch
           ─> store (one Parquet part per finished batch; manifest) ─> table

A run that was interrupted is resumed by calling it again with the same config: trajectories
whose rows are on disk are skipped. A folder holding a run of a *different* config is
refused unless ``overwrite`` is set.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import shutil
import signal
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import __version__
from ..config import ExperimentConfig, ModelConfig, config_changes
from ..detectors import DetectorSuite
from ..errors import ConfigError, InputError, ResultsError, RipbenchError, WeightsError, add_note
from ..formatting import command_line
from ..hallucination import ScoreWindow
from ..io import BackgroundWriter
from ..metrics import MetricSuite
from ..models import Inpainter, create_inpainter, resolve_factory
from ..models.base import resolve_device
from ..models.registry import check_model_options, declared_options
from ..store import RunLock, RunStore
from .annotators import annotator_for
from .distributed import Heartbeat, Ranks, ranks_from_env
from .keys import KEY_VERSION
from .loop import run_batch
from .plan import Trajectory, plan
from .provenance import device_info, git_commit, now, versions
from .readme import write_run_readme

__all__ = ["RunResult", "build_model", "run_experiment"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What :func:`run_experiment` returns."""

    run_dir: Path
    table: pd.DataFrame
    manifest: dict[str, Any]
    skipped: int = 0


def build_model(mcfg: ModelConfig, device: torch.device, options: dict[str, Any] | None = None) -> Inpainter:
    """Instantiate a configured model, passing ``device`` when its factory takes one.

    ``options`` (default: the config's) are the model's options, already checked or not.
    """
    options = dict(mcfg.options if options is None else options)
    factory = resolve_factory(mcfg.name)
    declared = declared_options(factory)
    if declared is not None:
        takes_device = any(o.name == "device" for o in declared)
    else:
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
        try:  # only LPIPS may be dropped: another metric without weights (DINOv2, CLIP) stops the run
            MetricSuite(names=["lpips"], options={"lpips": options["lpips"]}, device=device)
        except WeightsError:
            pass
        else:
            raise
        warnings.warn(f"LPIPS dropped from this run: {exc}", stacklevel=2)
        names.remove("lpips")
        if not names:
            raise
        return MetricSuite(names=names, options={n: options[n] for n in names}, device=device)


def _device_key(dev: torch.device) -> str:
    """One name per device (``cuda`` and ``cuda:<current>`` are the same card), so metrics are built once."""
    if dev.type == "cuda" and dev.index is None and torch.cuda.is_available():
        dev = torch.device("cuda", torch.cuda.current_device())
    return str(dev)


#: Manifest keys that do not change a run's rows, so a resume does not compare them: where files or
#: devices live, the analysis facts of a metric spec (its default collapse threshold, what +inf counts
#: as, its reach) and of a model (its space: latent or pixel; the inputs a control ignores), and a model's ``options`` (already in the
#: config's fingerprint).
ANALYSIS_ONLY = ("device", "weights_source", "weights_origin", "collapse_threshold", "inf_value", "reach", "space",
                 "ignores", "options")


def _with_options(identity: dict[str, Any], mcfg: ModelConfig, given: dict[str, Any]) -> dict[str, Any]:
    """A model's manifest entry with its options (declared defaults, then those given; no device),
    unless the model records them itself: a plug-in's options then show in the report's Settings."""
    if "options" in identity:
        return identity
    declared = declared_options(resolve_factory(mcfg.name)) or ()
    options = {o.name: o.default for o in declared} | dict(given)
    options.pop("device", None)
    return {**identity, "options": json.loads(json.dumps(options, default=str))}


def _check_same(before: dict[str, Any] | None, current: dict[str, Any], what: str, resuming: bool) -> None:
    """Refuse to add rows made with other settings (dtype, weights, metrics) to a run being resumed."""
    if not resuming or not before:
        return

    def strip(d: Any) -> Any:
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ANALYSIS_ONLY}
        return d

    old = strip(json.loads(json.dumps(before, default=str)))
    new = strip(json.loads(json.dumps(current, default=str)))
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise ResultsError(
            f"cannot resume: {what} differs from the finished part of this run ({', '.join(diff)}); "
            "pass --overwrite to start again or --name to write elsewhere"
        )


def _size_groups(trajs: Sequence[Trajectory]) -> list[list[Trajectory]]:
    by_size: dict[tuple[int, int], list[Trajectory]] = {}
    for t in trajs:
        by_size.setdefault(t.size, []).append(t)
    return list(by_size.values())


class _Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers send before a kill), handled like Ctrl-C."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _on_main(ranks: Ranks, work: Callable[[], Any]) -> Any:
    """Run ``work`` on rank 0 and hand its result, or the same one-line error, to every rank.

    Rank 0 re-raises its own exception; the other ranks raise the same message (so no rank is
    left waiting for the others).
    """
    outcome: tuple[str, Any] = ("ok", None)
    failure: BaseException | None = None
    if ranks.is_main:
        try:
            outcome = ("ok", work())
        except Exception as exc:
            failure = exc
            outcome = (type(exc).__name__, str(exc) if isinstance(exc, RipbenchError) else
                       f"rank 0 failed: {type(exc).__name__}: {exc}")
    kind, value = ranks.from_main(outcome)
    if failure is not None:
        raise failure
    if kind != "ok":
        error = {cls.__name__: cls for cls in (ResultsError, ConfigError, InputError)}.get(kind, ResultsError)
        raise error(value)
    return value


def _check_inputs_unchanged(previous: dict[str, Any], groups: list[tuple[ModelConfig, list[Trajectory]]],
                            run_dir: Path) -> None:
    """Refuse to resume when an input image or mask file differs from the one the finished part used."""
    now_inputs = {t.image.id: t.image for _, ts in groups for t in ts}
    for image_id, record in (previous.get("inputs") or {}).items():
        if "sha256" not in record:
            continue
        image = now_inputs.get(image_id)
        if image is None:
            raise ResultsError(f"cannot resume {run_dir}: input image {image_id!r} ({record.get('source')}) of the "
                               "finished part is no longer among the inputs; pass --overwrite to start again")
        if image.sha256 != record["sha256"]:
            raise ResultsError(f"cannot resume {run_dir}: input image {image.source} changed since the finished "
                               "part was computed; pass --overwrite to start again or --name to write elsewhere")
    now_masks = {t.policy.label: t.policy for _, ts in groups for t in ts}
    for label, record in (previous.get("masks") or {}).items():
        policy = now_masks.get(label)
        if policy is not None and "files" in record:
            files = policy.provenance().get("files", {})
            changed = sorted(set(record["files"].items()) ^ set(files.items()))
            if changed:
                raise ResultsError(f"cannot resume {run_dir}: mask file {changed[0][0]} of policy {label!r} changed, "
                                   "appeared or disappeared; pass --overwrite to start again")


def _dataset_records(groups: list[tuple[ModelConfig, list[Trajectory]]]) -> list[dict[str, Any]]:
    """The Hugging Face datasets the inputs came from (id, split, revision, rows, fingerprint), each once."""
    records: list[dict[str, Any]] = []
    for _, ts in groups:
        for t in ts:
            if t.image.dataset is not None and t.image.dataset not in records:
                records.append(t.image.dataset)
    return records


def _prepare_folder(store: RunStore, config: ExperimentConfig, overwrite: bool,
                    groups: list[tuple[ModelConfig, list[Trajectory]]]) -> tuple[dict[str, Any] | None, str | None]:
    """Rank 0, holding the lock: ``(previous manifest to resume or None, folder moved aside or None)``.

    ``overwrite`` always starts again: the old folder is moved aside (restored if this launch
    fails before writing any result, deleted once it has).
    """
    store.sweep()
    if overwrite:
        aside = store.set_aside()
        return None, str(aside) if aside is not None else None
    previous = store.read_manifest()
    fingerprint = config.fingerprint()
    if previous is not None and (previous.get("fingerprint") != fingerprint
                                 or previous.get("random_keys") != KEY_VERSION):
        changes = config_changes(previous.get("config") or {}, config)
        why = ((f"a different config ({'; '.join(changes)})" if changes else
                f"a different config (fingerprint {previous.get('fingerprint')} != {fingerprint})")
               if previous.get("fingerprint") != fingerprint else
               f"another ripbench's random streams ({previous.get('random_keys')} != {KEY_VERSION})")
        raise ResultsError(f"{store.run_dir} holds a run made with {why}; to keep it, pass --name NEW_NAME to "
                           "write this run elsewhere; to replace it, pass --overwrite")
    if previous is None and store.part_files():
        raise ResultsError(f"{store.run_dir} holds result parts but no manifest (an interrupted --overwrite, or a "
                           "deleted manifest?): which config made them is unknown; move the folder aside or pass "
                           "--overwrite")
    if previous is not None:
        _check_inputs_unchanged(previous, groups, store.run_dir)
        if store.part_files():
            store.load_table()  # refuses duplicated rows up front
    return previous, None


def _check_complete(table: pd.DataFrame, groups: list[tuple[ModelConfig, list[Trajectory]]], iterations: int) -> None:
    """Every planned trajectory has all its rows (or ends at its first failed iteration)."""
    last = table.groupby("trajectory_id")["iteration"].agg(["max", "count"])
    failed_at = table[table["failed"]].groupby("trajectory_id")["iteration"].min()
    missing = []
    for _, ts in groups:
        for t in ts:
            if t.id not in last.index:
                missing.append(t.id)
                continue
            end = int(failed_at.get(t.id, iterations))
            if last.loc[t.id, "max"] != end or last.loc[t.id, "count"] != end + 1:
                missing.append(t.id)
    if missing:
        raise ResultsError(f"the run is incomplete: {len(missing)} trajectories lack rows (e.g. {missing[0]!r}); "
                           "run the same command again to compute them")


def _finish_writes(writer: BackgroundWriter, exc: BaseException) -> None:
    """Let the queued writes finish after ``exc``; a write error becomes a note on ``exc``, never hides it."""
    try:
        writer.close()
    except RuntimeError as error:
        add_note(exc, str(error))


def run_experiment(config: ExperimentConfig, *, run_dir: str | Path | None = None, overwrite: bool = False,
                   progress: bool = True, on_start: Callable[[Path, int, int], None] | None = None,
                   ranks: Ranks | None = None, tracker: Any = None) -> RunResult:
    """Run (or resume) an experiment and return its table.

    Args:
        config: a validated experiment config.
        run_dir: results folder; default ``config.output_dir / config.name``.
        overwrite: discard an existing run in ``run_dir`` whose config differs.
        progress: show a progress bar (trajectories x iterations; rank 0 only).
        on_start: called as ``on_start(run_dir, trajectories, already_finished)`` once every input is
            checked, just before anything is written (rank 0 only).
        ranks: this process's place in a multi-process launch; default from the environment
            (see :mod:`ripbench.run.distributed`).
        tracker: an experiment tracker (:class:`ripbench.trackers.RunTracker`): rank 0 calls its
            ``started(trajectories, already_finished)`` before the first batch, ``batch_done(rows)`` after
            each finished batch and ``model_done(label)`` after each model.
    """
    ranks = ranks if ranks is not None else ranks_from_env()
    store = RunStore(run_dir if run_dir is not None else config.output_dir / config.name)
    # nothing is written before every check that needs no model has passed
    model_options = {m.display_name: check_model_options(m.name, dict(m.options)) for m in config.models}
    groups = plan(config)
    fingerprints = ranks.gather((config.fingerprint(), KEY_VERSION, [t.id for _, ts in groups for t in ts]))
    if any(f != fingerprints[0] for f in fingerprints):
        raise ConfigError("the processes of this launch were given different configs or inputs; "
                          "start every rank with the same command")
    lock = RunLock(store.run_dir)
    _on_main(ranks, lock.acquire)
    try:
        with _sigterm_as_interrupt():
            return _run_locked(config, store, groups, model_options, overwrite, progress, on_start, ranks,
                               tracker if ranks.is_main else None)
    finally:
        lock.release()


def _run_locked(config: ExperimentConfig, store: RunStore, groups: list[tuple[ModelConfig, list[Trajectory]]],
                model_options: dict[str, dict[str, Any]], overwrite: bool, progress: bool,
                on_start: Callable[[Path, int, int], None] | None, ranks: Ranks, tracker: Any = None) -> RunResult:
    from tqdm.auto import tqdm

    previous, aside = _on_main(ranks, lambda: _prepare_folder(store, config, overwrite, groups))
    existed = store.run_dir.exists()
    parts_before = len(store.part_files())
    done = store.finished_trajectories() if previous is not None else set()
    ranks.meet()  # every rank has read what is done before anyone writes
    token = ranks.from_main(uuid.uuid4().hex)  # names this launch's heartbeats
    pending = [(m, [t for t in ts if t.id not in done and ranks.owns(t.id)]) for m, ts in groups]
    planned = {m.display_name: len(ts) for m, ts in groups}
    total = sum(planned.values())
    skipped = sum(1 for _, ts in groups for t in ts if t.id in done)
    if on_start is not None and ranks.is_main:
        on_start(store.run_dir, total, skipped)
    if tracker is not None:
        tracker.started(total, skipped)

    device = resolve_device(ranks.device(config.device))
    manifest: dict[str, Any] = {
        "ripbench_version": __version__,
        "name": config.name,
        "fingerprint": config.fingerprint(),
        "random_keys": KEY_VERSION,
        "config": config.model_dump(mode="json"),
        "status": "running",
        "started": (previous or {}).get("started", now()),
        "resumed": [*(previous or {}).get("resumed", []), now()] if previous is not None else [],
        "world_size": ranks.world_size,
        "nodes": ranks.nodes,
        "versions": versions(),
        "git_commit": git_commit(),
        "command": command_line(),
        "device": device_info(device),
        "trajectories": total,
        "inputs": {t.image.id: {"category": t.image.category, "source": t.image.source, "notes": t.image.notes,
                                "sha256": t.image.sha256} for _, ts in groups for t in ts},
        "datasets": _dataset_records(groups),
        "models": dict((previous or {}).get("models", {})),
        "masks": {t.policy.label: t.policy.provenance() for _, ts in groups for t in ts},
        "batch_size_run": (previous or {}).get("batch_size_run", {}),
    }
    # every launch keeps its own provenance: rows resumed by another version stay attributable
    launch = {key: manifest[key] for key in ("world_size", "nodes", "versions", "git_commit", "command", "device")}
    manifest["launches"] = [*(previous or {}).get("launches", []), {"started": now(), **launch}]
    if previous is not None and previous.get("metrics"):
        manifest["metrics"] = previous["metrics"]
    detectors = DetectorSuite(config.hallucination.detectors) if config.hallucination.enabled else None
    manifest["detectors"] = detectors.describe() if detectors is not None else []

    def save() -> None:
        if ranks.is_main:
            store.write_manifest(manifest)

    def wrote_nothing() -> bool:
        return len(store.part_files()) == parts_before

    def undo_launch() -> None:
        """This launch wrote no results: leave the folder as it found it (rank 0, single process)."""
        if aside is not None:
            store.restore(Path(aside))
        elif previous is not None:
            store.write_manifest(previous)
        elif not existed:
            store.remove()  # nothing finished: leave no half-made run folder behind

    save()
    bar = tqdm(total=sum(len(ts) for _, ts in pending) * config.iterations, unit="inpaint",
               disable=not (progress and ranks.is_main), dynamic_ncols=True, desc="RIP")
    earlier = (previous or {}).get("timing") or {}
    heartbeat = None
    if ranks.distributed:  # the final meeting hears whether the others are still alive
        heartbeat = Heartbeat(store.run_dir.parent / f".{store.run_dir.name}.ranks", ranks, token).start()
    timing = {"model_seconds": 0.0, "overhead_seconds": 0.0}
    suites: dict[str, MetricSuite] = {}
    writer = BackgroundWriter()  # snapshots and result parts are written off the loop's path
    def suite_for(dev: torch.device) -> MetricSuite:
        key = _device_key(dev)
        if key not in suites:
            suites[key] = metric_suite(config, dev)
            provenance = suites[key].provenance()
            _check_same((previous or {}).get("metrics"), provenance, "metrics", bool(done))
            manifest["metrics"] = provenance
        return suites[key]

    try:
        if any(trajs for _, trajs in pending):
            suite_for(device)  # metric weights are checked before any model loads (a pipeline can take minutes)
        for mcfg, trajs in pending:
            if not trajs:
                continue
            label = mcfg.display_name
            model = build_model(mcfg, device, model_options[label])
            window = None
            if config.hallucination.enabled and model.returns_x0_trajectory:
                window = ScoreWindow.from_spec(config.hallucination.band, config.hallucination.min_steps,
                                               unit=config.hallucination.unit)
            identity = {**_with_options(model.identity(), mcfg, model_options[label]),
                        "space": getattr(model, "space", None),
                        "ignores": sorted(getattr(model, "ignores", ())),
                        "hallucination_band": list(window.band) if window else None,
                        "hallucination_band_unit": window.band.unit if window else None}
            _check_same((previous or {}).get("models", {}).get(label), identity, f"model {label!r}",
                        len(trajs) < planned[label])
            manifest["models"][label] = identity
            save()
            suite = suite_for(model.device)
            bar.set_description(f"RIP {label}")
            annotate = annotator_for(mcfg.inputs or config.inputs)
            size = config.batch_size
            for group in _size_groups(trajs):
                while group:
                    batch = group[:size]
                    try:
                        feats: list[dict[str, Any]] = []
                        rows = run_batch(model, batch, config, suite, window, store.image_dir,
                                         bar.update, annotate, writer, detectors, on_features=feats.append)
                    except torch.cuda.OutOfMemoryError:
                        if size == 1:
                            raise
                        size = max(1, len(batch) // 2)
                        torch.cuda.empty_cache()
                        warnings.warn(f"CUDA out of memory with {len(batch)} trajectories per call of model "
                                      f"{label!r}; retrying with {size}", stacklevel=2)
                        continue
                    for found in feats:  # before the rows: a part on disk means its features are too
                        writer.submit(store.write_features, found)
                    writer.submit(store.write_part, rows)
                    if tracker is not None:
                        tracker.batch_done(rows)
                    group = group[len(batch):]
                    timing["model_seconds"] += float(rows["model_seconds"].sum())
                    timing["overhead_seconds"] += float(rows["overhead_seconds"].sum())
            manifest["batch_size_run"][label] = size
            writer.flush()  # this model's rows are on disk before the manifest says so
            save()
            if tracker is not None:
                tracker.model_done(label)
            del model
        writer.close()
        ranks.meet(heartbeat)  # every rank's parts are on disk (a lost rank: one line, not a wait)
    except BaseException as exc:
        _finish_writes(writer, exc)  # finished batches still reach the disk (each file atomically)
        if ranks.is_main:
            if not ranks.distributed and wrote_nothing():
                undo_launch()  # a refusal or early failure leaves the old run (or nothing) as it was
            else:
                interrupted = isinstance(exc, KeyboardInterrupt)
                manifest.update(status="interrupted" if interrupted else "failed",
                                **{"interrupted" if interrupted else "failed": now()})
                save()
                store.drop(Path(aside) if aside else None)
        raise
    finally:
        bar.close()
        if heartbeat is not None:
            heartbeat.stop()

    # rank 0 merges what the others learned and checks completeness
    reports = ranks.gather((manifest["models"], manifest.get("metrics"), timing, manifest["batch_size_run"]))
    for models, metrics, _, sizes in reports:
        for name, ident in models.items():
            manifest["models"].setdefault(name, ident)
        if metrics and not manifest.get("metrics"):
            manifest["metrics"] = metrics
        for name, size in sizes.items():
            manifest["batch_size_run"][name] = min(size, manifest["batch_size_run"].get(name, size))
    model_time = float(earlier.get("model_seconds") or 0.0) + sum(r[2]["model_seconds"] for r in reports)
    overhead_time = float(earlier.get("overhead_seconds") or 0.0) + sum(r[2]["overhead_seconds"] for r in reports)
    table = store.load_table()
    if ranks.is_main:
        try:
            _check_complete(table, groups, config.iterations)
        except ResultsError:
            manifest.update(status="incomplete", finished=now())
            save()
            raise
        manifest.update(status="complete", finished=now(), timing={
            "model_seconds": model_time, "overhead_seconds": overhead_time,
            "overhead_share": overhead_time / model_time if model_time else None,
        })
        save()
        write_run_readme(store.run_dir, table, manifest)  # what the files and columns mean, beside them
        store.drop(Path(aside) if aside else None)  # the new run is complete: the old one goes
    ranks.meet()  # every heartbeat has stopped (each rank stops its own before the last meetings)
    if heartbeat is not None and ranks.is_main:
        shutil.rmtree(heartbeat.folder, ignore_errors=True)
    table.attrs["manifest"] = manifest
    return RunResult(run_dir=store.run_dir, table=table, manifest=manifest, skipped=skipped)
