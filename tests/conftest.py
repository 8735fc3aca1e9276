"""Shared fixtures: where the genuine LPIPS weights are, small configs, the example plug-in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = REPO / "examples" / "ripbench-example-plugin"


def find_lpips_weights() -> Path | None:
    """The genuine LPIPS backbone weights for tests, never copied into the repo.

    Looked up in ``$RIPBENCH_TEST_LPIPS_WEIGHTS``, then ``../shared/lpips-weights`` beside
    the checkout. ``None`` when neither exists (tests then try torchvision's download).
    """
    env = os.environ.get("RIPBENCH_TEST_LPIPS_WEIGHTS")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "lpips-weights")
    for c in candidates:
        if (c / "alexnet_features.pth").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def lpips_weights() -> Path | None:
    return find_lpips_weights()


@pytest.fixture
def example_plugin_on_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the out-of-tree example plug-in module on sys.path (not installed)."""
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    return EXAMPLE_PLUGIN


@pytest.fixture
def tiny_config_data(tmp_path: Path) -> dict:
    """A fast experiment: 2 sample images at 32 px, 2 grid sizes, 3 iterations, no LPIPS."""
    return {
        "name": "tiny",
        "iterations": 3,
        "size": 32,
        "seeds": [0, 1],
        "inputs": {"source": "samples", "names": ["astronaut", "coffee"]},
        "masks": [{"policy": "grid", "size": 8}, {"policy": "grid", "size": 16}],
        "models": [{"name": "biharmonic"}],
        "metrics": {"names": ["ssim", "psnr", "mse"]},
        "batch_size": 3,
        "output_dir": str(tmp_path / "results"),
    }
