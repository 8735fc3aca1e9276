"""The recursive inpainting loop for one batch of trajectories (same model, same image size).

One round of one trajectory::

    mask_k  = policy(H, W, k, key)                    # key = hash(seed, image id, policy): see run.keys
    image_k = handoff(model.inpaint(image_{k-1}, mask_k, noise_seed(key, k)))   # config.handoff; image_0 = handoff(original)
    metrics(image_k vs original, vs image_{k-1}) in the whole image and the regions
            current (mask_k) / outside / ever (mask_1 | ... | mask_k) / never

State (original, current image, the ``ever`` mask, prepared metric statistics) stays on the
model's device for the whole trajectory; metric values are gathered on the device and
copied to the host once per batch. Nothing in the loop waits for the device (timings are
device events); only snapshot iterations leave it, copied asynchronously and written as PNGs
by a background writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..config import ExperimentConfig
from ..detectors import ALIASES, DetectorSuite
from ..errors import ModelContractError, add_note
from ..hallucination import ScoreWindow
from ..handoff import Handoff
from ..io import BackgroundWriter, atomic_save
from ..masks import mask_stats_batch, masks_for
from ..metrics import DriftTracker, MetricSuite, column_name
from ..models import Inpainter, InpaintResult
from ..store import MASK_BOX_COLUMNS
from .annotators import Annotator
from .plan import KEY_COLUMNS, Trajectory

__all__ = ["MASK_BOX_COLUMNS", "TIMING_COLUMNS", "run_batch"]

#: Columns whose values are wall-clock timings (they differ between otherwise identical runs).
TIMING_COLUMNS = ["model_seconds", "overhead_seconds"]


class _Clock:
    """Model time and loop time per iteration without stalling the device.

    On the CPU: the host clock (everything is synchronous). On CUDA: events recorded in the
    stream (no synchronisation inside the loop); read once, at the end of the batch, as the
    device's own timeline: an iteration lasts from its start to the next one's, so device
    time lost waiting for the host counts as harness time.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list[tuple[Any, Any, Any]] = []

    def now(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def add(self, start: Any, model_start: Any, model_end: Any) -> None:
        self.marks.append((start, model_start, model_end))

    def _seconds(self, a: Any, b: Any) -> float:
        return a.elapsed_time(b) / 1e3 if self.cuda else b - a

    def read(self) -> list[tuple[float, float]]:
        """``(model seconds, loop seconds)`` per iteration (waits for the device once)."""
        end = self.now()
        if self.cuda:
            end.synchronize()
        out = []
        for k, (start, m0, m1) in enumerate(self.marks):
            stop = self.marks[k + 1][0] if k + 1 < len(self.marks) else end
            out.append((self._seconds(m0, m1), self._seconds(start, stop)))
        return out


def save_png(path: Path, image: np.ndarray) -> None:
    """Write a ``C x H x W`` (or ``H x W``) float image in ``[0, 1]`` as an 8-bit PNG, atomically."""
    from PIL import Image

    arr = np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[0] in (1, 3):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    # zlib level 1: a third of the default level's time for about 10% larger files (snapshots are for looking at)
    atomic_save(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG", compress_level=1))


def _to_host(tensor: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """A host copy of ``tensor`` started without waiting: ``(copy, event to wait for or None)``."""
    if tensor.device.type == "cuda":
        host = torch.empty(tensor.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return host, event
    return tensor.detach().to(torch.float32, copy=True), None


def _write_snapshot(folders: list[Path], k: int, images: tuple[torch.Tensor, Any],
                    masks: tuple[torch.Tensor, Any] | None) -> None:
    for copy in (images, masks):
        if copy is not None and copy[1] is not None:
            copy[1].synchronize()
    imgs = images[0].numpy()
    msk = masks[0].numpy() if masks is not None else None
    for i, folder in enumerate(folders):
        save_png(folder / f"iter_{k:04d}.png", imgs[i])
        if msk is not None:
            save_png(folder / f"mask_{k:04d}.png", msk[i])


def _snapshot(trajs: Sequence[Trajectory], image_dir: Callable[[str], Path], k: int, images: torch.Tensor,
              masks: torch.Tensor | None, writer: BackgroundWriter | None = None) -> None:
    """Save iteration ``k``'s images (and masks) as PNGs; with a ``writer``, encoding happens off the loop."""
    folders = [image_dir(t.id) for t in trajs]
    job = (folders, k, _to_host(images), _to_host(masks) if masks is not None else None)
    if writer is None:
        _write_snapshot(*job)
    else:
        writer.submit(_write_snapshot, *job)


def _keep(values: Any) -> Any:
    """A model's per-item extras: host sequences are copied now; tensors and lazy sequences are read at the end."""
    return list(values) if isinstance(values, (list, tuple)) else values


def _check_extras(given: dict[str, Any], first: set[str] | None, b: int, k: int, label: str) -> set[str]:
    """Every extra of a model holds one value per item, with the same names at every iteration (else the
    table cannot be built); returns the names."""
    for name, vals in given.items():
        try:
            n = len(vals)
        except TypeError:
            n = -1
        if n != b:
            raise ModelContractError(f"model {label!r}: extras[{name!r}] must hold {b} values (one per item) at "
                                     f"iteration {k}, got {n if n >= 0 else type(vals).__name__}")
    names = set(given)
    if first is not None and names != first:
        raise ModelContractError(f"model {label!r}: extras must have the same names at every iteration; "
                                 f"iteration {k} gave {sorted(names)}, earlier ones {sorted(first)}")
    return names


def _host_list(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, torch.Tensor) else list(values)


@torch.no_grad()
def run_batch(model: Inpainter, trajs: Sequence[Trajectory], config: ExperimentConfig, suite: MetricSuite,
              window: ScoreWindow | None, image_dir: Callable[[str], Path],
              on_step: Callable[[int], object] = lambda n: None,
              annotate: Annotator | None = None, writer: BackgroundWriter | None = None,
              detectors: DetectorSuite | None = None,
              on_features: Callable[[dict[str, np.ndarray]], object] | None = None) -> pd.DataFrame:
    """Run a batch of trajectories through all iterations and return their rows (iteration 0 included).

    Args:
        model: the inpainting model (its device holds all state).
        trajs: trajectories of the same image size.
        config: the experiment (iterations, snapshots).
        suite: the metrics, on the model's device.
        window: the noise band (and fewest steps) of the hallucination score; ``None`` = no score
            (the model is then not asked for x0).
        image_dir: where the snapshots of a trajectory id go.
        on_step: called with the batch size after every iteration (progress).
        annotate: ground-truth annotator of the input source, if any.
        writer: writes the snapshots in the background (default: written before going on).
        detectors: the enabled detectors (one ``det_*`` column each; ``halluc_score*`` alias their
            ``x0-variance`` columns); ``None`` = none. ``x0-variance-component`` labels components
            on the CPU, so with it the loop waits for the device once per iteration.
        on_features: called once, at the end, with the stored features of the batch's rows (see
            :meth:`ripbench.store.RunStore.write_features`), when a metric has features (DINOv2, CLIP).

    Nothing inside the loop waits for the device: masks are uploaded asynchronously, checks and
    metrics stay on the device, timings are device events, and values reach the host once, at
    the end of the batch (snapshots are copied asynchronously and encoded by ``writer``).
    """
    trajs = list(trajs)
    device = model.device
    n_iter, b = config.iterations, len(trajs)
    h, w = trajs[0].size
    snaps = set(config.snapshot_iterations())
    handoff = Handoff.parse(config.handoff)  # what the next iteration (and the metrics) receive
    # the original is what iteration 1 receives: handed off like every later image (a study that keeps its
    # images as 8-bit files starts from an 8-bit original too), so the hand-off alone never changes a pixel twice
    original = handoff.apply(torch.stack([t.image.pixels for t in trajs]).to(device), inplace=True)
    tracker = DriftTracker(suite, original)  # holds the previous image: the next model input
    if 0 in snaps:
        _snapshot(trajs, image_dir, 0, original, None, writer)

    per_iter: dict[str, list[torch.Tensor]] = {}
    features = {name: [f] for name, f in tracker.features().items()}  # iteration 0: the originals
    extras: dict[str, list[Any]] = {}
    model_extras: set[str] | None = None
    start_extras = annotate(original) if annotate else {}
    no_failure = torch.zeros(b, dtype=torch.bool, device=device)
    clock = _Clock(device)
    for k in range(1, n_iter + 1):
        t_start = clock.now()
        masks = masks_for([t.policy for t in trajs], h, w, k, [t.key for t in trajs], device, original.dtype)
        seeds = [t.noise_seed(k) for t in trajs]
        t_model = clock.now()
        try:  # the model gets copies: an in-place edit can never reach the loop's own state
            record = {"x0_band": window.band} if window is not None else {}  # a NoiseBand: carries its unit
            result = model.inpaint(tracker.previous.clone(), masks.clone(), seeds, **record)
        except Exception as exc:
            add_note(exc, f"(raised by model {trajs[0].model_label!r} ({type(model).__module__}."
                          f"{type(model).__qualname__}) at iteration {k} of {b} trajectories, e.g. {trajs[0].id})")
            raise
        t_model_end = clock.now()
        if not isinstance(result, InpaintResult):
            raise ModelContractError(_not_a_result(result, model, trajs[0].model_label), rules=["returns-result"])
        if result.x0_trajectory is not None and not model.returns_x0_trajectory:
            raise ModelContractError(f"model {trajs[0].model_label!r} returned an x0_trajectory but does not declare "
                                     "returns_x0_trajectory = True; see ripbench.models.base")
        new, checks = _checked_output(result.images, original, trajs[0].model_label)
        new = handoff.apply(new, inplace=True)  # the loop's own copy of the output
        given = tracker.previous  # the model's input (the tracker replaces, never edits, it)
        for name, v in checks.items():
            per_iter.setdefault(name, []).append(v)

        for name, v in tracker.step(new, masks).items():
            per_iter.setdefault(name, []).append(v)
        for name, f in tracker.features().items():
            features[name].append(f)
        dets = detectors.columns(result, masks, new, given, window) if detectors is not None else {}
        if window is not None:
            for name, column in window.columns(result, masks).items():
                if isinstance(column, torch.Tensor):
                    per_iter.setdefault(name, []).append(dets.get(ALIASES.get(name, ""), column))
                else:
                    extras.setdefault(name, []).append(list(column))
        for name, v in dets.items():
            per_iter.setdefault(name, []).append(v)
        for name, v in mask_stats_batch(masks).items():
            per_iter.setdefault(f"mask_{name}", []).append(v)
        per_iter.setdefault("cum_mask_area", []).append(tracker.ever_fraction())
        fail = no_failure if result.failed is None else result.failed.to(device=device, dtype=torch.bool)
        per_iter.setdefault("model_failed", []).append(fail)
        model_extras = _check_extras(result.extras, model_extras, b, k, trajs[0].model_label)
        reasons = result.extras.get("failure")
        extras.setdefault("model_failure", []).append(_keep(reasons) if reasons is not None else [""] * b)
        for name, vals in result.extras.items():
            if name != "failure":
                extras.setdefault(name, []).append(_keep(vals))
        if annotate:
            for name, vals in annotate(new).items():
                extras.setdefault(name, []).append(_keep(vals))

        if k in snaps:
            _snapshot(trajs, image_dir, k, new, masks, writer)
        clock.add(t_start, t_model, t_model_end)
        on_step(b)
    host: dict[str, list[float]] = {name: [] for name in TIMING_COLUMNS}
    for model_time, total in clock.read():
        host["model_seconds"].extend([model_time / b] * b)
        host["overhead_seconds"].extend([(total - model_time) / b] * b)
    table = _rows(trajs, n_iter, suite, per_iter, host, extras, start_extras)
    if features and on_features is not None:
        on_features(_stored_features(trajs, n_iter, features, table))
    return table


def _stored_features(trajs: list[Trajectory], n_iter: int, features: dict[str, list[torch.Tensor]],
                     table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The batch's features (iteration-major, one host transfer per metric) for the rows the table kept."""
    b = len(trajs)
    ids = np.array([t.id for t in trajs] * (n_iter + 1))
    iterations = np.repeat(np.arange(n_iter + 1), b)
    kept = set(zip(table["trajectory_id"], table["iteration"].astype(int)))
    keep = np.array([(i, int(k)) in kept for i, k in zip(ids, iterations)])
    out: dict[str, np.ndarray] = {"trajectory_id": ids[keep], "iteration": iterations[keep]}
    for name, per_k in features.items():
        out[name] = torch.cat(per_k).to(torch.float16).cpu().numpy()[keep]
    return out


def _not_a_result(result: Any, model: Inpainter, label: str) -> str:
    """The one line refusing a model whose ``inpaint`` returned something other than an ``InpaintResult``."""
    got = type(result).__name__
    if isinstance(result, torch.Tensor):
        got = f"a bare tensor of shape {tuple(result.shape)}"
    elif result is None:
        got = "None"
    return (f"model {label!r} ({type(model).__module__}.{type(model).__qualname__}) returned {got} from inpaint, "
            "not an InpaintResult; return ripbench.models.InpaintResult(images=...)")


#: Outputs this far outside [0, 1] are rounding and are clamped; further out is a failed output.
RANGE_TOLERANCE = 1e-3


def _checked_output(images: Any, original: torch.Tensor, label: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The model's output on the loop's device, clamped, and per-item checks (kept on the device).

    A wrong shape or type stops the run (the model is unusable); NaN / Inf or values outside
    ``[0, 1]`` (beyond rounding, e.g. an output in 0-255) mark that item failed, with the reason.
    """
    if not isinstance(images, torch.Tensor) or tuple(images.shape) != tuple(original.shape) \
            or not images.is_floating_point():
        got = f"{tuple(images.shape)} {images.dtype}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ModelContractError(f"model {label!r} returned images of {got}; expected a float tensor of shape "
                                 f"{tuple(original.shape)} (B x 3 x H x W in [0, 1])")
    out = images.to(device=original.device, dtype=original.dtype)
    flat = out.flatten(1)
    low, high = flat.amin(dim=1), flat.amax(dim=1)  # NaN and +-inf show in the extremes (aminmax is slower)
    finite = torch.isfinite(low) & torch.isfinite(high)
    out_of_range = (low < -RANGE_TOLERANCE) | (high > 1 + RANGE_TOLERANCE)
    checks = {"_nonfinite": ~finite, "_out_of_range": out_of_range, "_low": low, "_high": high}
    # always a new tensor: a model may reuse its output buffer at its next call
    if out.device.type == "cpu" and bool(finite.all()):  # no device sync on the CPU: skip a needless pass
        return out.clamp(0.0, 1.0), checks
    return torch.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0), checks


def _failures(cols: dict[str, np.ndarray], model_reasons: list[Any]) -> tuple[np.ndarray, list[str]]:
    """``failed`` and ``failure`` (the reason, "" when fine) from the model's flags and the loop's checks."""
    failed = cols.pop("model_failed").astype(bool)
    nonfinite, outside = cols.pop("_nonfinite").astype(bool), cols.pop("_out_of_range").astype(bool)
    low, high = cols.pop("_low"), cols.pop("_high")
    reasons = []
    for i in range(len(failed)):
        if nonfinite[i]:
            reasons.append("nan: the output holds NaN or Inf values")
        elif outside[i]:
            reasons.append(f"out-of-range: output values in [{low[i]:.4g}, {high[i]:.4g}], expected [0, 1]")
        elif failed[i]:
            reasons.append(str(model_reasons[i] or "reported failed by the model"))
        else:
            reasons.append("")
    return failed | nonfinite | outside, reasons


def _rows(trajs: list[Trajectory], n_iter: int, suite: MetricSuite, per_iter: dict[str, list[torch.Tensor]],
          host: dict[str, list[float]], extras: dict[str, list[Sequence[Any]]],
          start_extras: dict[str, Sequence[Any]]) -> pd.DataFrame:
    b = len(trajs)
    # one host transfer for all device-side values: (iterations x B) per column
    cols = {name: torch.stack(vals).cpu().numpy().reshape(-1) for name, vals in per_iter.items()}
    cols["failed"], failure = _failures(cols, [r for per_k in extras.pop("model_failure") for r in _host_list(per_k)])
    item = np.tile(np.arange(b), n_iter)
    frame: dict[str, Any] = {
        "trajectory_id": [trajs[i].id for i in item],
        "model": [trajs[i].model_label for i in item],
        "image_id": [trajs[i].image.id for i in item],
        "category": [trajs[i].image.category for i in item],
        "mask_policy": [trajs[i].mask_spec["policy"] for i in item],
        "mask_label": [trajs[i].policy.label for i in item],
        "seed": [trajs[i].seed for i in item],
        "iteration": np.repeat(np.arange(1, n_iter + 1), b),
        **host,
        **cols,
    }
    frame["failure"] = failure
    for name, per_k in extras.items():
        frame[name] = [v for vals in per_k for v in _host_list(vals)]
    body = pd.DataFrame(frame)
    # iteration 0: the original itself. Only "distance to the original" in the whole image (and in
    # the never-masked region, which is the whole image) is defined; everything else is missing.
    start = body[body["iteration"] == 1].copy()
    start["iteration"] = 0
    identity = {column_name(name, "orig", region): spec.identity
                for name, spec in suite.specs.items() for region in (None, "never")}
    for col in body.columns:
        if col in KEY_COLUMNS or col in ("trajectory_id", "iteration"):
            continue
        start[col] = identity.get(col, np.nan) if body[col].dtype.kind in "fc" else None
    start[["mask_area", "cum_mask_area"]] = 0.0
    start["failed"] = False
    start["failure"] = ""
    for name, vals in start_extras.items():
        start[name] = list(vals)
    table = pd.concat([start, body], ignore_index=True)
    for col in MASK_BOX_COLUMNS:
        table[col] = table[col].astype("Int64")
        table.loc[table["iteration"] == 0, col] = pd.NA
    # a failed trajectory keeps its rows up to and including its first failing iteration
    first_fail = table[table["failed"]].groupby("trajectory_id")["iteration"].min()
    if len(first_fail):
        limit = table["trajectory_id"].map(first_fail).fillna(np.inf)
        table = table[table["iteration"] <= limit]
    return table.sort_values(["trajectory_id", "iteration"], kind="stable").reset_index(drop=True)
