"""Detectors as plug-ins: the built-in score variants and content baselines on hand-made tensors with known
answers, the registry's errors, the run's det_* columns and manifest specs, and the example plug-in package
(pip-installed into a temporary folder) in `ripbench detectors -v` and in a run's table."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ripbench.cli import main
from ripbench.config import validate_config
from ripbench.detectors import (
    ALIASES,
    BUILTIN_DETECTORS,
    DetectorBatch,
    DetectorSpec,
    DetectorSuite,
    detector_column,
    get_detector,
    register_detector,
    resolve_detectors,
    unregister_detector,
)
from ripbench.detectors.builtins import ERODE_CELLS, erode, in_band_variance_map
from ripbench.errors import ConfigError, ModelContractError
from ripbench.hallucination import ScoreWindow, band_variance
from ripbench.models import Inpainter, InpaintResult
from ripbench.run import run_experiment

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ripbench-example-detector"
WINDOW = ScoreWindow()  # the run's default band and min_steps, whatever their unit


def _levels(window: ScoreWindow = WINDOW, out_of_band: bool = True) -> list[float]:
    """Noise levels of a 4-step trajectory: one above the band (optional), then 3 inside it."""
    lo, hi = float(window.band[0]), float(window.band[1])
    inside = [hi, (lo + hi) / 2, lo]
    return [2 * hi + 1.0, *inside] if out_of_band else inside


def _batch(out: torch.Tensor, mask: torch.Tensor, x0: torch.Tensor | None = None, **kw: Any) -> DetectorBatch:
    levels = _levels() if x0 is not None and x0.shape[0] == 4 else kw.pop("levels", None)
    return DetectorBatch(output=out, mask=mask, x0_trajectory=x0, noise_levels=levels,
                         window=kw.pop("window", WINDOW if x0 is not None else None), **kw)


def _squares(n: int, size: int = 20) -> torch.Tensor:
    """A 1 x 3 x size x size black image with ``n`` white 3 x 3 squares on rows 2..4, columns 2..4, 8..10, ..."""
    img = torch.zeros(1, 3, size, size)
    for i in range(n):
        img[..., 2:5, 2 + 6 * i : 5 + 6 * i] = 1.0
    return img


def _run(name: str, batch: DetectorBatch) -> list[float]:
    return get_detector(name)(batch).tolist()


# --- content baselines ---------------------------------------------------------------------------------

def test_foreground_and_edge_pixels_count_the_shapes_in_the_region() -> None:
    full = torch.ones(1, 1, 20, 20)
    one, two = _batch(_squares(1), full), _batch(_squares(2), full)
    assert _run("foreground-pixels", one) == [9.0] and _run("foreground-pixels", two) == [18.0]
    assert _run("edge-pixels", two) == [2 * _run("edge-pixels", one)[0]] and _run("edge-pixels", one)[0] > 0
    assert _run("edge-density", two)[0] == pytest.approx(2 * _run("edge-density", one)[0])
    # only the region counts: a mask over the first square sees one square in the two-square image
    left = torch.zeros(1, 1, 20, 20)
    left[..., :8, :7] = 1.0
    assert _run("foreground-pixels", _batch(_squares(2), left)) == [9.0]
    assert _run("edge-pixels", _batch(_squares(2), left)) == _run("edge-pixels", one)
    # an empty region has no score; a flat image has no edges
    nothing = torch.zeros(1, 1, 20, 20)
    assert all(math.isnan(v) for v in _run("foreground-pixels", _batch(_squares(1), nothing)))
    assert _run("edge-pixels", _batch(torch.full((1, 3, 20, 20), 0.5), full)) == [0.0]
    assert _run("edge-density", _batch(torch.full((1, 3, 20, 20), 0.5), full)) == [0.0]


def test_edge_density_is_the_mean_sobel_energy() -> None:
    step = torch.zeros(2, 3, 8, 8)
    step[..., 4:] = 1.0   # a vertical 0 -> 1 step: gx = 0.5 on the two columns beside it
    step[1] *= 0.5        # half the contrast: a quarter of the energy
    density = _run("edge-density", _batch(step, torch.ones(2, 1, 8, 8)))
    assert density == pytest.approx([0.25 * 2 / 8, 0.25 * 2 / 8 / 4])
    # the channel mean makes the grey image: one white channel of three is a third of the contrast
    colour = torch.zeros(1, 3, 8, 8)
    colour[:, 0, :, 4:] = 1.0
    assert _run("edge-density", _batch(colour, torch.ones(1, 1, 8, 8)))[0] == pytest.approx(0.25 * 2 / 8 / 9)


# --- x0-variance score variants ------------------------------------------------------------------------

def _trajectory(b: int = 2, c: int = 1, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(4, b, c, size, size, generator=torch.Generator().manual_seed(seed))


def test_whole_and_current_variants_are_band_variance() -> None:
    x0 = _trajectory()
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 1:7, 0:6] = 1.0
    batch = _batch(torch.zeros(2, 3, 8, 8), mask, x0)
    whole, _ = band_variance(x0, _levels(), WINDOW.band, min_steps=WINDOW.min_steps)
    current, _ = band_variance(x0, _levels(), WINDOW.band, region=mask, min_steps=WINDOW.min_steps)
    assert torch.equal(get_detector("x0-variance")(batch), whole.float())
    assert torch.equal(get_detector("x0-variance-current")(batch), current.float())
    # the step above the band does not count: changing it changes nothing
    moved = x0.clone()
    moved[0] += 5.0
    assert torch.equal(get_detector("x0-variance")(_batch(torch.zeros(2, 3, 8, 8), mask, moved)), whole.float())
    # the per-cell map averages to the same score in any region
    var = in_band_variance_map(batch)
    assert var is not None and tuple(var.shape) == (2, 1, 8, 8)
    assert torch.allclose((var * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)), current.float(), rtol=1e-5)
    # the eroded variant is band_variance in the eroded region
    eroded, _ = band_variance(x0, _levels(), WINDOW.band, region=erode(mask, ERODE_CELLS),
                              min_steps=WINDOW.min_steps)
    assert not eroded.isnan().any() and torch.allclose(get_detector("x0-variance-eroded")(batch), eroded.float(), rtol=1e-5)


def test_too_few_steps_or_no_trajectory_give_nan() -> None:
    mask = torch.ones(2, 1, 8, 8)
    out = torch.zeros(2, 3, 8, 8)
    strict = ScoreWindow(WINDOW.band, min_steps=4)   # the band holds 3 of the 4 steps
    few = _batch(out, mask, _trajectory(), window=strict)
    for name in ("x0-variance", "x0-variance-current", "x0-variance-eroded", "x0-variance-component"):
        assert all(math.isnan(v) for v in _run(name, few)), name
        assert all(math.isnan(v) for v in _run(name, _batch(out, mask))), name  # a classical model
    assert _run("foreground-pixels", _batch(out, mask)) == [0.0, 0.0]


def test_eroded_region_leaves_out_the_seam() -> None:
    # x0 changes only on the mask's boundary ring: the eroded score is 0, the current one is not
    mask = torch.zeros(1, 1, 12, 12)
    mask[..., 2:10, 2:10] = 1.0
    ring = mask - erode(mask, 1)
    x0 = torch.zeros(4, 1, 1, 12, 12)
    x0[2] = ring  # one in-band step differs on the ring
    batch = _batch(torch.zeros(1, 3, 12, 12), mask, x0)
    assert _run("x0-variance-current", batch)[0] > 0
    assert _run("x0-variance-eroded", batch) == [0.0]
    # what is left is the mask shrunk by ERODE_CELLS on each side (here 8 - 2 * 2 cells wide)
    assert int(erode(mask, ERODE_CELLS).sum()) == (8 - 2 * ERODE_CELLS) ** 2
    # a region thinner than the erosion has nothing left: no score
    thin = torch.zeros(1, 1, 12, 12)
    thin[..., :, 5:8] = 1.0
    assert math.isnan(_run("x0-variance-eroded", _batch(torch.zeros(1, 3, 12, 12), thin, x0))[0])


def test_eroded_region_at_a_latent_resolution() -> None:
    # an image mask of 32 px over a 16-cell trajectory: resized (touching cells count), then eroded in cells
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 4:28, 4:28] = 1.0                     # cells 2..13 at half resolution
    x0 = torch.zeros(4, 1, 4, 16, 16)
    x0[2, :, :, 2:14, 2:14] = 1.0                   # changes on the resized region only
    x0[2, :, :, 4:12, 4:12] = 0.0                   # ... except its inner part after erosion by 2 cells
    batch = _batch(torch.zeros(1, 3, 32, 32), mask, x0)
    assert _run("x0-variance-eroded", batch) == [0.0] and _run("x0-variance-current", batch)[0] > 0


def test_component_variant_picks_the_worst_component() -> None:
    out = _squares(3)                                # three 3 x 3 squares
    mask = torch.zeros(1, 1, 20, 20)
    mask[..., :, :13] = 1.0                          # holds the first two squares only
    x0 = torch.zeros(4, 1, 1, 20, 20)
    x0[2, ..., 2:5, 8:11] = 1.0                      # square 2 unstable on all its 9 cells
    x0[2, ..., 2:5, 2:3] = 1.0                       # square 1 on 3 of its 9 cells
    x0[2, ..., 2:5, 14:17] = 5.0                     # square 3 very unstable, but outside the region
    x0[2, ..., 10:14, 2:10] = 3.0                    # background: not a component
    batch = _batch(out, mask, x0)
    var_one = 1.0 * (1 / 3) * (2 / 3)                # population variance of (0, 1, 0) over the 3 in-band steps
    assert _run("x0-variance-component", batch) == pytest.approx([var_one])
    # the mean, not the sum: a larger component is not favoured for its size
    assert _run("x0-variance-component", batch)[0] < _run("x0-variance-current", batch)[0]
    # no foreground in the region: no component, no score; specks below 4 cells are no components
    dark = _batch(torch.zeros(1, 3, 20, 20), mask, x0)
    assert math.isnan(_run("x0-variance-component", dark)[0])
    speck = torch.zeros(1, 3, 20, 20)
    speck[..., 2:5, 8:9] = 1.0                       # 3 cells
    assert math.isnan(_run("x0-variance-component", _batch(speck, mask, x0))[0])


def test_component_variant_keeps_items_apart() -> None:
    out = torch.cat([_squares(1), _squares(2), torch.zeros(1, 3, 20, 20)])
    x0 = torch.zeros(4, 3, 1, 20, 20)
    x0[2, 1, :, 2:5, 8:11] = 1.0                     # item 1's second square; item 0 is stable
    got = _run("x0-variance-component", _batch(out, torch.ones(3, 1, 20, 20), x0))
    assert got[:2] == pytest.approx([0.0, 2 / 9]) and math.isnan(got[2])


# --- registry and specs -----------------------------------------------------------------------------------

def test_registry_names_columns_and_errors() -> None:
    assert list(BUILTIN_DETECTORS)[:2] == ["x0-variance", "x0-variance-current"]
    assert [get_detector(n).kind for n in BUILTIN_DETECTORS].count("baseline") == 3
    assert detector_column("x0-variance-eroded") == "det_x0_variance_eroded"
    with pytest.raises(ConfigError, match="unknown detector 'nope'; available: x0-variance, .*edge-density"):
        get_detector("nope")
    with pytest.raises(ConfigError, match="could not be loaded from 'no_such_module:X'"):
        get_detector("no_such_module:X")
    with pytest.raises(ConfigError, match="is a int, not a ripbench DetectorSpec"):
        get_detector("sys:maxsize")
    with pytest.raises(ConfigError, match="more than once"):
        resolve_detectors(["x0-variance", "x0-variance"])
    with pytest.raises(ConfigError, match="is a built-in"):
        register_detector(DetectorSpec(name="edge-density", label="x", kind="baseline", compute=len))
    for bad, match in [({"name": "Bad Name"}, "must start with a letter"), ({"kind": "oracle"}, "kind 'oracle'"),
                       ({"direction": "up"}, "direction 'up'"), ({"needs": ("labels",)}, "unknown need")]:
        with pytest.raises(ConfigError, match=match):
            DetectorSpec(**{"name": "ok", "label": "ok", "kind": "detector", "compute": len, **bad})


def test_cli_lists_the_built_ins() -> None:
    listing = CliRunner().invoke(main, ["detectors"])
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    for name in BUILTIN_DETECTORS:
        line = next(x for x in lines if x.startswith(name + " "))
        assert ("[baseline, a control with no model]" in line) == (get_detector(name).kind == "baseline"), line
    assert "hallucination.detectors" in listing.output


def test_registered_and_referenced_detectors_and_bad_output() -> None:
    spec = DetectorSpec(name="ones", label="ones", kind="baseline", needs=("output",),
                        compute=lambda b: torch.ones(b.size))
    register_detector(spec)
    try:
        assert get_detector("ones") is spec
        assert get_detector("tests.test_detectors:HALF") is HALF  # a module:attr reference
        with pytest.raises(ConfigError, match="calls itself 'x0-variance'"):
            get_detector("tests.test_detectors:IMPOSTOR")
    finally:
        unregister_detector("ones")
    wrong = DetectorSpec(name="wrong", label="w", kind="baseline", compute=lambda b: torch.ones(b.size, 2))
    with pytest.raises(ModelContractError, match=r"detector 'wrong' returned shape \(2, 2\); expected \(2,\)"):
        wrong(_batch(torch.zeros(2, 3, 4, 4), torch.ones(2, 1, 4, 4)))


HALF = DetectorSpec(name="half", label="half", kind="baseline", needs=("output",),
                    compute=lambda b: torch.full((b.size,), 0.5))
IMPOSTOR = DetectorSpec(name="x0-variance", label="not the real one", kind="detector", compute=len)


def test_config_lists_detectors_and_refuses_unknown_ones() -> None:
    assert validate_config({}).hallucination.detectors == list(BUILTIN_DETECTORS)
    with pytest.raises(ConfigError) as info:
        validate_config({"hallucination": {"detectors": ["x0-variance", "typo"]}})
    message = str(info.value)
    assert "\n" not in message and "unknown detector 'typo'" in message and "edge-density" in message


# --- the run ------------------------------------------------------------------------------------------

class ToyX0(Inpainter):
    """Fills the mask with 0.8 and returns a 4-step x0 trajectory at half resolution whose in-band steps
    vary more for later items (noise levels taken from the band it is given, whatever its unit)."""

    name = "toy-x0"
    returns_x0_trajectory = True

    def inpaint(self, images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int], *,
                x0_band: Any = None) -> InpaintResult:
        out = InpaintResult(images=torch.where(masks > 0.5, torch.full_like(images, 0.8), images))
        if x0_band is not None:
            b, _, h, w = images.shape
            step = torch.arange(4.0).reshape(4, 1, 1, 1, 1) * (torch.arange(b) + 1.0).reshape(1, b, 1, 1, 1)
            out.x0_trajectory = step.expand(4, b, 4, h // 2, w // 2) * 0.1
            out.x0_noise_levels = _levels(ScoreWindow(band=x0_band))
            out.x0_noise_unit = getattr(x0_band, "unit", "t/T")
        return out


def _toy_config(tmp_path: Path, **hallucination: Any) -> dict[str, Any]:
    return {"name": "det", "iterations": 2, "size": 32, "seeds": [0],
            "inputs": {"source": "samples", "names": ["astronaut", "coffee"]},
            "masks": [{"policy": "grid", "size": 16}],
            "models": [{"name": "biharmonic"}, {"name": "tests.test_detectors:ToyX0", "label": "toy"}],
            "metrics": {"names": ["mse"]}, "batch_size": 2, "output_dir": str(tmp_path / "results"),
            **({"hallucination": hallucination} if hallucination else {})}


def test_run_writes_every_detector_column_and_records_the_specs(tmp_path: Path) -> None:
    result = run_experiment(validate_config(_toy_config(tmp_path)), progress=False)
    t, manifest = result.table, result.manifest
    columns = [detector_column(n) for n in BUILTIN_DETECTORS]
    assert [d["column"] for d in manifest["detectors"]] == columns
    assert set(manifest["detectors"][0]) >= {"name", "column", "label", "kind", "direction", "needs", "description"}
    later = t[t["iteration"] > 0]
    for col in columns:
        assert col in t.columns and t[col].dtype.kind == "f", col  # float32 values, stored like every float column
        assert t.loc[t["iteration"] == 0, col].isna().all()
    toy, classical = later[later["model"] == "toy"], later[later["model"] == "biharmonic"]
    # baselines for every model; trajectory detectors only where there is a trajectory
    for col in ("det_foreground_pixels", "det_edge_pixels", "det_edge_density"):
        assert classical[col].notna().all() and toy[col].notna().all(), col
    assert classical["det_x0_variance_current"].isna().all() and toy["det_x0_variance_current"].notna().all()
    # the toy fills the 16 x 16 mask with 0.8: 256 foreground pixels, a single component
    assert (toy["det_foreground_pixels"] == 256).all()
    # the aliases are their detectors' values
    for alias, target in ALIASES.items():
        assert np.array_equal(toy[alias].to_numpy(), toy[target].to_numpy(), equal_nan=True), alias
    # item 1 of each batch varies twice as much as item 0: 4 times the variance
    first = toy.sort_values("trajectory_id").groupby("iteration")["det_x0_variance"].agg(["min", "max"])
    assert np.allclose(first["max"] / first["min"], 4.0)


def test_run_with_some_detectors_or_none(tmp_path: Path) -> None:
    some = run_experiment(validate_config(_toy_config(tmp_path, detectors=["foreground-pixels",
                                                                            "tests.test_detectors:HALF"])),
                          progress=False)
    det = sorted(c for c in some.table.columns if c.startswith("det_"))
    assert det == ["det_foreground_pixels", "det_half"]
    assert [d["name"] for d in some.manifest["detectors"]] == ["foreground-pixels", "half"]
    assert "halluc_score" in some.table.columns  # the legacy columns stay without their detectors
    off = _toy_config(tmp_path, enabled=False)
    off["name"] = "off"
    none = run_experiment(validate_config(off), progress=False)
    assert not [c for c in none.table.columns if c.startswith("det_")] and none.manifest["detectors"] == []


def test_suite_on_a_classical_batch_never_calls_trajectory_detectors() -> None:
    calls = []
    spy = DetectorSpec(name="spy", label="spy", kind="detector", needs=("x0_trajectory",),
                       compute=lambda b: calls.append(1) or torch.zeros(b.size))
    register_detector(spy)
    try:
        cols = DetectorSuite(["spy", "edge-pixels"]).columns(
            InpaintResult(images=torch.zeros(2, 3, 8, 8)), torch.ones(2, 1, 8, 8), torch.zeros(2, 3, 8, 8))
    finally:
        unregister_detector("spy")
    assert not calls and torch.isnan(cols["det_spy"]).all() and cols["det_edge_pixels"].tolist() == [0.0, 0.0]


@pytest.mark.slow
def test_shapes_ddpm_run_has_every_detector_column(tmp_path: Path) -> None:
    cfg = {"name": "shapes", "iterations": 2, "size": 64, "seeds": [0], "inputs": {"source": "shapes", "count": 1},
           "masks": [{"policy": "columns", "count": 3}], "models": [{"name": "shapes-ddpm", "options": {"steps": 10}}],
           "hallucination": {"band": [0, 1.0]},  # 10 sampler steps put only 2 steps in the default band
           "metrics": {"names": ["mse"]}, "output_dir": str(tmp_path)}
    t = run_experiment(validate_config(cfg), progress=False).table
    later = t[t["iteration"] > 0]
    for name in BUILTIN_DETECTORS:
        assert detector_column(name) in t.columns
    for col in ("det_x0_variance", "det_x0_variance_current", "det_x0_variance_eroded", "det_edge_density"):
        assert later[col].notna().all() and (later[col] >= 0).all(), col
    for alias, target in ALIASES.items():
        assert np.array_equal(later[alias].to_numpy(), later[target].to_numpy(), equal_nan=True)


# --- the out-of-tree example package -------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` the example detector package (from a copy, so no build files land in the repo)."""
    root = tmp_path_factory.mktemp("detector-plugin")
    source, site = root / "src", root / "site"
    shutil.copytree(EXAMPLE, source)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
           "--no-index", "--target", str(site), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(site.glob("ripbench_example_detector-*.dist-info"))
    return site


