"""Input images: loading, conversion to RGB, fitting to the experiment size, samples.

Sources (``inputs.source`` in a config):

* ``samples`` — the built-in sample set: photographs that ship with scikit-image and
  scikit-learn, tagged by category (see :data:`SAMPLE_IMAGES`); works offline.
* ``folder`` — every image Pillow reads in a folder. Images in sub-folders take the
  sub-folder's name as their category (``photos/animal/cat.png`` -> ``animal``).
* ``list`` — a text file with one image path per line, optionally ``path,category``;
  relative paths are relative to the list file.
* ``shapes`` — Simple Shapes images (greyscale shapes in three columns) for the bundled
  shapes diffusion model.
* ``hf`` — a seeded sample of rows of a Hugging Face dataset (Hub id, ``save_to_disk`` folder,
  Parquet files or an image folder); see :mod:`ripbench.hf_inputs`.

Greyscale, RGBA, grey+alpha, palette and 16-bit images are converted to 8-bit-range RGB
(transparent pixels composited on white); each conversion is noted in :attr:`InputImage.notes` and in the run manifest.

Example
-------
>>> from ripbench.inputs import load_sample
>>> img = load_sample("astronaut", size=64)
>>> img.category, tuple(img.pixels.shape)
('portrait', (3, 64, 64))
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, get_args

import numpy as np

from .errors import InputError
from .io import open_image

if TYPE_CHECKING:  # torch is imported where images are loaded, not where the sample set is listed (config)
    import torch

#: How an image is brought to the run's size (the config schema's type for ``fit``; see :func:`fit_image`).
Fit = Literal["center-crop", "resize", "pad"]
FIT_MODES: tuple[str, ...] = get_args(Fit)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


@dataclass
class InputImage:
    """One input image, ready for the harness.

    Attributes:
        id: short unique name used in tables and file names.
        category: free-form tag (portrait, animal, texture, ...).
        pixels: ``3 x H x W`` float32 tensor in ``[0, 1]`` (CPU).
        source: where it came from (file path or ``skimage:astronaut``).
        notes: conversions applied (greyscale -> RGB, resize, crop, ...).
        sha256: digest of the file's bytes (of the decoded pixels for built-in and generated
            images): a resumed run refuses inputs whose digest changed.
        dataset: for an image from a Hugging Face dataset, the dataset's record
            (:func:`ripbench.hf_inputs.describe_source`); ``None`` otherwise.
    """

    id: str
    category: str
    pixels: torch.Tensor
    source: str
    notes: list[str] = field(default_factory=list)
    sha256: str = ""
    dataset: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.sha256:
            self.sha256 = hashlib.sha256(self.pixels.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


#: The built-in sample set: name -> (category, loader, source). All ship inside
#: scikit-image / scikit-learn and load offline.
SAMPLE_IMAGES: dict[str, tuple[str, Callable[[], np.ndarray], str]] = {
    "astronaut": ("portrait", _skimage("astronaut"), "skimage.data.astronaut"),
    "camera": ("portrait", _skimage("camera"), "skimage.data.camera"),
    "chelsea": ("animal", _skimage("chelsea"), "skimage.data.chelsea"),
    "coffee": ("object", _skimage("coffee"), "skimage.data.coffee"),
    "rocket": ("object", _skimage("rocket"), "skimage.data.rocket"),
    "china": ("landscape", _sklearn("china.jpg"), "sklearn china.jpg"),
    "flower": ("object", _sklearn("flower.jpg"), "sklearn flower.jpg"),
    "brick": ("texture", _skimage("brick"), "skimage.data.brick"),
    "grass": ("texture", _skimage("grass"), "skimage.data.grass"),
    "gravel": ("texture", _skimage("gravel"), "skimage.data.gravel"),
    "hubble": ("scientific", _skimage("hubble_deep_field"), "skimage.data.hubble_deep_field"),
    "immunohistochemistry": ("scientific", _skimage("immunohistochemistry"), "skimage.data.immunohistochemistry"),
    "retina": ("scientific", _skimage("retina"), "skimage.data.retina"),
}

SAMPLE_CATEGORIES: tuple[str, ...] = ("portrait", "animal", "object", "landscape", "texture", "scientific")


def _to_rgb_uint8_range(arr: np.ndarray, notes: list[str]) -> np.ndarray:
    """Convert any decoded image array to ``H x W x 3`` float32 in ``[0, 1]``."""
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
        notes.append("binary -> float")
    elif arr.dtype == np.uint16 or (np.issubdtype(arr.dtype, np.integer) and arr.max(initial=0) > 255):
        arr = arr.astype(np.float32) / 65535.0
        notes.append("16-bit -> float")
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / 255.0
    else:
        arr = arr.astype(np.float32)
        finite = arr[np.isfinite(arr)]
        if finite.size != arr.size:
            raise InputError("the image holds NaN or Inf values")
        top = float(finite.max(initial=0.0))
        if top > 255.0:
            arr = arr / 65535.0
            notes.append("float image in 0..65535 -> [0, 1]")
        elif top > 1.0:
            arr = arr / 255.0
            notes.append("float image in 0..255 -> [0, 1]")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
        notes.append("greyscale -> RGB")
    elif arr.ndim == 3 and arr.shape[2] in (2, 4):  # colour + alpha: composite on white
        alpha = arr[..., -1:]
        colour = arr[..., :-1] * alpha + (1.0 - alpha)
        arr = colour if colour.shape[2] == 3 else np.repeat(colour, 3, axis=2)
        notes.append(f"{'RGBA' if colour.shape[2] == 3 else 'greyscale+alpha'} -> RGB (composited on white)")
    elif not (arr.ndim == 3 and arr.shape[2] == 3):
        raise InputError(f"unsupported image layout {arr.shape}")
    return np.clip(arr, 0.0, 1.0)


def _read_tiff(path: Path) -> np.ndarray | None:
    """TIFFs that Pillow cannot hold (float or 16-bit RGB) through tifffile; ``None`` to let Pillow try."""
    try:
        import tifffile
    except ImportError:  # pragma: no cover - scikit-image depends on it
        return None
    try:
        arr = np.asarray(tifffile.imread(path))
    except Exception:  # noqa: BLE001 - anything tifffile cannot read, Pillow gets a go at
        return None
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar -> interleaved
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    return arr


#: The EXIF tag of an image's orientation (1 = as stored; 2-8 = mirrored and/or rotated).
EXIF_ORIENTATION = 0x0112


def _read_file(path: Path) -> tuple[np.ndarray, list[str]]:
    """Decode an image file to an array, EXIF orientation applied; :class:`InputError` naming the file otherwise."""
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    notes: list[str] = []
    if path.suffix.lower() in (".tif", ".tiff"):
        arr = _read_tiff(path)
        if arr is not None and (arr.dtype.kind == "f" or arr.dtype.itemsize > 1):
            notes.append(f"TIFF {arr.dtype} read with tifffile")
            return arr, notes
    arr, more = _decode_image(path, str(path))
    return arr, notes + more


def _decode_image(source: Path | BinaryIO, name: str) -> tuple[np.ndarray, list[str]]:
    """Decode an image (a file, or encoded bytes named ``name``) with Pillow, EXIF orientation applied."""
    from PIL import ImageOps

    notes: list[str] = []
    with open_image(source, "image", name=name) as opened:
        orientation = opened.getexif().get(EXIF_ORIENTATION, 1)
        im = opened
        if orientation not in (None, 1):  # noted only when the file has a rotation or mirroring to undo
            im = ImageOps.exif_transpose(opened)
            notes.append(f"EXIF orientation {orientation} applied")
        if im.mode in ("P", "PA"):
            transparent = im.mode == "PA" or "transparency" in im.info
            im = im.convert("RGBA" if transparent else "RGB")  # no transparency: nothing to composite
            notes.append("palette -> RGBA" if transparent else "palette -> RGB")
        elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
            notes.append(f"mode {im.mode}")
            arr = np.asarray(im).astype(np.uint16 if im.mode.startswith("I;16") else np.int64)
            if arr.dtype != np.uint16:
                arr = np.clip(arr, 0, 65535).astype(np.uint16)
            return arr, notes
        elif im.mode == "F":  # 32-bit float greyscale: keep the values (convert("RGB") clips them)
            notes.append("mode F (float)")
            return np.asarray(im, dtype=np.float32), notes
        elif im.mode in ("CMYK", "YCbCr", "HSV", "LAB", "1"):
            notes.append(f"mode {im.mode} -> RGB")
            im = im.convert("RGB")
        arr = np.asarray(im)
    return arr, notes


def fit_image(pixels: torch.Tensor, size: int, fit: Fit = "center-crop") -> tuple[torch.Tensor, str]:
    """Resize a ``3 x H x W`` image to ``size x size``.

    ``center-crop`` scales the short side to ``size`` and crops the centre; ``resize``
    squashes to the square; ``pad`` scales the long side to ``size`` and pads with
    black (as the RIP paper pads to 512 x 512). Uses antialiased bicubic resampling.

    Returns the fitted image and a note describing what was done.
    """
    import torch

    if fit not in FIT_MODES:
        raise InputError(f"unknown fit {fit!r}; allowed: {', '.join(FIT_MODES)}")
    _, h, w = pixels.shape
    if (h, w) == (size, size):
        return pixels, "kept size"

    def _resize(img: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
        out = torch.nn.functional.interpolate(
            img[None], size=(nh, nw), mode="bicubic", antialias=True, align_corners=False
        )[0]
        return out.clamp(0.0, 1.0)

    if fit == "resize":
        return _resize(pixels, size, size), f"resized {w}x{h} -> {size}x{size}"
    if fit == "center-crop":
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        img = _resize(pixels, nh, nw)
        top, left = (nh - size) // 2, (nw - size) // 2
        return img[:, top : top + size, left : left + size].contiguous(), (
            f"resized {w}x{h} -> {nw}x{nh}, centre-cropped to {size}x{size}"
        )
    scale = size / max(h, w)
    nh, nw = min(size, round(h * scale)), min(size, round(w * scale))
    img = _resize(pixels, nh, nw)
    out = torch.zeros(3, size, size, dtype=img.dtype)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[:, top : top + nh, left : left + nw] = img
    return out, f"resized {w}x{h} -> {nw}x{nh}, padded to {size}x{size}"


def _finish(image_id: str, category: str, arr: np.ndarray, notes: list[str], source: str,
            size: int, fit: Fit, sha256: str = "") -> InputImage:
    import torch

    rgb = _to_rgb_uint8_range(arr, notes)
    pixels = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()
    pixels, how = fit_image(pixels, size, fit)
    notes.append(how)
    return InputImage(id=image_id, category=category, pixels=pixels, source=source, notes=notes, sha256=sha256)


def load_sample(name: str, size: int = 512, fit: Fit = "center-crop") -> InputImage:
    """Load one image of the built-in sample set (see :data:`SAMPLE_IMAGES`)."""
    if name not in SAMPLE_IMAGES:
        raise InputError(f"unknown sample image {name!r}; available: {', '.join(SAMPLE_IMAGES)}")
    category, loader, source = SAMPLE_IMAGES[name]
    return _finish(name, category, loader(), [], source, size, fit)


def load_image(path: str | Path, size: int = 512, fit: Fit = "center-crop", *,
               image_id: str | None = None, category: str = "unknown") -> InputImage:
    """Load an image file, convert it to RGB and fit it to ``size x size``."""
    from .io import sha256_file

    path = Path(path)
    arr, notes = _read_file(path)
    try:  # the file's bytes identify the input (the pixels would also change with the size or fit)
        return _finish(image_id or _safe_id(path.stem), category, arr, notes, str(path), size, fit,
                       sha256_file(path))
    except InputError as exc:
        raise InputError(f"cannot use image {path}: {exc}") from None


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "image"


def _unique_ids(images: list[InputImage]) -> list[InputImage]:
    seen: dict[str, int] = {}
    for img in images:
        if img.id in seen:
            seen[img.id] += 1
            img.id = f"{img.id}-{seen[img.id]}"
        else:
            seen[img.id] = 0
    return images


def load_folder(folder: str | Path, size: int = 512, fit: Fit = "center-crop") -> list[InputImage]:
    """Load every image in ``folder``; a sub-folder's name becomes the category."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {folder}")
    images = []
    for p in files:
        rel = p.relative_to(folder)
        category = rel.parts[0] if len(rel.parts) > 1 else "unknown"
        images.append(load_image(p, size, fit, image_id=_safe_id(str(rel.with_suffix(""))), category=category))
    return _unique_ids(images)


def load_list(list_file: str | Path, size: int = 512, fit: Fit = "center-crop") -> list[InputImage]:
    """Load the images named in a list file (``path`` or ``path,category`` per line)."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise InputError(f"image list file not found: {list_file}")
    images = []
    for n, line in enumerate(list_file.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path_text, _, category = line.partition(",")
        path = Path(path_text.strip())
        if not path.is_absolute():
            path = list_file.parent / path
        try:
            images.append(load_image(path, size, fit, category=category.strip() or "unknown"))
        except InputError as exc:
            raise InputError(f"{list_file}:{n}: {exc}") from None
    if not images:
        raise InputError(f"image list file {list_file} names no images")
    return _unique_ids(images)


def load_shapes(count: int, size: int, seed: int = 0) -> list[InputImage]:
    """Simple Shapes images (valid ones: one shape at most per column) as RGB inputs."""
    from .datasets.shapes import shapes_images

    pixels, ids = shapes_images(count, size, seed)
    return [
        InputImage(id=i, category="shapes", pixels=p.float().cpu(), source=f"shapes(seed={seed})",
                   notes=["greyscale -> RGB"])
        for i, p in zip(ids, pixels)
    ]
