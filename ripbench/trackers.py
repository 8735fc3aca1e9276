"""Experiment trackers (``ripbench run --report-to tensorboard|wandb|mlflow``): a run's curves while it goes.

What is logged, by rank 0 only (nothing at all without ``--report-to``):

* at the start: the resolved config (TensorBoard: as YAML text; W&B: the run's config; MLflow:
  flattened parameters);
* while the run goes, after every finished batch: ``progress/trajectories`` (finished so far by this
  process) and, per model and mask (``<model>/<mask label>``), the running mean at the last
  iteration of every metric column and of the hallucination scores, ``running/<column>/<group>``,
  with the finished trajectory count of that group as the step;
* once a model's trajectories are finished (single-process runs; a multi-process or resumed run,
  whose other ranks' or earlier launches' rows rank 0 does not see, at the end from the whole
  table): the per-iteration group means
  of every metric column (``<metric>_orig``, ``<metric>_prev``, each region) and of
  ``halluc_score`` / ``halluc_score_current``, as ``curve/<column>/<group>`` with the iteration as
  the step (W&B: its step metric ``iteration``);
* at the end: the summary table's numbers (``final/<column>/<group>``) and the collapse-curve figure.

Means are over the rows present (a failed trajectory ends at its first failed iteration; rows
flagged failed are left out). A tracker that cannot start (package missing, W&B online with no
network) is one :class:`~ripbench.errors.ConfigError` line before the run starts.

TensorBoard writes to ``OUTPUT_DIR/tensorboard/NAME`` (``tensorboard --logdir results/tensorboard``);
W&B uses the project ``$WANDB_PROJECT`` (default ``ripbench``) and ``WANDB_MODE``; MLflow
``$MLFLOW_TRACKING_URI`` (default ``./mlruns``) and the experiment ``$MLFLOW_EXPERIMENT_NAME``.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from .errors import ConfigError

__all__ = ["TRACKERS", "RunTracker", "Tracker", "metric_columns", "start_trackers"]

#: Tracker names ``--report-to`` accepts.
TRACKERS: tuple[str, ...] = ("tensorboard", "wandb", "mlflow")
GROUP = ("model", "mask_label")
SCORES = ("halluc_score", "halluc_score_current")


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Every metric column of a table (from the metric specs: ``<metric>_orig``, ``_prev``, each region), then
    the hallucination scores present.

    >>> metric_columns(pd.DataFrame(columns=["mse_orig", "mse_prev_never", "seed", "halluc_score"]))
    ['mse_orig', 'mse_prev_never', 'halluc_score']
    """
    from .metrics.registry import spec_for_column

    return [c for c in table.columns if spec_for_column(c) is not None] + [c for c in SCORES if c in table.columns]


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    text = data if isinstance(data, (int, float, bool, str)) or data is None else json.dumps(data, default=str)
    return {prefix.rstrip("."): text}


class Tracker:
    """One backend: scalars at a step, the config, a figure. Subclasses wrap one library."""

    name = ""

    def __init__(self, run_name: str, folder: Path) -> None:
        """Start logging run ``run_name`` (files, where the backend writes any, under ``folder``)."""

    def config(self, config: dict[str, Any]) -> None:
        raise NotImplementedError

    def scalars(self, values: dict[str, float], step: int, axis: str = "step") -> None:
        raise NotImplementedError

    def figure(self, name: str, path: Path) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class _TensorBoard(Tracker):
    """TensorBoard through torch's ``SummaryWriter``; the event file is created with the first values, so a run
    refused before its first batch leaves no log behind."""

    name = "tensorboard"

    def __init__(self, run_name: str, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--report-to tensorboard needs the 'tensorboard' package: "
                              "pip install 'ripbench[tensorboard]'") from None
        self.folder = folder
        self.make = SummaryWriter
        self._writer: Any = None
        self.pending_config: str | None = None

    @property
    def writer(self) -> Any:
        if self._writer is None:
            self._writer = self.make(log_dir=str(self.folder))
            if self.pending_config is not None:
                self._writer.add_text("config", self.pending_config, 0)
        return self._writer

    def config(self, config: dict[str, Any]) -> None:
        import yaml

        text = yaml.safe_dump(config, sort_keys=False)
        self.pending_config = "    " + text.replace("\n", "\n    ")  # a Markdown code block

    def scalars(self, values: dict[str, float], step: int, axis: str = "step") -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()

    def figure(self, name: str, path: Path) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            self.writer.add_image(name, np.asarray(im.convert("RGB")), 0, dataformats="HWC")
        self.writer.flush()

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _reachable(url: str, timeout: float = 3.0) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


