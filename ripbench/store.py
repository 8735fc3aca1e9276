"""The results folder: layout, atomic writes, manifest, resume bookkeeping, loading.

Layout of one run (``<output_dir>/<name>/``)::

    manifest.json                 resolved config, versions, git commit, device, models, times
    metrics/part-<hash>.parquet   per-iteration rows; one part per finished batch of trajectories
    features/part-<hash>.npz      per-image features of metrics that store them (DINOv2, CLIP), float16,
                                  one row per (trajectory, iteration); the same parts as the rows
    images/<trajectory>/iter_0005.png, mask_0005.png   snapshots at chosen iterations
    figures/collapse_curves.png   first-look plot
    export/<format>/              ``ripbench export`` (see :mod:`ripbench.export`)

Every file is written to a temporary name in the same folder and renamed into place,
so a crash or Ctrl-C never leaves a half-written file under its final name. A part
file holds only trajectories whose every iteration finished; the set of trajectory
ids in the parts *is* the resume state, so there is no separate bookkeeping file
that could disagree with the data.

**One writer at a time.** A run holds an OS-level lock (``fcntl.flock``) on the file
``.<name>.lock`` beside its folder for as long as it runs (the ranks of one launch share
rank 0's). Any other writer is refused with one line naming the holder (host, pid, start
time). The kernel drops the lock when its process dies, so a stale lock from a killed run
is taken over by the next one; on a shared filesystem (NFS v4, Lustre) ``flock`` is
forwarded to the server.

**Overwriting** moves the old folder aside with one atomic rename, then deletes it: a kill
at any moment leaves either the old run or a clean new one, never a mix (a half-deleted
``.<name>.discarded-*`` folder is removed by the next run).

**Recovery**: a corrupt or zero-byte part names its file (delete it; the next run
recomputes those trajectories); result parts without a manifest are refused (which config
made them is unknown: move the folder aside or use ``--overwrite``); a corrupt manifest is
refused likewise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ResultsError
from .io import atomic_save, atomic_write_text

MANIFEST = "manifest.json"
METRICS_DIR = "metrics"
FEATURES_DIR = "features"
IMAGES_DIR = "images"
FIGURES_DIR = "figures"
#: Bounding box of the iteration's mask in the results table, pixels, end-exclusive (missing at iteration 0).
MASK_BOX_COLUMNS = ["mask_y0", "mask_x0", "mask_y1", "mask_x1"]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, set):
        return sorted(obj)
    return str(obj)


def _read_part(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise ResultsError(f"empty results part {path} (0 bytes: a disk or filesystem failure); delete it and "
                           "run again to recompute those trajectories")
    try:
        return pd.read_parquet(path, columns=columns)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ResultsError(f"corrupt results part {path} ({exc}); delete it and run again to recompute "
                           "those trajectories") from None


class RunLock:
    """The exclusive lock of one results folder (a file beside it), held while a run writes.

    >>> import tempfile, pathlib
    >>> run_dir = pathlib.Path(tempfile.mkdtemp()) / "demo"
    >>> with RunLock(run_dir):
    ...     RunLock(run_dir).acquire()
    Traceback (most recent call last):
    ...
    ripbench.errors.ResultsError: ...demo is in use by another ripbench run (host ..., pid ..., started ...); ...
    """

    def __init__(self, run_dir: str | Path) -> None:
        run_dir = Path(run_dir)
        self.path = run_dir.parent / f".{run_dir.name}.lock"
        self.run_dir = run_dir
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`ResultsError` naming the holder."""
        import errno
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ResultsError(f"cannot create the lock file {self.path}: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ResultsError(f"cannot lock {self.path} ({exc.strerror or exc}): the filesystem may not "
                                       "support file locks; put the results on one that does") from None
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown holder"
                raise ResultsError(f"{self.run_dir} is in use by another ripbench run ({holder}); wait for it to "
                                   "finish, or write elsewhere with --name") from None
            info = f"host {socket.gethostname()}, pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode("utf-8"), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (the lock file stays; it is reused)."""
        if self._fd is not None:
            import fcntl

            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunStore:
    """Reads and writes one run's results folder.

    Example
    -------
    >>> import tempfile, pandas as pd
    >>> store = RunStore(tempfile.mkdtemp())
    >>> store.write_part(pd.DataFrame({"trajectory_id": ["a", "a"], "iteration": [0, 1]})).name
    'part-86f7e437faa5a7fc.parquet'
    >>> sorted(store.finished_trajectories())
    ['a']
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    # -- paths ---------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST

    @property
    def metrics_dir(self) -> Path:
        return self.run_dir / METRICS_DIR

    @property
    def figures_dir(self) -> Path:
        return self.run_dir / FIGURES_DIR

    def image_dir(self, trajectory_id: str) -> Path:
        return self.run_dir / IMAGES_DIR / trajectory_id

    # -- manifest ------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or ``None`` when the folder holds no run yet."""
        if not self.manifest_path.is_file():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ResultsError(f"corrupt manifest {self.manifest_path} ({exc}); the results cannot be matched to a "
                               "config without it: move the folder aside, or pass --overwrite to start again") from None
        if not isinstance(manifest, dict):
            raise ResultsError(f"corrupt manifest {self.manifest_path} (not a JSON object); move the folder aside, "
                               "or pass --overwrite to start again")
        return manifest

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, default=_json_default) + "\n")

    # -- metric rows ---------------------------------------------------------
    def part_files(self) -> list[Path]:
        return sorted(self.metrics_dir.glob("part-*.parquet")) if self.metrics_dir.is_dir() else []

    def write_part(self, rows: pd.DataFrame) -> Path:
        """Write a batch of finished trajectories' rows as one Parquet part."""
        ids = sorted(set(rows["trajectory_id"]))
        digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:16]
        path = self.metrics_dir / f"part-{digest}.parquet"
        atomic_save(path, lambda tmp: rows.to_parquet(tmp, index=False))
        return path

    # -- stored features -----------------------------------------------------
    @property
    def features_dir(self) -> Path:
        return self.run_dir / FEATURES_DIR

    def feature_files(self) -> list[Path]:
        return sorted(self.features_dir.glob("part-*.npz")) if self.features_dir.is_dir() else []

    def write_features(self, features: dict[str, np.ndarray]) -> Path:
        """Write a batch's stored features as one ``.npz`` part (named like its rows' part).

        ``features``: ``trajectory_id`` (N strings), ``iteration`` (N ints) and, per metric, an ``N x D``
        array (stored as float16).
        """
        ids = np.asarray(features["trajectory_id"]).astype(str)
        digest = hashlib.sha1("\n".join(sorted(set(ids.tolist()))).encode()).hexdigest()[:16]
        arrays: dict[str, Any] = {k: np.asarray(v, dtype=np.float16) for k, v in features.items()
                                  if k not in ("trajectory_id", "iteration")}
        # ids once per trajectory, an int32 index per row (a row's id string would outweigh its features)
        arrays["_ids"], arrays["_row"] = np.unique(ids, return_inverse=True)
        arrays["_row"] = arrays["_row"].astype(np.int32)
        arrays["iteration"] = np.asarray(features["iteration"], dtype=np.int32)
        path = self.features_dir / f"part-{digest}.npz"

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        atomic_save(path, write)
        return path

    def load_features(self) -> dict[str, np.ndarray]:
        """Every stored feature of the run: ``trajectory_id``, ``iteration`` and ``N x D`` float16 arrays per metric.

        Empty dict when the run stored none. A (trajectory, iteration) written twice (a batch recomputed after an
        interruption) keeps its last copy. A damaged part is named (delete it and run again with --overwrite).
        """
        parts: list[dict[str, np.ndarray]] = []
        for path in self.feature_files():
            try:
                with np.load(path, allow_pickle=False) as data:
                    part = {k: data[k] for k in data.files if not k.startswith("_")}
                    part["trajectory_id"] = data["_ids"][data["_row"]]
                    parts.append(part)
            except Exception as exc:  # zipfile / numpy raise several types for a damaged file
                raise ResultsError(f"corrupt features part {path} ({exc}); delete it and run again with --overwrite "
                                   "to recompute the features") from None
        if not parts:
            return {}
        names = set.intersection(*(set(p) for p in parts))
        out = {k: np.concatenate([p[k] for p in parts]) for k in sorted(names)}
        keys = pd.Series(out["trajectory_id"]).str.cat(pd.Series(out["iteration"]).astype(str), sep="\x00")
        keep = ~keys.duplicated(keep="last").to_numpy()
        return {k: v[keep] for k, v in out.items()}

    def finished_trajectories(self) -> set[str]:
        """Ids of trajectories whose rows are safely on disk."""
        done: set[str] = set()
        for part in self.part_files():
            done.update(_read_part(part, columns=["trajectory_id"])["trajectory_id"].unique())
        return done

    def load_table(self) -> pd.DataFrame:
        """All rows of the run, sorted by trajectory and iteration.

        Raises :class:`ResultsError` when two parts hold the same (trajectory, iteration) row:
        such a folder was written by two runs and its table cannot be trusted.
        """
        parts = self.part_files()
        if not parts:
            raise ResultsError(f"no results in {self.run_dir} (no {METRICS_DIR}/part-*.parquet files)")
        frames = [_read_part(p) for p in parts]
        table = pd.concat(frames, ignore_index=True)
        if {"trajectory_id", "iteration"} <= set(table.columns):
            dup = table.duplicated(["trajectory_id", "iteration"], keep=False)
            if dup.any():
                where = [p.name for p, f in zip(parts, frames)
                         if f["trajectory_id"].isin(table.loc[dup, "trajectory_id"]).any()]
                raise ResultsError(
                    f"{self.run_dir} holds {int(dup.sum())} duplicated (trajectory, iteration) rows, e.g. "
                    f"{table.loc[dup, 'trajectory_id'].iloc[0]!r}, in parts {', '.join(where[:4])}: it was written "
                    "by more than one run; delete the extra parts or run again with --overwrite")
        return table.sort_values(["trajectory_id", "iteration"], kind="stable").reset_index(drop=True)

    def set_aside(self) -> Path | None:
        """Move the whole run folder aside in one atomic rename (for ``--overwrite``); its new name.

        Until :meth:`drop` or :meth:`restore`, the old run survives under a hidden
        ``.<name>.discarded-*`` name that no run adopts (and :meth:`sweep` deletes): a kill at any
        moment leaves the old run or a clean new one, never a folder mixing the two.
        """
        if not self.run_dir.exists():
            return None
        aside = self.run_dir.parent / f".{self.run_dir.name}.discarded-{os.getpid()}-{time.time_ns()}"
        os.replace(self.run_dir, aside)
        return aside

    def restore(self, aside: Path) -> None:
        """Put a folder moved aside by :meth:`set_aside` back (the new run wrote no results)."""
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        os.replace(aside, self.run_dir)

    @staticmethod
    def drop(aside: Path | None) -> None:
        """Delete a folder moved aside by :meth:`set_aside`."""
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)

    def discard(self) -> None:
        """Remove a previous run at once: :meth:`set_aside`, then :meth:`drop`."""
        self.drop(self.set_aside())
        self.sweep()

    def sweep(self) -> None:
        """Delete what an interrupted :meth:`discard` left behind (call while holding the lock)."""
        for leftover in self.run_dir.parent.glob(f".{self.run_dir.name}.discarded-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def remove(self) -> None:
        """Delete everything this run wrote, and the folder itself when it is left empty."""
        for name in (MANIFEST, METRICS_DIR, FEATURES_DIR, IMAGES_DIR, FIGURES_DIR, "README.md"):
            p = self.run_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        with contextlib.suppress(OSError):
            self.run_dir.rmdir()


def load_table(run_dir: str | Path) -> pd.DataFrame:
    """Load a run's per-iteration table; the manifest is attached as ``table.attrs['manifest']``."""
    store = RunStore(run_dir)
    if not store.run_dir.is_dir():
        raise ResultsError(f"results folder not found: {store.run_dir}")
    table = store.load_table()
    table.attrs["manifest"] = store.read_manifest() or {}
    return table
