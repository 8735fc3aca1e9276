"""The Simple Shapes data set of Aithal et al. (NeurIPS 2024) and a labeller for its hallucinations.

An image is split into three vertical columns: a triangle may appear only in the left
column, a square only in the middle one and a pentagon only in the right one. Each shape
is present with probability 0.5, at a uniformly random vertical position; images without
any shape are dropped. Shapes are white (1) on black (0), greyscale.

A diffusion model trained on these images *hallucinates* by mode interpolation: it makes
images with two copies of a shape in one column, which never occur in the training data.
:func:`label_shapes` detects that (and shapes in the wrong column, malformed blobs and
empty images) by counting connected components per column.

Example
-------
>>> data = generate_shapes(4, size=32, seed=0)
>>> data.images.shape
(4, 32, 32)
>>> all(label.is_valid for label in label_shapes(data.images))
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage

from ..errors import InputError

#: The shape each column may hold, left to right.
SHAPE_NAMES: tuple[str, str, str] = ("triangle", "square", "pentagon")


# --------------------------------------------------------------------------- geometry


def _polygon(name: str, side: int) -> np.ndarray:
    """Vertices (x, y) of a shape that fits an ``side x side`` box (y grows downwards)."""
    s = float(side)
    if name == "triangle":
        return np.array([[s / 2, 0.0], [s, s], [0.0, s]])
    if name == "square":
        return np.array([[0.0, 0.0], [s, 0.0], [s, s], [0.0, s]])
    if name == "pentagon":  # regular, apex up, as wide as the box, centred vertically
        radius = s / (2 * math.sin(math.radians(72)))
        height = radius * (1 + math.cos(math.radians(36)))
        cy = radius + (s - height) / 2
        angles = np.radians(-90 + 72 * np.arange(5))
        return np.stack([s / 2 + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    raise ValueError(f"unknown shape {name!r}")


def _rasterise(vertices: np.ndarray, side: int) -> np.ndarray:
    """Boolean ``side x side`` stamp: pixels whose centre lies inside the convex polygon."""
    centres = np.arange(side) + 0.5
    py, px = np.meshgrid(centres, centres, indexing="ij")
    inside = np.ones((side, side), dtype=bool)
    # counter-clockwise in (x, y-down) coordinates means every cross product is >= 0 inside
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        cross = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
        inside &= cross >= -1e-9
    return inside


@dataclass(frozen=True)
class ShapesGeometry:
    """Layout of Simple Shapes images of one size.

    Attributes:
        size: image height and width in pixels.
        col_width: width of each of the three columns (``size // 3``).
        offset: x of the left edge of the first column (centres the columns).
        side: side of the box each shape is drawn in (three quarters of a column).
        stamps: the three boolean ``side x side`` shape stamps, in column order.
    """

    size: int
    col_width: int
    offset: int
    side: int
    stamps: tuple[np.ndarray, np.ndarray, np.ndarray]

    def column_x(self, column: int) -> int:
        """Left x of the shape box in ``column`` (the shape is centred in its column)."""
        return self.offset + column * self.col_width + (self.col_width - self.side) // 2


@lru_cache(maxsize=16)
def shapes_geometry(size: int) -> ShapesGeometry:
    """The :class:`ShapesGeometry` of ``size x size`` images (``size >= 16``)."""
    if size < 16:
        raise InputError(f"Simple Shapes images must be at least 16 pixels wide, got {size}")
    col_width = size // 3
    side = max(4, int(round(0.75 * col_width)))
    stamps = tuple(_rasterise(_polygon(name, side), side) for name in SHAPE_NAMES)
    return ShapesGeometry(size, col_width, (size - 3 * col_width) // 2, side, stamps)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- generator


@dataclass(frozen=True)
class ShapesData:
    """A batch of generated Simple Shapes images with their ground truth.

    Attributes:
        images: ``N x size x size`` float32 array with values in ``{0, 1}``.
        present: ``N x 3`` bool array, whether each column holds its shape.
        top: ``N x 3`` int array, top row of each shape's box (undefined where absent).
    """

    images: np.ndarray
    present: np.ndarray
    top: np.ndarray


def generate_shapes(count: int, size: int = 32, seed: int = 0) -> ShapesData:
    """Generate ``count`` Simple Shapes images, deterministically from ``seed``.

    Each column holds its shape with probability 0.5 at a uniformly random vertical
    position; images with no shape are rejected and redrawn. Vectorised: 5,000 images
    take a fraction of a second.

    Example:
        >>> generate_shapes(3, size=64, seed=1).images.shape
        (3, 64, 64)
    """
    if count < 0:
        raise InputError(f"the number of Simple Shapes images must be >= 0, got {count}")
    geo = shapes_geometry(size)
    rng = np.random.default_rng(seed)
    present_parts, top_parts, have = [], [], 0
    while have < count:
        n = max(16, int((count - have) * 8 / 7) + 16)  # P(at least one shape) = 7/8
        present = rng.random((n, 3)) < 0.5
        top = rng.integers(0, size - geo.side + 1, size=(n, 3))
        keep = present.any(axis=1)
        present_parts.append(present[keep])
        top_parts.append(top[keep])
        have += int(keep.sum())
    present = np.concatenate(present_parts)[:count] if count else np.zeros((0, 3), bool)
    top = np.concatenate(top_parts)[:count] if count else np.zeros((0, 3), np.int64)

    images = np.zeros((count, size, size), dtype=np.float32)
    rows_in_stamp = np.arange(geo.side)
    for column, stamp in enumerate(geo.stamps):
        items = np.nonzero(present[:, column])[0]
        rows = top[items, column][:, None] + rows_in_stamp[None, :]  # k x side
        cols = geo.column_x(column) + rows_in_stamp  # side
        images[items[:, None, None], rows[:, :, None], cols[None, None, :]] = stamp
    return ShapesData(images=images, present=present, top=top)


def shapes_images(count: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Simple Shapes images as RIP inputs: ``count x 3 x size x size`` float in ``[0, 1]`` and ids.

    The greyscale image is replicated to three channels. Ids look like ``shapes32-s0-00003``.

    Example:
        >>> images, ids = shapes_images(2, size=32, seed=0)
        >>> tuple(images.shape), ids[1]
        ((2, 3, 32, 32), 'shapes32-s0-00001')
    """
    data = generate_shapes(count, size, seed)
    images = torch.from_numpy(data.images)[:, None].expand(-1, 3, -1, -1).contiguous()
    return images, [f"shapes{size}-s{seed}-{i:05d}" for i in range(count)]


# --------------------------------------------------------------------------- labeller


@dataclass(frozen=True)
class ShapeLabel:
    """The labeller's verdict on one image.

    Attributes:
        counts: number of shapes found in each column (a blob as tall as two shapes counts 2).
        shapes: per column, the type of each shape found there (``"unknown"`` if malformed).
        is_valid: ``True`` when the image could come from the data set: at least one shape,
            at most one per column, each the column's own shape and well formed.
        reason: ``"ok"`` or the problems joined by ``"+"``: ``"empty"``, ``"duplicate"``
            (two or more shapes in a column), ``"wrong_shape"`` (a shape in another shape's
            column), ``"malformed"`` (a blob of the wrong size).
    """

    counts: tuple[int, int, int]
    shapes: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]
    is_valid: bool
    reason: str

    @property
    def is_hallucination(self) -> bool:
        """Whether the image is a hallucination (the negation of :attr:`is_valid`)."""
        return not self.is_valid


