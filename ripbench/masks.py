"""Mask policies: which region is regenerated at iteration ``k`` of a trajectory.

A mask policy is a small frozen dataclass. Calling it with ``(height, width, iteration, seed)``
returns a ``height x width`` bool array, ``True`` = regenerate. The result is a *pure* function of
those four numbers (plus the policy's parameters): the random generator is seeded from
``np.random.SeedSequence([seed, iteration, <policy constant>])``, so the mask of iteration ``k``
never depends on whether iterations ``< k`` were generated, and a resumed run sees the same masks.

Policies (each line: the spec dict :func:`build_mask_policy` accepts, with the defaults):

* ``{"policy": "grid", "size": 64}``: one ``size x size`` cell of a grid anchored at the top-left
  corner, chosen uniformly (the RIP protocol).
* ``{"policy": "box", "area": 0.1, "aspect": [0.5, 2.0]}``: a random box of that area fraction,
  width / height drawn log-uniformly from ``aspect``, placed fully inside the image.
* ``{"policy": "center", "area": 0.25, "aspect": 1.0}``: a centred box, the same every iteration.
* ``{"policy": "strokes", "width": "medium"}``: LaMa-style brush strokes (thin / medium / thick).
* ``{"policy": "folder", "path": "masks", "order": "cycle", "resize": false}``: PNG masks of a folder.
* ``{"policy": "columns", "count": 3}``: one of ``count`` equal vertical columns (Simple Shapes).

Example
-------
>>> policy = build_mask_policy({"policy": "grid", "size": 64})
>>> policy.label
'grid-64'
>>> mask = policy(256, 256, iteration=3, seed=7)
>>> mask.shape, int(mask.sum())
((256, 256), 4096)
>>> bool((policy(256, 256, 3, 7) == mask).all())
True
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import sys
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union, get_type_hints

import numpy as np
from PIL import Image
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .errors import ConfigError, InputError, describe_validation_error
from .io import atomic_save, open_image

if TYPE_CHECKING:  # torch is imported by the functions that make tensors, not to validate a mask spec
    import torch

__all__ = [
    "MASK_POLICIES",
    "MaskPolicy",
    "GridMask",
    "BoxMask",
    "CenterMask",
    "StrokesMask",
    "FolderMask",
    "ColumnsMask",
    "build_mask_policy",
    "check_mask_spec",
    "mask_spec_models",
    "MaskSpec",
    "mask_stats_batch",
    "masks_for",
    "generate_mask_set",
    "load_mask_png",
]


# --------------------------------------------------------------------------------------------------
# Parameter types: each dataclass field is annotated with its pydantic constraints, and the
# pydantic model of a policy's spec (:func:`mask_spec_models`) is built from those fields, so
# the parameters, their defaults and their checks have one home.
# --------------------------------------------------------------------------------------------------

#: A whole number (not a bool, not a float such as 6.4).
_Int = Annotated[int, Strict()]
#: An area fraction in (0, 1).
_Fraction = Annotated[float, Strict(), Field(gt=0.0, lt=1.0)]
#: An aspect ratio (width / height): finite and > 0.
_Aspect = Annotated[float, Strict(), Field(gt=0.0, allow_inf_nan=False)]


def _aspect_pair(value: Any) -> Any:
    """A single aspect ``a`` means ``[a, a]``."""
    return value if isinstance(value, (list, tuple)) else (value, value)


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise ValueError(f"low {pair[0]} is greater than high {pair[1]}")
    return pair


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


# --------------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------------


class MaskPolicy(ABC):
    """Base class of mask policies (subclasses are frozen dataclasses).

    Subclasses set ``name`` (the registry key) and ``main_param`` (the parameter that the short
    form ``policy:value`` of ``ripbench run --mask`` sets, e.g. ``grid:64`` -> ``size``), implement
    :attr:`label`, :meth:`validate` and :meth:`_draw`; the dataclass fields are the parameters.
    """

    name: ClassVar[str]
    main_param: ClassVar[str]

    @property
    @abstractmethod
    def label(self) -> str:
        """Short file-name-safe identifier, e.g. ``"grid-64"``, used in paths and result columns."""

    def __post_init__(self) -> None:
        """Check (and normalise) the parameters through the policy's pydantic spec model."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        spec = _validate_spec({"policy": self.name, **values}, spec_model(type(self)))
        for key in values:
            object.__setattr__(self, key, getattr(spec, key))

    def params(self) -> dict[str, Any]:
        """The policy's parameters as a JSON-serialisable dict (without the policy name)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def provenance(self) -> dict[str, Any]:
        """What the run manifest records: the parameters (and, for mask files, their sha256)."""
        return self.params()

    def spec(self) -> dict[str, Any]:
        """The dict that rebuilds this policy: ``build_mask_policy(p.spec()) == p``."""
        return {"policy": self.name, **self.params()}

    @abstractmethod
    def validate(self, height: int, width: int) -> None:
        """Raise :class:`ConfigError` (or :class:`InputError` for mask files) if the policy cannot
        produce a valid mask for a ``height x width`` image."""

    @abstractmethod
    def _draw(self, height: int, width: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        """Return the ``height x width`` bool mask; ``rng`` is already seeded for this call."""

    def rng(self, iteration: int, seed: int) -> np.random.Generator:
        """The generator for ``(iteration, seed)``; independent streams per policy name."""
        stream = zlib.crc32(self.name.encode("ascii"))
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, iteration, stream])))

    def __call__(self, height: int, width: int, iteration: int, seed: int) -> np.ndarray:
        """The mask (bool ``height x width``, ``True`` = regenerate) for ``iteration`` and ``seed``."""
        for label, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"mask {label} must be a positive integer, got {value!r}.")
        for label, value in (("iteration", iteration), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f"mask {label} must be a non-negative integer, got {value!r}.")
        height, width, iteration, seed = int(height), int(width), int(iteration), int(seed)
        self.validate(height, width)
        mask = self._draw(height, width, iteration, self.rng(iteration, seed))
        assert mask.shape == (height, width) and mask.dtype == np.bool_
        return mask


def _full_image_error(policy: MaskPolicy, height: int, width: int) -> ConfigError:
    return ConfigError(
        f"mask policy '{policy.label}' would cover the whole {height}x{width} image; nothing would be kept."
    )


# --------------------------------------------------------------------------------------------------
# Geometric policies
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridMask(MaskPolicy):
    """The RIP protocol: one ``size x size`` cell of a square grid, chosen uniformly each iteration.

    The grid has ``floor(H / size) x floor(W / size)`` cells anchored at the top-left corner; the
    remainder strips at the bottom (``H mod size`` rows) and right (``W mod size`` columns) are never
    masked. ``size`` larger than the image, or a single cell covering the whole image, is an error.
    """

    size: Annotated[_Int, Field(ge=1)] = 64
    name: ClassVar[str] = "grid"
    main_param: ClassVar[str] = "size"

    @property
    def label(self) -> str:
        return f"grid-{self.size}"

    def validate(self, height: int, width: int) -> None:
        if self.size > height or self.size > width:
            raise ConfigError(
                f"mask policy 'grid': square size {self.size} is larger than the {height}x{width} image."
            )
        if self.size == height and self.size == width:
            raise _full_image_error(self, height, width)

    def _draw(self, height: int, width: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        rows, cols = height // self.size, width // self.size
        cell = int(rng.integers(rows * cols))
        y0, x0 = (cell // cols) * self.size, (cell % cols) * self.size
        mask = np.zeros((height, width), dtype=bool)
        mask[y0 : y0 + self.size, x0 : x0 + self.size] = True
        return mask


def _fmt_area(area: float) -> str:
    """``0.1 -> "0.10"``, ``0.125 -> "0.125"``: two decimals unless that would lose digits."""
    return f"{area:.2f}" if round(area, 2) == area else f"{area:g}"


def _box_shape(height: int, width: int, area: float, aspect: float) -> tuple[int, int]:
    """Integer ``(box_h, box_w)`` with ``box_w / box_h ~ aspect`` and area ``~ area * H * W``,
    fitting inside the image and never equal to the whole image."""
    target = area * height * width
    box_h = min(height, max(1, round(math.sqrt(target / aspect))))
    box_w = min(width, max(1, round(target / box_h)))
    if box_w == width:  # clipped horizontally: give the lost area back to the height
        box_h = min(height, max(1, round(target / box_w)))
    if box_h == height and box_w == width:
        if width > 1:
            box_w -= 1
        else:
            box_h -= 1
    return box_h, box_w


@dataclass(frozen=True)
class BoxMask(MaskPolicy):
    """A random axis-aligned box of area fraction ``area``, placed fully inside the image.

    Its aspect ratio (width / height) is drawn log-uniformly from ``aspect = (low, high)`` (clipped
    where the box would not fit); the position is uniform over all placements that fit. The area is
    exact up to rounding to whole pixels (at most half a box side, e.g. 0.6% for a 10% box at 256x256).
    """

    area: _Fraction = 0.1
    aspect: Annotated[tuple[_Aspect, _Aspect], BeforeValidator(_aspect_pair), AfterValidator(_ordered)] = (0.5, 2.0)
    name: ClassVar[str] = "box"
    main_param: ClassVar[str] = "area"

    @property
    def label(self) -> str:
        suffix = "" if self.aspect == (0.5, 2.0) else f"-a{self.aspect[0]:g}-{self.aspect[1]:g}"
        return f"box-{_fmt_area(self.area)}{suffix}"

    def validate(self, height: int, width: int) -> None:
        if height * width < 2:
            raise _full_image_error(self, height, width)

    def _draw(self, height: int, width: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        low, high = self.aspect
        aspect = math.exp(rng.uniform(math.log(low), math.log(high))) if low < high else low
        box_h, box_w = _box_shape(height, width, self.area, aspect)
        y0 = int(rng.integers(height - box_h + 1))
        x0 = int(rng.integers(width - box_w + 1))
        mask = np.zeros((height, width), dtype=bool)
        mask[y0 : y0 + box_h, x0 : x0 + box_w] = True
        return mask


@dataclass(frozen=True)
class CenterMask(MaskPolicy):
    """A centred box of area fraction ``area`` and aspect ratio ``aspect`` (width / height); the
    same box at every iteration (seed and iteration are ignored)."""

    area: _Fraction = 0.25
    aspect: _Aspect = 1.0
    name: ClassVar[str] = "center"
    main_param: ClassVar[str] = "area"

    @property
    def label(self) -> str:
        suffix = "" if self.aspect == 1.0 else f"-a{self.aspect:g}"
        return f"center-{_fmt_area(self.area)}{suffix}"

    def validate(self, height: int, width: int) -> None:
        if height * width < 2:
            raise _full_image_error(self, height, width)

    def _draw(self, height: int, width: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        box_h, box_w = _box_shape(height, width, self.area, self.aspect)
        y0, x0 = (height - box_h) // 2, (width - box_w) // 2
        mask = np.zeros((height, width), dtype=bool)
        mask[y0 : y0 + box_h, x0 : x0 + box_w] = True
        return mask


@dataclass(frozen=True)
class ColumnsMask(MaskPolicy):
    """One of ``count`` equal-width vertical columns, chosen uniformly each iteration.

    Columns are ``floor(W / count)`` pixels wide, anchored at the left edge; the remainder strip at
    the right (``W mod count`` columns) is never masked. Made for the Simple Shapes data set (64 px
    wide, three 21-px columns: triangle | square | pentagon).
    """

    count: Annotated[_Int, Field(ge=2)] = 3
    name: ClassVar[str] = "columns"
    main_param: ClassVar[str] = "count"

    @property
    def label(self) -> str:
        return f"columns-{self.count}"

    def validate(self, height: int, width: int) -> None:
        if self.count > width:
            raise ConfigError(
                f"mask policy 'columns': {self.count} columns do not fit in an image {width} px wide."
            )

    def _draw(self, height: int, width: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        col_w = width // self.count
        x0 = int(rng.integers(self.count)) * col_w
        mask = np.zeros((height, width), dtype=bool)
        mask[:, x0 : x0 + col_w] = True
        return mask


# --------------------------------------------------------------------------------------------------
# Brush strokes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StrokeStyle:
    """Stroke parameters at the 256 px reference size (lengths scale with ``min(H, W) / 256``)."""

    brush: tuple[float, float]  # brush diameter range, px
    length: tuple[float, float]  # segment length range, px
    segments: tuple[int, int]  # segments per stroke, inclusive range
    coverage: tuple[float, float]  # target fraction of the image


_STROKE_STYLES: dict[str, _StrokeStyle] = {
    "thin": _StrokeStyle(brush=(5, 15), length=(10, 50), segments=(2, 6), coverage=(0.05, 0.15)),
    "medium": _StrokeStyle(brush=(15, 40), length=(15, 80), segments=(2, 5), coverage=(0.15, 0.30)),
    "thick": _StrokeStyle(brush=(30, 70), length=(20, 100), segments=(1, 4), coverage=(0.25, 0.45)),
}

_MAX_TURN = 4.0  # radians: like LaMa's ``max_angle=4``, consecutive segments turn by up to +-4 rad
_MAX_SEGMENT_TRIES = 400  # safety cap on the drawing loop


def _capsule(
    mask: np.ndarray, start: tuple[float, float], end: tuple[float, float], radius: float
) -> tuple[slice, slice, np.ndarray]:
    """Pixels (within their bounding window) whose centre lies within ``radius`` of segment start-end:
    a line drawn with a round brush. Returns the window slices and the bool patch."""
    height, width = mask.shape
    (ya, xa), (yb, xb) = start, end
    y_lo, y_hi = max(0, int(min(ya, yb) - radius)), min(height, int(max(ya, yb) + radius) + 2)
    x_lo, x_hi = max(0, int(min(xa, xb) - radius)), min(width, int(max(xa, xb) + radius) + 2)
    ys = np.arange(y_lo, y_hi, dtype=np.float64)[:, None] + 0.5
    xs = np.arange(x_lo, x_hi, dtype=np.float64)[None, :] + 0.5
    dy, dx = yb - ya, xb - xa
    seg_len2 = dy * dy + dx * dx
    t = ((ys - ya) * dy + (xs - xa) * dx) / seg_len2 if seg_len2 > 0 else np.zeros_like(ys + xs)
    t = np.clip(t, 0.0, 1.0)
    dist2 = (ys - ya - t * dy) ** 2 + (xs - xa - t * dx) ** 2
    return slice(y_lo, y_hi), slice(x_lo, x_hi), dist2 <= radius * radius


@dataclass(frozen=True)
class StrokesMask(MaskPolicy):
    """Irregular brush strokes in the style of LaMa's thin / medium / thick masks.

    Each stroke is a random polyline (random start, segments of random length whose direction turns by
    up to +-4 rad, ends clipped to the image) drawn with a round brush whose diameter varies per
    segment. Strokes are added until the coverage reaches a target drawn uniformly from the style's
    range; a segment that would push the coverage above the range is dropped (and the stroke ends).

    ====== ===================== ======================= ==================
    width  brush diameter (px)   segment length (px)     target coverage
    ====== ===================== ======================= ==================
    thin   5-15                  10-50                   5-15%
    medium 15-40                 15-80                   15-30%
    thick  30-70                 20-100                  25-45%
    ====== ===================== ======================= ==================

    Pixel sizes are for a 256 px image and scale with ``min(H, W) / 256``. Coverage is always at most
    the upper bound; it reaches the lower bound except in rare cases on tiny images.
    """

    width: Literal["thin", "medium", "thick"] = "medium"
    name: ClassVar[str] = "strokes"
    main_param: ClassVar[str] = "width"

    @property
    def label(self) -> str:
        return f"strokes-{self.width}"

    def validate(self, height: int, width: int) -> None:
        if min(height, width) < 8:
            raise ConfigError(
                f"mask policy 'strokes' needs an image of at least 8x8 pixels, got {height}x{width}."
            )

    def _draw(self, height: int, width: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        style = _STROKE_STYLES[self.width]
        scale = min(height, width) / 256.0
        total = height * width
        low, high = style.coverage
        target = rng.uniform(low, high) * total
        limit = high * total
        mask = np.zeros((height, width), dtype=bool)
        covered = 0
        tries = 0
        while covered < target and tries < _MAX_SEGMENT_TRIES:
            point = (rng.uniform(0, height), rng.uniform(0, width))
            angle = rng.uniform(0, 2 * math.pi)
            for _ in range(int(rng.integers(style.segments[0], style.segments[1] + 1))):
                tries += 1
                angle += rng.uniform(-_MAX_TURN, _MAX_TURN)
                length = rng.uniform(*style.length) * scale
                radius = max(0.75, rng.uniform(*style.brush) * scale / 2)
                end = (
                    float(np.clip(point[0] + length * math.sin(angle), 0, height - 1e-6)),
                    float(np.clip(point[1] + length * math.cos(angle), 0, width - 1e-6)),
                )
                rows, cols, patch = _capsule(mask, point, end, radius)
                added = int(np.count_nonzero(patch & ~mask[rows, cols]))
                if covered + added > limit:
                    break
                mask[rows, cols] |= patch
                covered += added
                point = end
                if covered >= target:
                    break
        return mask


# --------------------------------------------------------------------------------------------------
# Masks from files
# --------------------------------------------------------------------------------------------------


def load_mask_png(path: str | Path) -> np.ndarray:
    """Read a mask image as a bool array: ``True`` where the (grey) value is >= 0.5 of full scale.

    Colour images are converted to grey; 16-bit images are scaled by 65535. Raises
    :class:`InputError` naming the file if it cannot be read or is a decompression bomb
    (:func:`ripbench.io.open_image`).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.png"
    >>> Image.fromarray(np.array([[0, 200]], dtype=np.uint8)).save(p)
    >>> load_mask_png(p).tolist()
    [[False, True]]
    """
    with open_image(path, "mask file") as img:
        if img.mode in ("I", "I;16", "I;16B", "I;16L"):
            grey = np.asarray(img, dtype=np.float64) / 65535.0
        elif img.mode == "F":
            grey = np.asarray(img, dtype=np.float64)
        else:
            grey = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    return grey >= 0.5


@functools.lru_cache(maxsize=16)
def _load_folder(folder: str, mtime_ns: int) -> tuple[tuple[str, np.ndarray], ...]:
    """All ``*.png`` masks of ``folder`` (sorted by name), loaded once per folder modification."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() == ".png")
    out = []
    for path in files:
        mask = load_mask_png(path)
        mask.setflags(write=False)
        out.append((str(path), mask))
    return tuple(out)


