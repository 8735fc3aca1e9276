"""What a run records about where it ran: versions, git commit, device, times.

Example
-------
>>> {'python', 'ripbench', 'torch'} <= set(versions())
True
>>> now().endswith("+00:00")
True
"""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .. import __version__

__all__ = ["device_info", "git_commit", "now", "versions"]

_PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "lpips", "scikit-image", "numpy", "pandas",
             "accelerate", "opencv-python-headless")


def git_commit() -> str | None:
    """The git commit of the ripbench source tree, when it is a checkout (else ``None``)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str]:
    """Versions of Python, ripbench and the libraries that change results."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "ripbench": __version__}
    for pkg in _PACKAGES:
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return dict(sorted(found.items()))


def device_info(device: torch.device) -> dict[str, Any]:
    """The device, the platform, torch's thread count and the GPU's name."""
    info: dict[str, Any] = {"device": str(device), "platform": platform.platform(),
                            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
