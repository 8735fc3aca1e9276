"""Recursive inpainting of Simple Shapes with labeller ground truth (the shapes-rip reproduction)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ripbench.datasets.shapes import label_shapes, paste_shape
from ripbench.hallucination.shapes_truth import generation_labels, generation_table
from ripbench.inputs import load_shapes
from ripbench.repro.shapes_rip import (
    BASELINES,
    VARIANTS,
    add_content_baselines,
    band_config,
    calibration_split,
    compare_with_baselines,
    detection_by_band,
    image_kinds_per_iteration,
    run_shapes_rip,
    score_variants,
    shapes_baselines,
    shapes_rip_config,
)
from ripbench.run.annotators import shapes_annotations


def test_annotations_tell_duplicates_from_other_invalid_images():
    imgs = torch.stack([i.pixels for i in load_shapes(6, 64, seed=3)])
    ann = shapes_annotations(imgs)
    assert ann["shapes_valid"] == [True] * 6 and ann["shapes_label"] == ["valid"] * 6
    doubled = np.zeros((64, 64), np.float32)
    paste_shape(paste_shape(doubled, "pentagon", 2, 8, 10), "pentagon", 2, 8, 40)
    wrong = paste_shape(np.zeros((64, 64), np.float32), "square", 2, 5, 5)
    batch = torch.from_numpy(np.stack([doubled, np.zeros((64, 64), np.float32), wrong]))[:, None].expand(-1, 3, -1, -1)
    ann = shapes_annotations(batch)
    assert ann["shapes_valid"] == [False, False, False]
    assert ann["shapes_label"] == ["duplicate", "empty", "wrong_shape"]
    assert ann["shapes_layout"] == ["||PP", "||", "||S"]
    assert ann["shapes_boxes"][1] == "" and ann["shapes_boxes"][2].startswith("S")
    assert [b[0] for b in ann["shapes_boxes"][0].split(";")] == ["P", "P"]


def test_region_shapes_count_the_shapes_in_the_mask_box():
    img = paste_shape(paste_shape(np.zeros((64, 64), np.float32), "square", 1, 2, 3), "square", 1, 4, 40)
    label = label_shapes(img)[0]
    assert label.layout == "|SS|"
    boxes = label.box_text
    rows = pd.DataFrame({"trajectory_id": ["t"] * 3, "iteration": [0, 1, 2], "shapes_layout": ["|S|", "|SS|", "|SS|"],
                         "shapes_label": ["valid", "duplicate", "duplicate"], "shapes_boxes": [None, boxes, boxes],
                         "mask_x0": [None, 21, 21], "mask_x1": [None, 42, 42], "mask_y0": [None, 32, 0],
                         "mask_y1": [None, 64, 32]})
    # a box over the lower half of the middle column makes the second square (one shape in the box, one
    # outside); then a box over the upper half repaints the first and leaves the duplicate (carried)
    out = generation_table(rows)
    assert out["generation"].tolist() == ["duplicate", "carried"] and out["region_shapes"].tolist() == [1, 1]
    assert out.attrs["region_shapes"] == "box"
    by_columns = generation_table(rows.drop(columns="shapes_boxes"))  # no positions: whole columns
    assert by_columns["region_shapes"].tolist() == [2, 2] and by_columns.attrs["region_shapes"] == "columns"


def test_content_baselines_from_images_and_masks(tmp_path):
    img = paste_shape(np.zeros((64, 64), np.float32), "square", 1, 4, 10)
    mask = np.zeros((64, 64), np.float32)
    mask[:, 21:42] = 1.0
    values = shapes_baselines(np.stack([img, img]), np.stack([mask, np.zeros_like(mask)]))
    assert values["det_foreground_pixels"][0] == float((img > 0.5).sum())  # the whole square is in the column
    assert 0 < values["det_edge_pixels"][0] < 64 and np.isnan(values["det_foreground_pixels"][1])
    # from a run's saved images: the same numbers
    from PIL import Image

    folder = tmp_path / "images" / "t"
    folder.mkdir(parents=True)
    Image.fromarray((img * 255).astype(np.uint8)).save(folder / "iter_0001.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "mask_0001.png")
    table = pd.DataFrame({"trajectory_id": ["t", "t", "t"], "iteration": [0, 1, 2]})
    out = add_content_baselines(table, tmp_path)
    assert out.loc[1, "det_foreground_pixels"] == values["det_foreground_pixels"][0]
    assert out.loc[1, "det_edge_pixels"] == values["det_edge_pixels"][0]
    assert out.loc[[0, 2], list(BASELINES)].isna().all().all()  # no image saved: no value
    same = table.assign(det_foreground_pixels=1.0, det_edge_pixels=2.0)
    assert add_content_baselines(same, tmp_path) is same  # columns the run wrote are kept


def test_noise_bands_reach_the_config():
    from ripbench.config import validate_config
    from ripbench.hallucination import DEFAULT_BAND, PAPER_BAND

    for band, expected in (("default", DEFAULT_BAND), ("paper", PAPER_BAND), (0.1, (0.0, 0.1))):
        cfg = validate_config(shapes_rip_config(Path("/tmp/x"), band=band, iterations=4))
        assert tuple(cfg.hallucination.window) == tuple(expected)
        assert cfg.snapshot_iterations() == [0, 1, 2, 3, 4]  # every image saved: baselines can be computed
    assert band_config("default") == {}
    with pytest.raises(Exception, match="unknown noise band"):
        band_config("widest")
    assert score_variants(pd.DataFrame(columns=["halluc_score", "det_x0_variance", "det_x0_variance_current"])) == [
        "det_x0_variance_current", "det_x0_variance"]


def _rows(layouts: list[str], masks: list[tuple[int, int]], kinds: list[str] | None = None,
          trajectory: str = "t") -> pd.DataFrame:
    """A one-trajectory table: iteration 0 first, then one masked column span ``(x0, x1)`` per iteration."""
    n = len(layouts)
    return pd.DataFrame({
        "trajectory_id": [trajectory] * n, "iteration": range(n), "shapes_layout": layouts,
        "shapes_label": kinds or ["valid"] * n,
        "mask_x0": [None, *(m[0] for m in masks)], "mask_x1": [None, *(m[1] for m in masks)],
        "mask_y0": [None, *([0] * len(masks))], "mask_y1": [None, *([64] * len(masks))],
    })


def test_generation_labels_follow_the_repainted_column():
    table = _rows(
        ["T|S|", "T|SS|", "TT|SS|", "T|SS|", "T|SS|?", "||"],
        [(21, 42), (0, 21), (0, 21), (42, 63), (0, 64)],
        ["valid", "duplicate", "duplicate", "duplicate", "duplicate", "empty"],
    )
    # 1: a new duplicate in the repainted middle column; 2: another one on the left; 3: the left column is
    # repainted validly while the old duplicate stays in the middle (not this generation's doing); 4: an
    # unreadable blob painted on the right; 5: everything repainted, nothing left
    labels = generation_labels(table).tolist()
    assert labels == ["duplicate", "duplicate", "valid", "malformed", "empty"]


def test_partly_repainted_duplicate_is_carried_not_new():
    table = _rows(["|SS|", "|SS|", "|SS|"], [(10, 30), (21, 42)], ["duplicate"] * 3)
    table.loc[1, ["mask_y0", "mask_y1"]] = [0, 32]  # a box over part of the column
    assert generation_labels(table).tolist() == ["carried", "duplicate"]


def test_wrong_shape_and_empty_generations():
    table = _rows(["T||", "T||P", "T|P|", "||"], [(42, 63), (21, 42), (0, 21)],
                  ["valid", "valid", "wrong_shape", "empty"])
    assert generation_labels(table).tolist() == ["valid", "wrong_shape", "empty"]


def test_calibration_split_keeps_trajectories_whole():
    ids = pd.Series([f"t{i // 4}" for i in range(40)])
    cal = calibration_split(ids, seed=1, share=0.5)
    assert cal.sum() == 20  # half of the ten trajectories, whole trajectories only
    assert all(len(set(cal[ids == t])) == 1 for t in ids.unique())
    assert np.array_equal(cal, calibration_split(ids, seed=1, share=0.5))
    assert calibration_split(ids, seed=1).sum() == 8  # a quarter of the ten trajectories, rounded: two


def _synthetic_run(separation: float, n_traj: int = 40, iterations: int = 6, seed: int = 0) -> pd.DataFrame:
    """Trajectories where odd iterations repaint the middle column with a duplicate (score + separation)."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n_traj):
        layouts, masks, kinds = ["T|S|"], [], ["valid"]
        for k in range(1, iterations + 1):
            dup = (k + t) % 3 == 0
            layouts.append("T|SS|" if dup else "T|S|")
            kinds.append("duplicate" if dup else "valid")
            masks.append((21, 42))
        frame = _rows(layouts, masks, kinds, trajectory=f"t{t}")
        frame["halluc_score_current"] = rng.random(len(frame)) + separation * (frame["shapes_label"] == "duplicate")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_detection_by_band_known_answer():
    det = detection_by_band(_synthetic_run(separation=2.0), bands=2, n_boot=200)
    assert det["band"].tolist() == ["1-3", "4-6", "all"]
    pooled = det.set_index("band").loc["all"]
    assert pooled["generations"] == 240 and pooled["duplicate"] + pooled["valid"] == 240
    assert pooled["auroc"] == 1.0 and pooled["auroc_lo"] == pytest.approx(1.0)
    assert pooled["removed"] == 1.0 and 0.9 <= pooled["kept"] <= 1.0
    assert pooled["n_kept_of"] + pooled["n_calibration_valid"] == pooled["valid"]
    assert pooled["hallucination_rate_lo"] < pooled["hallucination_rate"] < pooled["hallucination_rate_hi"]
    chance = detection_by_band(_synthetic_run(separation=0.0), bands=1, n_boot=200).set_index("band").loc["all"]
    assert chance["auroc_lo"] < 0.5 < chance["auroc_hi"] and chance["auroc_hi"] - chance["auroc_lo"] < 0.3