@functools.lru_cache(maxsize=16)
def _prepare_folder(
    folder: str, mtime_ns: int, height: int, width: int, resize: bool, shown: str
) -> tuple[np.ndarray, ...]:
    """The masks of ``folder`` checked (and, with ``resize``, resized) for a ``height x width`` image."""
    entries = _load_folder(folder, mtime_ns)
    if not entries:
        raise ConfigError(f"mask policy 'folder': '{shown}' contains no .png masks.")
    out = []
    for file, mask in entries:
        if mask.shape != (height, width):
            if not resize:
                raise InputError(
                    f"mask {file} is {mask.shape[0]}x{mask.shape[1]} but the image is {height}x{width}"
                    " (set resize: true to resize masks)."
                )
            mask = _resize_nearest(mask, height, width)
            mask.setflags(write=False)
        if not mask.any():
            raise InputError(f"mask {file} is empty (no white pixels) at {height}x{width}.")
        if mask.all():
            raise InputError(f"mask {file} covers the whole {height}x{width} image.")
        out.append(mask)
    return tuple(out)


def _resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.minimum((np.arange(height) + 0.5) * mask.shape[0] / height, mask.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(width) + 0.5) * mask.shape[1] / width, mask.shape[1] - 1).astype(int)
    return mask[rows[:, None], cols[None, :]]


