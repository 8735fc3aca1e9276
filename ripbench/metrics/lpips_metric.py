"""LPIPS (v0.1 linear heads from the ``lpips`` package) with genuine, locally supplied backbone weights.

The ``lpips`` wheel ships only the small linear heads; the ImageNet backbone normally
comes from a torchvision download, which fails offline. Here the model is always built
with ``pnet_rand=True`` (no download) and the backbone weights are then loaded with a
strict key and shape check, so LPIPS is **never** computed with a random backbone.

Where the backbone weights come from, first match wins:

1. the ``weights`` argument (config field ``metrics.lpips_weights`` / CLI ``--lpips-weights``),
2. the environment variable ``RIPBENCH_LPIPS_WEIGHTS``,
3. torchvision's pretrained weights (``$TORCH_HOME/hub/checkpoints``, downloading if possible).

A weights path is either a file holding the ``state_dict`` of torchvision's
``alexnet().features`` / ``squeezenet1_1().features`` / ``vgg16().features`` (a full
torchvision checkpoint with ``features.*`` keys is accepted too), or a folder that holds
``alexnet_features.pth`` / ``squeezenet1_1_features.pth`` / ``vgg16_features.pth``. A
path that does not exist or a file that does not fit the network is an error; a folder
that lacks the file for the requested network is skipped and the next source is tried.

Built models are cached per (net, weights file, device).

Example
-------
>>> metric = load_lpips("alex", weights="path/to/lpips-weights")  # doctest: +SKIP
>>> whole, spatial = metric.distances(a, b)  # doctest: +SKIP
>>> metric.provenance["weights_sha256"]  # doctest: +SKIP
'd6f747d1db300e743dbb5ae026b6370e1133379cdccf66231c91d0cef8c28eea'
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import lpips
import torch
import torch.nn.functional as F

from ripbench.errors import InputError, WeightsError
from ripbench.io import sha256_file

# the spec and its facts are declared without torch, in ripbench.metrics.catalog
from ripbench.metrics.catalog import LPIPS_MIN_SIZE, _check_net
from ripbench.metrics.catalog import LPIPS_NETS as LPIPS_NETS
from ripbench.metrics.catalog import LPIPS_SPEC as LPIPS_SPEC
from ripbench.metrics.regions import binary_mask, check_images, masked_mean
from ripbench.metrics.spec import Metric, MetricOutput

LPIPS_VERSION = "0.1"
WEIGHTS_ENV_VAR = "RIPBENCH_LPIPS_WEIGHTS"

#: File name looked up inside a weights folder, per network.
FEATURE_FILES: dict[str, str] = {
    "alex": "alexnet_features.pth",
    "squeeze": "squeezenet1_1_features.pth",
    "vgg": "vgg16_features.pth",
}
#: torchvision architecture and weights enum behind each network.
_TORCHVISION: dict[str, tuple[str, str]] = {
    "alex": ("alexnet", "AlexNet_Weights"),
    "squeeze": ("squeezenet1_1", "SqueezeNet1_1_Weights"),
    "vgg": ("vgg16", "VGG16_Weights"),
}


@dataclass(frozen=True)
class WeightsSource:
    """Where a network's backbone weights will come from.

    Attributes:
        path: the local ``.pth`` file, or ``None`` for torchvision's pretrained weights.
        origin: human-readable origin ("argument", "$RIPBENCH_LPIPS_WEIGHTS", "torchvision").
        skipped: notes about configured folders that lacked this network's file.
    """

    path: Path | None
    origin: str
    skipped: tuple[str, ...] = ()


def _torchvision_weights(net: str) -> Any:
    import torchvision.models as tvm

    return getattr(tvm, _TORCHVISION[net][1]).IMAGENET1K_V1


def _torchvision_checkpoint_path(net: str) -> Path:
    """Where torchvision caches (and looks for) the pretrained checkpoint of ``net``."""
    name = os.path.basename(urlparse(_torchvision_weights(net).url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def how_to_supply_weights(net: str) -> str:
    """The sentence every :class:`WeightsError` ends with: the ways to supply backbone weights."""
    return (
        f"Supply genuine LPIPS '{net}' backbone weights in one of these ways: set the config field "
        f"metrics.lpips_weights or pass the CLI flag --lpips-weights PATH, or set the environment variable "
        f"{WEIGHTS_ENV_VAR}=PATH, where PATH is a torchvision {_TORCHVISION[net][0]}().features state_dict "
        f"file or a folder containing {FEATURE_FILES[net]}; or place torchvision's checkpoint "
        f"{_torchvision_checkpoint_path(net).name} in $TORCH_HOME/hub/checkpoints "
        f"(here: {_torchvision_checkpoint_path(net).parent})."
    )


def resolve_weights(net: str = "alex", weights: str | os.PathLike[str] | None = None) -> WeightsSource:
    """Decide where the backbone weights of ``net`` come from (argument, env var, torchvision).

    Raises:
        ConfigError: ``net`` is not one of :data:`LPIPS_NETS`.
        WeightsError: a configured path does not exist.
    """
    _check_net(net)
    skipped: list[str] = []
    env_value = os.environ.get(WEIGHTS_ENV_VAR) or None
    for origin, value in (("argument", weights), (f"${WEIGHTS_ENV_VAR}", env_value)):
        if value is None or str(value) == "":
            continue
        path = Path(value).expanduser()
        if path.is_dir():
            candidate = path / FEATURE_FILES[net]
            if candidate.is_file():
                return WeightsSource(candidate.resolve(), origin, tuple(skipped))
            skipped.append(f"folder {path} (from {origin}) has no {FEATURE_FILES[net]}")
        elif path.is_file():
            return WeightsSource(path.resolve(), origin, tuple(skipped))
        else:
            raise WeightsError(
                f"LPIPS weights path {path} (from {origin}) does not exist. " + how_to_supply_weights(net)
            )
    return WeightsSource(None, "torchvision", tuple(skipped))


def _read_state_dict(path: Path, net: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable/corrupt file is a user problem
        raise WeightsError(
            f"cannot read LPIPS weights file {path}: {exc}. " + how_to_supply_weights(net)
        ) from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(
            f"LPIPS weights file {path} does not hold a plain state_dict of tensors. "
            + how_to_supply_weights(net)
        )
    return dict(state)


def _features_only(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep a features-only dict as is; reduce a full torchvision checkpoint to its ``features.*`` part."""
    if any(key.startswith("features.") for key in state):
        return {key[len("features.") :]: value for key, value in state.items() if key.startswith("features.")}
    return dict(state)


