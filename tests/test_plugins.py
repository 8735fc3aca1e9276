"""Third-party models: entry points and module:factory references, run through the harness."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from ripbench.config import validate_config
from ripbench.errors import ModelNotFoundError
from ripbench.models import available_inpainters, create_inpainter, register_inpainter
from ripbench.run import run_experiment


def _install_entry_point(site, plugin_dir):
    """What pip does for an installed distribution: a dist-info folder with entry_points.txt."""
    dist = site / "ripbench_example_plugin-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ripbench-example-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(
        "[ripbench.inpainters]\nmean-fill = ripbench_example_plugin:make_mean_fill\n")
    (site / "ripbench_example_plugin.py").write_text((plugin_dir / "ripbench_example_plugin.py").read_text())


def test_entry_point_plugin_runs_through_harness(tmp_path, monkeypatch, tiny_config_data):
    from tests.conftest import EXAMPLE_PLUGIN

    site = tmp_path / "site"
    _install_entry_point(site, EXAMPLE_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    assert "mean-fill" in available_inpainters()
    tiny_config_data["models"] = [{"name": "mean-fill", "options": {"noise": 0.1}}]
    result = run_experiment(validate_config(tiny_config_data), progress=False)
    t = result.table
    assert set(t["model"]) == {"mean-fill"} and t["trajectory_id"].nunique() == 8
    assert result.manifest["models"]["mean-fill"]["noise"] == 0.1
    assert (t[t["iteration"] > 0]["mse_prev_current"] > 0).all()


def test_module_factory_reference(example_plugin_on_path, tiny_config_data):
    tiny_config_data["models"] = [{"name": "ripbench_example_plugin:MeanFill", "label": "mf"}]
    t = run_experiment(validate_config(tiny_config_data), progress=False).table
    assert set(t["model"]) == {"mf"}
    # seeded noise: same seed -> same fill, whatever the batch
    m = create_inpainter("ripbench_example_plugin:MeanFill")
    imgs, masks = torch.rand(3, 3, 8, 8), torch.ones(3, 1, 8, 8)
    a = m.inpaint(imgs, masks, [1, 2, 3]).images
    b = m.inpaint(imgs[1:2], masks[1:2], [2]).images
    assert torch.equal(a[1:2], b)


def test_register_inpainter_decorator():
    from ripbench.models import Inpainter, InpaintResult

    @register_inpainter("test-identity", description="returns its input")
    class Identity(Inpainter):
        name = "test-identity"

        def inpaint(self, images, masks, seeds):
            return InpaintResult(images=images)

    assert available_inpainters()["test-identity"] == "returns its input"
    assert isinstance(create_inpainter("test-identity"), Identity)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("nope", "unknown model 'nope'"),
        ("no_such_module_xyz:make", "no module named 'no_such_module_xyz' on the Python path or in the current folder"),
        ("ripbench.models:nothing_here", "has no attribute 'nothing_here'"),
        ("ripbench.errors:__doc__", "is a str, not a ripbench Inpainter subclass"),
        ("builtins:dict", "is the class builtins.dict, not a ripbench Inpainter subclass"),
        (":make", "not of the form 'package.module:factory'"),
    ],
)
def test_bad_model_references(spec, fragment):
    with pytest.raises(ModelNotFoundError, match=fragment.replace("(", r"\(")):
        create_inpainter(spec)


def test_factory_returning_wrong_type(tmp_path, monkeypatch):
    (tmp_path / "dict_factory.py").write_text(
        "from ripbench import model_factory\n\n@model_factory\ndef make(**options):\n    return dict(options)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="returned dict, not a ripbench Inpainter"):
        create_inpainter("dict_factory:make")


RECORDER = """
CALLS = []


def record(**options):
    CALLS.append(options)
    return "called"


class NotAModel:
    def __init__(self, **options):
        CALLS.append(options)