@dataclass(frozen=True)
class FolderMask(MaskPolicy):
    """Masks read from the ``*.png`` files of a folder (sorted by file name; white / >= 0.5 = regenerate).

    ``order="cycle"``: iteration ``k`` uses mask ``k mod n`` (the seed is ignored, so every trajectory
    sees the same sequence). ``order="random"``: a mask drawn uniformly per (iteration, seed).
    Masks must have the image's size unless ``resize=True`` (nearest-neighbour resize). A mask that is
    empty or covers the whole image is an :class:`InputError` naming the file. Files are read once and
    cached (the cache is refreshed when the folder's modification time changes).
    """

    path: Annotated[str, StringConstraints(min_length=1), BeforeValidator(_fspath)] = "masks"
    order: Literal["cycle", "random"] = "cycle"
    resize: StrictBool = False
    name: ClassVar[str] = "folder"
    main_param: ClassVar[str] = "path"

    @property
    def label(self) -> str:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.path).name) or "root"
        return f"folder-{stem}" + ("-random" if self.order == "random" else "")

    def masks(self, height: int, width: int) -> tuple[np.ndarray, ...]:
        """The folder's masks at ``height x width`` (read-only; checked: size, not empty, not full)."""
        folder = Path(self.path)
        if not folder.is_dir():
            raise ConfigError(f"mask policy 'folder': '{self.path}' is not a folder.")
        return _prepare_folder(
            str(folder.resolve()), folder.stat().st_mtime_ns, height, width, self.resize, self.path
        )

    def validate(self, height: int, width: int) -> None:
        self.masks(height, width)

    def provenance(self) -> dict[str, Any]:
        from .io import sha256_file

        files = sorted(p for p in Path(self.path).iterdir() if p.is_file() and p.suffix.lower() == ".png")
        return {**self.params(), "files": {p.name: sha256_file(p) for p in files}}

    def _draw(self, height: int, width: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
        masks = self.masks(height, width)
        index = iteration % len(masks) if self.order == "cycle" else int(rng.integers(len(masks)))
        return masks[index].copy()


# --------------------------------------------------------------------------------------------------
# Registry and builder
# --------------------------------------------------------------------------------------------------

MASK_POLICIES: dict[str, type[MaskPolicy]] = {
    cls.name: cls for cls in (GridMask, BoxMask, CenterMask, StrokesMask, FolderMask, ColumnsMask)
}


class MaskSpec(BaseModel):
    """Base of the pydantic model of one policy's spec (``policy`` plus the policy's parameters).

    The models themselves are made from the policy dataclasses by :func:`mask_spec_models`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _plain_numbers(cls, data: Any) -> Any:
        """NumPy scalars (``np.int64(64)``) count as the Python numbers they hold."""
        if isinstance(data, dict):
            return {k: v.item() if isinstance(v, np.generic) else v for k, v in data.items()}
        return data


def _field_types(cls: type[MaskPolicy]) -> dict[str, Any]:
    """The dataclass fields' types; for a class whose hints do not all resolve (a class defined in a
    function), each field on its own, ``Any`` where it cannot be resolved."""
    try:
        return get_type_hints(cls, include_extras=True)
    except (NameError, TypeError):
        namespace = vars(sys.modules[cls.__module__]) if cls.__module__ in sys.modules else {}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            try:
                out[f.name] = eval(f.type, dict(namespace)) if isinstance(f.type, str) else f.type  # noqa: S307
            except Exception:
                out[f.name] = Any
        return out


@functools.cache
def spec_model(cls: type[MaskPolicy]) -> type[MaskSpec]:
    """The pydantic model of a policy class's spec, built from its dataclass fields (types, constraints, defaults).

    Works for policy classes written outside ripbench too (a field of any type is accepted as is
    unless it carries pydantic constraints).
    """
    fields: dict[str, Any] = {"policy": (Literal[cls.name], cls.name)}
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.default is not dataclasses.MISSING:
            fields[f.name] = (hints[f.name], f.default)
        elif f.default_factory is not dataclasses.MISSING:
            fields[f.name] = (hints[f.name], Field(default_factory=f.default_factory))
        else:
            fields[f.name] = (hints[f.name], ...)
    return create_model(f"{cls.__name__}Spec", __base__=MaskSpec, **fields)


def mask_spec_models() -> dict[str, type[MaskSpec]]:
    """The pydantic model of each registered policy's spec, by policy name (``policy`` is the union's tag)."""
    return {name: spec_model(cls) for name, cls in MASK_POLICIES.items()}


@functools.cache
def _spec_adapter(policies: tuple[type[MaskPolicy], ...]) -> TypeAdapter[Any]:
    """The discriminated union of the policies' spec models (cached per set of registered policies)."""
    union: Any = Union[tuple(spec_model(cls) for cls in policies)]  # noqa: UP007
    tagged: Any = Annotated[union, Field(discriminator="policy")]
    return TypeAdapter(tagged)


