"""Paired model comparisons on matched trajectories: numbers pinned against scipy, pairing rules, exports."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from ripbench import compare


def paired_table(n: int = 10, shift: float = 0.05, seed: int = 0, models=("a", "b")) -> pd.DataFrame:
    """Model ``b`` drifts like ``a`` on the same image/mask/seed plus ``shift`` and a little noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.uniform(0.2, 0.6)
        for model in models:
            end = base + (shift + rng.normal(0, 0.01) if model == models[1] else 0.0)
            for it in range(6):
                rows.append({"trajectory_id": f"{model}__img{i}__grid-8__s0", "model": model, "image_id": f"img{i}",
                             "mask_label": "grid-8", "seed": 0, "iteration": it, "failed": False,
                             "lpips_orig": end * it / 5})
    return pd.DataFrame(rows)


def test_paired_difference_wilcoxon_and_effect_size():
    table = paired_table()
    result = compare.paired_comparisons(table, n_boot=500)
    final = result[result["measure"] == "final"].iloc[0]
    final_values = table[table["iteration"] == 5].pivot(index="image_id", columns="model", values="lpips_orig")
    d = (final_values["b"] - final_values["a"]).to_numpy()
    assert final["n"] == 10 and final["a"] == "a" and final["b"] == "b"
    assert final["diff"] == pytest.approx(d.mean()) and final["diff_lo"] < d.mean() < final["diff_hi"]
    assert final["p"] == pytest.approx(wilcoxon(d).pvalue) == pytest.approx(2 / 2**10)  # exact, all positive
    assert final["r_rb"] == 1.0 and final["worse"] == "b"  # LPIPS: larger = further from the original
    assert final["min_p"] == pytest.approx(2 / 2**10)
    auc = result[result["measure"] == "auc"].iloc[0]
    assert auc["diff"] == pytest.approx(d.mean() * 0.5)  # a straight line from 0: its average is half its end
    assert (result["p_holm"] >= result["p"]).all() and result.attrs["metric"] == "lpips_orig"


def test_direction_of_worse_follows_the_metric():
    table = paired_table()
    table["ssim_orig"] = 1 - table["lpips_orig"]
    final = compare.paired_comparisons(table, "ssim_orig", n_boot=100).iloc[0]
    assert final["diff"] < 0 and final["worse"] == "b"  # SSIM: lower = further from the original


def test_identical_models_failed_pairs_and_other_runs():
    table = paired_table(n=5, shift=0.0, models=("a", "b"))
    table.loc[table["model"] == "b", "lpips_orig"] = table.loc[table["model"] == "a", "lpips_orig"].to_numpy()
    same = compare.paired_comparisons(table, n_boot=50).iloc[0]
    assert same["diff"] == 0 and same["p"] == 1.0 and same["worse"] == "neither"
    # a failed trajectory has no final value: its pair is left out
    table.loc[(table["trajectory_id"] == "b__img0__grid-8__s0") & (table["iteration"] == 5), "failed"] = True
    assert compare.paired_comparisons(table, n_boot=50).iloc[0]["n"] == 4
    # trajectories of runs that drew masks differently are never paired
    two = pd.concat([paired_table(n=4).assign(run="r1"), paired_table(n=4).assign(run="r2")], ignore_index=True)
    two = two[((two["run"] == "r1") & (two["model"] == "a")) | ((two["run"] == "r2") & (two["model"] == "b"))]
    two.attrs["pairing"] = {"r1": 0, "r2": 0}
    assert compare.paired_comparisons(two, n_boot=50)["n"].tolist() == [4, 4]
    two.attrs["pairing"] = {"r1": 0, "r2": 1}
    assert compare.paired_comparisons(two, n_boot=50).empty


def test_exports_for_papers():
    result = compare.paired_comparisons(paired_table(), n_boot=100)
    shown = compare.display_table(result)
    assert list(shown.columns[:4]) == ["mask_label", "a", "b", "measure"] and shown["n pairs"].tolist() == [10, 10]
    tex = compare.to_latex(result)
    assert tex.startswith("\\begin{table}") and "\\toprule" in tex and "\\bottomrule" in tex
    assert "mask\\_label" in tex and "LPIPS to the original (lower is better)" in tex and "95\\%" in tex
    assert tex.count("\\\\\n") == 3  # header and two rows
    assert not math.isnan(result["r_rb_lo"].iloc[0])
