"""The Simple Shapes data set of Aithal et al. (NeurIPS 2024) and a labeller for its hallucinations.

The geometry follows the authors' released generator (``shapes/gen_simple_shapes_dataset.py`` in
locuslab/diffusion-model-hallucination): a 64 x 64 greyscale image whose top-left 63 x 63 pixels
are three 21-px-wide, 63-px-tall columns, left to right a triangle, a square and a pentagon. Each
column holds its shape with probability 0.5, at a uniformly random integer position (x and y)
inside the column; images without any shape are dropped. Shapes are white (1) on black (0),
drawn with PIL filled and outlined, each with an area of about 60 px:

* triangle: equilateral, side 11, flat edge on top and apex pointing down (65 px);
* square: 8 x 8 (PIL's inclusive rectangle of side 7; 64 px);
* pentagon: regular, circumradius 5, one vertex pointing right (70 px).

Smaller images (32 or 16 px) are the 64 px image averaged over 2 x 2 (or 4 x 4) blocks, so their
shape edges are grey.

A diffusion model trained on these images *hallucinates* by mode interpolation: it makes images
with two (or more) copies of a shape in its column, which never occur in the training data. That,
and only that, is a hallucination here (:attr:`ShapeLabel.is_hallucination`). Empty images, shapes
in another shape's column and unreadable blobs are other ways for an image to be invalid and get
their own labels (:attr:`ShapeLabel.kind`).

Example
-------
>>> data = generate_shapes(4, seed=0)
>>> data.images.shape
(4, 64, 64)
>>> [label.kind for label in label_shapes(data.images)]
['valid', 'valid', 'valid', 'valid']
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from scipy.signal import correlate

from ..errors import InputError

if TYPE_CHECKING:  # torch is imported where tensors are made or read
    import torch

#: The shape each column may hold, left to right.
SHAPE_NAMES: tuple[str, str, str] = ("triangle", "square", "pentagon")
#: Side of the authors' images; smaller sizes are block averages of these.
NATIVE_SIZE: int = 64
#: Width and height of one column in native pixels (the authors' 21 x 63 canvases).
COLUMN_WIDTH, COLUMN_HEIGHT = 21, 63
#: Target area of every shape in native pixels (the authors' ``area = 60``).
SHAPE_AREA: float = 60.0
#: Probability that a column holds its shape.
PRESENCE_PROBABILITY: float = 0.5
#: One letter per shape in :attr:`ShapeLabel.layout` (``?`` = an unreadable blob).
LETTERS: dict[str, str] = {"triangle": "T", "square": "S", "pentagon": "P", "unknown": "?"}
#: The labeller's kinds of image, in order of precedence (an image gets the first that applies).
KINDS: tuple[str, ...] = ("duplicate", "wrong_shape", "malformed", "empty", "valid")


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class ShapeSpec:
    """One shape, drawn the authors' way, in native pixels.

    Attributes:
        name: ``"triangle"``, ``"square"`` or ``"pentagon"``.
        stamp: boolean mask of the drawn shape (its tight bounding box).
        offset: ``(dy, dx)`` of the stamp's top-left pixel relative to the anchor ``(y, x)``
            that the generator draws: the first polygon vertex's corner for the triangle and
            the square, the centre for the pentagon.
        x_range: inclusive range of the anchor's x inside its 21-px column.
        y_range: inclusive range of the anchor's y inside the 63-px column.
    """

    name: str
    stamp: np.ndarray
    offset: tuple[int, int]
    x_range: tuple[int, int]
    y_range: tuple[int, int]


def _vertices(name: str, x: float, y: float) -> list[tuple[float, float]]:
    """Polygon of ``name`` anchored at ``(x, y)``, with the authors' sizes (area ``SHAPE_AREA``)."""
    if name == "triangle":
        side = int(math.sqrt(4 * SHAPE_AREA / math.sqrt(3)))  # equilateral triangle of that area
        return [(x, y), (x + side, y), (x + side // 2, y + int(side * math.sqrt(3) / 2))]
    if name == "square":
        side = int(math.sqrt(SHAPE_AREA))
        return [(x, y), (x + side, y), (x + side, y + side), (x, y + side)]
    if name == "pentagon":  # "side" in the released code is used as the circumradius
        radius = int(math.sqrt(4 * SHAPE_AREA / math.sqrt(5 * (5 + 2 * math.sqrt(5)))))
        angles = [math.radians(72 * k) for k in range(1, 6)]
        return [(x + radius * math.cos(a), y - radius * math.sin(a)) for a in angles]
    raise ValueError(f"unknown shape {name!r}")


def _anchor_ranges(name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Inclusive anchor ranges ``(x_range, y_range)`` of the released generator."""
    if name == "triangle":
        side = int(math.sqrt(4 * SHAPE_AREA / math.sqrt(3)))
        return (0, COLUMN_WIDTH - side), (0, COLUMN_HEIGHT - side)
    if name == "square":
        side = int(math.sqrt(SHAPE_AREA))
        return (1, COLUMN_WIDTH - 2 * side), (1, COLUMN_HEIGHT - 2 * side)
    radius = int(math.sqrt(4 * SHAPE_AREA / math.sqrt(5 * (5 + 2 * math.sqrt(5)))))
    return (radius, COLUMN_WIDTH - radius), (radius, COLUMN_HEIGHT - radius)


def draw_polygon(canvas_hw: tuple[int, int], name: str, x: float, y: float) -> np.ndarray:
    """Boolean ``H x W`` canvas with ``name`` drawn by PIL (filled and outlined) at anchor ``(x, y)``.

    Pixels outside the canvas are clipped, as in the released generator.

    Example:
        >>> int(draw_polygon((63, 21), "square", 1, 1).sum())
        64
    """
    from PIL import Image, ImageDraw

    image = Image.new("L", (canvas_hw[1], canvas_hw[0]), color=0)
    ImageDraw.Draw(image).polygon(_vertices(name, x, y), fill=255, outline=255)
    return np.asarray(image) > 0


@lru_cache(maxsize=1)
def shape_specs() -> tuple[ShapeSpec, ShapeSpec, ShapeSpec]:
    """The three :class:`ShapeSpec` objects, in column order (rendered once with PIL).

    Example:
        >>> [(s.name, int(s.stamp.sum())) for s in shape_specs()]
        [('triangle', 65), ('square', 64), ('pentagon', 70)]
    """
    specs = []
    pad = 16
    for name in SHAPE_NAMES:
        canvas = draw_polygon((2 * pad, 2 * pad), name, pad, pad)
        rows, cols = np.nonzero(canvas)
        stamp = canvas[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].copy()
        stamp.setflags(write=False)
        x_range, y_range = _anchor_ranges(name)
        specs.append(ShapeSpec(name, stamp, (int(rows.min()) - pad, int(cols.min()) - pad), x_range, y_range))
    return tuple(specs)  # type: ignore[return-value]


def _check_size(size: int) -> int:
    """The block-averaging factor ``64 // size`` (``size`` must be 64, 32 or 16)."""
    if size not in (NATIVE_SIZE, NATIVE_SIZE // 2, NATIVE_SIZE // 4):
        raise InputError(
            f"Simple Shapes images are {NATIVE_SIZE} px (the authors' layout) or a 2x / 4x block average "
            f"of it (32 or 16 px), got {size}"
        )
    return NATIVE_SIZE // size


def downsample(images: np.ndarray, size: int) -> np.ndarray:
    """Average native ``N x 64 x 64`` images over blocks down to ``N x size x size``.

    Example:
        >>> downsample(np.ones((1, 64, 64), np.float32), 32).shape
        (1, 32, 32)
    """
    factor = _check_size(size)
    if factor == 1:
        return images
    n = images.shape[0]
    return images.reshape(n, size, factor, size, factor).mean(axis=(2, 4), dtype=np.float32)


def paste_shape(image: np.ndarray, name: str, column: int, x: int, y: int) -> np.ndarray:
    """Draw ``name`` into ``column`` of a native 64 x 64 ``image`` at anchor ``(x, y)`` (in place).

    ``x`` and ``y`` are relative to the column's 21 x 63 canvas, as in the released generator;
    the shape is clipped to that canvas and added to what is already there (maximum), so two
    calls make touching or overlapping copies. Used to build hallucinated images in tests.

    Example:
        >>> img = paste_shape(np.zeros((64, 64), np.float32), "square", 1, 1, 1)
        >>> int(img.sum()), int(img[:, 21:42].sum())
        (64, 64)
    """
    if image.shape != (NATIVE_SIZE, NATIVE_SIZE):
        raise InputError(f"paste_shape draws on native {NATIVE_SIZE} x {NATIVE_SIZE} images, got {image.shape}")
    spec = shape_specs()[SHAPE_NAMES.index(name)]
    canvas = np.zeros((COLUMN_HEIGHT, COLUMN_WIDTH), dtype=bool)
    dy, dx = spec.offset
    top, left = y + dy, x + dx
    sh, sw = spec.stamp.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + sh, COLUMN_HEIGHT), min(left + sw, COLUMN_WIDTH)
    if y0 < y1 and x0 < x1:
        canvas[y0:y1, x0:x1] = spec.stamp[y0 - top : y1 - top, x0 - left : x1 - left]
    region = image[:COLUMN_HEIGHT, column * COLUMN_WIDTH : (column + 1) * COLUMN_WIDTH]
    np.maximum(region, canvas.astype(image.dtype), out=region)
    return image


# --------------------------------------------------------------------------- generator


@dataclass(frozen=True)
class ShapesData:
    """A batch of generated Simple Shapes images with their ground truth.

    Attributes:
        images: ``N x size x size`` float32 array in ``[0, 1]`` (``{0, 1}`` at 64 px).
        present: ``N x 3`` bool array, whether each column holds its shape.
        x: ``N x 3`` int array, anchor x of each shape inside its column, native pixels (-1 where absent).
        y: ``N x 3`` int array, anchor y of each shape, native pixels (-1 where absent).
    """

    images: np.ndarray
    present: np.ndarray
    x: np.ndarray
    y: np.ndarray


def generate_shapes(count: int, size: int = NATIVE_SIZE, seed: int = 0) -> ShapesData:
    """Generate ``count`` Simple Shapes images the authors' way, deterministically from ``seed``.

    Each column holds its shape with probability 0.5 at a uniformly random anchor (x and y) in
    the released generator's ranges; images with no shape are dropped and more are drawn.
    Drawn at 64 px, then block-averaged when ``size`` is 32 or 16. Vectorised: 5,000 images
    take well under a second.

    Example:
        >>> data = generate_shapes(3, seed=1)
        >>> data.images.shape, bool(data.present.any(axis=1).all())
        ((3, 64, 64), True)
    """
    if count < 0:
        raise InputError(f"the number of Simple Shapes images must be >= 0, got {count}")
    _check_size(size)
    specs = shape_specs()
    rng = np.random.default_rng(seed)
    present_parts, x_parts, y_parts, have = [], [], [], 0
    while have < count:
        n = max(16, int((count - have) * 8 / 7) + 16)  # P(at least one shape) = 7/8
        present = rng.random((n, 3)) < PRESENCE_PROBABILITY
        xs = np.stack([rng.integers(s.x_range[0], s.x_range[1] + 1, size=n) for s in specs], axis=1)
        ys = np.stack([rng.integers(s.y_range[0], s.y_range[1] + 1, size=n) for s in specs], axis=1)
        keep = present.any(axis=1)
        present_parts.append(present[keep])
        x_parts.append(xs[keep])
        y_parts.append(ys[keep])
        have += int(keep.sum())
    if count:
        present = np.concatenate(present_parts)[:count]
        xs = np.where(present, np.concatenate(x_parts)[:count], -1)
        ys = np.where(present, np.concatenate(y_parts)[:count], -1)
    else:
        present, xs, ys = np.zeros((0, 3), bool), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64)

    images = np.zeros((count, NATIVE_SIZE, NATIVE_SIZE), dtype=np.float32)
    pad = 16  # room for stamps that stick out of their column; cropped away below
    for column, spec in enumerate(specs):
        canvas = np.zeros((count, COLUMN_HEIGHT + 2 * pad, COLUMN_WIDTH + 2 * pad), dtype=np.float32)
        items = np.nonzero(present[:, column])[0]
        sh, sw = spec.stamp.shape
        rows = pad + ys[items, column, None] + spec.offset[0] + np.arange(sh)[None, :]  # k x sh
        cols = pad + xs[items, column, None] + spec.offset[1] + np.arange(sw)[None, :]  # k x sw
        canvas[items[:, None, None], rows[:, :, None], cols[:, None, :]] = spec.stamp
        left = column * COLUMN_WIDTH
        images[:, :COLUMN_HEIGHT, left : left + COLUMN_WIDTH] = canvas[
            :, pad : pad + COLUMN_HEIGHT, pad : pad + COLUMN_WIDTH
        ]
    return ShapesData(images=downsample(images, size), present=present, x=xs, y=ys)


def shapes_images(count: int, size: int = NATIVE_SIZE, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Simple Shapes images as RIP inputs: ``count x 3 x size x size`` float in ``[0, 1]`` and ids.

    The greyscale image is replicated to three channels. Ids look like ``shapes64-s0-00003``.

    Example:
        >>> images, ids = shapes_images(2, seed=0)
        >>> tuple(images.shape), ids[1]
        ((2, 3, 64, 64), 'shapes64-s0-00001')
    """
    import torch

    data = generate_shapes(count, size, seed)
    images = torch.from_numpy(data.images)[:, None].expand(-1, 3, -1, -1).contiguous()
    return images, [f"shapes{size}-s{seed}-{i:05d}" for i in range(count)]


# --------------------------------------------------------------------------- labeller

#: A pixel is part of a shape when its grey value is at least this.
THRESHOLD: float = 0.5
#: A placement of a shape's stamp explains a blob when at least this share of the stamp lies on it.
MIN_STAMP_OVERLAP: float = 0.8
#: A further copy is counted when it covers at least this share of a shape's area that earlier
#: copies leave uncovered (copies displaced by about half a shape or more).
MIN_NEW_COVERAGE: float = 0.4
#: A blob is readable when the union of its fitted copies matches it with at least this IoU.
MIN_FIT_IOU: float = 0.6
#: Components smaller than this share of the smallest shape are noise and ignored.
MIN_AREA_SHARE: float = 0.25


@dataclass(frozen=True)
class ShapeLabel:
    """The labeller's verdict on one image.

    Attributes:
        counts: number of shapes found in each column (of any type; merged copies counted apart).
        shapes: per column, the type of each shape found there (``"unknown"`` if unreadable).
        kind: the image's label, the first of :data:`KINDS` that applies: ``"duplicate"`` (a
            column holds two or more copies of its own shape: the paper's hallucination),
            ``"wrong_shape"`` (a shape in another shape's column), ``"malformed"`` (a blob that
            no union of shapes explains), ``"empty"`` (no shape at all) or ``"valid"``.
        reason: ``"ok"`` or every problem found, joined by ``"+"`` (e.g. ``"duplicate+malformed"``).
        boxes: per column, the pixel box ``(y0, x0, y1, x1)`` (half-open, whole-image coordinates)
            of the blob each shape of :attr:`shapes` was read from (copies merged into one blob
            share its box); empty when unknown.
    """

    counts: tuple[int, int, int]
    shapes: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]
    kind: str
    reason: str
    boxes: tuple[tuple[tuple[int, int, int, int], ...], ...] = ()

    @property
    def layout(self) -> str:
        """What each column holds, as letters (:data:`LETTERS`) joined by ``"|"``, e.g. ``"T|SS|"``:
        a triangle on the left, two squares in the middle, nothing on the right."""
        return "|".join("".join(LETTERS[name] for name in column) for column in self.shapes)

    @property
    def box_text(self) -> str:
        """Where each shape is: ``"letter y0,x0,y1,x1"`` per shape, in :attr:`layout` order, joined by
        ``";"`` (e.g. ``"T0,2,10,13;S5,22,13,30"``); read back by :func:`parse_shape_boxes`."""
        return ";".join(f"{LETTERS[name]}{','.join(map(str, box))}"
                        for column, places in zip(self.shapes, self.boxes) for name, box in zip(column, places))

    @property
    def is_valid(self) -> bool:
        """Whether the image could come from the data set (at most one shape per column, each in its
        own column, well formed, at least one)."""
        return self.kind == "valid"

    @property
    def is_hallucination(self) -> bool:
        """Whether the image is a hallucination in the paper's sense: a column holds two or more
        copies of its own shape."""
        return self.kind == "duplicate"


@dataclass(frozen=True)
class _Templates:
    """Stamps (all block-average phases) of each shape at one image size, for the labeller."""

    size: int
    columns: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    stamps: tuple[tuple[np.ndarray, ...], ...]
    areas: tuple[float, float, float]
    min_area: float


@lru_cache(maxsize=4)
def _templates(size: int) -> _Templates:
    factor = _check_size(size)
    if factor > 2:
        raise InputError(f"the Simple Shapes labeller reads 64 or 32 px images, got {size}")
    stamps = []
    for spec in shape_specs():
        variants = []
        for dy in range(factor):
            for dx in range(factor):
                h = -(-(spec.stamp.shape[0] + dy) // factor) * factor
                w = -(-(spec.stamp.shape[1] + dx) // factor) * factor
                canvas = np.zeros((h, w), np.float32)
                canvas[dy : dy + spec.stamp.shape[0], dx : dx + spec.stamp.shape[1]] = spec.stamp
                small = canvas.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3)) >= THRESHOLD
                rows, cols = np.nonzero(small)
                variants.append(small[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
        stamps.append(tuple(variants))
    areas = tuple(float(min(v.sum() for v in vs)) for vs in stamps)  # the smallest phase of each shape
    # pixel p covers native pixels p*factor ..; it belongs to the column holding the first of them
    bounds = [-(-COLUMN_WIDTH * k // factor) for k in range(4)]
    columns = tuple((bounds[k], bounds[k + 1]) for k in range(3))
    columns = (*columns[:2], (columns[2][0], size))  # the right edge strip (native x = 63) goes with the last
    return _Templates(size, columns, tuple(stamps), areas, MIN_AREA_SHARE * min(areas))  # type: ignore[arg-type]


def column_bounds(size: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Pixel ranges ``[left, right)`` of the three columns in a ``size`` px image (64 or 32).

    A pixel belongs to the column of the first native pixel it covers; the blank 64th native
    column goes with the last.

    Example:
        >>> column_bounds(64), column_bounds(32)
        (((0, 21), (21, 42), (42, 64)), ((0, 11), (11, 21), (21, 32)))
    """
    return _templates(size).columns


def _fit_copies(blob: np.ndarray, variants: Sequence[np.ndarray], area: float) -> tuple[int, float]:
    """How many copies of one shape explain ``blob`` (bool patch), and the IoU of their union.

    Candidate placements: every position of every stamp variant with at least
    :data:`MIN_STAMP_OVERLAP` of the stamp on the blob. One copy: the candidate covering most of
    the blob. Two: the pair covering most (searched exhaustively, so a copy in the middle of two
    cannot hide them); counted when the pair covers :data:`MIN_NEW_COVERAGE` of a shape more than
    the best single copy. More: added greedily by the same rule. ``(0, 0.0)`` when no placement fits.
    """
    max_h = max(v.shape[0] for v in variants)
    max_w = max(v.shape[1] for v in variants)
    padded = np.pad(blob, ((max_h, max_h), (max_w, max_w)))
    flat_blob = padded.ravel()
    masks = []
    for stamp in variants:
        overlap = correlate(padded.astype(np.float32), stamp.astype(np.float32), mode="valid", method="direct")
        for i, j in zip(*np.nonzero(overlap >= MIN_STAMP_OVERLAP * stamp.sum() - 1e-6)):
            placed = np.zeros_like(padded)
            placed[i : i + stamp.shape[0], j : j + stamp.shape[1]] = stamp
            masks.append(placed.ravel())
    if not masks:
        return 0, 0.0
    placed_all = np.stack(masks)  # candidates x pixels
    on_blob = (placed_all & flat_blob).astype(np.float32)
    single = on_blob.sum(axis=1)
    chosen = [int(np.argmax(single))]
    covered = single[chosen[0]]
    if len(masks) > 1:
        pair = single[:, None] + single[None, :] - on_blob @ on_blob.T
        i, j = np.unravel_index(int(np.argmax(pair)), pair.shape)
        if pair[i, j] - covered >= MIN_NEW_COVERAGE * area:
            chosen, covered = [int(i), int(j)], float(pair[i, j])
            union = placed_all[i] | placed_all[j]
            while len(chosen) < 6:
                gain = (on_blob * ~union).sum(axis=1)
                best = int(np.argmax(gain))
                if gain[best] < MIN_NEW_COVERAGE * area:
                    break
                chosen.append(best)
                union |= placed_all[best]
    union = np.logical_or.reduce(placed_all[chosen], axis=0)
    iou = float((union & flat_blob).sum() / (union | flat_blob).sum())
    return len(chosen), iou


def _read_component(mask: np.ndarray, column: int, templates: _Templates) -> tuple[int, str]:
    """``(copies, shape name or "unknown")`` for one connected component (bool patch)."""
    own_variants = templates.stamps[column]
    # fast path: an exact stamp of the column's shape
    if any(v.shape == mask.shape and np.array_equal(v, mask) for v in own_variants):
        return 1, SHAPE_NAMES[column]
    fits = [_fit_copies(mask, templates.stamps[k], templates.areas[k]) for k in range(3)]
    ious = [iou for _, iou in fits]
    best = int(np.argmax(ious))
    if ious[column] >= ious[best] - 0.05:
        best = column  # prefer the column's own shape when it explains the blob about as well
    copies, iou = fits[best]
    if copies == 0 or iou < MIN_FIT_IOU:
        return 1, "unknown"
    return copies, SHAPE_NAMES[best]


def _as_greyscale(data: np.ndarray | torch.Tensor) -> np.ndarray:
    torch = sys.modules.get("torch")  # a tensor means torch is imported; numpy input needs no torch
    if torch is not None and isinstance(data, torch.Tensor):
        data = data.detach().float().cpu().numpy()
    images = np.asarray(data, dtype=np.float32)
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 4:
        images = images.mean(axis=1)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise InputError(
            f"Simple Shapes images must be N x H x W, N x C x H x W or H x W and square, got shape {images.shape}"
        )
    return images


def label_shapes(images: np.ndarray | torch.Tensor) -> list[ShapeLabel]:
    """Label each Simple Shapes image: valid, a hallucination (duplicate) or another kind of invalid.

    Args:
        images: greyscale ``N x H x W`` or ``N x C x H x W`` (channels are averaged), 64 or 32 px,
            values in ``[0, 1]``, numpy or torch. Binarised at :data:`THRESHOLD`, so diffusion
            samples need no cleaning.

    The columns are read apart, as the generator draws them on separate canvases (a blob that
    crosses a column edge is cut there). Each connected component (4-connectivity) of at least
    :data:`MIN_AREA_SHARE` of a shape's area is explained as a union of copies of one
    shape (:data:`MIN_STAMP_OVERLAP`, :data:`MIN_NEW_COVERAGE`): touching or overlapping copies
    count separately when each adds about half a shape or more; smaller offsets make an
    unreadable blob. The shape type is the one whose copies match the blob best (the column's
    own shape wins near-ties); a blob no union matches with IoU :data:`MIN_FIT_IOU` is
    ``"unknown"`` (malformed).

    Example:
        >>> img = np.zeros((64, 64), np.float32)
        >>> label_shapes(img)[0].kind
        'empty'
        >>> twice = paste_shape(paste_shape(img.copy(), "square", 1, 2, 3), "square", 1, 4, 30)
        >>> label = label_shapes(twice)[0]
        >>> label.kind, label.counts, label.is_hallucination
        ('duplicate', (0, 2, 0), True)
    """
    binary = _as_greyscale(images) >= THRESHOLD
    n, size, _ = binary.shape
    templates = _templates(size)

    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)  # no connections across images
    found: list[list[list[str]]] = [[[], [], []] for _ in range(n)]
    where: list[list[list[tuple[int, int, int, int]]]] = [[[], [], []] for _ in range(n)]
    for column, (left, right) in enumerate(templates.columns):
        components, _ = ndimage.label(binary[:, :, left:right], structure=structure)
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            if box is None:
                continue
            mask = components[box][0] == index
            if mask.sum() < templates.min_area:
                continue
            copies, name = _read_component(mask, column, templates)
            found[box[0].start][column].extend([name] * copies)
            place = (box[1].start, box[2].start + left, box[1].stop, box[2].stop + left)
            where[box[0].start][column].extend([place] * copies)

    labels = []
    for item in range(n):
        cols = found[item]
        problems = []
        if any(sum(kind == SHAPE_NAMES[k] for kind in c) >= 2 for k, c in enumerate(cols)):
            problems.append("duplicate")
        if any(kind not in ("unknown", SHAPE_NAMES[k]) for k, c in enumerate(cols) for kind in c):
            problems.append("wrong_shape")
        if any("unknown" in c for c in cols):
            problems.append("malformed")
        if not any(cols):
            problems.append("empty")
        labels.append(
            ShapeLabel(
                counts=tuple(len(c) for c in cols),  # type: ignore[arg-type]
                shapes=tuple(tuple(c) for c in cols),  # type: ignore[arg-type]
                kind=problems[0] if problems else "valid",
                reason="+".join(problems) or "ok",
                boxes=tuple(tuple(c) for c in where[item]),
            )
        )
    return labels


def summarise_labels(labels: Sequence[ShapeLabel]) -> dict[str, float]:
    """Counts and shares of each kind of image among ``labels``.

    ``hallucination_rate`` is the share of duplicates (the paper's phenomenon); ``valid_share``
    the share of valid images; ``<kind>_rate`` the share of each kind (they sum to 1).

    Example:
        >>> summarise_labels(label_shapes(generate_shapes(10, seed=0).images))["valid_share"]
        1.0
    """
    n = max(len(labels), 1)
    out = {"n": float(len(labels))}
    for kind in KINDS:
        out[f"{kind}_rate"] = sum(lbl.kind == kind for lbl in labels) / n
    out["valid_share"] = out.pop("valid_rate")
    out["hallucination_rate"] = out["duplicate_rate"]
    return out


# --------------------------------------------------------------------------- generations in a RIP table

def parse_shape_boxes(text: str | None) -> list[tuple[str, tuple[int, int, int, int]]]:
    """``(letter, (y0, x0, y1, x1))`` per shape from :attr:`ShapeLabel.box_text` (the ``shapes_boxes`` column).

    >>> parse_shape_boxes("T0,2,10,13;S5,22,13,30"), parse_shape_boxes("")
    ([('T', (0, 2, 10, 13)), ('S', (5, 22, 13, 30))], [])
    """
    if not isinstance(text, str) or not text:
        return []
    out = []
    for item in text.split(";"):
        y0, x0, y1, x1 = (int(v) for v in item[1:].split(","))
        out.append((item[0], (y0, x0, y1, x1)))
    return out