def _clean_error(err: Any, spec: Any, model: type[MaskSpec] | None) -> InitErrorDetails:
    """One pydantic error of a mask spec, said the way config errors are said (``size: ...``)."""
    names = ", ".join(MASK_POLICIES)
    kind, loc = err["type"], tuple(err["loc"])
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        got = f"; got {spec.get('policy')!r}" if kind == "union_tag_invalid" else " (missing)"
        message = f"must be one of {names}{got}"
        return {"type": PydanticCustomError("mask_policy", message), "loc": ("policy",), "input": spec}
    if not loc and kind in ("model_attributes_type", "dict_type", "model_type"):
        message = f"must be a mapping like {{'policy': 'grid', 'size': 64}}, got {spec!r}"
        return {"type": PydanticCustomError("mask_spec_type", message), "loc": (), "input": spec}
    if model is None and loc and isinstance(spec, dict) and loc[0] == spec.get("policy"):
        loc = loc[1:]  # pydantic puts the union's tag first
    if kind == "extra_forbidden":
        fields = (model or mask_spec_models()[spec["policy"]]).model_fields
        allowed = ", ".join(k for k in fields if k != "policy")
        return {"type": PydanticCustomError("unknown_mask_parameter", f"unknown field; allowed: {allowed}"),
                "loc": loc, "input": err["input"]}
    return {"type": PydanticCustomError(kind, err["msg"]), "loc": loc, "input": err["input"]}


