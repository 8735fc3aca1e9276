"""Diffusers pipelines through the whole harness, offline, as a user runs them: saved to a folder, then by path."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from ripbench.cli import main
from ripbench.config import validate_config
from ripbench.run import run_experiment
from tests.tiny_pipelines import tiny_flux_fill, tiny_sd3_inpaint, tiny_sd_inpaint, tiny_sdxl_inpaint


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("saved_pipes")
    folders = {}
    for name, pipe in (("sd9", tiny_sd_inpaint(root / "tok9", in_channels=9)),
                       ("sd4", tiny_sd_inpaint(root / "tok4", in_channels=4, seed=1)),
                       ("sdxl", tiny_sdxl_inpaint(root / "tokxl")),
                       ("sd3", tiny_sd3_inpaint(root / "tok3")),
                       ("flux-fill", tiny_flux_fill(root / "tokflux"))):
        pipe.save_pretrained(root / name)
        folders[name] = root / name
    return folders


def _config(tmp_path, model_dir, **options) -> dict:
    return {
        "name": "dif", "iterations": 3, "size": 32, "seeds": [0, 1],
        "inputs": {"source": "samples", "names": ["astronaut"]},
        "masks": [{"policy": "grid", "size": 16}],
        "models": [{"name": str(model_dir), "options": {"steps": 4, "device": "cpu", "local_files_only": True,
                                                         **options}}],
        "metrics": {"names": ["ssim", "mse"]},
        "hallucination": {"band": [0, 10.0]},  # sigma: 3-4 of the 4 steps (flow matching's first, s = 1, is inf)
        "batch_size": 2, "output_dir": str(tmp_path / "res"),
    }


#: DDIM for the Stable Diffusion family, each pipeline's own flow-matching Euler for SD3 and Flux.
_SCHEDULER = {"sd9": "ddim", "sd4": "ddim", "sdxl": "ddim", "sd3": None, "flux-fill": None}


@pytest.mark.parametrize("kind", ["sd9", "sd4", "sdxl", "sd3", "flux-fill"])
def test_pipeline_through_harness(kind, saved, tmp_path):
    options = {"scheduler": _SCHEDULER[kind]} if _SCHEDULER[kind] else {"strength": 1.0}
    result = run_experiment(validate_config(_config(tmp_path, saved[kind], **options)), progress=False)
    t = result.table
    later = t[t["iteration"] > 0]
    assert t["trajectory_id"].nunique() == 2 and len(t) == 2 * 4 and not t["failed"].any()
    # the trajectory-variance score is computed every iteration, overall and inside the mask,
    # from the steps whose noise level lies in the band, which every row records
    assert (later["halluc_status"] == "ok").all() and (later["halluc_steps"] >= 3).all()
    assert later["halluc_score"].notna().all() and (later["halluc_score"] > 0).all()
    assert later["halluc_score_current"].notna().all()
    assert (later["halluc_band_lo"] == 0.0).all() and np.allclose(later["halluc_band_hi"], 10.0)
    assert (later["halluc_band_unit"] == "sigma").all()
    assert t.loc[t["iteration"] == 0, "halluc_status"].isna().all()
    ident = result.manifest["models"][kind]
    assert ident["hallucination_band"] == [0.0, 10.0] and ident["hallucination_band_unit"] == "sigma"
    # paste-back (default): nothing outside the mask changes from one iteration to the next
    assert np.allclose(later["mse_prev_outside"], 0.0, atol=1e-12)
    assert (later["mse_orig_current"] > 0).all()


def test_paste_back_off_drifts_outside_the_mask(saved, tmp_path):
    cfg = _config(tmp_path, saved["sd9"], paste_back=False, scheduler="ddim")
    t = run_experiment(validate_config(cfg), progress=False).table
    assert (t[t["iteration"] > 0]["mse_prev_outside"] > 0).all()


def test_cli_runs_a_saved_pipeline_by_path(saved, tmp_path):
    res = CliRunner().invoke(main, [
        "run", "--model", str(saved["sd9"]), "--model-opt", "steps=3", "--model-opt", "local_files_only=true",
        "--iterations", "2", "--size", "32", "--mask", "box:0.2", "--set", "metrics.names=[mse]",
        "--set", "inputs.names=[coffee]", "--output-dir", str(tmp_path / "cli"), "--name", "bypath", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "sd9" in res.output and (tmp_path / "cli" / "bypath" / "figures" / "collapse_curves.png").is_file()
