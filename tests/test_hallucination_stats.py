"""The report's hallucination numbers: ground truth rules, ROC/AUROC against scikit-learn, calibrated threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ripbench.hallucination import baselines as hb
from ripbench.hallucination import calibrate_threshold, detection_report
from ripbench.hallucination import stats as hs


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


def test_threshold_analysis_held_out_calibrates_on_other_trajectories():
    table = scored_table(n_traj=20)
    cut = hs.threshold_analysis(table, keep=0.9, held_out=True, n_boot=100)
    assert cut["status"] == "ok" and cut["held_out"]
    ids = table["trajectory_id"]
    calibration = set(ids[hs.calibration_split(ids)])
    known = table[(table["iteration"] > 0) & (table["shapes_reason"] != "empty")]
    fit = known["trajectory_id"].isin(calibration)
    y = (known["shapes_reason"] == "duplicate").to_numpy()
    s = known["halluc_score"].to_numpy()
    assert cut["threshold"] == calibrate_threshold(s[fit.to_numpy() & ~y], keep=0.9)
    report = detection_report(s[~fit.to_numpy()], y[~fit.to_numpy()], cut["threshold"])
    assert cut["detection"]["n"] == report["n_hallucinated"] and cut["detection"]["k"] == report["hallucinated_removed"]
    assert cut["retention"]["share"] == pytest.approx(report["retention"])
    assert "too few" in hs.threshold_analysis(scored_table(n_traj=1), held_out=True, n_boot=10)["status"]


def test_score_bands():
    bands = hs.score_bands(scored_table(iterations=8), n_boot=100)
    assert bands["band"].tolist() == ["1-2", "3-4", "5-6", "7-8"]
    assert bands["outputs"].tolist() == [24] * 4 and (bands["trajectories"] == 12).all()
    assert (bands["mean_lo"] <= bands["mean"]).all() and "halluc_rate" in bands.columns
    assert hs.iteration_bands(0) == []


# --------------------------------------------------------------------------- scores against content baselines

def content_table(n_traj: int = 40, iterations: int = 8, seed: int = 0) -> pd.DataFrame:
    """Generations whose foreground grows with the number of shapes in the region; duplicates hold two shapes,
    valid generations zero to two (two only when the region spans two columns)."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_traj):
        for it in range(1, iterations + 1):
            dup = rng.random() < 0.2
            shapes = 2 if dup else int(rng.integers(0, 3))
            fg = max(60.0 * shapes + rng.normal(0, 6), 0.0)
            rows.append({"trajectory_id": f"t{t}", "iteration": it, "dup": dup, "region": shapes, "fg": fg,
                         "edge": 30.0 * shapes + rng.normal(0, 20), "extra": rng.normal(0, 1)})
    frame = pd.DataFrame(rows)
    frame["same"] = frame["fg"]  # a score that is exactly the amount of content
    frame["more"] = frame["fg"] + 50.0 * frame["dup"] + rng.normal(0, 3, len(frame))  # sees the duplicate itself
    frame["noise"] = frame["extra"]  # sees nothing
    return frame


def _compare(frame: pd.DataFrame, score: str, **kw):
    return hb.baseline_comparison(frame, score, ["fg", "edge"], frame["dup"].astype("boolean"),
                                  strata=frame["region"], area="fg", n_boot=200, **kw)


def test_score_equal_to_the_content_baseline_matches_it():
    frame = content_table()
    result = _compare(frame, "same")
    assert result["status"] == "ok" and result["best_baseline"] == "fg"
    diff = result["difference"]["fg"]
    assert diff["value"] == 0.0 and diff["lo"] == 0.0 and diff["hi"] == 0.0
    assert result["verdict"] == "matches"
    sentence = hb.comparison_sentence(result, {"same": "the score", "fg": "foreground pixels"})
    assert sentence.startswith("the score matches the content baseline foreground pixels")
    assert f"{result['auroc']['same']['value']:.2f}" in sentence and "includes 0" in sentence
    # AUROCs on held-out trajectories only, counts stated
    cal = hs.calibration_split(frame["trajectory_id"], 0, hs.CALIBRATION_SHARE)
    assert result["duplicates"] == int(frame.loc[~cal, "dup"].sum())
    assert result["trajectories"] == frame.loc[~cal, "trajectory_id"].nunique()


