"""The READMEs' Python snippets run as written (offline, with the shipped model and no LPIPS weights needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ripbench.config import apply_overrides, load_preset
from ripbench.metrics import registry
from ripbench.run import run_experiment

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RESULTS_README = REPO / "results" / "README.md"


def python_blocks(text: str) -> list[str]:
    """Every fenced ```python block of a Markdown text, in order."""
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_snippets_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry.METRICS, "_registered", {})  # snippets may register metrics: keep them local
    monkeypatch.setattr(registry.METRICS, "_referenced", {})
    registry.METRICS.clear_cache()
    # the snippets load results/quick: make a short one first (2 iterations, 2 photos, 2 shapes)
    config = apply_overrides(load_preset("quick"), [
        "iterations=2", "inputs.names=[astronaut,coffee]", "models.1.inputs.count=2", "output_dir=results"])
    run_experiment(config, progress=False)
    namespace: dict = {"__name__": "readme"}
    for path, block in [(README, b) for b in blocks] + [(RESULTS_README, b) for b in
                                                          python_blocks(RESULTS_README.read_text())]:
        exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 - our own documentation
    registry.METRICS.clear_cache()
