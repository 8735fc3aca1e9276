"""Inpainting models: the plug-in interface, the registry and the built-in backends.

Where a model plugs in: subclass :class:`Inpainter` (see :mod:`ripbench.models.base`)
and register it (see :mod:`ripbench.models.registry`).
"""

from typing import Any

from ..references import model_factory
from .registry import (
    ENTRY_POINT_GROUP,
    available_inpainters,
    create_inpainter,
    register_inpainter,
    resolve_factory,
)

# Built-in backends, imported lazily by name so that heavy dependencies load on use.
register_inpainter(
    "biharmonic", "ripbench.models.classical:Biharmonic",
    description="scikit-image biharmonic inpainting (deterministic classical baseline)",
)
register_inpainter(
    "telea", "ripbench.models.classical:Telea",
    description="OpenCV Telea fast-marching inpainting (needs the 'opencv' extra)",
)
register_inpainter(
    "navier-stokes", "ripbench.models.classical:NavierStokes",
    description="OpenCV Navier-Stokes inpainting (needs the 'opencv' extra)",
)
register_inpainter(
    "diffusers", "ripbench.models.diffusers_backend:DiffusersInpainter",
    description="any diffusers inpainting pipeline (Hub id or local folder): SD 1.5/2, SDXL, Kandinsky, ...",
)
register_inpainter(
    "vae-roundtrip", "ripbench.models.vae_roundtrip:VAERoundTrip",
    description="control: the VAE of a diffusers pipeline (or an AutoencoderKL) encodes and decodes the whole "
                "image, no denoiser, mask ignored",
)
register_inpainter(
    "shapes-ddpm", "ripbench.models.pixel_ddpm:shapes_ddpm",
    description="Simple Shapes DDPM bundled with ripbench (64x64 greyscale, pixel-space replacement/RePaint)",
)
register_inpainter(
    "pixel-ddpm", "ripbench.models.pixel_ddpm:PixelDDPMInpainter",
    description="any unconditional diffusers UNet2DModel (folder or Hub id), pixel-space replacement/RePaint",
)

#: The plug-in interface (:mod:`ripbench.models.base`, which imports torch), imported on first use
#: so that the registry (names, references, descriptions) can be read without torch.
_BASE_NAMES = ("DEVICE_OPTION", "DeviceLabels", "Inpainter", "InpaintResult", "ModelOption")


def __getattr__(name: str) -> Any:
    if name in _BASE_NAMES:
        from . import base

        value = getattr(base, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ripbench.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_BASE_NAMES})


__all__ = [
    "DEVICE_OPTION",
    "DeviceLabels",
    "ENTRY_POINT_GROUP",
    "ModelOption",
    "InpaintResult",
    "Inpainter",
    "available_inpainters",
    "create_inpainter",
    "model_factory",
    "register_inpainter",
    "resolve_factory",
]
