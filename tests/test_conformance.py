"""The plug-in contract: ripbench.testing.check_inpainter on every built-in model and on broken ones,
explicit declarations, option checking, and plug-in errors surfacing as themselves."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from ripbench.config import validate_config
from ripbench.errors import ConfigError, ModelContractError
from ripbench.models import Inpainter, InpaintResult, ModelOption, create_inpainter
from ripbench.run import run_experiment
from ripbench.testing import check_inpainter


@pytest.mark.parametrize("name, options", [
    ("biharmonic", {}),
    ("telea", {}),
    ("navier-stokes", {"radius": 2.0}),
    ("shapes-ddpm", {"steps": 4, "device": "cpu"}),
    ("shapes-ddpm", {"steps": 3, "method": "repaint", "jump_length": 2, "jump_n_sample": 2, "device": "cpu"}),
])
def test_builtin_models_conform(name: str, options: dict) -> None:
    if name in ("telea", "navier-stokes"):
        pytest.importorskip("cv2")
    model = create_inpainter(name, **options)
    notes = check_inpainter(model)
    assert model.returns_x0_trajectory == (not notes)


def test_diffusers_pipelines_conform(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    from tests.tiny_pipelines import tiny_sd_inpaint

    folder = tmp_path / "sd"
    tiny_sd_inpaint(tmp_path / "parts").save_pretrained(folder)
    check_inpainter(create_inpainter("diffusers", model=str(folder), steps=3, device="cpu"))
    # without paste-back the VAE round trip changes unmasked pixels: declared, so that rule is skipped
    whole = create_inpainter("diffusers", model=str(folder), steps=3, device="cpu", paste_back=False)
    with pytest.raises(ModelContractError, match="keeps-unmasked"):
        check_inpainter(whole)
    check_inpainter(whole, preserves_unmasked=False)


def test_example_plugin_conforms(example_plugin_on_path: Path) -> None:
    check_inpainter(create_inpainter("ripbench_example_plugin:MeanFill", noise=0.1))


class _Sloppy(Inpainter):
    """Edits its input in place and overwrites the whole image."""

    name = "sloppy"

    def inpaint(self, images, masks, seeds):
        images.mul_(0.5)
        return InpaintResult(images=images.clone())


class _Broken(Inpainter):
    """Every other rule: wrong range, batch-dependent noise, a trajectory it never declared."""

    name = "broken"
    option_specs = (ModelOption("gain", 2.0, "output gain"),)

    def __init__(self, gain: float = 3.0) -> None:
        self.gain = gain

    def inpaint(self, images, masks, seeds):
        noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(sum(seeds)))
        out = images * (1 - masks) + self.gain * noise * masks
        return InpaintResult(images=out, x0_trajectory=torch.zeros(2, len(seeds), 1), extras={"x": [1]})


def test_sloppy_model_is_rejected_naming_the_rules() -> None:
    with pytest.raises(ModelContractError) as err:
        check_inpainter(_Sloppy())
    assert err.value.rules == ["no-input-edit", "keeps-unmasked"]
    assert "modified its input images or masks in place" in str(err.value)


def test_every_other_rule_is_named() -> None:
    with pytest.raises(ModelContractError) as err:
        check_inpainter(_Broken())
    assert set(err.value.rules) == {"range", "per-item-fields", "trajectory", "batch-independent", "options"}
    text = str(err.value)
    assert "declared with default 2.0 but the constructor's default is 3.0" in text
    assert "without declaring returns_x0_trajectory" in text


class _NaN(Inpainter):
    name = "nan"

    def inpaint(self, images, masks, seeds):
        return InpaintResult(images=torch.where(masks > 0.5, torch.nan, images))


def test_nan_output_is_named() -> None:
    with pytest.raises(ModelContractError, match=r"rule 'finite'"):
        check_inpainter(_NaN())


class _RaisesInInit(Inpainter):
    name = "raises"

    def __init__(self) -> None:
        raise TypeError("something inside the plug-in went wrong")

    def inpaint(self, images, masks, seeds):  # pragma: no cover
        return InpaintResult(images=images)


def test_plugin_errors_surface_as_themselves() -> None:
    with pytest.raises(TypeError, match="something inside the plug-in went wrong") as err:
        create_inpainter(f"{__name__}:_RaisesInInit")
    assert any("_RaisesInInit" in note for note in err.value.__notes__)


def test_model_options_validate_strictly_through_pydantic() -> None:
    """Model options are checked by pydantic in strict mode, like config fields: the value must have the
    declared type (no "3" for 3, no True for 1), an int is a float, None only where the default is None."""
    from ripbench.models import ModelOption

    steps = ModelOption("steps", 50, "denoising steps")
    eta = ModelOption("eta", 0.0, "DDIM eta")
    name = ModelOption("model", None, "weights", type=str)
    method = ModelOption("method", "replace", "how", choices=("replace", "repaint"))
    assert steps.check(3, "m") == 3 and eta.check(1, "m") == 1 and name.check(None, "m") is None
    for option, bad in ((steps, "3"), (steps, True), (steps, 2.5), (eta, "0.1"), (name, 3), (steps, None)):
        with pytest.raises(ConfigError, match=rf"model 'm': option '{option.name}' must be"):
            option.check(bad, "m")
    with pytest.raises(ConfigError, match="must be one of replace, repaint; got 'magic'"):
        method.check("magic", "m")


def test_options_are_checked_against_declarations() -> None:
    with pytest.raises(ConfigError, match=r"model 'biharmonic' has no option 'radius'; its options: split_into"):
        create_inpainter("biharmonic", radius=3)
    with pytest.raises(ConfigError, match=r"option 'steps' must be int"):
        create_inpainter("shapes-ddpm", steps="many")
    with pytest.raises(ConfigError, match=r"option 'method' must be one of replace, repaint"):
        create_inpainter("shapes-ddpm", method="magic")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = create_inpainter("shapes-ddpm", num_inference_steps=3, device="cpu")
    assert model.x0_steps == 3
    assert any("'num_inference_steps' is now called 'steps'" in str(w.message) for w in caught)


class _UndeclaredTrajectory(Inpainter):
    name = "undeclared"

    def inpaint(self, images, masks, seeds):
        return InpaintResult(images=images * (1 - masks) + 0.5 * masks,
                             x0_trajectory=torch.zeros(3, len(seeds), 3, 4, 4))


def test_harness_refuses_undeclared_trajectories(tiny_config_data: dict) -> None:
    tiny_config_data["models"] = [{"name": f"{__name__}:_UndeclaredTrajectory"}]
    with pytest.raises(ModelContractError, match="does not declare returns_x0_trajectory"):
        run_experiment(validate_config(tiny_config_data), progress=False)


def test_models_and_metrics_verbose_listings() -> None:
    from click.testing import CliRunner

    from ripbench.cli import main

    out = CliRunner().invoke(main, ["models", "-v"]).output
    assert "shapes-ddpm" in out and "steps (int, default 50): reverse denoising steps" in out
    assert "formerly num_inference_steps" in out
    out = CliRunner().invoke(main, ["metrics", "-v"]).output
    assert "direction: higher is better; range [-1, 1]" in out  # SSIM
    assert "direction: lower is better; range [0, inf]" in out  # LPIPS
