"""Findings read direction and labels from the metric specs, carry n and a CI, and say when a result is weak."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from ripbench import analysis, compare, findings
from ripbench.stats import fmt_interval


def _table(finals: dict[str, float], metric: str, n: int = 6, noise: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """Trajectories per model drifting linearly from the metric's identity to about ``finals[model]``."""
    rng = np.random.default_rng(seed)
    start = 1.0 if metric.startswith("ssim") else 0.0
    rows = []
    for model, final in finals.items():
        for i in range(n):
            end = final + rng.normal(0, noise)
            for it in range(11):
                rows.append({"trajectory_id": f"{model}__img{i}__grid-8__s0", "model": model, "image_id": f"img{i}",
                             "mask_label": "grid-8", "seed": 0, "iteration": it, "failed": False,
                             metric: start + (end - start) * it / 10})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("metric, finals, worst, best", [
    ("ssim_orig", {"steady": 0.9, "drifter": 0.3, "middle": 0.6}, "drifter", "steady"),   # higher is better
    ("lpips_orig", {"steady": 0.1, "drifter": 0.7, "middle": 0.4}, "drifter", "steady"),  # lower is better
])
def test_fastest_drift_names_the_worst_final_value_in_the_metric_direction(metric, finals, worst, best):
    table = _table(finals, metric)
    summary = analysis.group_summary(table, by=["model"], n_boot=200)
    text = findings.fastest_drift(summary, ["model"], table=table)
    assert text.startswith(f"Fastest drift: {worst}, with the worst final {findings.metric_phrase(metric)}")
    assert f"Slowest: {best}," in text
    assert "n = 6 trajectories" in text and "95% CI" in text
    assert "overlaps" not in text  # the groups are far apart
    assert "higher is better" in text if metric.startswith("ssim") else "lower is better" in text
    # the value quoted is the group's mean at the last iteration
    final = summary.set_index("model").loc[worst, summary.attrs["final"]]
    assert fmt_interval(final, 0, 0)[0] in text


def test_fastest_drift_says_when_intervals_overlap_and_when_inputs_differ():
    table = _table({"a": 0.40, "b": 0.41}, "lpips_orig", noise=0.05)
    summary = analysis.group_summary(table, by=["model"], n_boot=200)
    text = findings.fastest_drift(summary, ["model"], table=table)
    assert "The two intervals overlap, so this run does not establish which of the two drifts faster" in text
    table.loc[table["model"] == "b", "image_id"] = "other"
    assert "did not all see the same images" in findings.fastest_drift(summary, ["model"], table=table)
    assert findings.fastest_drift(summary.iloc[:1], ["model"]) is None


def test_collapse_sentences_carry_n_and_intervals():
    table = _table({"a": 0.8, "b": 0.2}, "lpips_orig")
    rule = analysis.collapse_rule(table)
    summary = analysis.group_summary(table, by=["model"], rule=rule, n_boot=200)
    lines = findings.collapse_sentences(summary, ["model"], rule)
    assert lines[0].startswith("a: mean LPIPS to original (lower is better) at iteration 10 = ")
    assert "6 of 6 collapsed (100%, 95% CI 61% to 100%)" in lines[0]
    assert "0 of 6 collapsed (0%, 95% CI 0% to 39%)" in lines[1] and "not reached" in lines[1]
    # every number in a sentence comes from the data: another run gives other numbers
    other = analysis.group_summary(_table({"a": 0.7, "b": 0.3}, "lpips_orig", seed=1), by=["model"], rule=rule,
                                   n_boot=200)
    assert findings.collapse_sentences(other, ["model"], rule)[0] != lines[0]


def test_comparison_sentences_state_weak_results_plainly():
    table = _table({"a": 0.30, "b": 0.32}, "lpips_orig", n=4, noise=0.02)
    comparisons = compare.paired_comparisons(table, n_boot=200)
    line = findings.comparison_sentences(comparisons)[0]
    assert line.startswith("Paired (grid-8), 4 matched trajectories (same image, mask, seed)")
    assert "no two-sided test can reach p < 0.05" in line  # 4 pairs: smallest p is 0.125
    assert re.search(r"Wilcoxon p = [0-9.]+, Holm-adjusted [0-9.]+", line)


def test_hallucination_and_failure_sentences():
    roc = {"status": "ok", "score": "halluc_score", "auroc": 0.6, "auroc_lo": 0.45, "auroc_hi": 0.75,
           "outputs": 50, "trajectories": 5, "hallucinated": 7}
    lines = findings.hallucination_sentences([roc], None)
    assert "AUROC 0.60 (95% CI 0.45 to 0.75; n = 50 outputs of 5 trajectories, 7 hallucinated)" in lines[0]
    assert "includes 0.5 (chance)" in lines[0]
    named = findings.hallucination_sentences([{**roc, "name": "x0 variance (whole image; halluc_score)"}], None)
    assert named[0].startswith("Detecting hallucinated outputs by x0 variance (whole image; halluc_score): AUROC")
    table = _table({"a": 0.5}, "lpips_orig", n=3)
    assert findings.failure_sentences(table, analysis.failures(table, "lpips_orig")) == [
        "No failed model call and no missing metric value in 3 trajectories."]
    table.loc[(table["trajectory_id"] == "a__img0__grid-8__s0") & (table["iteration"] == 10), "failed"] = True
    line = findings.failure_sentences(table, analysis.failures(table, "lpips_orig"))[0]
    assert line.startswith("1 of 3 trajectories had a failed model call (33%, 95% CI ")