def test_image_kinds_per_iteration_sum_to_one():
    kinds = image_kinds_per_iteration(_synthetic_run(1.0, n_traj=5))
    assert kinds["n"].tolist() == [5] * 7
    assert np.allclose(kinds[["duplicate", "wrong_shape", "malformed", "empty", "valid"]].sum(axis=1), 1.0)


def test_compare_with_baselines_on_generations():
    table = _synthetic_run(separation=2.0, n_traj=24)
    rows = table[table["iteration"] > 0].copy()
    generations = generation_table(table)
    rows[["generation", "region_shapes"]] = generations
    rows.attrs["region_shapes"] = generations.attrs["region_shapes"]
    rows["det_foreground_pixels"] = 60.0 * rows["region_shapes"]
    rows["det_edge_pixels"] = 28.0 * rows["region_shapes"]
    out = compare_with_baselines(rows, n_boot=100)
    result = out["halluc_score_current"]
    # a duplicate holds two shapes in its column, a valid generation one: the content baselines separate them
    # perfectly, and no pair shares a number of shapes
    assert result["auroc"]["det_foreground_pixels"]["value"] == 1.0 and result["matched_pairs"] == 0
    assert result["verdict"] == "matches" and result["difference"]["det_foreground_pixels"]["value"] == 0.0
    assert result["region_rule"] == generations.attrs["region_shapes"]


