"""Config validation: errors name the field and the allowed values."""

from __future__ import annotations

import pytest

from ripbench.config import PRESETS, apply_overrides, load_config, load_preset, validate_config
from ripbench.errors import ConfigError


@pytest.mark.parametrize("name", PRESETS)
def test_presets_validate(name):
    cfg = load_preset(name)
    assert cfg.name == name
    assert cfg.iterations >= 1


def test_presets_are_the_files_in_the_presets_folder():
    from pathlib import Path

    import ripbench
    from ripbench.config import preset_descriptions

    files = sorted(p.stem for p in (Path(ripbench.__file__).parent / "presets").glob("*.yaml"))
    assert sorted(PRESETS) == files and PRESETS[0] == "quick"
    descriptions = preset_descriptions()
    assert list(descriptions) == list(PRESETS) and all(descriptions.values())
    with pytest.raises(ConfigError, match="unknown preset 'nope'; available: quick, rip-paper"):
        load_preset("nope")


def test_preset_help_lists_the_preset_files():
    from click.testing import CliRunner

    from ripbench.cli import main

    text = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())
    assert "Start from a built-in preset: " + ", ".join(["quick (default)", *PRESETS[1:]]) + "." in text


def test_rip_paper_preset_is_the_paper_protocol():
    cfg = load_preset("rip-paper")
    assert cfg.size == 512 and cfg.iterations == 100
    assert [m["size"] for m in cfg.masks] == [64, 128, 256]
    assert {m["policy"] for m in cfg.masks} == {"grid"}
    assert cfg.models[0].name == "diffusers"
    assert cfg.models[0].options["prompt"] == ""
    assert cfg.metrics.lpips_net == "alex" and cfg.metrics.lpips_required


@pytest.mark.parametrize(
    "patch, line",
    [
        ({"iterations": 0}, "invalid config: iterations: Input should be greater than or equal to 1"),
        ({"masks": [{"policy": "grid", "size": 0}]},
         "invalid config: masks.0.size: Input should be greater than or equal to 1"),
        ({"models": [{"name": "biharmonic", "masks": [{"policy": "columns", "count": 1}]}]},
         "invalid config: models.0.masks.0.count: Input should be greater than or equal to 2"),
        ({"itrations": 5}, "invalid config: itrations: unknown field"),
        ({"masks": [{"policy": "grid", "sise": 8}]}, "invalid config: masks.0.sise: unknown field; allowed: size"),
        ({"metrics": {"lpips_net": "resnet"}}, "invalid config: metrics.lpips_net: must be 'alex', 'vgg' or 'squeeze'"),
        ({"masks": [{"policy": "strokes", "width": "huge"}]},
         "invalid config: masks.0.width: must be 'thin', 'medium' or 'thick'"),
        ({"masks": [{"policy": "hexagon"}]},
         "invalid config: masks.0.policy: must be one of grid, box, center, strokes, folder, columns; got 'hexagon'"),
    ],
)
def test_mask_spec_errors_read_like_any_config_error(patch, line):
    """A bad mask spec and a bad top-level field give the same ``invalid config: field.path: message`` line."""
    with pytest.raises(ConfigError) as info:
        validate_config(patch)
    assert str(info.value) == line


def test_mask_specs_are_kept_as_written():
    """Validation does not fill in defaults: the stored specs (and so the fingerprint) are the ones written."""
    cfg = validate_config({"masks": [{"policy": "box", "area": 0.2}]})
    assert cfg.masks == [{"policy": "box", "area": 0.2}]


def test_default_is_quick():
    assert load_config().name == "quick"


@pytest.mark.parametrize(
    "patch, fragment",
    [
        ({"iterations": 0}, "iterations"),
        ({"itrations": 5}, "itrations: unknown field"),
        ({"metrics": {"lpips_net": "resnet"}}, "metrics.lpips_net: must be 'alex', 'vgg' or 'squeeze'"),
        ({"metrics": {"names": ["lpips", "fid"]}}, "metrics.names: unknown metric name(s) 'fid'"),
        ({"models": [{"name": "no-such-model"}]}, "unknown model 'no-such-model'; known models: biharmonic"),
        ({"masks": [{"policy": "hexagon"}]}, "hexagon"),
        ({"masks": [{"policy": "grid", "size": -4}]}, "size"),
        ({"inputs": {"source": "folder"}}, "inputs.path is required"),
        ({"inputs": {"source": "samples", "names": ["mona-lisa"]}}, "unknown sample image(s) ['mona-lisa']"),
        ({"seeds": []}, "seeds"),
        ({"device": "quantum"}, "invalid device 'quantum'"),
    ],
)
def test_bad_fields_are_named(patch, fragment):
    with pytest.raises(ConfigError) as info:
        validate_config(patch)
    msg = str(info.value)
    assert fragment in msg, msg
    assert "\n" not in msg


