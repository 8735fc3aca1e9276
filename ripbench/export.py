"""RIP chains as a dataset: every saved image of a run, with its provenance, as ``imagefolder`` or Parquet.

:func:`export_run` (``ripbench export RUN --format imagefolder|parquet``) writes one row per saved
image (``images/<trajectory>/iter_KKKK.png``; which iterations are saved is ``snapshots`` /
``save_every`` of the run's config) with: the run's name, the model (label and id), the image id
and category, the mask policy and label, the seed, the iteration, the mask's bounding box
(``mask_y0, mask_x0, mask_y1, mask_x1``, end-exclusive; missing at iteration 0), every metric
value of that row (``<metric>_orig``, ``<metric>_prev``, per region), the hallucination scores
(``halluc_score*``, ``det_*``) and ``failed`` / ``failure``: the row of the run's table, less its
timings. Iteration 0 is the original image.

* ``imagefolder``: ``OUT/images/<trajectory>/iter_KKKK.png`` (and ``mask_KKKK.png``) with
  ``OUT/metadata.jsonl``; ``datasets.load_dataset("imagefolder", data_dir=OUT)`` loads it (the
  masks as a second image column, ``mask``, where the ``datasets`` version reads ``*_file_name``).
* ``parquet``: ``OUT/data/train-NNNNN-of-MMMMM.parquet`` with the image (and mask) bytes as
  ``datasets.Image`` columns; ``datasets.load_dataset("parquet", data_dir=OUT / "data")`` loads it.

Beside the data, ``OUT/README.md`` is a dataset card: the run's settings from its manifest, the
command that made the run and the command that exported it, the columns. The export is written
to a temporary folder and renamed into place, so an interrupted export leaves nothing under
``OUT``. :func:`push_to_hub` uploads the folder with ``huggingface_hub`` (a dataset repository).

Needs ``datasets`` (parquet) and ``huggingface_hub`` (push): ``pip install 'ripbench[hf]'``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from .errors import ConfigError, ResultsError
from .formatting import command_line
from .store import IMAGES_DIR, RunStore

__all__ = ["EXPORT_FORMATS", "ExportFormat", "export_run", "push_to_hub"]

ExportFormat = Literal["imagefolder", "parquet"]
EXPORT_FORMATS: tuple[str, ...] = ("imagefolder", "parquet")
#: Rows per Parquet shard (about 250 MB of 512 px PNGs): bounded memory for dense chains.
SHARD_ROWS = 1000
#: Columns of the run's table left out of an export: wall-clock timings differ between identical runs.
_LEFT_OUT = ("model_seconds", "overhead_seconds")
_SNAPSHOT = re.compile(r"iter_(\d+)\.png")


def _clean(value: Any) -> Any:
    """A table cell as a plain value: NaN and missing values -> ``None``, numpy scalars -> Python. An
    infinite value stays (PSNR of identical pixels is +inf, a fact, not a missing value; Parquet stores it,
    ``metadata.jsonl`` writes ``Infinity``, which ``datasets`` reads back)."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _model_ids(manifest: dict[str, Any]) -> dict[str, str]:
    """Model label -> the model it is (Hub id or folder for diffusers models, else the registered name)."""
    out: dict[str, str] = {}
    for m in (manifest.get("config") or {}).get("models", []):
        label = m.get("label") or (m["name"].split(":")[-1] if ":" in m["name"] else m["name"])
        out[label] = str((m.get("options") or {}).get("model") or m["name"])
    return out


