"""The RIP protocol's randomness, regions and presets (issue 9): trajectories independent across
images, paired across models, the same for any batch size and after a resume."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

from ripbench.cli import main
from ripbench.config import load_preset, validate_config
from ripbench.models import Inpainter, InpaintResult
from ripbench.run import TIMING_COLUMNS, noise_seed, run_experiment, trajectory_key
from ripbench.store import RunStore

BOX = ["mask_y0", "mask_x0", "mask_y1", "mask_x1"]


class _Noisy(Inpainter):
    """Fills the mask with noise drawn from the item's seed; remembers every seed it was given."""

    name = "noisy"
    seen: list[int] = []

    def inpaint(self, images, masks, seeds):
        type(self).seen.extend(int(s) for s in seeds)
        noise = torch.stack([torch.rand(images.shape[1:], generator=torch.Generator().manual_seed(int(s)))
                             for s in seeds])
        return InpaintResult(images=images * (1 - masks) + noise * masks)


def _run(data: dict, **kw):
    return run_experiment(validate_config(data), progress=False, **kw)


def _sequences(table: pd.DataFrame) -> dict[tuple, tuple]:
    """(model, image, mask label, seed) -> the sequence of mask boxes over the iterations."""
    later = table[table["iteration"] > 0].sort_values("iteration")
    return {key: tuple(map(tuple, g[BOX].to_numpy().tolist()))
            for key, g in later.groupby(["model", "image_id", "mask_label", "seed"])}


@pytest.fixture
def noisy_config(tiny_config_data: dict) -> dict:
    tiny_config_data["models"] = [{"name": f"{__name__}:_Noisy", "label": "noisy-a"},
                                  {"name": f"{__name__}:_Noisy", "label": "noisy-b"}]
    tiny_config_data["iterations"] = 4
    return tiny_config_data


def test_keys_are_stable_and_distinct() -> None:
    keys = {trajectory_key(s, img, lab) for s in range(3) for img in ("a", "b") for lab in ("grid-8", "grid-16")}
    assert len(keys) == 12
    assert trajectory_key(0, "a", "grid-8") == trajectory_key(0, "a", "grid-8")
    seeds = {noise_seed(k, it) for k in keys for it in range(1, 30)}
    assert len(seeds) == 12 * 29 and all(0 <= s < 2**63 for s in seeds)


def test_images_independent_models_paired(noisy_config: dict) -> None:
    _Noisy.seen = []
    table = _run(noisy_config).table
    seq = _sequences(table)
    for model in ("noisy-a", "noisy-b"):
        for label in ("grid-8", "grid-16"):
            for seed in (0, 1):
                a, b = seq[(model, "astronaut", label, seed)], seq[(model, "coffee", label, seed)]
                assert a != b, "two images of one run share their mask sequence"
    for (model, image, label, seed), boxes in seq.items():
        if model == "noisy-a":
            assert seq[("noisy-b", image, label, seed)] == boxes  # paired across models
    # noise: every (trajectory, iteration) of one model has its own seed; the other model gets the same ones
    per_model = len(_Noisy.seen) // 2
    first, second = _Noisy.seen[:per_model], _Noisy.seen[per_model:]
    assert len(set(first)) == len(first) == 8 * 4
    assert sorted(first) == sorted(second)
    # paired on purpose: the same noise gives the same pixels for the two model labels
    a = table[table["model"] == "noisy-a"].drop(columns=["model", "trajectory_id", *TIMING_COLUMNS])
    b = table[table["model"] == "noisy-b"].drop(columns=["model", "trajectory_id", *TIMING_COLUMNS])
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_batch_size_and_resume_do_not_change_the_table(noisy_config: dict, tmp_path: Path) -> None:
    noisy_config["batch_size"] = 1
    one = _run(noisy_config).table.drop(columns=TIMING_COLUMNS)
    noisy_config["batch_size"] = 8
    noisy_config["output_dir"] = str(tmp_path / "b8")
    eight = _run(noisy_config)
    pd.testing.assert_frame_equal(one, eight.table.drop(columns=TIMING_COLUMNS))
    # interrupted: lose two batches' worth, resume with another batch size
    store = RunStore(eight.run_dir)
    for part in store.part_files()[:1]:
        part.unlink()
    noisy_config["batch_size"] = 3
    resumed = _run(noisy_config)
    assert resumed.skipped > 0
    pd.testing.assert_frame_equal(one, resumed.table.drop(columns=TIMING_COLUMNS))


