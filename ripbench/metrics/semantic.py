"""Semantic similarity: cosine distance between image embeddings of a DINOv2 or CLIP backbone.

A checkpoint comes from the Hugging Face Hub (an id such as ``facebook/dinov2-small``) or a
local folder (one written by ``save_pretrained``, or a downloaded snapshot); it is loaded with
transformers, which is imported only here, when a metric is built. Offline, a Hub id is looked
up in the local HF cache only (option ``local_files_only`` or ``HF_HUB_OFFLINE=1``). A
checkpoint that lacks weights, or whose weights do not cover the model, is refused with one
line saying how to supply them: a real run never computes with random weights.

Preprocessing is the checkpoint's own (its ``preprocessor_config.json``: resize of the shortest
edge, centre crop, mean / std normalisation), done on the device on the whole batch with torch
ops (no PIL, no 8-bit rounding): :class:`Preprocess`.

The embedding of an image is

* DINOv2: the CLS token after the final layer norm (``pooler_output``; the feature FD-DINOv2 uses);
* CLIP: the projected image embedding (``image_embeds`` of ``CLIPVisionModelWithProjection``).

:meth:`SemanticMetric.prepare` returns the raw embeddings (one row per image); they are what the
run stores for the population metrics (:mod:`ripbench.population`), and the per-image value is
``1 - cos(a, b)``.

Example
-------
>>> metric = DINOV2_SPEC.build("cpu", model="path/to/dinov2-small")  # doctest: +SKIP
>>> whole, _ = metric.compare(metric.prepare(a), metric.prepare(b))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ripbench.errors import InputError, WeightsError
from ripbench.io import sha256_file
from ripbench.metrics.catalog import CLIP_SPEC as CLIP_SPEC
from ripbench.metrics.catalog import DINOV2_SPEC as DINOV2_SPEC
from ripbench.metrics.spec import Metric, MetricOutput

__all__ = ["Backbone", "ClipMetric", "DinoV2Metric", "Preprocess", "SemanticMetric", "clear_backbone_cache",
           "load_backbone", "save_random_checkpoint"]

#: What each backbone kind is: model types transformers gives its config, the class to load, the output.
KINDS: dict[str, dict[str, Any]] = {
    "dinov2": {"label": "DINOv2", "types": ("dinov2", "dinov2_with_registers"), "cls": "AutoModel",
               "output": "pooler_output"},
    "clip": {"label": "CLIP", "types": ("clip", "clip_vision_model"), "cls": "CLIPVisionModelWithProjection",
             "output": "image_embeds"},
}
#: Files of a checkpoint that hold weights (safetensors preferred, like transformers).
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
#: PIL resampling codes of a processor config -> the torch mode used here (antialiased when downsampling).
_RESAMPLE = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic", 4: "bilinear", 5: "bicubic"}


def how_to_supply(kind: str, model: str) -> str:
    """The sentence every semantic :class:`WeightsError` ends with (a path given as ``model`` is no Hub id to
    download: the example then names the default checkpoint)."""
    from ripbench.metrics.catalog import CLIP_DEFAULT_MODEL, DINOV2_DEFAULT_MODEL
    from ripbench.models.registry import HUB_ID

    if not HUB_ID.fullmatch(model):
        model = DINOV2_DEFAULT_MODEL if kind == "dinov2" else CLIP_DEFAULT_MODEL
    return (f"Supply the {KINDS[kind]['label']} checkpoint with --set metrics.options.{kind}.model=PATH, where PATH "
            "is a folder holding config.json, preprocessor_config.json and the weights (e.g. from `hf download "
            f"{model} --local-dir PATH` on a machine with internet, or model.save_pretrained(PATH)), or give a Hub "
            "id with the Hub reachable or the checkpoint in the local HF cache.")


@dataclass(frozen=True)
class Preprocess:
    """A checkpoint's image preprocessing as batched torch ops (from its ``preprocessor_config.json``).

    Attributes:
        shortest_edge: resize so the shorter side is this long (aspect kept), or ``None``.
        resize: resize to this ``(height, width)`` instead, or ``None``.
        crop: centre crop ``(height, width)``, or ``None``.
        mean, std: per-channel normalisation (``None``: none).
        mode: interpolation (``bicubic`` / ``bilinear`` / ``nearest``), antialiased when shrinking.
    """

    shortest_edge: int | None
    resize: tuple[int, int] | None
    crop: tuple[int, int] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    mode: str = "bicubic"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Preprocess:
        """From the fields of a transformers image processor config (CLIP, BiT / DINOv2 and alike)."""
        def hw(value: Any) -> tuple[int, int]:
            if isinstance(value, int):
                return value, value
            return int(value["height"]), int(value["width"])

        shortest, resize = None, None
        size = config.get("size")
        if config.get("do_resize", True) and size is not None:
            if isinstance(size, dict) and "shortest_edge" in size:
                shortest = int(size["shortest_edge"])
            elif isinstance(size, int) and not config.get("default_to_square", False):
                shortest = size
            else:
                resize = hw(size)
        crop = hw(config["crop_size"]) if config.get("do_center_crop") and config.get("crop_size") else None
        normalise = config.get("do_normalize", True) and config.get("image_mean") is not None
        return cls(shortest, resize, crop,
                   tuple(float(v) for v in config["image_mean"]) if normalise else None,
                   tuple(float(v) for v in config["image_std"]) if normalise else None,
                   _RESAMPLE.get(int(config.get("resample", 3)), "bicubic"))

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The resized size of a ``height x width`` image (as transformers' ``get_resize_output_image_size``)."""
        if self.resize is not None:
            return self.resize
        if self.shortest_edge is None:
            return height, width
        short, long = min(height, width), max(height, width)
        new_long = int(self.shortest_edge * long / short)
        return (self.shortest_edge, new_long) if height <= width else (new_long, self.shortest_edge)

    def normalisers(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(mean, std)`` as ``1 x C x 1 x 1`` tensors on ``device`` (built once and passed to each call: a
        host-to-device copy per batch would make the loop wait for the device)."""
        if self.mean is None or self.std is None:
            return None
        return (torch.tensor(self.mean, device=device).view(1, -1, 1, 1),
                torch.tensor(self.std, device=device).view(1, -1, 1, 1))

    def __call__(self, images: torch.Tensor,
                 normalisers: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``B x 3 x H x W`` in ``[0, 1]`` -> the model's ``pixel_values`` (float32, same device).

        ``normalisers``: :meth:`normalisers` for the images' device (built here when not given).
        """
        x = images.to(torch.float32)
        size = self.output_size(int(x.shape[2]), int(x.shape[3]))
        if size != tuple(x.shape[2:]):
            kwargs: dict[str, Any] = {} if self.mode == "nearest" else {"align_corners": False, "antialias": True}
            x = F.interpolate(x, size=size, mode=self.mode, **kwargs).clamp_(0.0, 1.0)  # PIL clips to the range
        if self.crop is not None:
            ch, cw = self.crop
            h, w = x.shape[2:]
            if ch > h or cw > w:  # transformers pads with zeros; a resize that leaves less than the crop is rare
                x = F.pad(x, (max(0, (cw - w) // 2), max(0, cw - w - (cw - w) // 2),
                              max(0, (ch - h) // 2), max(0, ch - h - (ch - h) // 2)))
                h, w = x.shape[2:]
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[:, :, top : top + ch, left : left + cw]
        stats = normalisers if normalisers is not None else self.normalisers(x.device)
        if stats is not None:
            x = (x - stats[0]) / stats[1]
        return x.contiguous()


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or Path(model).expanduser().exists()


def _resolve_folder(kind: str, model: str, revision: str | None, local_files_only: bool) -> tuple[Path, str | None]:
    """``(folder holding the checkpoint, Hub commit or None for a local folder)``."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path, None
    if _looks_like_path(model):
        raise WeightsError(f"{KINDS[kind]['label']} checkpoint folder not found: {model}. " + how_to_supply(kind, model))
    from huggingface_hub import snapshot_download

    from ..hub import use_cache_only

    offline, _ = use_cache_only(local_files_only, is_local=False)  # HF_HUB_OFFLINE or no network: the cache only
    try:
        folder = Path(snapshot_download(model, revision=revision, local_files_only=offline,
                                        allow_patterns=["*.json", "*.safetensors"]))
        if not any(folder.glob("*.safetensors")):  # an older checkpoint with PyTorch .bin weights only
            folder = Path(snapshot_download(model, revision=revision, local_files_only=offline,
                                            allow_patterns=["*.json", "*.bin"]))
    except Exception as exc:  # offline, unknown id, gated repository: all mean "no weights here"
        where = "in the local HF cache (offline)" if offline else "on the Hub"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"no {KINDS[kind]['label']} checkpoint {model!r}{f' @ {revision}' if revision else ''} "
                           f"{where} ({type(exc).__name__}: {first}). " + how_to_supply(kind, model)) from None
    return folder, folder.name


_HASHES: dict[tuple[str, int, int], str] = {}


def weights_sha256(folder: Path, what: str = "checkpoint") -> tuple[str, list[str]]:
    """``(sha256, file names)`` of a checkpoint's weight files (one file: its own digest; several: the digest
    of their ``name digest`` lines). Digests are cached per (path, size, mtime)."""
    files = []
    for pattern in WEIGHT_PATTERNS:
        files = sorted(p for p in folder.glob(pattern) if p.is_file())
        if files:
            break
    if not files:
        raise WeightsError(f"no weights (*.safetensors, *.bin) in {folder}; {what}")
    digests = []
    for file in files:
        stat = file.stat()
        key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _HASHES:
            _HASHES[key] = sha256_file(file)
        digests.append(_HASHES[key])
    if len(files) == 1:
        return digests[0], [files[0].name]
    joined = "".join(f"{f.name} {d}\n" for f, d in zip(files, digests))
    return hashlib.sha256(joined.encode()).hexdigest(), [f.name for f in files]


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No progress bars or load warnings from transformers (the checks here say what matters)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


class Backbone:
    """A DINOv2 or CLIP vision model with genuine weights on one device, its preprocessing and provenance.

    Build it with :func:`load_backbone` (cached). :meth:`embed` maps a batch of images to one raw
    embedding per image.
    """

    def __init__(self, kind: str, model: torch.nn.Module, preprocess: Preprocess, provenance: dict[str, Any]) -> None:
        self.kind = kind
        self.model = model
        self.preprocess = preprocess
        self.provenance = provenance
        self.device = next(model.parameters()).device
        self.dim = int(provenance["embedding_dim"])
        self._normalisers = preprocess.normalisers(self.device)

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Raw embeddings (``B x D`` float32) of ``B x 3 x H x W`` images in ``[0, 1]`` on this device."""
        if images.device != self.device:
            raise InputError(f"{KINDS[self.kind]['label']} model is on {self.device} but the images are on "
                             f"{images.device}")
        out = self.model(pixel_values=self.preprocess(images, self._normalisers))
        return getattr(out, KINDS[self.kind]["output"]).to(torch.float32)


def _build(kind: str, model: str, revision: str | None, local_files_only: bool, device: torch.device) -> Backbone:
    label = KINDS[kind]["label"]
    folder, commit = _resolve_folder(kind, model, revision, local_files_only)
    config_file, processor_file = folder / "config.json", folder / "preprocessor_config.json"
    for needed in (config_file, processor_file):
        if not needed.is_file():
            raise WeightsError(f"{label} checkpoint {model!r} ({folder}) has no {needed.name}. "
                               + how_to_supply(kind, model))
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type not in KINDS[kind]["types"]:
        raise WeightsError(f"{model!r} is a {model_type!r} checkpoint, not a {label} one (expected model_type "
                           f"{' or '.join(KINDS[kind]['types'])}). " + how_to_supply(kind, model))
    digest, files = weights_sha256(folder, how_to_supply(kind, model))
    import transformers

    cls = getattr(transformers, KINDS[kind]["cls"])
    extra: dict[str, Any] = {}
    try:
        with _quiet_transformers():
            if model_type == "clip":  # a whole CLIP model (e.g. openai/clip-*): its vision tower and projection
                whole = transformers.CLIPConfig.from_pretrained(str(folder), local_files_only=True)
                extra["config"] = whole.vision_config
                extra["config"].projection_dim = whole.projection_dim  # kept on the whole model's config only
            net, info = cls.from_pretrained(str(folder), local_files_only=True, output_loading_info=True,
                                            dtype=torch.float32, **extra)
    except (OSError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot load the {label} weights of {model!r} from {folder} ({type(exc).__name__}: "
                           f"{first}). " + how_to_supply(kind, model)) from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:  # transformers would have filled them with random values: refused
        raise WeightsError(f"the {label} checkpoint {model!r} ({folder}) lacks {len(missing)} weight(s) of the model, "
                           f"e.g. {', '.join(missing[:3])}; it would run with random weights. "
                           + how_to_supply(kind, model))
    net.requires_grad_(False)
    net = net.eval().to(device)
    preprocess = Preprocess.from_config(json.loads(processor_file.read_text()))
    with torch.inference_mode():
        probe = preprocess(torch.zeros(1, 3, 8, 8, device=device))
        dim = int(getattr(net(pixel_values=probe), KINDS[kind]["output"]).shape[-1])
    provenance = {
        "model": model, "revision": commit if commit is not None else revision, "requested_revision": revision,
        "weights_source": str(folder), "weights_files": files, "weights_sha256": digest,
        "model_type": model_type, "architecture": type(net).__name__, "embedding": KINDS[kind]["output"],
        "embedding_dim": dim, "transformers": transformers.__version__,
        "preprocess": {"shortest_edge": preprocess.shortest_edge, "resize": preprocess.resize,
                       "crop": preprocess.crop, "mean": preprocess.mean, "std": preprocess.std,
                       "mode": preprocess.mode, "where": "on the device, batched (torch), no 8-bit rounding"},
    }
    return Backbone(kind, net, preprocess, provenance)


_CACHE: dict[tuple[str, str, str | None, bool, str], Backbone] = {}
_CACHE_LOCK = threading.Lock()


def load_backbone(kind: str, model: str, revision: str | None = None, local_files_only: bool = False,
                  device: str | torch.device = "cpu") -> Backbone:
    """Build (or fetch from the cache) a ``"dinov2"`` or ``"clip"`` backbone with genuine weights.

    Raises:
        WeightsError: no checkpoint can be had, it is not of this kind, or its weights do not cover the model.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown backbone kind {kind!r}; allowed: {', '.join(KINDS)}")
    device = torch.device(device)
    key = (kind, str(model), revision, bool(local_files_only), str(device))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(kind, str(model), revision, bool(local_files_only), device)
        return _CACHE[key]


def clear_backbone_cache() -> None:
    """Forget every cached backbone (frees memory; the next :func:`load_backbone` rebuilds)."""
    with _CACHE_LOCK:
        _CACHE.clear()


class SemanticMetric(Metric):
    """``1 - cos`` between image embeddings; :meth:`prepare` computes each image's embedding once.

    Whole image only (its spec has no regions). The prepared embeddings are the image's
    :meth:`features`: the run stores them for FD / KID / CMMD.
    """

    kind = "dinov2"

    def __init__(self, device: torch.device, model: str, revision: str | None = None,
                 local_files_only: bool = False) -> None:
        self.backbone = load_backbone(self.kind, model, revision, local_files_only, device)
        self.device = self.backbone.device

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.embed(images)

    def compare(self, a: torch.Tensor, b: torch.Tensor) -> MetricOutput:
        cos = F.cosine_similarity(a.to(torch.float64), b.to(torch.float64), dim=1, eps=1e-12)
        distance = (1.0 - cos).clamp_(0.0, 2.0)
        # an image vs itself: exactly the identity, not a rounding error (torch.where: no device sync)
        distance = torch.where((a == b).all(dim=1), torch.zeros_like(distance), distance)
        return distance.to(torch.float32), None

    def features(self, prepared: Any) -> torch.Tensor:
        return prepared

    def provenance(self) -> dict[str, Any]:
        return dict(self.backbone.provenance)


class DinoV2Metric(SemanticMetric):
    """DINOv2 embedding distance (spec :data:`~ripbench.metrics.catalog.DINOV2_SPEC`)."""

    kind = "dinov2"


class ClipMetric(SemanticMetric):
    """CLIP image-embedding distance (spec :data:`~ripbench.metrics.catalog.CLIP_SPEC`)."""

    kind = "clip"


#: Architectures of :func:`save_random_checkpoint`: ``tiny`` for tests, ``full`` the real default sizes.
_SHAPES: dict[tuple[str, str], dict[str, Any]] = {
    ("dinov2", "tiny"): {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2,
                         "patch_size": 8, "image_size": 32},
    ("dinov2", "full"): {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4,
                         "patch_size": 14, "image_size": 518},  # facebook/dinov2-small
    ("clip", "tiny"): {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8, "projection_dim": 16},
    ("clip", "full"): {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "image_size": 224, "patch_size": 32,
                       "projection_dim": 512},  # openai/clip-vit-base-patch32's vision tower
}
_PROCESSORS: dict[tuple[str, str], dict[str, Any]] = {
    ("dinov2", "tiny"): {"shortest_edge": 40, "crop": 32, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    ("dinov2", "full"): {"shortest_edge": 256, "crop": 224, "mean": [0.485, 0.456, 0.406],
                         "std": [0.229, 0.224, 0.225]},
    ("clip", "tiny"): {"shortest_edge": 32, "crop": 32, "mean": [0.48145466, 0.4578275, 0.40821073],
                       "std": [0.26862954, 0.26130258, 0.27577711]},
    ("clip", "full"): {"shortest_edge": 224, "crop": 224, "mean": [0.48145466, 0.4578275, 0.40821073],
                       "std": [0.26862954, 0.26130258, 0.27577711]},
}


def save_random_checkpoint(kind: str, folder: str | os.PathLike[str], size: str = "tiny", seed: int = 0) -> Path:
    """Save a **randomly initialised** DINOv2 or CLIP vision checkpoint (config, processor config, weights).

    For tests (``size="tiny"``) and cost benchmarks (``"full"``: the default checkpoints' architectures) only:
    it loads like a real checkpoint, but its embeddings mean nothing. Nothing is downloaded.
    """
    import transformers

    folder = Path(folder)
    torch.manual_seed(seed)
    shape = _SHAPES[(kind, size)]
    if kind == "dinov2":
        net: Any = transformers.Dinov2Model(transformers.Dinov2Config(**shape))
    else:
        net = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**shape))
    with _quiet_transformers():
        net.save_pretrained(str(folder))
    proc = _PROCESSORS[(kind, size)]
    processor = {"do_resize": True, "size": {"shortest_edge": proc["shortest_edge"]}, "resample": 3,
                 "do_center_crop": True, "crop_size": {"height": proc["crop"], "width": proc["crop"]},
                 "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": proc["mean"],
                 "image_std": proc["std"], "do_convert_rgb": True,
                 "image_processor_type": "BitImageProcessor" if kind == "dinov2" else "CLIPImageProcessor"}
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    return folder