def _profile_features(mask: np.ndarray) -> np.ndarray:
    """Scale-free shape features of a component's bounding-box mask.

    ``[fill ratio of the box, mean width of the top third / widest row,
    mean width of the bottom third / widest row]``.
    """
    widths = mask.sum(axis=1).astype(np.float64)
    h = len(widths)
    third = max(1, h // 3)
    widest = max(widths.max(), 1.0)
    return np.array(
        [mask.sum() / mask.size, widths[:third].mean() / widest, widths[-third:].mean() / widest]
    )


@lru_cache(maxsize=16)
def _templates(size: int) -> np.ndarray:
    geo = shapes_geometry(size)
    feats = []
    for stamp in geo.stamps:
        rows, cols = np.nonzero(stamp)
        feats.append(_profile_features(stamp[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]))
    return np.stack(feats)


def _as_greyscale(images: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().float().cpu().numpy()
    images = np.asarray(images, dtype=np.float32)
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
    """Label each Simple Shapes image as valid or as a hallucination.

    Args:
        images: greyscale ``N x H x W`` or ``N x C x H x W`` (channels are averaged) with
            values in ``[0, 1]``, numpy or torch. Binarised at 0.5, so diffusion samples
            need no cleaning.

    Connected components (4-connectivity) smaller than a third of the smallest shape are
    ignored as noise. A component is assigned to the column containing its centroid; one
    about ``k`` shapes tall counts as ``k`` shapes (merged duplicates); one whose height or
    width is off by more than half a shape is malformed; otherwise its type is the nearest
    of the three rendered shapes in (fill ratio, top-third width, bottom-third width).

    Example:
        >>> img = np.zeros((1, 32, 32), np.float32)
        >>> label_shapes(img)[0].reason
        'empty'
    """
    binary = _as_greyscale(images) > 0.5
    n, size, _ = binary.shape
    geo = shapes_geometry(size)
    templates = _templates(size)
    expected = np.array([[s.any(axis=1).sum(), s.any(axis=0).sum()] for s in geo.stamps])  # h, w
    min_area = min(int(s.sum()) for s in geo.stamps) / 3.0

    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)  # no connections across images
    components, _ = ndimage.label(binary, structure=structure)
    boxes = ndimage.find_objects(components)

    found: list[list[list[str]]] = [[[], [], []] for _ in range(n)]
    flags: list[set[str]] = [set() for _ in range(n)]
    for index, box in enumerate(boxes, start=1):
        if box is None:
            continue
        item = box[0].start
        mask = components[box][0] == index
        area = int(mask.sum())
        if area < min_area:
            continue
        h, w = mask.shape
        cx = box[2].start + np.nonzero(mask)[1].mean() + 0.5
        column = int(np.clip((cx - geo.offset) // geo.col_width, 0, 2))
        exp_h, exp_w = expected[column]
        copies = max(1, int(round(h / exp_h)))
        if copies == 1 and (abs(h - exp_h) > exp_h / 2 or abs(w - exp_w) > exp_w / 2):
            found[item][column].append("unknown")
            flags[item].add("malformed")
            continue
        if copies > 1 and abs(w - exp_w) > exp_w / 2:
            flags[item].add("malformed")
        if copies == 1:
            kind = SHAPE_NAMES[int(np.argmin(np.abs(templates - _profile_features(mask)).sum(axis=1)))]
        else:
            kind = SHAPE_NAMES[column]  # a stack of shapes: judge the count, not the outline
        found[item][column].extend([kind] * copies)

    labels = []
    for item in range(n):
        cols = found[item]
        counts = tuple(len(c) for c in cols)
        reasons = []
        if sum(counts) == 0:
            reasons.append("empty")
        if any(c >= 2 for c in counts):
            reasons.append("duplicate")
        if any(kind not in ("unknown", SHAPE_NAMES[k]) for k, c in enumerate(cols) for kind in c):
            reasons.append("wrong_shape")
        if "malformed" in flags[item]:
            reasons.append("malformed")
        labels.append(
            ShapeLabel(
                counts=counts,  # type: ignore[arg-type]
                shapes=tuple(tuple(c) for c in cols),  # type: ignore[arg-type]
                is_valid=not reasons,
                reason="+".join(reasons) or "ok",
            )
        )
    return labels


def summarise_labels(labels: Sequence[ShapeLabel]) -> dict[str, float]:
    """Shares of valid images, hallucinations and each reason among ``labels``.

    ``hallucination_rate`` is the share with a duplicated shape (the paper's phenomenon);
    ``invalid_rate`` counts every problem.

    Example:
        >>> summarise_labels(label_shapes(generate_shapes(10, 32, 0).images))["valid_share"]
        1.0
    """
    n = max(len(labels), 1)
    out = {
        "n": float(len(labels)),
        "valid_share": sum(lbl.is_valid for lbl in labels) / n,
        "invalid_rate": sum(not lbl.is_valid for lbl in labels) / n,
        "hallucination_rate": sum("duplicate" in lbl.reason for lbl in labels) / n,
    }
    for reason in ("empty", "wrong_shape", "malformed"):
        out[f"{reason}_rate"] = sum(reason in lbl.reason.split("+") for lbl in labels) / n
    return out