def test_overrides_and_yaml_errors(tmp_path):
    cfg = apply_overrides(load_preset("quick"), ["iterations=3", "metrics.lpips_net=squeeze", "masks.0.size=8"])
    assert cfg.iterations == 3 and cfg.metrics.lpips_net == "squeeze" and cfg.masks[0]["size"] == 8
    with pytest.raises(ConfigError, match="field=value"):
        apply_overrides(cfg, ["iterations"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("iterations: [1\n")
    with pytest.raises(ConfigError, match="cannot parse config"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text("iterations: 2\nmasks: [{policy: box, area: 0.1}]\n")
    cfg = load_config(good, preset="quick")
    assert cfg.iterations == 2 and cfg.size == 128  # file on top of the preset


def test_fingerprint_ignores_run_plumbing():
    a = validate_config({"name": "a", "batch_size": 2})
    b = validate_config({"name": "b", "batch_size": 7, "device": "cpu"})
    c = validate_config({"iterations": 21})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_hub_id_maps_to_diffusers_backend():
    cfg = validate_config({"models": ["stabilityai/stable-diffusion-2-inpainting"]})
    m = cfg.models[0]
    assert m.name == "diffusers" and m.options["model"] == "stabilityai/stable-diffusion-2-inpainting"
    assert m.display_name == "stable-diffusion-2-inpainting"


def test_override_into_a_value_is_refused():
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides(load_preset("quick"), ["iterations.foo=3"])


def test_fingerprint_ignores_where_lpips_weights_lie():
    a = validate_config({"metrics": {"lpips_weights": "/a/weights"}})
    b = validate_config({"metrics": {"lpips_weights": "/b/weights"}})
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize(
    ("spec", "band", "unit"),
    [
        ({"band": 0.1}, (0.0, 0.1), "sigma"),
        ({"band": [0.05, 0.3]}, (0.05, 0.3), "sigma"),
        ({"window": 1}, (0.0, 1.0), "sigma"),  # the old spelling, read in the unit given (default sigma)
        ({"window": [0, 0.2], "unit": "t/T"}, (0.0, 0.2), "t/T"),  # an old config, exactly as it was meant
        ({"unit": "t/T"}, (0.0, 0.2), "t/T"),  # the old default
        ({"band": "paper", "unit": "t/T"}, (0.0, 0.009), "t/T"),
    ],
)
def test_hallucination_band_is_a_noise_band_with_a_unit(spec, band, unit):
    cfg = validate_config({"hallucination": spec}).hallucination
    assert cfg.band == band and cfg.window == band and cfg.unit == unit
    assert cfg.noise_band.unit == unit and tuple(cfg.noise_band) == band


def test_hallucination_defaults_and_cli_override():
    from ripbench.hallucination import DEFAULT_BAND, MIN_BAND_STEPS, PAPER_BAND

    default = validate_config({}).hallucination
    assert default.noise_band == DEFAULT_BAND and default.min_steps == MIN_BAND_STEPS
    cfg = apply_overrides(load_config(), ["hallucination.window=[0, 0.009]", "hallucination.unit=t/T",
                                          "hallucination.min_steps=2"])
    assert cfg.hallucination.band == (0.0, 0.009) and cfg.hallucination.unit == "t/T"
    assert cfg.hallucination.min_steps == 2
    assert apply_overrides(load_config(), ["hallucination.band=paper"]).hallucination.noise_band == PAPER_BAND


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"band": 3}, "hallucination.band: The hallucination band is a band of noise levels in 'sigma' units"),
        ({"window": 3}, "looks like a number of steps"),
        ({"band": 1.5, "unit": "t/T"}, "got [0, 1.5]"),
        ({"band": [0.2, 0.1]}, "got [0.2, 0.1]"),
        ({"band": "last"}, "got 'last'"),
        ({"band": [0, 0.2], "unit": "steps"}, "hallucination.unit"),
        ({"band": "last"}, "a bare pair is read in sigma units, add unit: t/T for the old meaning"),
    ],
)
def test_bad_hallucination_band_is_explained(spec, fragment):
    with pytest.raises(ConfigError) as info:
        validate_config({"hallucination": spec})
    assert fragment in str(info.value)


def test_hallucination_min_steps_needs_two():
    with pytest.raises(ConfigError, match="hallucination.min_steps"):
        validate_config({"hallucination": {"min_steps": 1}})


def test_lpips_nets_and_fit_modes_are_named_once():
    from typing import get_args

    from click.testing import CliRunner

    from ripbench.cli import main
    from ripbench.config import ExperimentConfig, MetricsConfig
    from ripbench.inputs import FIT_MODES
    from ripbench.metrics.catalog import LPIPS_NETS

    assert LPIPS_NETS == ("alex", "vgg", "squeeze") and FIT_MODES == ("center-crop", "resize", "pad")
    assert get_args(MetricsConfig.model_fields["lpips_net"].annotation) == LPIPS_NETS
    assert get_args(ExperimentConfig.model_fields["fit"].annotation) == FIT_MODES
    help_text = CliRunner().invoke(main, ["run", "--help"]).output
    assert "--lpips-net [" + "|".join(LPIPS_NETS) + "]" in help_text
    res = CliRunner().invoke(main, ["run", "--lpips-net", "resnet"])
    assert res.exit_code == 2 and "'resnet' is not one of 'alex', 'vgg', 'squeeze'" in res.output
