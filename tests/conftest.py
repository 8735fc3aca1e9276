"""Shared fixtures: where the genuine LPIPS weights are, small configs, the example plug-in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Small models run several times faster on one thread than on oversubscribed cores, and
# one thread keeps CPU results bit-stable between machines.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = REPO / "examples" / "ripbench-example-plugin"


SHARED_WEIGHTS = REPO.parent / "shared" / "lpips-weights"
TEST_WEIGHTS_ENV = "RIPBENCH_TEST_LPIPS_WEIGHTS"
#: ``RIPBENCH_REQUIRE_LPIPS=1`` (set by ``.ci/run`` when ``../shared/lpips-weights`` exists): a test that
#: would skip for want of LPIPS weights fails instead, so CI cannot go green without the LPIPS tests.
REQUIRE_LPIPS = os.environ.get("RIPBENCH_REQUIRE_LPIPS") == "1"


def skip_without_lpips(reason: str) -> None:
    """Skip a test that needs genuine LPIPS weights (or example images), or fail under ``RIPBENCH_REQUIRE_LPIPS=1``."""
    if REQUIRE_LPIPS:
        pytest.fail(f"RIPBENCH_REQUIRE_LPIPS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _weights_dir() -> Path | None:
    """The folder with genuine backbone weights: $RIPBENCH_TEST_LPIPS_WEIGHTS, then ../shared/lpips-weights."""
    for candidate in (os.environ.get(TEST_WEIGHTS_ENV), SHARED_WEIGHTS):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def genuine_weights(net: str = "alex") -> Path | None:
    """Weights argument for ``net``: the local folder (never copied into the repo), or ``None``
    when torchvision's normal download/cache works; otherwise the test is skipped with the reason."""
    from ripbench.errors import WeightsError
    from ripbench.metrics import FEATURE_FILES, WEIGHTS_ENV_VAR, load_lpips

    folder = _weights_dir()
    if folder is not None and (folder / FEATURE_FILES[net]).is_file():
        return folder
    saved = os.environ.pop(WEIGHTS_ENV_VAR, None)
    try:
        load_lpips(net, None)
    except WeightsError as exc:
        skip_without_lpips(
            f"no genuine LPIPS '{net}' weights: set {TEST_WEIGHTS_ENV} or provide {SHARED_WEIGHTS} ({exc})"
        )
    finally:
        if saved is not None:
            os.environ[WEIGHTS_ENV_VAR] = saved
    return None


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