def _records(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One record per saved image of a run (provenance + ``_image`` / ``_mask`` paths), and its manifest."""
    store = RunStore(run_dir)
    if not store.run_dir.is_dir():
        raise ResultsError(f"results folder not found: {run_dir}")
    manifest = store.read_manifest()
    if manifest is None:
        raise ResultsError(f"{run_dir} holds no manifest.json: not a ripbench run folder")
    table = store.load_table()
    table = table.drop(columns=[c for c in _LEFT_OUT if c in table.columns])
    rows = {(t, int(k)): i for i, (t, k) in enumerate(zip(table["trajectory_id"], table["iteration"]))}
    models = _model_ids(manifest)
    records = []
    images = run_dir / IMAGES_DIR
    for folder in sorted(p for p in images.iterdir() if p.is_dir()) if images.is_dir() else []:
        for png in sorted(folder.glob("iter_*.png")):
            found = _SNAPSHOT.fullmatch(png.name)
            index = rows.get((folder.name, int(found.group(1)))) if found else None
            if index is None:  # a snapshot of a trajectory whose rows are not (yet) in the table
                continue
            row = {c: _clean(v) for c, v in table.iloc[index].items()}
            mask = folder / f"mask_{int(found.group(1)):04d}.png"  # type: ignore[union-attr]
            records.append({"run": manifest.get("name", run_dir.name), "model_id": models.get(row["model"]),
                            **row, "_image": png, "_mask": mask if mask.is_file() else None})
    if not records:
        raise ResultsError(f"{run_dir} holds no saved images of finished trajectories (images/*/iter_*.png); "
                           "run with --save-every K (or snapshots) to save the chains")
    return records, manifest


def _card(manifest: dict[str, Any], fmt: str, n: int, columns: list[str], command: str) -> str:
    """The dataset card: YAML header for the Hub, then what the rows are and the settings that made them."""
    header: dict[str, Any] = {"tags": ["ripbench", "recursive-inpainting", "self-consuming"],
                              "pretty_name": f"ripbench run {manifest.get('name')}"}
    # No `configs:` block: with one, `datasets` caches every export folder loaded by its path under one key
    # (parquet/default/0.0.0/<hash of the name 'parquet'>), so the second export read returned the first's
    # rows; the Hub and `datasets` find `data/train-*.parquet` by its name alone.
    config = manifest.get("config") or {}
    settings = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100).rstrip()
    models = ", ".join(f"`{label}` ({ident.get('name', label) if isinstance(ident, dict) else label})"
                       for label, ident in (manifest.get("models") or {}).items())
    datasets = manifest.get("datasets") or []
    source = "; ".join(f"`{d.get('dataset')}` split `{d.get('split')}`, {d.get('sample') or 'all'} of {d.get('rows')} "
                       f"rows, seed {d.get('seed')}" for d in datasets)
    load = ('datasets.load_dataset("parquet", data_dir="data")' if fmt == "parquet"
            else 'datasets.load_dataset("imagefolder", data_dir=".")')
    return "\n".join([
        "---", yaml.safe_dump(header, sort_keys=False).rstrip(), "---", "",
        f"# Recursive inpainting chains: ripbench run `{manifest.get('name')}`", "",
        f"{n} images saved during a Recursive InPainting (RIP) run of ripbench "
        f"{manifest.get('ripbench_version', '')} (git {manifest.get('git_commit') or 'unknown'}), status "
        f"`{manifest.get('status')}`: each image was made by a model repainting a masked region of the previous "
        "iteration's output; iteration 0 is the original.", "",
        f"* models: {models or 'see the settings'}",
        f"* input images: {source or config.get('inputs', {}).get('source', 'see the settings')}",
        f"* iterations: {config.get('iterations')}, image size {config.get('size')} px, seeds {config.get('seeds')}",
        f"* saved iterations: `snapshots` {config.get('snapshots')}, `save_every` {config.get('save_every') or 'off'}",
        f"* run made with: `{manifest.get('command', '')}`",
        f"* exported with: `{command}`", "",
        f"Load it: `{load}`.", "",
        "## Columns", "",
        "`image` (and `mask`, 1 = repainted at this iteration) and one column per provenance field: `run`, `model` "
        "(label) and `model_id`, `image_id`, `category`, `mask_policy`, `mask_label`, `seed`, `iteration`, "
        "`trajectory_id`, the mask's bounding box `mask_y0, mask_x0, mask_y1, mask_x1` (pixels, end-exclusive; "
        "missing at iteration 0), every metric (`<metric>_orig` to the original, `<metric>_prev` to the previous "
        "iteration, per region), the hallucination scores (`halluc_score*`, `det_*`; missing for models without "
        "x0 trajectories) and `failed` / `failure`.", "",
        f"All columns: {', '.join(f'`{c}`' for c in columns)}.", "",
        "## Settings (the run's resolved config, from its manifest)", "",
        "```yaml", settings, "```", "",
    ])


def _metadata_row(record: dict[str, Any], with_masks: bool) -> dict[str, Any]:
    rel = Path(IMAGES_DIR) / record["_image"].parent.name
    row: dict[str, Any] = {"file_name": str(rel / record["_image"].name)}
    if with_masks:
        row["mask_file_name"] = str(rel / record["_mask"].name) if record["_mask"] is not None else None
    row.update({k: v for k, v in record.items() if not k.startswith("_")})
    return row


def _write_imagefolder(records: list[dict[str, Any]], tmp: Path) -> None:
    from .io import atomic_write_text

    with_masks = _masks_as_column()
    lines = []
    for record in records:
        for key in ("_image", "_mask"):
            if record[key] is not None:
                target = tmp / IMAGES_DIR / record[key].parent.name / record[key].name
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(record[key], target)  # same filesystem: no copy
                except OSError:
                    shutil.copyfile(record[key], target)
        lines.append(json.dumps(_metadata_row(record, with_masks)))
    atomic_write_text(tmp / "metadata.jsonl", "\n".join(lines) + "\n")


def _masks_as_column() -> bool:
    """Whether this ``datasets`` reads ``mask_file_name`` as a second image column (datasets >= 4)."""
    try:
        import datasets
    except ImportError:
        return False
    return int(datasets.__version__.split(".")[0]) >= 4


def _shards(records: list[dict[str, Any]]) -> Iterator[tuple[int, int, list[dict[str, Any]]]]:
    count = max(1, math.ceil(len(records) / SHARD_ROWS))
    for i in range(count):
        yield i, count, records[i * SHARD_ROWS:(i + 1) * SHARD_ROWS]


def _write_parquet(records: list[dict[str, Any]], tmp: Path) -> None:
    try:
        import datasets
    except ImportError:
        raise ConfigError("ripbench export --format parquet needs the 'datasets' package: "
                          "pip install 'ripbench[hf]'") from None
    from .io import atomic_save

    columns = [k for k in records[0] if not k.startswith("_")]
    frame = pd.DataFrame([{k: r.get(k) for k in columns} for r in records])
    for column in frame.columns:  # integers with gaps (the mask box at iteration 0) stay integers
        values = [v for v in (r.get(column) for r in records) if v is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            frame[column] = pd.array([r.get(column) for r in records], dtype="Int64")
    provenance = datasets.Dataset.from_pandas(frame, preserve_index=False)  # every row, no pixels: one schema
    features = datasets.Features({"image": datasets.Image(), "mask": datasets.Image(), **provenance.features})
    for i, count, shard in _shards(records):
        data = {"image": [{"bytes": r["_image"].read_bytes(), "path": r["_image"].name} for r in shard],
                "mask": [{"bytes": r["_mask"].read_bytes(), "path": r["_mask"].name} if r["_mask"] is not None
                         else None for r in shard],
                **provenance[i * SHARD_ROWS:i * SHARD_ROWS + len(shard)]}
        ds = datasets.Dataset.from_dict(data, features=features)
        path = tmp / "data" / f"train-{i:05d}-of-{count:05d}.parquet"
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # one bar per shard of a few rows is noise
        try:
            atomic_save(path, lambda t, ds=ds: ds.to_parquet(str(t)))
        finally:
            if bars:
                datasets.enable_progress_bars()


def export_run(run_dir: str | Path, fmt: ExportFormat = "parquet", out: str | Path | None = None, *,
               overwrite: bool = False, command: str | None = None) -> Path:
    """Export every saved image of a run with its provenance (see the module docs); returns the folder.

    Args:
        run_dir: a finished (or partly finished) run folder.
        fmt: ``imagefolder`` or ``parquet``.
        out: the dataset folder; default ``RUN/export/<fmt>``.
        overwrite: replace an existing export in ``out`` (otherwise refused).
        command: the command line recorded in the dataset card (default ``sys.argv``).
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / "export" / fmt
    if target.exists() and not overwrite:
        raise ResultsError(f"{target} exists; pass --overwrite to replace it or --out to write elsewhere")
    records, manifest = _records(run_dir)
    tmp = target.parent / f".{target.name}.exporting-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir(parents=True)
    try:
        (_write_parquet if fmt == "parquet" else _write_imagefolder)(records, tmp)
        from .io import atomic_write_text

        columns = ["image", "mask", *(k for k in records[0] if not k.startswith("_"))]
        atomic_write_text(tmp / "README.md", _card(manifest, fmt, len(records), columns,
                                                   command or command_line()))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def push_to_hub(folder: str | Path, repo: str, *, private: bool = False) -> str:
    """Upload an exported dataset folder to the Hugging Face Hub dataset repository ``repo``; its URL.

    Fails with one :class:`ResultsError` line (the export stays on disk) when the Hub cannot be
    reached, ``HF_HUB_OFFLINE`` is set, or no token is configured (``huggingface-cli login`` / ``HF_TOKEN``).
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ResultsError(f"cannot push to the Hub: HF_HUB_OFFLINE is set; the export is in {folder}; "
                           f"push it later with: huggingface-cli upload {repo} {folder} --repo-type dataset")
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ConfigError("--push-to-hub needs the 'huggingface_hub' package: pip install 'ripbench[hf]'") from None
    api = HfApi()
    try:
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset",
                                 commit_message="ripbench export")
    except Exception as exc:  # noqa: BLE001 - network, auth, HTTP: one line, the local export is kept
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ResultsError(f"cannot push to the Hub repository {repo}: {type(exc).__name__}: {first}; the export "
                           f"is in {folder}") from None
    return str(getattr(info, "commit_url", None) or f"https://huggingface.co/datasets/{repo}")
