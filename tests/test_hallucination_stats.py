"""The report's hallucination numbers: ground truth rules, ROC/AUROC against scikit-learn, calibrated threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ripbench import hallucination_stats as hs
from ripbench.hallucination import calibrate_threshold, detection_report


def scored_table(n_traj: int = 12, iterations: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_traj):
        for it in range(iterations + 1):
            dup = it > 0 and rng.random() < 0.25
            rows.append({"trajectory_id": f"m__s{t}__columns-3__s0", "model": "m", "iteration": it, "failed": False,
                         "halluc_score": np.nan if it == 0 else rng.gamma(2.0, 2.0 if dup else 1.0) * 1e-4,
                         "shapes_reason": "duplicate" if dup else ("empty" if rng.random() < 0.05 else "ok")})
    return pd.DataFrame(rows)


def test_ground_truth_rules():
    t = pd.DataFrame({"shapes_label": ["valid", "duplicate", "empty", "wrong_column", "malformed"]})
    assert hs.ground_truth(t)[0].tolist() == [False, True, pd.NA, pd.NA, pd.NA]
    t = pd.DataFrame({"shapes_reason": ["ok", "duplicate", "empty+duplicate", "wrong_shape"]})
    assert hs.ground_truth(t)[0].tolist() == [False, True, True, pd.NA]
    t = pd.DataFrame({"shapes_valid": [True, False]})
    assert hs.ground_truth(t)[0].tolist() == [False, True]
    labels, reason = hs.ground_truth(pd.DataFrame({"halluc_score": [1.0]}))
    assert labels is None and "no ground truth" in reason


def test_roc_matches_sklearn_and_has_a_cluster_interval():
    table = scored_table()
    roc = hs.roc_analysis(table, n_boot=300)
    known = table[(table["iteration"] > 0) & (table["shapes_reason"] != "empty")]
    expected = roc_auc_score(known["shapes_reason"] == "duplicate", known["halluc_score"])
    assert roc["status"] == "ok" and roc["auroc"] == pytest.approx(expected)
    assert roc["auroc_lo"] <= roc["auroc"] <= roc["auroc_hi"] and roc["trajectories"] == 12
    assert roc["outputs"] == len(known) and roc["left_out"] == int((table["shapes_reason"] == "empty").sum())
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1
    one_class = table.assign(shapes_reason="ok")
    assert hs.roc_analysis(one_class, n_boot=10)["status"].startswith("needs both")


def test_threshold_analysis_matches_detection_report():
    table = scored_table()
    cut = hs.threshold_analysis(table, keep=0.9, n_boot=200)
    known = table[(table["iteration"] > 0) & (table["shapes_reason"] != "empty")]
    y = (known["shapes_reason"] == "duplicate").to_numpy()
    s = known["halluc_score"].to_numpy()
    assert cut["threshold"] == calibrate_threshold(s[~y], keep=0.9)
    report = detection_report(s, y, cut["threshold"])
    assert cut["detection"]["k"] == report["hallucinated_removed"] and cut["detection"]["n"] == report["n_hallucinated"]
    assert cut["retention"]["share"] == pytest.approx(report["retention"])
    assert cut["rate_after"]["share"] == pytest.approx(report["hallucination_rate_after"])
    for key in ("detection", "retention", "rate_before", "rate_after"):
        assert cut[key]["lo"] <= cut[key]["share"] <= cut[key]["hi"]


def test_score_bands():
    bands = hs.score_bands(scored_table(iterations=8), n_boot=100)
    assert bands["band"].tolist() == ["1-2", "3-4", "5-6", "7-8"]
    assert bands["outputs"].tolist() == [24] * 4 and (bands["trajectories"] == 12).all()
    assert (bands["mean_lo"] <= bands["mean"]).all() and "halluc_rate" in bands.columns
    assert hs.iteration_bands(0) == []