def test_plugin_detectors_in_listing_table_and_manifest(installed_site: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from ripbench import analysis

    monkeypatch.syspath_prepend(str(installed_site))
    listing = CliRunner().invoke(main, ["detectors", "-v"])
    assert listing.exit_code == 0, listing.output
    assert "x0-last-change" in listing.output and "output-brightness" in listing.output
    assert "plug-in ripbench_example_detector:LAST_CHANGE" in listing.output
    assert "column det_x0_last_change; higher-is-suspect; needs x0_trajectory" in listing.output
    assert "control, no model" in listing.output

    cfg = _toy_config(tmp_path, detectors=["x0-variance-current", "x0-last-change", "output-brightness"])
    result = run_experiment(validate_config(cfg), progress=False)
    later = result.table[result.table["iteration"] > 0]
    toy, classical = later[later["model"] == "toy"], later[later["model"] == "biharmonic"]
    # the toy's x0 moves by 0.1 * (item + 1) per step: the last change is exactly that
    assert sorted(set(np.round(toy["det_x0_last_change"], 6))) == [0.1, 0.2]
    assert classical["det_x0_last_change"].isna().all()
    assert np.allclose(toy["det_output_brightness"], 0.8) and classical["det_output_brightness"].notna().all()
    recorded = {d["name"]: d for d in result.manifest["detectors"]}
    assert recorded["output-brightness"]["kind"] == "baseline"

    monkeypatch.undo()  # the plug-in is gone: the run is still read, its specs from the manifest
    with pytest.raises(ConfigError):
        get_detector("x0-last-change")
    try:
        analysis.load_runs(result.run_dir)
        spec = get_detector("x0-last-change")
        assert spec.label == "last x0 change" and spec.needs == ("x0_trajectory",)
    finally:
        unregister_detector("x0-last-change")
        unregister_detector("output-brightness")