"""


@pytest.fixture
def recorder(tmp_path, monkeypatch):
    """A module with callables that record being called (and are not declared model factories)."""
    (tmp_path / "ripbench_recorder.py").write_text(RECORDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module("ripbench_recorder")
    yield module
    sys.modules.pop("ripbench_recorder", None)


@pytest.mark.parametrize("attr, what", [("record", "the function ripbench_recorder.record"),
                                        ("NotAModel", "the class ripbench_recorder.NotAModel")])
def test_undeclared_callables_are_refused_without_calling_them(recorder, tiny_config_data, attr, what):
    ref = f"ripbench_recorder:{attr}"
    with pytest.raises(ModelNotFoundError, match=f"model '{ref}' is {what}, not a ripbench Inpainter subclass "
                                                 "or a function declared with @ripbench.model_factory; refused"):
        create_inpainter(ref, x=1)
    tiny_config_data["models"] = [{"name": ref, "options": {"x": 1}}]
    with pytest.raises(ModelNotFoundError, match="refused without calling it"):
        run_experiment(validate_config(tiny_config_data), progress=False)
    assert recorder.CALLS == []
    assert not (Path(tiny_config_data["output_dir"]) / "tiny").exists()


def test_declared_factory_by_reference(example_plugin_on_path):
    model = create_inpainter("ripbench_example_plugin:make_mean_fill", noise=0.2)
    assert model.name == "mean-fill" and model.noise == 0.2
    assert create_inpainter("ripbench.models.pixel_ddpm:shapes_ddpm", steps=2).name == "shapes-ddpm"


def test_shared_config_cannot_run_a_command(tmp_path):
    """`subprocess:getoutput` named as a model in a config: one line, exit 2, the command never runs."""
    from click.testing import CliRunner

    from ripbench.cli import main

    marker = tmp_path / "ran"
    config = tmp_path / "shared.yaml"
    config.write_text(f"name: shared\niterations: 1\nsize: 32\nmodels:\n  - name: subprocess:getoutput\n"
                      f"    options: {{cmd: 'touch {marker}'}}\nmetrics: {{names: [mse]}}\n"
                      f"output_dir: {tmp_path / 'results'}\n")
    res = CliRunner().invoke(main, ["run", str(config), "--no-progress"])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "subprocess.getoutput" in lines[0] and "refused without calling it" in lines[0]
    assert not marker.exists()


RECORDING_OBJECTS = """
CALLS = []


class Loader:
    def __getattr__(self, name):
        CALLS.append(name)
        return lambda **options: None


class Meta(type):
    def __getattr__(cls, name):
        CALLS.append(name)
        return lambda **options: None


class WithMeta(metaclass=Meta):
    @property
    def prop(self):
        CALLS.append("prop")


loader = Loader()
"""


@pytest.mark.parametrize("attr, fragment", [
    ("loader.anything", "attributes are followed on modules and classes only, not on a Loader"),
    ("WithMeta.anything", "has no attribute"),
    ("WithMeta.prop", "is a property"),
    ("loader.", "is not a Python name"),
    ("loader.a/b", "is not a Python name"),
])
def test_references_run_no_code_the_string_chooses(tmp_path, monkeypatch, attr, fragment):
    """Getting an attribute of an object can run its code (``ctypes:cdll.<path>`` would load a library):
    references step through modules and classes only, and read class attributes as stored."""
    (tmp_path / "ripbench_getattr_recorder.py").write_text(RECORDING_OBJECTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module("ripbench_getattr_recorder")
    try:
        with pytest.raises(ModelNotFoundError, match=fragment):
            create_inpainter(f"ripbench_getattr_recorder:{attr}")
        assert module.CALLS == []
    finally:
        sys.modules.pop("ripbench_getattr_recorder", None)


def test_ctypes_loader_reference_loads_nothing(tmp_path, monkeypatch):
    import ctypes

    monkeypatch.chdir(tmp_path)
    loaded = []
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: loaded.append(a))
    with pytest.raises(ModelNotFoundError, match="not on a LibraryLoader"):
        create_inpainter("ctypes:cdll.payload")
    assert loaded == []
