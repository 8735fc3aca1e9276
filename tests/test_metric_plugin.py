"""A third-party metric, installed with pip from examples/ripbench-example-metric, used with no edits to ripbench:
it appears in a run's table (all references and regions), in `ripbench metrics -v` and in the report."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ripbench.cli import main
from ripbench.config import validate_config
from ripbench.metrics import get_metric_spec, metric_columns
from ripbench.run import run_experiment

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ripbench-example-metric"


@pytest.fixture(scope="module")
def installed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` the example package (from a copy, so no build files land in the repo)."""
    root = tmp_path_factory.mktemp("metric-plugin")
    source, site = root / "src", root / "site"
    shutil.copytree(EXAMPLE, source)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
           "--no-index", "--target", str(site), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(site.glob("ripbench_example_metric-*.dist-info"))
    return site


@pytest.fixture
def plugin(installed_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(installed_site))
    return installed_site


def test_spec_and_columns(plugin: Path) -> None:
    spec = get_metric_spec("mae")
    assert spec.label == "MAE" and spec.higher_is_better is False
    assert metric_columns("mae")[:3] == ["mae_orig", "mae_orig_current", "mae_orig_outside"]


def test_plugin_metric_in_table_listing_and_report(plugin: Path, tiny_config_data: dict, tmp_path: Path) -> None:
    from ripbench.report import write_report

    tiny_config_data["metrics"] = {"names": ["mae", "mse"], "options": {"mae": {"scale": 255.0}}}
    result = run_experiment(validate_config(tiny_config_data), progress=False)
    t = result.table
    for col in metric_columns("mae"):
        assert col in t.columns
    later = t[t["iteration"] > 0]
    assert (later["mae_orig"] > 0).all() and (t[t["iteration"] == 0]["mae_orig"] == 0).all()
    # biharmonic only repaints the mask: nothing changes where nothing was ever masked
    assert np.nanmax(later["mae_orig_never"]) == 0
    assert result.manifest["metrics"]["mae"]["scale"] == 255.0
    assert result.manifest["metrics"]["mae"]["spec"]["higher_is_better"] is False

    listing = CliRunner().invoke(main, ["metrics", "-v"]).output
    assert "mae" in listing and "MAE: mean absolute error" in listing
    assert "option scale (default 1.0)" in listing

    paths = write_report(result.run_dir, tmp_path / "report", n_boot=50)
    html = paths["html"].read_text()
    assert "mae_orig" in html and "MAE to original (lower is better)" in html


def test_run_with_a_plugin_metric_is_analysed_where_the_plugin_is_missing(
        installed_site: Path, tiny_config_data: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from ripbench import analysis
    from ripbench.metrics import spec_for_column
    from ripbench.metrics.registry import unregister_metric

    monkeypatch.syspath_prepend(str(installed_site))
    tiny_config_data["metrics"] = {"names": ["mae", "mse"]}
    run_dir = run_experiment(validate_config(tiny_config_data), progress=False).run_dir
    monkeypatch.undo()  # the plug-in is gone
    assert spec_for_column("mae_orig") is None
    try:
        table = analysis.load_runs(run_dir)
        spec = spec_for_column("mae_orig")
        assert spec is not None and spec.label == "MAE" and analysis.metric_direction("mae_orig") == 1
        assert "mae_orig" in analysis.summary_metrics(table)
    finally:
        unregister_metric("mae")
