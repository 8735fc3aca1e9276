"""notebooks/analysis.ipynb runs end to end against a small real run (so it never rots)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ripbench.config import validate_config
from ripbench.run import run_experiment

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "analysis.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    source = "".join("".join(c["source"]) for c in code)
    assert "RIPBENCH_RUN_DIR" in source and "results/quick" in source
    assert "run_experiment" in source  # without a run it makes a short one (offline, shipped model)


@pytest.mark.slow
def test_notebook_executes_against_a_tiny_run(tiny_config_data, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    run = run_experiment(validate_config({**tiny_config_data, "metrics": {"names": ["ssim", "mse"]}}),
                         progress=False)
    monkeypatch.setenv("RIPBENCH_RUN_DIR", str(run.run_dir))
    repo = str(NOTEBOOK.parents[1])  # the kernel imports this checkout's ripbench
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"notebook took {elapsed:.0f} s"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 6  # collapse curves, survival, models, regions, image strips, heat map
    text = "".join(o.get("text", "") for o in outputs)
    assert "ssim_orig <= 0.5" in text and "8 trajectories" in text
    assert "LPIPS is not in this run" in text and "Fastest drift:" in text
    assert "no hallucination scores in this run" in text and "No failed model call" in text