def test_score_with_extra_signal_beats_and_noise_loses():
    frame = content_table()
    beats = _compare(frame, "more")
    assert beats["verdict"] == "beats" and beats["difference"]["fg"]["lo"] > 0
    assert beats["matched"]["more"]["value"] > 0.95  # within the same number of shapes it still separates
    assert "beats the content baseline" in hb.comparison_sentence(beats)
    loses = _compare(frame, "noise")
    assert loses["verdict"] == "loses to" and loses["difference"][loses["best_baseline"]]["hi"] < 0


def test_paired_interval_resamples_the_same_trajectories():
    frame = content_table()
    result = _compare(frame, "more")
    a, b, d = result["auroc"]["more"], result["auroc"]["fg"], result["difference"]["fg"]
    assert d["value"] == pytest.approx(a["value"] - b["value"])
    # paired: the difference's interval is much narrower than the two AUROC intervals put together
    assert d["hi"] - d["lo"] < (a["hi"] - a["lo"]) + (b["hi"] - b["lo"])


def test_content_matched_auroc_ignores_cross_stratum_pairs():
    # hallucinations score high only against in-support outputs with fewer shapes: plain AUROC is 1,
    # but within the same number of shapes the score is at chance
    s = np.array([10.0, 10.0, 1.0, 1.0, 10.0, 10.0])
    y = np.array([True, True, False, False, False, False])
    k = np.array([2, 2, 0, 0, 2, 2])
    assert hb.fast_auroc(s, y) == pytest.approx(0.75)
    assert hb.matched_auroc(s, y, k) == (0.5, 4)
    assert hb.matched_auroc(s, y, np.array([2, 2, 0, 0, 1, 1]))[1] == 0  # no same-stratum pair: no AUROC
    frame = content_table()
    result = _compare(frame, "same")
    dup, region = frame["dup"], frame["region"]
    cal = hs.calibration_split(frame["trajectory_id"], 0, hs.CALIBRATION_SHARE)
    held = ~cal
    expected = sum(int((dup & held & (region == r)).sum()) * int((~dup & held & (region == r)).sum())
                   for r in region.unique())
    assert result["matched_pairs"] == expected and set(result["strata"]) <= {0, 1, 2}
    assert result["strata"].get(0, 0) == 0  # duplicates always hold two shapes: no pair in the empty stratum


def test_residual_fit_uses_only_calibration_trajectories():
    frame = content_table()
    frame["score"] = np.exp(0.5 + 1.1 * np.log(np.maximum(frame["fg"], 0) + 1) + 0.1 * frame["extra"])
    cal = hs.calibration_split(frame["trajectory_id"], 0, hs.CALIBRATION_SHARE)
    first = hb.baseline_comparison(frame, "score", ["fg"], frame["dup"].astype("boolean"), calibration=cal,
                                   area="fg", n_boot=50)["residual"]
    changed = frame.copy()
    held_out = np.flatnonzero(~cal & ~frame["dup"].to_numpy())[:5]
    changed.loc[held_out, "score"] *= 1000.0
    changed.loc[held_out, "fg"] += 500.0
    second = hb.baseline_comparison(changed, "score", ["fg"], changed["dup"].astype("boolean"), calibration=cal,
                                    area="fg", n_boot=50)["residual"]
    assert second["slope"] == first["slope"] and second["intercept"] == first["intercept"]
    assert first["n_fit"] == int((cal & ~frame["dup"]).sum())
    assert first["slope"] == pytest.approx(1.1, abs=0.1)
    changed.loc[np.flatnonzero(cal & ~frame["dup"].to_numpy())[:5], "score"] *= 1000.0  # a calibration row moves it
    third = hb.baseline_comparison(changed, "score", ["fg"], changed["dup"].astype("boolean"), calibration=cal,
                                   area="fg", n_boot=50)["residual"]
    assert third["slope"] != first["slope"]
    # hallucinations whose area the fit never saw are counted as extrapolated, and the sentence says so
    held_dup = frame["dup"].to_numpy() & ~cal
    fitted = frame.loc[cal & ~frame["dup"].to_numpy(), "fg"]
    outside = int(((frame.loc[held_dup, "fg"] < fitted.min()) | (frame.loc[held_dup, "fg"] > fitted.max())).sum())
    assert first["outside_fit"] == outside and first["hallucinated"] == int(held_dup.sum())
    bigger = frame.copy()
    bigger.loc[held_dup, "fg"] = fitted.max() + 100.0
    far = hb.baseline_comparison(bigger, "score", ["fg"], bigger["dup"].astype("boolean"), calibration=cal,
                                 area="fg", n_boot=20)
    assert far["residual"]["outside_fit"] == int(held_dup.sum())
    assert "extrapolation" in hb.matched_sentence(far)


