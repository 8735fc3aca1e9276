"""Plug-ins named by reference from the command line: ``module:attr`` from the current folder and
``path/to/file.py:attr``, for models, metrics and detectors alike (issue 22, item 3)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from ripbench.cli import main

MODELS = textwrap.dedent('''
    from ripbench.models import Inpainter, InpaintResult, ModelOption

    class MedianFill(Inpainter):
        name = "median-fill"
        option_specs = (ModelOption("level", 0.5, "grey level of the fill"),)

        def __init__(self, level=0.5, device=None):
            self.level = level

        def inpaint(self, images, masks, seeds):
            return InpaintResult(images=images * (1 - masks) + self.level * masks)

    def not_a_factory(**options):
        raise AssertionError("called")
''')

METRICS = textwrap.dedent('''
    from ripbench.metrics import MetricSpec

    def edge_diff(a, b):
        d = (a - b).abs()
        return d.flatten(1).mean(1), d

    EDGE = MetricSpec(name="edge-diff", label="Edge difference", higher_is_better=False, range=(0.0, 1.0),
                      identity=0.0, compute=edge_diff, description="mean absolute difference")
    BARE = MetricSpec(name="bare-diff", label="Bare difference", higher_is_better=False, range=(0.0, 1.0),
                      identity=0.0, compute=edge_diff)
''')

DETECTORS = textwrap.dedent('''
    from ripbench.detectors import DetectorSpec, region_mean

    def brightness(batch):
        return region_mean(batch.output.mean(dim=1, keepdim=True), batch.mask)

    BRIGHT = DetectorSpec(name="folder-brightness", label="brightness", kind="baseline", needs=("output", "mask"),
                          compute=brightness)
''')

FAST = ["--iterations", "1", "--size", "32", "--mask", "grid:16", "--seeds", "0", "--no-progress"]


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    """A user's folder holding plug-in files (names unique to this test: modules stay imported)."""
    stem = f"rbplug_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{stem}_models.py").write_text(MODELS)
    (tmp_path / f"{stem}_metrics.py").write_text(METRICS)
    (tmp_path / f"{stem}_detectors.py").write_text(DETECTORS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    yield tmp_path, stem
    from ripbench.metrics.registry import unregister_metric

    for name in ("edge-diff", "bare-diff"):
        unregister_metric(name)


def _run(args):
    return CliRunner().invoke(main, ["run", *args])


@pytest.mark.slow
@pytest.mark.parametrize("form", ["file", "module"])
def test_a_model_and_a_metric_by_reference_run_labelled_by_their_declared_names(plugin_folder, form):
    folder, stem = plugin_folder
    model = f"./{stem}_models.py:MedianFill" if form == "file" else f"{stem}_models:MedianFill"
    metric = f"{stem}_metrics.py:EDGE" if form == "file" else f"{stem}_metrics:EDGE"
    res = _run(["--model", model, "--model-opt", "level=0.25", "--set", f"metrics.names=[ssim,{metric}]",
                "--name", f"r-{form}", "--output-dir", "res", *FAST])
    assert res.exit_code == 0, res.output
    import ripbench

    table = ripbench.load(folder / "res" / f"r-{form}")
    assert set(table["model"]) == {"median-fill"}  # the declared name, not the class name
    assert "edge-diff_orig" in table.columns
    manifest = json.loads((folder / "res" / f"r-{form}" / "manifest.json").read_text())
    assert manifest["models"]["median-fill"]["options"] == {"level": 0.25}
    assert manifest["metrics"]["edge-diff"]["spec"]["description"] == "mean absolute difference"
    if form == "module":
        return  # the report is the same for both forms: written once
    rep = CliRunner().invoke(main, ["report", f"res/r-{form}", "--n-boot", "100"])
    assert rep.exit_code == 0, rep.output
    summary = (folder / "res" / f"r-{form}" / "report" / "summary.md").read_text()
    assert '"options": {"level": 0.25}' in summary  # the plug-in's options in the report's Settings


@pytest.mark.parametrize("ref, fragment", [
    ("./missing.py:MedianFill", "no file './missing.py'"),
    ("missing_mod_xyz:MedianFill", "no module named 'missing_mod_xyz' on the Python path or in the current folder"),
    ("{stem}_models:Nope", "has no attribute 'Nope' (it defines: MedianFill"),
    ("./{stem}_models.py:Nope", "has no attribute 'Nope'"),
    ("./{stem}_models.py:not_a_factory", "refused without calling it"),
    # a file without ':Class' once went to diffusers ("not a diffusers pipeline directory")
    ("./{stem}_models.py", "is a Python file: name the Inpainter class in it, './{stem}_models.py:ClassName'"),
])
def test_a_missing_model_file_module_or_attribute_is_one_line_and_exit_2(plugin_folder, ref, fragment):
    folder, stem = plugin_folder
    res = _run(["--model", ref.format(stem=stem), "--output-dir", "res", *FAST])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and fragment.format(stem=stem) in line, line
    assert not (folder / "res").exists()


def test_a_missing_metric_reference_is_one_line(plugin_folder):
    folder, stem = plugin_folder
    # the names offered are the file's MetricSpec objects (their class lives in ripbench: once left out)
    for ref, fragment in ((f"{stem}_metrics:NOPE", "has no attribute 'NOPE' (it defines: BARE, EDGE)"), ("./gone.py:EDGE", "no file './gone.py'"),
                          (f"{stem}_models:MedianFill", "not a ripbench MetricSpec")):
        res = _run(["--model", "biharmonic", "--set", f"metrics.names=[ssim,{ref}]", "--output-dir", "res", *FAST])
        assert res.exit_code == 2 and fragment in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_a_detector_by_file_reference(plugin_folder):
    folder, stem = plugin_folder
    from ripbench.detectors import get_detector

    assert get_detector(f"./{stem}_detectors.py:BRIGHT").name == "folder-brightness"
    assert get_detector(f"{stem}_detectors:BRIGHT").name == "folder-brightness"  # one module, not two copies


def test_metrics_listing_describes_a_spec_without_a_description(plugin_folder):
    folder, stem = plugin_folder
    from ripbench.metrics.registry import register_reference

    assert register_reference(f"{stem}_metrics:BARE") == "bare-diff"
    res = CliRunner().invoke(main, ["metrics"])
    line = next(x for x in res.output.splitlines() if x.startswith("bare-diff"))
    assert "Bare difference: lower is better, range [0, 1]" in line and ": -" not in line
    assert f"reference {stem}_metrics:BARE" in line


def test_metric_options_show_in_the_reports_settings():
    from ripbench.report.document import run_settings

    settings = dict(run_settings({"config": {"metrics": {"names": ["edge-diff"],
                                                          "options": {"edge-diff": {"scale": 2}}}}}))
    assert settings["metric options"] == 'edge-diff: {"scale": 2}'
    assert dict(run_settings({"config": {"metrics": {"names": ["ssim"]}}}))["metric options"] == ""
