"""Classical (non-learned) inpainting baselines: deterministic, CPU-only, no weights.

* ``biharmonic``: :func:`skimage.restoration.inpaint_biharmonic`.
* ``telea`` / ``navier-stokes``: :func:`cv2.inpaint` (needs ``pip install ripbench[opencv]``).

They ignore seeds (their output is a deterministic function of image and mask) and
never return a trajectory. They work on 8-bit-free float images on the CPU; results
are moved back to the caller's device. The unmasked region is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ModelNotFoundError
from .base import Inpainter, InpaintResult, ModelOption


class _PerImageInpainter(Inpainter):
    """Shared plumbing: run a numpy HxWx3 inpainting function on every batch item."""

    space = "pixel"  # no VAE: pixels outside the mask are returned as they came

    def _inpaint_one(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inpaint(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        seeds: Sequence[int],
        *,
        x0_band: tuple[float, float] | None = None,  # never passed: a classical model has no x0 trajectory
    ) -> InpaintResult:
        device = images.device
        imgs = images.detach().permute(0, 2, 3, 1).float().cpu().numpy()
        msk = masks.detach()[:, 0].cpu().numpy() > 0.5
        out = np.empty_like(imgs)
        for i in range(imgs.shape[0]):
            if msk[i].any():
                filled = np.clip(self._inpaint_one(imgs[i], msk[i]), 0.0, 1.0)
                out[i] = np.where(msk[i][..., None], filled, imgs[i])
            else:
                out[i] = imgs[i]
        result = torch.from_numpy(out).permute(0, 3, 1, 2).to(device=device, dtype=images.dtype)
        return InpaintResult(images=result)


class Biharmonic(_PerImageInpainter):
    """scikit-image biharmonic inpainting (deterministic classical baseline)."""

    name = "biharmonic"
    option_specs = (
        ModelOption("split_into_regions", True, "solve each connected masked region separately (faster)"),
    )

    def __init__(self, split_into_regions: bool = True) -> None:
        self.split_into_regions = split_into_regions

    def _inpaint_one(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from skimage.restoration import inpaint_biharmonic

        return inpaint_biharmonic(
            image, mask, channel_axis=-1, split_into_regions=self.split_into_regions
        )

    def identity(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            **super().identity(),
            "split_into_regions": self.split_into_regions,
            "scikit-image": version("scikit-image"),
        }


class _OpenCVInpainter(_PerImageInpainter):
    _flag_name = ""
    option_specs = (ModelOption("radius", 3.0, "neighbourhood radius in pixels considered around each pixel"),)

    def __init__(self, radius: float = 3.0) -> None:
        try:
            import cv2
        except ImportError:
            raise ModelNotFoundError(
                f"model {self.name!r} needs OpenCV: pip install 'ripbench[opencv]' "
                "(or opencv-python-headless)"
            ) from None
        self._cv2 = cv2
        self.radius = float(radius)

    def _inpaint_one(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        # cv2.inpaint wants 8-bit input; quantising only touches the pixels it fills
        # because the caller pastes the original back outside the mask.
        img8 = np.round(image * 255.0).astype(np.uint8)
        out8 = cv2.inpaint(img8, mask.astype(np.uint8), self.radius, getattr(cv2, self._flag_name))
        return out8.astype(np.float32) / 255.0

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "radius": self.radius, "opencv": self._cv2.__version__}


class Telea(_OpenCVInpainter):
    """OpenCV Telea fast-marching inpainting."""

    name = "telea"
    _flag_name = "INPAINT_TELEA"


class NavierStokes(_OpenCVInpainter):
    """OpenCV Navier-Stokes inpainting."""

    name = "navier-stokes"
    _flag_name = "INPAINT_NS"