def test_best_baseline_is_chosen_on_calibration_trajectories():
    frame = content_table()
    cal = hs.calibration_split(frame["trajectory_id"], 0, hs.CALIBRATION_SHARE)
    # make "edge" perfect on the held-out rows only: the choice must not see it
    frame.loc[~cal, "edge"] = frame.loc[~cal, "dup"] * 1000.0
    result = _compare(frame, "same", calibration=cal)
    assert result["best_baseline"] == "fg" and "calibration" in result["best_reason"]
    assert result["auroc"]["edge"]["value"] == 1.0


def test_score_specs_from_the_manifest_detectors():
    table = pd.DataFrame({"det_x0_variance": [1.0], "det_x0_variance_current": [2.0], "halluc_score": [1.0],
                          "det_foreground_pixels": [3.0], "det_x0_variance_eroded": [np.nan]})
    detectors = [{"name": "x0-variance", "column": "det_x0_variance", "label": "x0 var", "kind": "detector"},
                 {"name": "x0-variance-current", "column": "det_x0_variance_current", "label": "x0 var (region)",
                  "kind": "detector"},
                 {"name": "x0-variance-eroded", "column": "det_x0_variance_eroded", "label": "eroded", "kind": "detector"},
                 {"name": "foreground-pixels", "column": "det_foreground_pixels", "label": "fg", "kind": "baseline"}]
    specs = hs.score_specs(table, detectors)
    assert [(s.column, s.kind) for s in specs] == [("det_x0_variance_current", "detector"),
                                                   ("det_x0_variance", "detector"),
                                                   ("det_foreground_pixels", "baseline")]
    table.attrs["manifests"] = {"run": {"detectors": detectors}}
    assert hs.score_specs(table) == specs
    legacy = hs.score_specs(pd.DataFrame({"halluc_score": [1.0], "halluc_score_current": [2.0]}))
    assert [s.column for s in legacy] == ["halluc_score_current", "halluc_score"]


def shapes_run_table(n_traj: int = 16, iterations: int = 6, seed: int = 0) -> pd.DataFrame:
    """A Simple Shapes RIP table with column masks: a repainted column may get a duplicate, which stays when
    later iterations repaint other columns (the image keeps its 'duplicate' label; the generations do not)."""
    from ripbench.datasets.shapes import column_bounds

    rng = np.random.default_rng(seed)
    bounds = column_bounds(64)
    rows = []
    for t in range(n_traj):
        columns = ["T", "S", "P"]
        rows.append({"trajectory_id": f"shapes__s{t}__columns-3__s0", "model": "shapes-ddpm", "iteration": 0,
                     "failed": False, "shapes_layout": "|".join(columns), "shapes_label": "valid",
                     "mask_x0": np.nan, "mask_x1": np.nan, "mask_y0": np.nan, "mask_y1": np.nan, "mask_area": 0.0,
                     "halluc_score_current": np.nan, "det_foreground_pixels": np.nan})
        for it in range(1, iterations + 1):
            k = (it + t) % 3
            made = "dup" if rng.random() < 0.2 else "one" if rng.random() < 0.8 else "none"
            letter = "TSP"[k]
            columns[k] = {"dup": letter * 2, "one": letter, "none": ""}[made]
            layout = "|".join(columns)
            label = "duplicate" if any(len(c) >= 2 for c in columns) else "empty" if not "".join(columns) else "valid"
            shapes = len(columns[k])
            x0, x1 = bounds[k]
            rows.append({"trajectory_id": f"shapes__s{t}__columns-3__s0", "model": "shapes-ddpm", "iteration": it,
                         "failed": False, "shapes_layout": layout, "shapes_label": label, "mask_x0": x0,
                         "mask_x1": x1, "mask_y0": 0, "mask_y1": 64, "mask_area": (x1 - x0) * 64 / 64**2,
                         "halluc_score_current": (60.0 * shapes + rng.normal(0, 5)) * 1e-5,
                         "det_foreground_pixels": 60.0 * shapes + rng.normal(0, 5)})
    return pd.DataFrame(rows)


