"""Input images from a Hugging Face dataset (``inputs: {source: hf, ...}``), through the ``datasets`` library.

``dataset`` is a Hub id (``huggan/wikiart``) or a local path: a folder written by
``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, a folder of Parquet files or one
Parquet file, or a folder of images (loaded as an ``imagefolder``, sub-folders as labels).
``split`` picks the split, ``column`` the image column, ``category`` an optional column whose
value (a class label's name) becomes the image's category.

**The sample** is ``sample`` rows drawn without replacement by ``seed`` from the split's row
indices (``numpy.random.default_rng(seed).choice``), kept in row order; without ``sample``,
every row. Image ids are the row index (``row-000123``), so the same dataset, seed and sample
give the same images and the same trajectory keys on every machine. With ``streaming: true``
(large datasets) the rows are read in order up to the last chosen one and nothing else is
decoded; the split's row count must then be known (the dataset's info, or ``rows``), and
the sample is the same as without streaming (a ``save_to_disk`` folder is memory-mapped and
never streamed).

**Provenance**: each image's ``sha256`` is the digest of its encoded bytes, so a resume refuses
a dataset whose chosen rows changed (exactly as it refuses a changed file); the manifest records
the dataset id, split, revision, row count and the ``datasets`` fingerprint (see
:func:`describe_source`). A Hub dataset comes from the ``datasets`` cache when it is there (set
``HF_DATASETS_OFFLINE=1`` on machines without network).

The ``datasets`` package is needed only here: ``pip install 'ripbench[hf]'``.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError, InputError
from .inputs import Fit, InputImage, _decode_image, _finish

if TYPE_CHECKING:
    from .config import InputsConfig

__all__ = ["choose_rows", "describe_source", "load_hf"]


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError("inputs.source 'hf' needs the 'datasets' package: pip install 'ripbench[hf]'") from None
    return datasets


def choose_rows(total: int, sample: int | None, seed: int) -> list[int]:
    """The row indices of the sample: ``sample`` of ``range(total)`` drawn by ``seed``, in row order.

    >>> choose_rows(10, 3, seed=0)
    [5, 6, 9]
    >>> choose_rows(3, None, seed=0)
    [0, 1, 2]
    """
    if sample is None or sample >= total:
        if sample is not None and sample > total:
            raise InputError(f"inputs.sample is {sample}, but the dataset split has only {total} rows")
        return list(range(total))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(total, size=sample, replace=False))


def _local_kind(path: Path) -> str | None:
    """How a local path is loaded: ``disk`` (save_to_disk), ``parquet``, ``imagefolder``; ``None`` = a Hub id."""
    if path.is_file():
        if path.suffix == ".parquet":
            return "parquet"
        raise InputError(f"inputs.dataset {path} is a file but not a Parquet file")
    if not path.is_dir():
        return None
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return "disk"
    if any(path.rglob("*.parquet")):
        return "parquet"
    return "imagefolder"


def _looks_like_path(name: str) -> bool:
    """A dataset name that can only be a local path: absolute, ``./``, ``../``, ``~``, or more than one ``/``."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _open(spec: InputsConfig) -> tuple[Any, str]:
    """The split as a ``Dataset`` or ``IterableDataset``, and how it was found (for the manifest)."""
    datasets = _datasets()
    name = str(spec.dataset)
    split = spec.split or "train"
    path = Path(name).expanduser()
    kind = _local_kind(path)
    if kind is None and _looks_like_path(name):
        raise InputError(f"inputs.dataset {name}: no such file or folder (a Hub id is 'org/name')")
    try:
        if kind == "disk":
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise InputError(f"dataset {name} has no split {split!r}; splits: {', '.join(loaded)}")
                loaded = loaded[split]
            return loaded, "save_to_disk"  # memory-mapped: random access costs nothing, streaming is moot
        if kind in ("parquet", "imagefolder"):
            # A folder's splits come from its file and folder names (data/train-*.parquet, test/...), as on
            # the Hub; a single Parquet file is the split 'train'. An unknown split is refused, never read
            # as every file.
            where: dict[str, Any] = ({"data_files": {"train": [str(path)]}} if path.is_file()
                                     else {"data_dir": str(path)})
            builder = datasets.load_dataset_builder(kind, **where)
            splits = list(builder.config.data_files or {})
            if split not in splits:
                raise InputError(f"dataset {name} has no split {split!r}; splits: {', '.join(splits) or 'none'}")
            return datasets.load_dataset(kind, split=split, streaming=bool(spec.streaming), **where), kind
        return datasets.load_dataset(name, split=split, revision=spec.revision, streaming=bool(spec.streaming)), "hub"
    except (InputError, ConfigError):
        raise
    except (FileNotFoundError, ValueError, OSError, ConnectionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
                      for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
        hint = ("it is not in the datasets cache: load it once where the Hub can be reached (the cache folder can "
                "be copied) or give a local save_to_disk / Parquet / image folder" if offline else
                "without network, set HF_DATASETS_OFFLINE=1 to use the datasets cache, or give a local save_to_disk / "
                "Parquet / image folder")
        raise InputError(f"cannot load dataset {name!r} (split {split!r}): {first}; {hint}") from None


def _image_like(feature: Any, datasets: Any) -> bool:
    """An ``Image`` column, or what one becomes in Parquet written without ``datasets``' metadata: a
    ``{bytes, path}`` struct or encoded bytes."""
    if isinstance(feature, datasets.Image):
        return True
    if isinstance(feature, dict):
        return "bytes" in feature
    return isinstance(feature, datasets.Value) and feature.dtype in ("binary", "large_binary")


def _row_count(ds: Any, spec: InputsConfig) -> int:
    if spec.rows is not None:
        return spec.rows
    try:
        return len(ds)
    except TypeError:
        pass
    split = spec.split or "train"
    splits = getattr(getattr(ds, "info", None), "splits", None) or {}
    if split in splits and splits[split].num_examples:
        return int(splits[split].num_examples)
    raise InputError(f"the row count of streamed dataset {spec.dataset!r} (split {split!r}) is not known; "
                     "set inputs.rows to the split's number of rows (the sample is drawn from them)")


def _image_bytes(value: Any, where: str) -> bytes:
    """The encoded bytes of an undecoded ``datasets.Image`` value (``{"bytes", "path"}``)."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            try:
                return Path(value["path"]).read_bytes()
            except OSError as exc:
                raise InputError(f"{where}: cannot read {value['path']}: {exc.strerror or exc}") from None
    raise InputError(f"{where}: not an image (got {type(value).__name__}); choose the image column with inputs.column")


def _category(ds: Any, spec: InputsConfig, row: dict[str, Any]) -> str:
    if not spec.category:
        return "unknown"
    value = row[spec.category]
    feature = ds.features.get(spec.category) if ds.features else None
    if feature is not None and hasattr(feature, "int2str") and isinstance(value, (int, np.integer)):
        return str(feature.int2str(int(value)))
    return str(value)


def load_hf(spec: InputsConfig, size: int, fit: Fit = "center-crop") -> list[InputImage]:
    """The images of ``inputs: {source: hf, ...}``: the sampled rows, fitted to ``size`` (see the module docs)."""
    datasets = _datasets()
    ds, how = _open(spec)
    column = spec.column or "image"
    features = ds.features
    if features is not None and column not in features:
        raise InputError(f"dataset {spec.dataset!r} has no column {column!r}; columns: {', '.join(features)}")
    if spec.category and features is not None and spec.category not in features:
        raise InputError(f"dataset {spec.dataset!r} has no column {spec.category!r} (inputs.category); "
                         f"columns: {', '.join(features)}")
    if features is not None and not _image_like(features[column], datasets):
        raise InputError(f"column {column!r} of dataset {spec.dataset!r} holds {features[column]}, not images")
    ds = ds.cast_column(column, datasets.Image(decode=False))  # bytes: hashed as they are, decoded once by us
    total = _row_count(ds, spec)
    rows = choose_rows(total, spec.sample, spec.seed or 0)
    source = describe_source(spec, ds, how, total)
    wanted = set(rows)
    if isinstance(ds, datasets.IterableDataset):  # streamed
        picked: dict[int, dict[str, Any]] = {}
        for index, row in enumerate(ds):
            if index in wanted:
                picked[index] = row
                if len(picked) == len(wanted):
                    break
        if len(picked) < len(wanted):
            raise InputError(f"dataset {spec.dataset!r} streamed fewer rows than inputs.rows / its info says "
                             f"({total}); set inputs.rows to the true count")
        selected = [(i, picked[i]) for i in rows]
    else:
        selected = [(i, ds[i]) for i in rows]
    width = max(6, len(str(total - 1)))
    images = []
    for index, row in selected:
        where = f"dataset {spec.dataset!r} row {index}"
        data = _image_bytes(row[column], where)
        try:
            arr, notes = _decode_image(io.BytesIO(data), where)
            image = _finish(f"row-{index:0{width}d}", _category(ds, spec, row), arr, notes,
                            f"hf:{spec.dataset}:{spec.split or 'train'}[{index}]", size, fit,
                            hashlib.sha256(data).hexdigest())
        except InputError as exc:
            raise InputError(f"cannot use {where}: {exc}") from None
        image.dataset = source
        images.append(image)
    return images


def describe_source(spec: InputsConfig, ds: Any, how: str, total: int) -> dict[str, Any]:
    """The manifest's record of a dataset: id, how it was loaded, split, revision, rows, fingerprint."""
    info = getattr(ds, "info", None)
    record: dict[str, Any] = {
        "dataset": str(spec.dataset), "loaded_as": how, "split": spec.split or "train",
        "column": spec.column or "image", "revision": spec.revision, "rows": total, "sample": spec.sample,
        "seed": spec.seed or 0, "streaming": bool(spec.streaming),
        "fingerprint": getattr(ds, "_fingerprint", None),
        "config_name": getattr(info, "config_name", None),
        "version": str(getattr(info, "version", None) or "") or None,
    }
    return record
