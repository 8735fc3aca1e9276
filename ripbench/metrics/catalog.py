"""The built-in metrics' specs, as plain data: what they are, not how they are computed.

Declared here, without torch, so that validating a config, listing metrics and analysing a
results table (labels, directions, ranges) never import torch or the LPIPS package. Each
spec's ``compute`` is a ``"module:attr"`` reference, imported when the metric is built:

* ``lpips`` -> :class:`ripbench.metrics.lpips_metric.LPIPS`;
* ``ssim`` -> :class:`ripbench.metrics.ssim.SSIMMetric`;
* ``psnr``, ``mse`` -> :class:`ripbench.metrics.pixel.PSNRMetric`, :class:`~ripbench.metrics.pixel.MSEMetric`;
* ``dinov2``, ``clip`` -> :class:`ripbench.metrics.semantic.DinoV2Metric`, :class:`~ripbench.metrics.semantic.ClipMetric`
  (transformers backbones, imported when built).

The specs stay importable from those modules too (``from ripbench.metrics.ssim import SSIM_SPEC``).

>>> SSIM_SPEC.minimum_size(), LPIPS_SPEC.minimum_size(net="vgg"), PSNR_SPEC.identity
(11, 16, inf)
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

from ripbench.errors import ConfigError
from ripbench.metrics.spec import MetricSpec

__all__ = [
    "LPIPS_MIN_SIZE",
    "LPIPS_NETS",
    "LPIPS_SPEC",
    "LpipsNet",
    "MSE_SPEC",
    "PSNR_SPEC",
    "SSIM_RADIUS",
    "SSIM_SIGMA",
    "SSIM_SPEC",
    "SSIM_TRUNCATE",
    "SSIM_WIN_SIZE",
    "CLIP_DEFAULT_MODEL",
    "CLIP_SPEC",
    "DINOV2_DEFAULT_MODEL",
    "DINOV2_SPEC",
    "SEMANTIC_OPTIONS",
]

# --- LPIPS ----------------------------------------------------------------------------------------

#: An LPIPS backbone's name (the config schema's type for ``metrics.lpips_net``).
LpipsNet = Literal["alex", "vgg", "squeeze"]
#: The LPIPS backbones (the CLI's ``--lpips-net`` choices, the config's allowed values).
LPIPS_NETS: tuple[str, ...] = get_args(LpipsNet)
#: Smallest square image each backbone accepts (its pooling stack needs this much).
LPIPS_MIN_SIZE: dict[str, int] = {"alex": 31, "squeeze": 17, "vgg": 16}


def _check_net(net: str) -> None:
    if net not in LPIPS_NETS:
        raise ConfigError(f"unknown LPIPS net {net!r}; allowed: {', '.join(LPIPS_NETS)}")


def _lpips_min_size(net: str = "alex", weights: Any = None) -> int:
    _check_net(net)
    return LPIPS_MIN_SIZE[net]


#: How far (px) one changed pixel moves each LPIPS backbone's spatial map. alex and squeeze: measured
#: (one pixel of a 320 px image changed; the farthest map pixel that changes); vgg (no weights here to
#: measure with): its relu5_3 receptive field (196 px) halved plus one 16 px cell of upsampling, rounded
#: up like alex's (whose receptive field of 163 px gives 81 + 16 < 101 measured).
LPIPS_REACH: dict[str, int] = {"alex": 101, "squeeze": 118, "vgg": 120}


def _lpips_reach(net: str = "alex", weights: Any = None) -> int:
    _check_net(net)
    return LPIPS_REACH[net]


LPIPS_SPEC = MetricSpec(
    name="lpips", label="LPIPS", higher_is_better=False, range=(0.0, math.inf), identity=0.0,
    compute="ripbench.metrics.lpips_metric:LPIPS", min_size=_lpips_min_size,
    description="learned perceptual distance (LPIPS v0.1, Zhang et al. 2018; genuine backbone weights only)",
    options={"net": ("alex", "backbone: alex, vgg or squeeze"),
             "weights": (None, "backbone weights file or folder (default: $RIPBENCH_LPIPS_WEIGHTS, torchvision)")},
    region_note="spatial LPIPS map (each layer upsampled to the image, summed) averaged over the region's pixels",
    # The primary collapse rule. Measured on the 13 built-in sample photos at 128 and 256 px: two
    # *unrelated* photos are 0.77 apart on average (10th percentile 0.63-0.70); a 4x down/up-sampled
    # (heavily blurred but recognisable) copy is 0.41-0.45 from its original, Gaussian noise of std
    # 0.1 is 0.34-0.47, std 0.05 0.13-0.22. So 0.5 means "further from the original than a heavy blur,
    # two thirds of the way to an unrelated picture": the content has been replaced, not just degraded.
    collapse_threshold=0.5,
    reach=_lpips_reach,
)

# --- SSIM (scikit-image's settings; the computation is in ripbench.metrics.ssim) --------------------

#: Gaussian window's sigma.
SSIM_SIGMA = 1.5
#: The window is truncated at this many sigmas.
SSIM_TRUNCATE = 3.5
#: scipy.ndimage's kernel radius: 5.
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
#: 11, the window scikit-image crops by (and the smallest image side SSIM accepts).
SSIM_WIN_SIZE = 2 * SSIM_RADIUS + 1

SSIM_SPEC = MetricSpec(
    name="ssim", label="SSIM", higher_is_better=True, range=(-1.0, 1.0), identity=1.0,
    compute="ripbench.metrics.ssim:SSIMMetric", min_size=SSIM_WIN_SIZE,
    description="structural similarity (scikit-image settings: Gaussian window, sigma 1.5)",
    region_note="uncropped SSIM map (border included) averaged over the region's pixels",
    reach=SSIM_RADIUS,
    collapse_threshold=0.5,  # fallback without LPIPS: heavy blur 0.57, noise std 0.1 0.45, unrelated photos 0.10
)

# --- MSE and PSNR ---------------------------------------------------------------------------------

MSE_SPEC = MetricSpec(
    name="mse", label="MSE", higher_is_better=False, range=(0.0, 1.0), identity=0.0,
    compute="ripbench.metrics.pixel:MSEMetric",
    description="mean squared error over the pixels and RGB channels (data range 1)",
    region_note="mean squared error over the region's pixels",
    reach=0,
    collapse_threshold=0.03,  # the same as PSNR's 15 dB
)
PSNR_SPEC = MetricSpec(
    name="psnr", label="PSNR", higher_is_better=True, range=(0.0, math.inf), identity=math.inf,
    compute="ripbench.metrics.pixel:PSNRMetric",
    units="dB", description="peak signal-to-noise ratio, 10 log10(1 / MSE); +inf for identical pixels",
    region_note="PSNR of the region's mean squared error",
    collapse_threshold=15.0,  # heavy blur 22.9 dB, unrelated photos 9.2 dB
    # One 8-bit step (1/255) in one channel of one pixel of a 1024 x 1024 image is already ~113 dB,
    # so 100 dB marks "no visible difference" without letting one identical frame dominate a mean.
    inf_value=100.0,
    reach=0,
)

# --- semantic similarity (image embeddings of a transformers backbone; ripbench.metrics.semantic) ------

#: Default DINOv2 checkpoint (Oquab et al. 2023; FD-DINOv2 of Stein et al. 2023 uses the same family).
DINOV2_DEFAULT_MODEL = "facebook/dinov2-small"
#: Default CLIP checkpoint (Radford et al. 2021). CMMD's paper uses ViT-L/14@336; ViT-B/32 is the cheap default.
CLIP_DEFAULT_MODEL = "openai/clip-vit-base-patch32"


def _semantic_options(default: str) -> dict[str, tuple[Any, str]]:
    return {
        "model": (default, "Hugging Face Hub id or local folder (saved with save_pretrained / a downloaded snapshot)"),
        "revision": (None, "Hub revision (branch, tag or commit); default: the Hub's main"),
        "local_files_only": (False, "never contact the Hub (use the local folder or the HF cache only); "
                                    "also on when HF_HUB_OFFLINE=1"),
    }


#: The options both semantic metrics take (name -> (default, help)), with the DINOv2 default model.
SEMANTIC_OPTIONS = _semantic_options(DINOV2_DEFAULT_MODEL)

_SEMANTIC_NOTE = ("one embedding per image (the checkpoint's own resize / crop / normalisation, done on the device); "
                  "cosine distance between embeddings")

DINOV2_SPEC = MetricSpec(
    name="dinov2", label="DINOv2 distance", higher_is_better=False, range=(0.0, 2.0), identity=0.0,
    compute="ripbench.metrics.semantic:DinoV2Metric", regions=(),
    description=f"semantic distance: 1 - cosine similarity of DINOv2 image embeddings (CLS token after the final "
                f"layer norm; backbone {DINOV2_DEFAULT_MODEL} by default, any DINOv2 size selectable with option "
                "model); its features feed FD-DINOv2, KID and precision / recall per iteration",
    options=_semantic_options(DINOV2_DEFAULT_MODEL), region_note=_SEMANTIC_NOTE,
)
CLIP_SPEC = MetricSpec(
    name="clip", label="CLIP distance", higher_is_better=False, range=(0.0, 2.0), identity=0.0,
    compute="ripbench.metrics.semantic:ClipMetric", regions=(),
    description=f"semantic distance: 1 - cosine similarity of CLIP image embeddings (projected; backbone "
                f"{CLIP_DEFAULT_MODEL} by default, selectable with option model); its embeddings feed CMMD per "
                "iteration",
    options=_semantic_options(CLIP_DEFAULT_MODEL), region_note=_SEMANTIC_NOTE,
)