def check_mask_spec(spec: Any, model: type[MaskSpec] | None = None) -> MaskSpec:
    """Validate a spec dict such as ``{"policy": "grid", "size": 64}`` into its policy's :class:`MaskSpec`.

    ``model`` checks against one policy's model (default: the union of the registered policies,
    told apart by ``policy``). Raises pydantic's :class:`~pydantic.ValidationError` with locations
    relative to the spec (``size``, ``policy``), so a config that holds the spec reports
    ``masks.0.size: ...``.

    >>> check_mask_spec({"policy": "grid", "size": 32}).size
    32
    """
    try:
        if model is not None:
            return model.model_validate(spec)
        return _spec_adapter(tuple(MASK_POLICIES.values())).validate_python(spec)
    except ValidationError as exc:
        errors = [_clean_error(err, spec, model) for err in exc.errors()]
        raise ValidationError.from_exception_data("mask spec", errors) from None


def _validate_spec(spec: Any, model: type[MaskSpec] | None = None) -> MaskSpec:
    try:
        return check_mask_spec(spec, model)
    except ValidationError as exc:
        raise ConfigError(f"invalid mask spec: {describe_validation_error(exc)}") from None


def build_mask_policy(spec: dict[str, Any] | MaskPolicy) -> MaskPolicy:
    """Build a policy from a spec dict such as ``{"policy": "grid", "size": 64}``.

    Missing parameters take their defaults. An unknown policy, an unknown parameter or an invalid
    value raises :class:`ConfigError` naming the field and what is allowed, in the same words as
    a config error (``invalid mask spec: size: ...``). A policy passes through.

    >>> build_mask_policy({"policy": "strokes", "width": "thin"}).label
    'strokes-thin'
    """
    if isinstance(spec, MaskPolicy):
        return spec
    checked = _validate_spec(spec)
    cls = MASK_POLICIES[checked.policy]  # type: ignore[attr-defined]
    return cls(**{f.name: getattr(checked, f.name) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Statistics, batches, files
# --------------------------------------------------------------------------------------------------


def _first_true(flags: torch.Tensor) -> torch.Tensor:
    """Index of the first ``True`` along the last dim (0 if none); ``flags`` is bool ``B x N``."""
    import torch

    return flags.to(torch.uint8).argmax(dim=-1)


def mask_stats_batch(masks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Area fraction and bounding box of each of ``B x 1 x H x W`` (or ``B x H x W``) masks, on their device.

    Values >= 0.5 count. Returns ``{"area": float B, "y0", "x0", "y1", "x1": int64 B}`` tensors; the
    box is ``y0, x0`` inclusive and ``y1, x1`` exclusive (slice convention), ``-1`` for all four of
    an empty mask. Call ``.tolist()`` to store them.

    >>> import torch
    >>> m = torch.zeros(1, 4, 4, dtype=torch.bool); m[0, 1:3, 2:4] = True
    >>> {k: v.tolist() for k, v in mask_stats_batch(m).items()}
    {'area': [0.25], 'y0': [1], 'x0': [2], 'y1': [3], 'x1': [4]}
    """
    if masks.dim() == 4:
        if masks.shape[1] != 1:
            raise ValueError(f"mask_stats_batch expects B x 1 x H x W masks, got shape {tuple(masks.shape)}.")
        masks = masks[:, 0]
    if masks.dim() != 3:
        raise ValueError(f"mask_stats_batch expects B x 1 x H x W masks, got shape {tuple(masks.shape)}.")
    import torch

    binary = masks if masks.dtype == torch.bool else masks >= 0.5
    height, width = binary.shape[-2:]
    rows, cols = binary.any(dim=2), binary.any(dim=1)
    empty = ~rows.any(dim=1)
    y0, x0 = _first_true(rows), _first_true(cols)
    y1 = height - _first_true(rows.flip(-1))
    x1 = width - _first_true(cols.flip(-1))
    stats = {"y0": y0, "x0": x0, "y1": y1, "x1": x1}
    stats = {k: torch.where(empty, torch.full_like(v, -1), v).to(torch.int64) for k, v in stats.items()}
    return {"area": binary.float().mean(dim=(1, 2)), **stats}


def masks_for(
    policy: MaskPolicy | Sequence[MaskPolicy],
    height: int,
    width: int,
    iteration: int,
    seeds: Sequence[int],
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The masks of one iteration for a batch of trajectories: ``B x 1 x H x W`` {0, 1} (float32 or ``dtype``).

    Item ``i`` is ``policy(height, width, iteration, seeds[i])`` (``policy[i]`` when one policy is
    given per item, as the run loop does), so it does not depend on the batch. The 1-byte masks
    move to the device and are converted there (4x less host-to-device traffic; pinned and
    asynchronous on CUDA).

    >>> masks_for(GridMask(8), 16, 16, 0, [1, 2]).shape
    torch.Size([2, 1, 16, 16])
    """
    import torch

    # one policy per item, or one (a MaskPolicy or any callable with its signature) for every item
    policies: list[Any] = list(policy) if isinstance(policy, (list, tuple)) else [policy] * len(seeds)
    if len(policies) != len(seeds):
        raise ValueError(f"masks_for: {len(policies)} policies for {len(seeds)} seeds")
    stack = np.stack([p(height, width, iteration, int(s)) for p, s in zip(policies, seeds)])
    masks = torch.from_numpy(stack[:, None])
    device = torch.device(device)
    if device.type == "cuda":
        masks = masks.pin_memory().to(device, non_blocking=True)
    else:
        masks = masks.to(device)
    return masks.to(torch.float32 if dtype is None else dtype)


def generate_mask_set(
    policy: MaskPolicy | dict[str, Any],
    count: int,
    height: int,
    width: int,
    out_dir: str | Path,
    seed: int = 0,
) -> list[Path]:
    """Write ``count`` masks of ``policy`` as 8-bit PNGs (white = regenerate) into ``out_dir``.

    Mask ``i`` is ``policy(height, width, iteration=i, seed=seed)`` and is written to
    ``<label>-<i:04d>.png`` through a temporary file and an atomic rename. Returns the paths in order.

    >>> import tempfile
    >>> paths = generate_mask_set({"policy": "box", "area": 0.2}, 2, 32, 32, tempfile.mkdtemp())
    >>> [p.name for p in paths]
    ['box-0.20-0000.png', 'box-0.20-0001.png']
    """
    policy = build_mask_policy(policy)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ConfigError(f"mask set count must be a positive integer, got {count!r}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = out / f"{policy.label}-{i:04d}.png"
        array = policy(height, width, i, seed).astype(np.uint8) * 255
        atomic_save(path, lambda tmp, a=array: Image.fromarray(a).save(tmp, format="PNG", optimize=True))
        paths.append(path)
    return paths