@pytest.mark.slow
def test_short_shapes_rip_run(tmp_path):
    # 25 sampler steps: 4 in the default band, 1 in the paper's (too few: that variant has no score)
    out = run_shapes_rip(tmp_path / "srip", images=2, seeds=(0, 1), iterations=2, steps=25, batch_size=4,
                         iteration_bands=2, n_boot=50, progress=False)
    run_dir = tmp_path / "srip" / "band-default"
    table = pd.read_parquet(next((run_dir / "metrics").glob("part-*.parquet")))
    assert {"shapes_valid", "shapes_label", "shapes_layout", "shapes_boxes", "halluc_score",
            "halluc_score_current", *VARIANTS, *BASELINES} <= set(table.columns)
    later = table[table["iteration"] > 0]
    assert table.loc[table["iteration"] == 0, "shapes_valid"].all()
    assert later["det_x0_variance_current"].gt(0).all() and later["det_x0_variance_current_paper"].isna().all()
    # known region kept exactly: only the repainted column changes
    assert np.allclose(later["mse_prev_outside"], 0.0, atol=1e-12)
    det = out["detection"]["det_x0_variance_current"]
    assert det["band"].tolist() == ["1", "2", "all"] and det["generations"].tolist() == [4, 4, 8]
    assert set(out["results"]) == {"default"} and out["results"]["default"]["unit"] == "sigma"
    assert out["table"]["det_foreground_pixels"].notna().sum() == 8  # the detector's column, from the run
    for path in out["paths"].values():
        assert path.is_file() and path.stat().st_size > 0
    saved = json.loads(out["paths"]["json"].read_text())
    assert saved["trajectories"] == 4 and "two or more copies" in saved["definition"]
    assert saved["sizing"]["target"] == 100 and saved["sizing"]["short"] is True
    comparison = saved["noise_bands"]["default"]["comparison"]
    assert set(comparison) == set(VARIANTS)
    for result in comparison.values():
        assert {"auroc", "difference", "matched", "residual", "best_baseline", "verdict", "duplicates", "valid",
                "matched_pairs"} <= set(result)
        assert result["baselines"] == list(BASELINES)
    flat = pd.read_csv(out["paths"]["comparison"])
    assert set(flat["noise_band"]) == {"default"} and set(flat["column"]) >= set(BASELINES)
    report = out["paths"]["report"].read_text()
    assert "ripbench repro shapes-rip --images 2 --seeds 0,1 --iterations 2 --steps 25" in report
    assert "--noise-bands default" in report and "paper's band" in report and "sigma/sqrt(alpha_bar)" in report
    assert "against the target of 100 per mask mode" in report and "content baseline" in report


def test_noise_bands_option():
    from ripbench.cli import _noise_bands

    assert _noise_bands("default,paper, 0.1,0.02:0.2") == ["default", "paper", 0.1, [0.02, 0.2]]
