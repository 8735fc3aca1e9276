"""The results folder: layout, atomic writes, manifest, resume bookkeeping, loading.

Layout of one run (``<output_dir>/<name>/``)::

    manifest.json                 resolved config, versions, git commit, device, models, times
    metrics/part-<hash>.parquet   per-iteration rows; one part per finished batch of trajectories
    images/<trajectory>/iter_0005.png, mask_0005.png   snapshots at chosen iterations
    figures/collapse_curves.png   first-look plot

Every file is written to a temporary name in the same folder and renamed into place,
so a crash or Ctrl-C never leaves a half-written file under its final name. A part
file holds only trajectories whose every iteration finished; the set of trajectory
ids in the parts *is* the resume state, so there is no separate bookkeeping file
that could disagree with the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ResultsError
from .io import atomic_save, atomic_write_text

MANIFEST = "manifest.json"
METRICS_DIR = "metrics"
IMAGES_DIR = "images"
FIGURES_DIR = "figures"


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
    try:
        return pd.read_parquet(path, columns=columns)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ResultsError(f"corrupt results part {path} ({exc}); delete it and run again to recompute "
                           "those trajectories") from None


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
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise ResultsError(f"corrupt manifest {self.manifest_path}: {exc}") from None

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

    def finished_trajectories(self) -> set[str]:
        """Ids of trajectories whose rows are safely on disk."""
        done: set[str] = set()
        for part in self.part_files():
            done.update(_read_part(part, columns=["trajectory_id"])["trajectory_id"].unique())
        return done

    def load_table(self) -> pd.DataFrame:
        """All rows of the run, sorted by trajectory and iteration."""
        parts = self.part_files()
        if not parts:
            raise ResultsError(f"no results in {self.run_dir} (no {METRICS_DIR}/part-*.parquet files)")
        table = pd.concat([_read_part(p) for p in parts], ignore_index=True)
        return table.sort_values(["trajectory_id", "iteration"], kind="stable").reset_index(drop=True)

    def clear(self) -> None:
        """Remove a previous run's results (for ``--overwrite``)."""
        for name in (MANIFEST, METRICS_DIR, IMAGES_DIR, FIGURES_DIR):
            p = self.run_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def remove(self) -> None:
        """Delete everything this run wrote, and the folder itself when it is left empty."""
        self.clear()
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