class _WandB(Tracker):
    name = "wandb"

    def __init__(self, run_name: str, folder: Path) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError("--report-to wandb needs the 'wandb' package: pip install wandb") from None
        mode = os.environ.get("WANDB_MODE", "online").lower()
        base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
        if mode not in ("offline", "disabled", "dryrun") and not _reachable(base):
            raise ConfigError(f"--report-to wandb: cannot reach {base} (no network?); set WANDB_MODE=offline to log "
                              "locally and `wandb sync` later")
        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "ripbench"), name=run_name,
                              dir=str(folder.parent), reinit=True)
        self.axes: set[str] = set()

    def config(self, config: dict[str, Any]) -> None:
        self.run.config.update(config, allow_val_change=True)

    def scalars(self, values: dict[str, float], step: int, axis: str = "step") -> None:
        if axis not in self.axes:  # W&B's own step only grows: each kind of curve gets its own x axis
            self.run.define_metric(axis)
            self.axes.add(axis)
        for tag in values:
            if tag not in self.axes:
                self.run.define_metric(tag, step_metric=axis)
                self.axes.add(tag)
        self.run.log({axis: step, **values})

    def figure(self, name: str, path: Path) -> None:
        self.run.log({name: self.wandb.Image(str(path))})

    def finish(self) -> None:
        self.run.finish()


class _MLflow(Tracker):
    name = "mlflow"

    def __init__(self, run_name: str, folder: Path) -> None:
        try:
            import mlflow
        except ImportError:
            raise ConfigError("--report-to mlflow needs the 'mlflow' package: pip install mlflow") from None
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        if uri.startswith(("http://", "https://")) and not _reachable(uri):
            raise ConfigError(f"--report-to mlflow: cannot reach the tracking server {uri}; unset MLFLOW_TRACKING_URI "
                              "to log to ./mlruns")
        self.mlflow = mlflow
        self.run = mlflow.start_run(run_name=run_name)

    def config(self, config: dict[str, Any]) -> None:
        params = {k: str(v)[:500] for k, v in _flat(config).items()}
        self.mlflow.log_params(params)

    def scalars(self, values: dict[str, float], step: int, axis: str = "step") -> None:
        self.mlflow.log_metrics({k.replace("@", "_at_"): v for k, v in values.items()}, step=step)

    def figure(self, name: str, path: Path) -> None:
        self.mlflow.log_artifact(str(path), artifact_path="figures")

    def finish(self) -> None:
        self.mlflow.end_run()


_BACKENDS: dict[str, type[Tracker]] = {"tensorboard": _TensorBoard, "wandb": _WandB, "mlflow": _MLflow}