def _load_backbone(model: lpips.LPIPS, features: Mapping[str, torch.Tensor], net: str, where: str) -> None:
    """Load torchvision ``features`` weights into the LPIPS backbone slices, checking every key and shape.

    The LPIPS backbone splits torchvision's ``features`` into ``slice<k>`` submodules that keep
    the original indices as names, so features key ``i.<param>`` becomes ``slice<k>.i.<param>``.
    """
    slice_of = {index: name for name, block in model.net.named_children() for index in block._modules}
    mapped: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, value in features.items():
        index, _, rest = key.partition(".")
        if index in slice_of and rest:
            mapped[f"{slice_of[index]}.{key}"] = value
        else:
            unexpected.append(key)
    expected = model.net.state_dict()

    def features_key(key: str) -> str:  # "slice2.3.weight" -> "3.weight"
        return key.split(".", 1)[1]

    missing = sorted(features_key(k) for k in set(expected) - set(mapped))
    unexpected = sorted(unexpected + [features_key(k) for k in set(mapped) - set(expected)])
    wrong_shape = sorted(
        features_key(k) for k in set(mapped) & set(expected) if mapped[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong_shape:
        problems = [
            f"{len(keys)} {label} key(s), e.g. {', '.join(keys[:4])}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("wrongly shaped", wrong_shape),
            )
            if keys
        ]
        raise WeightsError(
            f"{where} does not hold the torchvision {_TORCHVISION[net][0]}().features weights that "
            f"LPIPS net '{net}' needs ({'; '.join(problems)}). " + how_to_supply_weights(net)
        )
    model.net.load_state_dict(mapped, strict=True)


def _torchvision_state_dict(net: str) -> dict[str, torch.Tensor]:
    """torchvision's pretrained checkpoint for ``net`` (from its cache, else downloaded)."""
    return _torchvision_weights(net).get_state_dict(progress=False, check_hash=True)


def _new_lpips(net: str) -> lpips.LPIPS:
    with warnings.catch_warnings():  # lpips 0.1.4 still passes torchvision's deprecated `pretrained=`
        warnings.filterwarnings("ignore", message=".*(pretrained|weights).*", category=UserWarning)
        return lpips.LPIPS(net=net, version=LPIPS_VERSION, pnet_rand=True, verbose=False)


class LpipsMetric:
    """An LPIPS model with genuine backbone weights, on one device, plus its provenance.

    Build it with :func:`load_lpips` (cached). ``distances`` returns the whole-image distance
    (exactly ``lpips.LPIPS.forward``) and the spatial map (``spatial=True``) from one backbone pass.
    """

    def __init__(self, model: lpips.LPIPS, provenance: dict[str, Any]) -> None:
        self.model = model
        self.provenance = provenance
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def distances(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LPIPS between ``a`` and ``b`` (``B x 3 x H x W`` in ``[0, 1]``, on this metric's device).

        Returns:
            ``(whole, spatial)``: ``B`` whole-image distances and the ``B x 1 x H x W`` map
            (per-layer maps upsampled bilinearly to the input size and summed).
        """
        check_images(a, b)
        return self.distances_from_features(self.features(a), self.features(b), a.shape[2:])

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised backbone features of ``images`` (``B x 3 x H x W`` in ``[0, 1]``).

        Computing them once per image lets a recursive loop compare a new image with both
        the original and the previous iteration from a single backbone pass.
        """
        if images.device != self.device:
            raise InputError(f"LPIPS model is on {self.device} but the images are on {images.device}")
        x = self.model.scaling_layer(2 * images.to(torch.float32) - 1)
        return [lpips.normalize_tensor(f) for f in self.model.net(x)]

    @torch.inference_mode()
    def distances_from_features(
        self, fa: list[torch.Tensor], fb: list[torch.Tensor], size: tuple[int, int] | torch.Size
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`distances` from precomputed :meth:`features` (``size``: the images' H, W)."""
        batch = fa[0].shape[0]
        whole = torch.zeros(batch, device=fa[0].device)
        by_size: dict[tuple[int, ...], torch.Tensor] = {}  # layers of one resolution are upsampled together
        for lin, fx, fy in zip(self.model.lins, fa, fb):
            layer = lin.model((fx - fy).square_())
            whole += layer.mean(dim=(1, 2, 3))
            key = tuple(layer.shape[2:])
            by_size[key] = layer if key not in by_size else by_size[key].add_(layer)
        spatial = torch.zeros(batch, 1, *size, device=fa[0].device)
        for layer in by_size.values():  # bilinear upsampling is linear: up(a) + up(b) = up(a + b)
            spatial += F.interpolate(layer, size=tuple(size), mode="bilinear", align_corners=False)
        return whole, spatial


_CACHE: dict[tuple[str, str, str], LpipsMetric] = {}
_CACHE_LOCK = threading.Lock()


def _backbone_state(net: str, source: WeightsSource) -> tuple[dict[str, torch.Tensor], str, dict[str, Any]]:
    """Read the backbone ``features`` weights: ``(state_dict, description, provenance fields)``."""
    if source.path is not None:
        return (
            _features_only(_read_state_dict(source.path, net)),
            f"LPIPS weights file {source.path}",
            {
                "weights_source": str(source.path),
                "weights_origin": source.origin,
                "weights_sha256": sha256_file(source.path),
            },
        )
    try:
        state = _torchvision_state_dict(net)
    except Exception as exc:  # offline, blocked, corrupt download: all mean "no weights"
        tried = "; ".join([*source.skipped, f"torchvision download failed ({type(exc).__name__}: {exc})"])
        raise WeightsError(
            f"no LPIPS '{net}' backbone weights available ({tried}). " + how_to_supply_weights(net)
        ) from exc
    checkpoint = _torchvision_checkpoint_path(net)
    return (
        _features_only(state),
        f"torchvision checkpoint {checkpoint}",
        {
            "weights_source": "torchvision",
            "weights_origin": f"torchvision {_torchvision_weights(net)} ({checkpoint})",
            "weights_sha256": sha256_file(checkpoint) if checkpoint.is_file() else None,
        },
    )


def _build(net: str, source: WeightsSource, device: torch.device) -> LpipsMetric:
    """Read the weights (failing early if there are none), then build, fill and place the LPIPS model."""
    state, where, weights_record = _backbone_state(net, source)
    model = _new_lpips(net)
    _load_backbone(model, state, net, where)
    heads = Path(lpips.__file__).parent / "weights" / f"v{LPIPS_VERSION}" / f"{net}.pth"
    provenance: dict[str, Any] = {
        "net": net,
        "version": LPIPS_VERSION,
        "lpips_package": importlib.metadata.version("lpips"),
        "heads_sha256": sha256_file(heads),
        **weights_record,
    }
    model.requires_grad_(False)
    return LpipsMetric(model.eval().to(device), provenance)


def load_lpips(
    net: str = "alex",
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> LpipsMetric:
    """Build (or fetch from the cache) an LPIPS v0.1 metric with genuine backbone weights.

    Args:
        net: ``"alex"`` (default), ``"vgg"`` or ``"squeeze"``.
        weights: features ``state_dict`` file or folder of them; ``None`` uses
            ``$RIPBENCH_LPIPS_WEIGHTS``, then torchvision's pretrained weights.
        device: where the model lives; inputs must be on the same device.

    Raises:
        ConfigError: unknown ``net``.
        WeightsError: no genuine weights can be had, or the file does not fit ``net``.

    Example:
        >>> metric = load_lpips("squeeze", "path/to/lpips-weights")  # doctest: +SKIP
    """
    source = resolve_weights(net, weights)
    device = torch.device(device)
    weights_file = source.path if source.path is not None else _torchvision_checkpoint_path(net)
    key = (net, str(weights_file), str(device))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(net, source, device)
        return _CACHE[key]


def clear_lpips_cache() -> None:
    """Forget every cached LPIPS model (frees memory; the next :func:`load_lpips` rebuilds)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def lpips_provenance(
    net: str = "alex", weights: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Manifest record of the LPIPS metric: net, version, weights source and sha256, package versions."""
    return dict(load_lpips(net, weights, device).provenance)


def lpips_distance(
    a: torch.Tensor,
    b: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    net: str = "alex",
    weights: str | os.PathLike[str] | None = None,
) -> torch.Tensor:
    """LPIPS v0.1 distance per batch item, whole image or averaged inside ``mask``.

    Args:
        a, b: ``B x 3 x H x W`` images in ``[0, 1]`` (converted to ``[-1, 1]`` internally).
        mask: optional ``B x 1 x H x W`` {0, 1} region; the spatial LPIPS map is averaged there
            (NaN if the region is empty).
        net, weights: see :func:`load_lpips`; the model is placed on ``a``'s device.

    Returns:
        ``B`` float32 tensor on ``a``'s device.
    """
    check_images(a, b, mask)
    whole, spatial = load_lpips(net, weights, a.device).distances(a, b)
    return whole if mask is None else masked_mean(spatial, binary_mask(mask))


class LPIPS(Metric):
    """LPIPS as a :class:`~ripbench.metrics.spec.Metric`: backbone features prepared once per image.

    A recursive loop computes the features of each new image once and compares them with the
    cached features of the original and of the previous image: one backbone pass per step.
    """

    def __init__(self, device: torch.device, net: str = "alex", weights: str | os.PathLike[str] | None = None) -> None:
        self.model = load_lpips(net, weights, device)
        self.device = self.model.device
        self._size: tuple[int, int] | None = None

    def prepare(self, images: torch.Tensor) -> list[torch.Tensor]:
        size = (int(images.shape[2]), int(images.shape[3]))
        if min(size) < LPIPS_MIN_SIZE[self.model.provenance["net"]]:
            raise InputError(f"images of {size[0]} x {size[1]} px are too small for LPIPS-"
                             f"{self.model.provenance['net']}")
        self._size = size
        return self.model.features(images)

    def compare(self, a: list[torch.Tensor], b: list[torch.Tensor]) -> MetricOutput:
        assert self._size is not None, "prepare() the images first"
        return self.model.distances_from_features(a, b, self._size)

    def provenance(self) -> dict[str, Any]:
        return dict(self.model.provenance)