def test_ground_truth_is_the_generation_not_the_image():
    table = shapes_run_table()
    labels, source = hs.ground_truth(table)
    assert "generation level" in source
    later = table["iteration"] > 0
    image_dups = int((table.loc[later, "shapes_label"] == "duplicate").sum())
    made = int(labels.fillna(False).sum())
    assert 0 < made < image_dups  # carried duplicates are not counted again
    # a generation is a duplicate exactly when its repainted column got two shapes
    new_dup = table.loc[later].apply(lambda r: any(len(c) >= 2 and i == ["T", "S", "P"].index(c[0])
                                                   for i, c in enumerate(r["shapes_layout"].split("|"))
                                                   if c and r["mask_x0"] <= [0, 21, 42][i] < r["mask_x1"]), axis=1)
    assert labels[later].fillna(False).astype(bool).tolist() == new_dup.tolist()
    roc = hs.roc_analysis(table, "halluc_score_current", n_boot=50)
    assert roc["hallucinated"] == made
    # without mask boxes the image label is all there is
    assert "shapes_label" in hs.ground_truth(table.drop(columns=["mask_x0"]))[1]


def test_content_evidence_of_a_shapes_table():
    table = shapes_run_table(n_traj=24)
    evidence = hb.content_evidence(table, n_boot=50)
    assert len(evidence) == 1 and evidence[0]["score"] == "halluc_score_current"
    result = evidence[0]
    assert result["best_baseline"] == "det_foreground_pixels" and result["residual"] is not None
    # column masks: duplicates hold two shapes in the region, valid generations at most one
    assert result["matched_pairs"] == 0 and result["region_rule"] == "columns"
    assert "no content-matched AUROC" in hb.matched_sentence(result)


def test_matched_sentence_names_how_shapes_were_counted() -> None:
    from ripbench.hallucination.shapes_truth import REGION_COUNTS

    result = {"score": "s", "matched": {"s": {"value": 0.6, "lo": 0.5, "hi": 0.7}}, "matched_pairs": 12,
              "strata": {"2": 12, "1": 0}, "region_rule": "box"}
    text = hb.matched_sentence(result)
    assert REGION_COUNTS["box"] in text and "(12 pairs; pairs per number of shapes: 2: 12)" in text
    assert "counting" not in hb.matched_sentence({**result, "region_rule": None})


def test_beating_the_best_baseline_names_the_baselines_it_does_not_beat() -> None:
    from ripbench.hallucination.baselines import comparison_sentence

    result = {"score": "s", "best_baseline": "fg", "status": "ok", "verdict": "beats", "duplicates": 10, "valid": 90,
              "trajectories": 20, "best_reason": "calibration", "auroc": {"s": {"value": 0.9, "lo": 0.8, "hi": 0.95},
                                                                          "fg": {"value": 0.7, "lo": 0.6, "hi": 0.8},
                                                                          "edge": {"value": 0.88, "lo": 0.8, "hi": 0.95}},
              "difference": {"fg": {"value": 0.2, "lo": 0.1, "hi": 0.3}, "edge": {"value": 0.02, "lo": -0.03, "hi": 0.07}}}
    text = comparison_sentence(result)
    assert text.startswith("s beats the content baseline fg") and "does not beat every baseline" in text
    assert "edge +0.02 [-0.03, +0.07]" in text
    result["difference"]["edge"] = {"value": 0.1, "lo": 0.05, "hi": 0.15}
    assert "beats every other baseline as well" in comparison_sentence(result)


def test_lower_is_suspect_scores_are_negated_before_any_roc() -> None:
    from ripbench.hallucination.stats import ScoreSpec, oriented, score_specs

    t = pd.DataFrame({"det_plug": [1.0, 2.0], "det_x0_variance_current": [3.0, 4.0]})
    specs = score_specs(t, [{"name": "plug", "column": "det_plug", "kind": "detector", "direction": "lower-is-suspect"},
                            {"name": "x0-variance-current", "column": "det_x0_variance_current", "kind": "detector"}])
    assert [s.direction for s in specs] == ["higher-is-suspect", "lower-is-suspect"]
    out = oriented(t, specs)
    assert out["det_plug"].tolist() == [-1.0, -2.0] and out["det_x0_variance_current"].tolist() == [3.0, 4.0]
    assert t["det_plug"].tolist() == [1.0, 2.0] and oriented(t, [ScoreSpec("x", "x")]) is t


def test_moved_names_keep_their_old_homes():
    """The hallucination code is a package now; the old module paths still give the same objects."""
    import ripbench.hallucination_stats as old
    from ripbench.datasets import shapes

    assert old.roc_analysis is hs.roc_analysis and old.baseline_comparison is hb.baseline_comparison
    assert set(old.__all__) == set(hs.__all__) | set(hb.__all__)
    with pytest.raises(AttributeError):  # the data set does not read results tables (shapes_truth does)
        shapes.generation_table  # noqa: B018
