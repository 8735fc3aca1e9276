"""The report's hallucination section: generation-level truth and the best content baseline next to the score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ripbench.hallucination import stats as hs
from ripbench.report import how_to_read, write_report
from ripbench.store import RunStore
from tests.test_hallucination_stats import shapes_run_table


def _run_folder(folder, detectors: bool) -> pd.DataFrame:
    table = shapes_run_table(n_traj=16, iterations=6)
    tid = table["trajectory_id"]
    table["image_id"] = tid.str.split("__").str[1]
    table["category"] = "shapes"
    table["mask_policy"], table["mask_label"], table["seed"] = "columns", "columns-3", 0
    table["ssim_orig"] = 1.0 - 0.05 * table["iteration"]
    table["mse_orig"] = 0.01 * table["iteration"]
    if detectors:
        table = table.rename(columns={"halluc_score_current": "det_x0_variance_current"})
    store = RunStore(folder)
    store.write_part(table)
    manifest = {"name": folder.name, "status": "complete", "config": {"iterations": 6, "size": 64}}
    if detectors:
        manifest["detectors"] = [
            {"name": "x0-variance-current", "column": "det_x0_variance_current", "label": "x0 variance in region",
             "kind": "detector", "direction": "higher-is-suspect"},
            {"name": "foreground-pixels", "column": "det_foreground_pixels", "label": "foreground pixels",
             "kind": "baseline", "direction": "higher-is-suspect"}]
    store.write_manifest(manifest)
    return table


@pytest.mark.slow
def test_report_uses_generation_truth_and_shows_the_baseline(tmp_path):
    table = _run_folder(tmp_path / "shapes", detectors=True)
    labels, _ = hs.ground_truth(table)
    made = int(labels.fillna(False).sum())
    carried = int((table.loc[table["iteration"] > 0, "shapes_label"] == "duplicate").sum())
    assert made < carried
    paths = write_report(tmp_path / "shapes", tmp_path / "out", n_boot=100)
    text = paths["markdown"].read_text()
    assert "generation level" in text  # the ground truth named
    assert f"{made} hallucinated)" in text and f"{carried} hallucinated)" not in text
    assert "the content baseline foreground pixels (a control with no model in it)" in text
    assert "(baseline) (a control" not in text and "it,:" not in text
    assert "held-out AUROC" in text and "difference" in text
    assert "Scores against the best content baseline" in text
    assert "x0 variance in region" in text
    # every AUROC in the sentences with two decimals
    for line in text.splitlines():
        if "Detecting hallucinated outputs" in line:
            value = line.split("AUROC ")[1].split(" ")[0]
            assert len(value.split(".")[1]) == 2, line
    html = paths["html"].read_text()
    assert "a control with no model in it" in html


def test_how_to_read_says_a_baseline_is_a_control():
    from ripbench.analysis import collapse_rule

    entries = dict(how_to_read(collapse_rule(pd.DataFrame({"ssim_orig": [1.0]}), None), 0.95))
    assert "control with no model in it" in entries["Hallucination"]
    assert "generation" in entries["Hallucination"]


@pytest.mark.slow
def test_report_without_baseline_says_so(tmp_path):
    table = _run_folder(tmp_path / "legacy", detectors=False)
    table = table.drop(columns="det_foreground_pixels")
    for part in RunStore(tmp_path / "legacy").part_files():
        part.unlink()
    RunStore(tmp_path / "legacy").write_part(table)
    text = write_report(tmp_path / "legacy", tmp_path / "out2", n_boot=100)["markdown"].read_text()
    assert "no content-baseline column" in text
    assert np.isfinite(table["halluc_score_current"]).any()
