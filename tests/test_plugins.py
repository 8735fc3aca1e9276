"""Third-party models: entry points and module:factory references, run through the harness."""

from __future__ import annotations

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
        ("no_such_module_xyz:make", "cannot import module 'no_such_module_xyz'"),
        ("ripbench.models:nothing_here", "has no attribute 'nothing_here'"),
        ("ripbench.errors:__doc__", "not point to a callable"),
    ],
)
def test_bad_model_references(spec, fragment):
    with pytest.raises(ModelNotFoundError, match=fragment.replace("(", r"\(")):
        create_inpainter(spec)


def test_factory_returning_wrong_type():
    with pytest.raises(ModelNotFoundError, match="not a ripbench Inpainter"):
        create_inpainter("builtins:dict")
