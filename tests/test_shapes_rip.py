"""Recursive inpainting of Simple Shapes with labeller ground truth (the shapes-rip reproduction)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ripbench.harness import shapes_annotations
from ripbench.inputs import load_shapes
from ripbench.repro.shapes_rip import per_iteration_detection, run_shapes_rip


def test_annotations_call_originals_valid_and_duplicates_hallucinated():
    import torch

    imgs = torch.stack([i.pixels for i in load_shapes(6, 32, seed=3)])
    ann = shapes_annotations(imgs)
    assert ann["shapes_valid"] == [True] * 6
    doubled = imgs.clone()
    # stack a copy of the left column's content 12 px lower: two shapes in one column
    doubled[0, :, 12:, :10] = torch.maximum(doubled[0, :, 12:, :10], imgs[0, :, :-12, :10])
    blank = torch.zeros_like(imgs[:1])
    ann = shapes_annotations(torch.cat([doubled[:1], blank]))
    assert ann["shapes_valid"] == [False, False]
    assert ann["shapes_reason"][1] == "empty"


def test_per_iteration_detection_known_answer():
    rng = np.random.default_rng(0)
    rows = []
    for k in (1, 2):
        for i in range(100):
            bad = i < 20 * k  # 20% then 40% hallucinated
            rows.append({"iteration": k, "shapes_valid": not bad, "halluc_score_current": rng.random() + (2.0 if bad else 0)})
    out = per_iteration_detection(pd.DataFrame(rows))
    assert out["hallucination_rate"].tolist() == [0.2, 0.4]
    assert (out["auroc"] == 1.0).all() and (out["removed"] == 1.0).all()
    assert (out["kept"] >= 0.95).all()


@pytest.mark.slow
def test_short_shapes_rip_run(tmp_path):
    out = run_shapes_rip(tmp_path / "srip", images=3, seeds=(0, 1), iterations=2, steps=5, batch_size=6,
                         progress=False)
    per = out["per_iteration"]
    assert per["iteration"].tolist() == [1, 2] and (per["images"] == 6).all()
    table = pd.read_parquet(next((tmp_path / "srip" / "metrics").glob("part-*.parquet")))
    assert {"shapes_valid", "shapes_reason", "halluc_score", "halluc_score_current"} <= set(table.columns)
    assert table.loc[table["iteration"] == 0, "shapes_valid"].all()
    assert table.loc[table["iteration"] > 0, "halluc_score_current"].gt(0).all()
    # known region kept exactly: only the repainted column changes
    assert np.allclose(table.loc[table["iteration"] > 0, "mse_prev_outside"], 0.0, atol=1e-12)
    for path in out["paths"].values():
        assert path.is_file() and path.stat().st_size > 0
    saved = json.loads(out["paths"]["json"].read_text())
    assert saved["overall"]["trajectories"] == 6