def test_region_columns(tiny_config_data: dict) -> None:
    tiny_config_data["masks"] = [{"policy": "columns", "count": 2}]
    tiny_config_data["iterations"] = 6
    t = _run(tiny_config_data).table
    for metric in ("ssim", "psnr", "mse"):
        for ref in ("orig", "prev"):
            for region in ("", "_current", "_outside", "_ever", "_never"):
                assert f"{metric}_{ref}{region}" in t.columns
    first, later = t[t["iteration"] == 0], t[t["iteration"] > 0]
    assert (first["mse_orig_never"] == 0).all() and first["mse_orig_ever"].isna().all()
    assert first["mse_orig_current"].isna().all()
    # biharmonic repaints only inside the mask: the never-masked pixels are exactly the original
    known = later.dropna(subset=["mse_orig_never"])
    assert len(known) and (known["mse_orig_never"] == 0).all() and (known["psnr_orig_never"] == np.inf).all()
    assert (later["mse_orig_ever"] > 0).all()
    # once both columns were repainted nothing is "never masked": missing, not 0
    covered = later[later["cum_mask_area"] >= 1.0]
    assert len(covered) and covered["mse_orig_never"].isna().all() and covered["ssim_orig_never"].isna().all()
    # "ever" grows with the union of masks
    assert (later["cum_mask_area"] >= later["mask_area"]).all()


def test_identical_pixels_different_names_cli(tmp_path: Path) -> None:
    """The issue's acceptance run: 3 identical images, 2 models, 2 grids, 2 seeds."""
    pytest.importorskip("cv2")
    folder = tmp_path / "imgs"
    folder.mkdir()
    pixels = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    for name in ("one", "two", "three"):
        Image.fromarray(pixels).save(folder / f"{name}.png")
    out = tmp_path / "results"
    res = CliRunner().invoke(main, [
        "run", "--model", "biharmonic", "--model", "telea", "--mask", "grid:16", "--mask", "grid:32",
        "--seeds", "0,1", "--images", str(folder), "--size", "64", "-n", "6", "--set", "metrics.names=[mse]",
        "--output-dir", str(out), "--name", "same", "--no-progress"])
    assert res.exit_code == 0, res.output
    table = RunStore(out / "same").load_table()
    seq = _sequences(table)
    for model in ("biharmonic", "telea"):
        for label in ("grid-16", "grid-32"):
            for seed in (0, 1):
                three = {seq[(model, image, label, seed)] for image in ("one", "two", "three")}
                assert len(three) == 3
    assert all(seq[("telea", *rest)] == boxes for (m, *rest), boxes in seq.items() if m == "biharmonic")


def test_rip_paper_preset_feeds_whole_output_back() -> None:
    res = CliRunner().invoke(main, ["config", "--preset", "rip-paper"])
    assert res.exit_code == 0
    assert "paste_back: false" in res.output
    cfg = load_preset("rip-paper")
    assert cfg.models[0].options["paste_back"] is False
    assert [m["size"] for m in cfg.masks] == [64, 128, 256] and cfg.size == 512
    ablation = load_preset("rip-paper-pasteback")
    assert ablation.models[0].options["paste_back"] is True
    # the ablation differs in exactly one setting (plus its name/description)
    a = yaml.safe_dump(cfg.model_dump(mode="json", exclude={"name", "description"}))
    b = yaml.safe_dump(ablation.model_dump(mode="json", exclude={"name", "description"}))
    assert [line for line in a.splitlines() if line not in b.splitlines()] == ["    paste_back: false"]


@pytest.mark.parametrize("args, message", [
    (["--mask", "grid:64", "--size", "32"], r"square size 64 is larger than the 32x32 image"),
    (["--mask", "columns:40", "--size", "32"], r"40 columns do not fit"),
    (["--mask", "grid:32", "--size", "32"], r"would cover the whole 32x32 image"),
    (["-n", "0"], r"iterations.*greater than or equal to 1"),
])
def test_bad_protocol_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "results"
    res = CliRunner().invoke(main, ["run", "--model", "biharmonic", "--set", "metrics.names=[mse]",
                                    "--output-dir", str(out), "--name", "bad", "--no-progress", *args])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(message, lines[0]), res.output
    assert "Traceback" not in res.output
    assert not (out / "bad").exists()