def _finite(values: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if number == number and abs(number) != float("inf"):
            out[key] = number
    return out


class RunTracker:
    """The trackers of one run, fed by :func:`ripbench.run.run_experiment` (``tracker=``) on rank 0.

    ``distributed``: the run has several processes, so per-iteration curves wait for the whole table.
    ``batch_done`` / ``model_done`` see only this process's rows of this launch.
    """

    def __init__(self, trackers: Sequence[Tracker], config: Any, distributed: bool = False) -> None:
        self.trackers = list(trackers)
        self.iterations = int(config.iterations)
        self.distributed = distributed
        self.rows: list[pd.DataFrame] = []  # this process's rows of the model running now (for its curves)
        self.last: list[pd.DataFrame] = []  # every finished trajectory's row at the last iteration
        self.finished = 0
        self.resumed = False
        self.done_per_group: dict[str, int] = {}
        self.logged: set[str] = set()
        config_data = config.model_dump(mode="json")
        for tracker in self.trackers:
            tracker.config(config_data)

    def _send(self, values: dict[str, Any], step: int, axis: str) -> None:
        clean = _finite(values)
        for tracker in list(self.trackers) if clean else []:
            try:
                tracker.scalars(clean, step, axis)
            except Exception as exc:  # noqa: BLE001 - a tracker that fails mid-run stops; the run goes on
                warnings.warn(f"tracker {tracker.name} stopped logging: {type(exc).__name__}: {exc}", stacklevel=2)
                self.trackers.remove(tracker)

    def started(self, trajectories: int, already_finished: int) -> None:
        """The run is about to start: ``already_finished`` trajectories of an earlier launch are skipped (then
        the curves wait for the whole table, since this launch does not see the earlier rows)."""
        self.resumed = already_finished > 0

    def batch_done(self, rows: pd.DataFrame) -> None:
        """Rows of a finished batch: progress and running means at the last iteration, per group."""
        self.rows.append(rows)
        self.finished += rows["trajectory_id"].nunique()
        self._send({"progress/trajectories": self.finished}, self.finished, "trajectories")
        ok = rows[(rows["iteration"] == self.iterations) & ~rows["failed"].astype(bool)]
        self.last.append(ok)
        last = pd.concat(self.last, ignore_index=True)
        columns = metric_columns(rows)
        for (model, mask), group in rows.groupby(list(GROUP), sort=False):
            name = f"{model}/{mask}"
            self.done_per_group[name] = self.done_per_group.get(name, 0) + group["trajectory_id"].nunique()
            mine = last[(last["model"] == model) & (last["mask_label"] == mask)]
            means = mine[columns].mean(numeric_only=True)
            self._send({f"running/{c}@{self.iterations}/{name}": v for c, v in means.items()},
                       self.done_per_group[name], f"trajectories/{name}")

    def model_done(self, label: str) -> None:
        """A model's trajectories are finished (on this process): its per-iteration curves, unless distributed."""
        rows, self.rows = self.rows, []
        if self.distributed or self.resumed or not rows:
            return
        table = pd.concat(rows, ignore_index=True)
        self._curves(table[table["model"] == label])

    def _curves(self, table: pd.DataFrame) -> None:
        columns = metric_columns(table)
        rows = table[~table["failed"].astype(bool)]
        for (model, mask), group in rows.groupby(list(GROUP), sort=False):
            name = f"{model}/{mask}"
            if name in self.logged:
                continue
            self.logged.add(name)
            means = group.groupby("iteration")[columns].mean(numeric_only=True)
            for iteration, values in means.iterrows():
                self._send({f"curve/{c}/{name}": v for c, v in values.items()}, int(iteration), "iteration")

    def run_done(self, table: pd.DataFrame, summary: pd.DataFrame | None = None, figure: Path | None = None) -> None:
        """The whole table: curves not logged yet, the summary's numbers, the figure; then the trackers close."""
        try:
            self._curves(table)
            if summary is not None:
                values: dict[str, Any] = {}
                for _, row in summary.iterrows():
                    name = f"{row['model']}/{row['mask_label']}"
                    for column, value in row.items():
                        if column not in GROUP:
                            values[f"final/{column}/{name}"] = value
                self._send(values, self.iterations, "iteration")
            if figure is not None and Path(figure).is_file():
                for tracker in self.trackers:
                    tracker.figure("figures/collapse_curves", Path(figure))
        finally:
            self.close()

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def start_trackers(names: Sequence[str], config: Any, distributed: bool = False) -> RunTracker:
    """Start the named trackers for ``config``'s run (before it starts); one :class:`ConfigError` line if one
    cannot start (the others are closed again)."""
    started: list[Tracker] = []
    run_name = str(config.name)
    try:
        for name in dict.fromkeys(names):
            if name not in _BACKENDS:
                raise ConfigError(f"unknown tracker {name!r} for --report-to; use {', '.join(TRACKERS)}")
            folder = Path(config.output_dir) / name / run_name
            started.append(_BACKENDS[name](run_name, folder))
        return RunTracker(started, config, distributed)
    except BaseException:
        for tracker in started:
            tracker.finish()
        raise
