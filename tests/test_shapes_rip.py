"""Recursive inpainting of Simple Shapes with labeller ground truth (the shapes-rip reproduction)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ripbench.datasets.shapes import generation_labels, paste_shape
from ripbench.inputs import load_shapes
from ripbench.repro.shapes_rip import (
    calibration_split,
    detection_by_band,
    image_kinds_per_iteration,
    run_shapes_rip,
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


@pytest.mark.slow
def test_short_shapes_rip_run(tmp_path):
    out = run_shapes_rip(tmp_path / "srip", images=3, seeds=(0, 1), iterations=2, steps=10, batch_size=6,
                         bands=2, band=1.0, progress=False)  # sigma <= 1: t = 200, 100, 0 of the 10 steps
    table = pd.read_parquet(next((tmp_path / "srip" / "metrics").glob("part-*.parquet")))
    assert {"shapes_valid", "shapes_label", "shapes_layout", "halluc_score", "halluc_score_current"} <= set(table.columns)
    assert table.loc[table["iteration"] == 0, "shapes_valid"].all()
    assert table.loc[table["iteration"] > 0, "halluc_score_current"].gt(0).all()
    # known region kept exactly: only the repainted column changes
    assert np.allclose(table.loc[table["iteration"] > 0, "mse_prev_outside"], 0.0, atol=1e-12)
    det = out["detection"]["halluc_score_current"]
    assert det["band"].tolist() == ["1", "2", "all"] and det["generations"].tolist() == [6, 6, 12]
    for path in out["paths"].values():
        assert path.is_file() and path.stat().st_size > 0
    saved = json.loads(out["paths"]["json"].read_text())
    assert saved["trajectories"] == 6 and "two or more copies" in saved["definition"]
    report = out["paths"]["report"].read_text()
    assert "ripbench repro shapes-rip --images 3 --seeds 0,1 --iterations 2 --steps 10" in report
