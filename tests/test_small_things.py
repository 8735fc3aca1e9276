"""Small things a new user meets (issue 22, item 5): a README in every run folder that the report
points to, ``--fast`` toy outputs marked and kept apart, ``ripbench config`` previewing overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ripbench.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_run_folder_explains_its_files_and_columns_and_the_report_points_there(tmp_path):
    from ripbench.config import validate_config
    from ripbench.report import write_report
    from ripbench.run import run_experiment

    config = validate_config({"name": "doc", "iterations": 2, "size": 32, "seeds": [0], "models": ["biharmonic"],
                              "inputs": {"source": "samples", "names": ["coffee"]},
                              "masks": [{"policy": "grid", "size": 16}], "metrics": {"names": ["ssim", "mse"]},
                              "output_dir": str(tmp_path)})
    result = run_experiment(config, progress=False)
    readme = (result.run_dir / "README.md").read_text()
    for column in result.table.columns:
        assert f"| `{column}` |" in readme  # every column of this run's table, explained
    assert "| `ssim_orig_never` | SSIM to original, in pixels never masked (higher is better) |" in readme
    assert "`manifest.json`" in readme and "ripbench.load(" in readme
    summary = write_report([result.run_dir], n_boot=50, max_strips=1)["markdown"].read_text()
    assert "README.md in the run folder" in summary and "results/README.md" not in summary


def test_the_short_column_meanings_are_those_of_the_results_readme():
    from ripbench.run.readme import COLUMN_MEANINGS

    documented = set(re.findall(r"`([a-z0-9_]+)`", (REPO / "results" / "README.md").read_text()))
    assert set(COLUMN_MEANINGS) <= documented


def test_fast_toy_outputs_go_apart_from_the_full_run(monkeypatch, tmp_path):
    import ripbench.repro

    calls = []
    monkeypatch.setattr(ripbench.repro, "run_toy_repro", lambda out_dir, **kw: calls.append((out_dir, kw)) or "ok")
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["repro", "hallucination-toy", "--fast"]).exit_code == 0
    assert CliRunner().invoke(main, ["repro", "hallucination-toy"]).exit_code == 0
    assert [str(out) for out, _ in calls] == ["results/repro-hallucination-toy-fast", "results/repro-hallucination-toy"]
    assert calls[0][1]["fast"] and not calls[1][1]["fast"]


def test_fast_toy_markdown_is_marked_a_smoke_run():
    from ripbench.repro.toy_report import SMOKE_NOTE, _verdict

    det = {"n_hallucinated": 300, "detection_rate": 0.99, "detection_rate_ci95": (0.97, 1.0), "retention": 0.96,
           "retention_ci95": (0.95, 0.97), "n_in_support": 900, "threshold": 0.1}
    report = {"fast": True, "window_steps": 10, "results": {"gaussian1d": {
        "n_samples": 1000, "hallucination_rate": 0.3, "detection": det, "auroc": None}}}
    report["verdict"] = _verdict(report)
    assert report["verdict"] == SMOKE_NOTE  # no comparison with the paper's numbers (the Markdown's title and
    # section say so too: tests/test_repro_toy.py::test_fast_1d_reproduction_scores_hallucinations_higher)


def test_config_prints_the_config_after_the_run_options(tmp_path):
    res = CliRunner().invoke(main, ["config", "--model", "biharmonic", "--mask", "grid:8", "-n", "3",
                                    "--set", "seeds=[4,5]", "--set", "metrics.names=[ssim]"])
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.output)
    assert shown["iterations"] == 3 and shown["seeds"] == [4, 5] and shown["metrics"]["names"] == ["ssim"]
    assert [m["name"] for m in shown["models"]] == ["biharmonic"]
    assert shown["masks"] == [{"policy": "grid", "size": 8}] or shown["masks"][0]["size"] == 8
    assert shown["name"].startswith("biharmonic_grid-8-")  # the name `ripbench run` would give it
    bad = CliRunner().invoke(main, ["config", "--set", "iterations=-1"])
    assert bad.exit_code == 2 and "iterations" in bad.output


def test_the_recorded_command_is_one_a_user_can_retype(monkeypatch) -> None:
    """`python -m ripbench run ...` was recorded (manifest, report Settings, dataset card) as
    `/abs/path/ripbench/__main__.py run ...`, unquoted."""
    import sys

    from ripbench.formatting import command_line

    assert command_line(["/x/ripbench/__main__.py", "run", "--set", "inputs.names=[a, b]"]) == \
        "ripbench run --set 'inputs.names=[a, b]'"
    monkeypatch.setattr(sys, "argv", ["/venv/bin/ripbench", "report", "my runs/a"])
    assert command_line() == "ripbench report 'my runs/a'"
