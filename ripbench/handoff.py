"""What the next iteration receives: the image hand-off between RIP iterations.

A recursive-inpainting study hands each output to the next iteration in some form. ripbench makes
that form a recorded choice of the experiment (``handoff`` in the config, in the manifest and in
the run's fingerprint), applied to every model's output in the batch, on the device:

========== ==========================================================================================
hand-off   what the next iteration (and the metrics) receive
========== ==========================================================================================
``float``  the model's output as it is (float32 in ``[0, 1]``): nothing is lost between iterations
``uint8``  the output rounded to 8 bits per channel: ``round(clamp(x, 0, 1) * 255) / 255`` (what a
           diffusers pipeline hands back by default: a PIL 8-bit image)
``png``    the output saved as a PNG and read back: PNG is lossless 8-bit, so exactly ``uint8``
``jpeg:Q`` the output saved as a JPEG of quality ``Q`` (1-100) and read back; batched through
           :func:`torchvision.io.encode_jpeg` / :func:`~torchvision.io.decode_jpeg`, on the GPU
           where torchvision supports it (nvJPEG), else on the CPU
========== ==========================================================================================

The hand-off is applied to the original (what iteration 1 receives) and to every output before
the metrics, so the drift measured is the drift of the image that exists between iterations, and
the hand-off alone never changes a pixel twice (rounding is idempotent; JPEG is not). No PIL and no per-item host round trip for ``uint8`` /
``png``; ``jpeg`` on a CPU device encodes each item (torchvision takes a list of images).

Example
-------
>>> import torch
>>> x = torch.tensor([[[[0.1004, 0.5, 1.2]]]]).expand(1, 3, 1, 3)
>>> (Handoff.parse("uint8").apply(x) * 255)[0, 0, 0].tolist()
[26.0, 128.0, 255.0]
>>> Handoff.parse("png").apply(x).equal(Handoff.parse("uint8").apply(x))
True
>>> Handoff.parse("jpeg:90").quality, Handoff.parse("float").lossless
(90, True)
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["HANDOFF_FORMS", "Handoff", "parse_handoff"]

#: The hand-off forms and what each means (``jpeg`` takes ``:<quality>``).
HANDOFF_FORMS: dict[str, str] = {
    "float": "the model's float output as it is (nothing lost between iterations)",
    "uint8": "rounded to 8 bits per channel (what a diffusers pipeline returns by default)",
    "png": "saved as PNG and read back (lossless 8-bit: the same as uint8)",
    "jpeg:Q": "saved as JPEG of quality Q (1-100) and read back",
}

_JPEG = re.compile(r"jpeg:(\d{1,3})")


@dataclass(frozen=True)
class Handoff:
    """A parsed hand-off: ``kind`` (``float``, ``uint8``, ``png`` or ``jpeg``) and the JPEG ``quality``."""

    kind: str
    quality: int | None = None

    @classmethod
    def parse(cls, text: str) -> Handoff:
        """``"float"``, ``"uint8"``, ``"png"`` or ``"jpeg:<1-100>"``; anything else is a :class:`ConfigError`."""
        text = str(text).strip().lower()
        if text in ("float", "uint8", "png"):
            return cls(text)
        match = _JPEG.fullmatch(text)
        if match and 1 <= int(match.group(1)) <= 100:
            return cls("jpeg", int(match.group(1)))
        raise ConfigError(f"unknown hand-off {text!r}; use float, uint8, png or jpeg:<quality 1-100> (e.g. jpeg:95)")

    def __str__(self) -> str:
        return f"jpeg:{self.quality}" if self.kind == "jpeg" else self.kind

    @property
    def lossless(self) -> bool:
        """Whether the next iteration receives the model's output unchanged (``float`` only)."""
        return self.kind == "float"

    def apply(self, images: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
        """``images`` (``B x 3 x H x W`` float in ``[0, 1]``) as the next iteration receives them, on their
        device and in their dtype. A new tensor unless the hand-off is ``float``, or ``inplace`` (the run
        loop, which owns the output, saves a copy this way)."""
        if self.kind == "float":
            return images
        if self.kind in ("uint8", "png"):
            return quantize_uint8(images, inplace=inplace)
        return jpeg_roundtrip(images, int(self.quality or 100))


def parse_handoff(text: str) -> Handoff:
    """Shorthand for :meth:`Handoff.parse`."""
    return Handoff.parse(text)


#: Elements per chunk of the CPU quantisation: three passes over a cache-sized chunk, not over the batch.
_CHUNK = 1 << 18


def quantize_uint8(images: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
    """``round(clamp(x, 0, 1) * 255) / 255`` in the images' dtype (round half to even, as torch rounds).

    On the CPU in cache-sized chunks (about twice as fast as whole-batch passes at 512 px).
    """
    out = images if inplace and images.is_contiguous() else images.contiguous().clone()
    chunks = out.view(-1).split(_CHUNK) if out.device.type == "cpu" else (out,)
    for chunk in chunks:
        chunk.clamp_(0.0, 1.0).mul_(255.0).round_().div_(255.0)
    return out


def _to_bytes(images: torch.Tensor) -> torch.Tensor:
    import torch

    return images.clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)


def jpeg_roundtrip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode each image as JPEG of ``quality`` and decode it again, batched through torchvision.

    On CUDA the encoder and decoder run on the device (nvJPEG) when torchvision supports it; on
    other devices, or when it does not, on the CPU (the result goes back to the images' device).
    torchvision >= 0.29 marks these codecs deprecated in favour of torchcodec; that warning is not
    repeated every iteration.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                                category=DeprecationWarning)
        return _jpeg_roundtrip(images, quality)


def _jpeg_roundtrip(images: torch.Tensor, quality: int) -> torch.Tensor:
    import torch
    from torchvision.io import decode_jpeg, encode_jpeg

    items = list(_to_bytes(images).contiguous().unbind(0))
    if images.device.type == "cuda":
        try:
            decoded = decode_jpeg(encode_jpeg(items, quality=quality), device=images.device)
            return torch.stack(list(decoded)).to(images.dtype).div_(255.0)
        except (RuntimeError, TypeError):  # torchvision built without nvJPEG: the CPU codec below
            pass
    decoded = decode_jpeg(encode_jpeg([t.cpu() for t in items], quality=quality))
    return torch.stack(list(decoded)).to(device=images.device, dtype=images.dtype).div_(255.0)
