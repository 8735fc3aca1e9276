"""Statistics on results tables: each checked on small synthetic tables with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ripbench import analysis
from ripbench.errors import ResultsError
from ripbench.store import RunStore


def make_table(curves: dict[str, list[float]], metric: str = "lpips_orig", **columns: object) -> pd.DataFrame:
    """Rows of trajectories ``{id: values per iteration 0..}``; extra columns constant or per id (dict)."""
    rows = []
    for tid, values in curves.items():
        for it, v in enumerate(values):
            row = {"trajectory_id": tid, "iteration": it, metric: v, "failed": False}
            for col, value in columns.items():
                row[col] = value[tid] if isinstance(value, dict) else value
            rows.append(row)
    table = pd.DataFrame(rows)
    for col in ("model", "mask_label"):
        if col not in table.columns:
            table[col] = {"model": "m", "mask_label": "grid-8"}[col]
    return table


# -- collapse ---------------------------------------------------------------------------------------

def test_collapse_at_first_crossing_iteration():
    crossing = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.7, 0.6]  # >= 0.5 first at 7, dips later
    never = [0.0, 0.1, 0.2, 0.3, 0.49, 0.49, 0.49, 0.49, 0.49, 0.49]
    events = analysis.collapse_events(make_table({"a": crossing, "b": never}), 0.5).set_index("trajectory_id")
    assert events.loc["a", "collapsed"] and events.loc["a", "iteration"] == 7
    assert not events.loc["b", "collapsed"] and events.loc["b", "iteration"] == 9  # censored at the end


def test_collapse_direction_for_similarity_metrics_and_nan():
    table = make_table({"a": [1.0, 0.8, np.nan, 0.35, 0.2], "b": [1.0, np.nan, np.nan, np.nan, np.nan]}, "ssim_orig")
    rule = analysis.collapse_rule(table)  # no LPIPS: falls back to SSIM <= 0.5
    assert rule == analysis.CollapseRule("ssim_orig", 0.5, "<=")
    events = analysis.collapse_events(table, rule).set_index("trajectory_id")
    assert events.loc["a", "iteration"] == 3
    assert not events.loc["b", "collapsed"]


def test_failed_call_is_censored_not_collapsed():
    table = make_table({"a": [0.0, 0.1, 0.2, 0.9, 0.95]})
    table.loc[table["iteration"] == 3, "failed"] = True  # a black frame from a failed call
    table = table[table["iteration"] <= 3]  # the harness keeps rows up to the failing one
    events = analysis.collapse_events(table, 0.5)
    assert events.loc[0, "failed"] and not events.loc[0, "collapsed"] and events.loc[0, "iteration"] == 2


def test_collapse_rule_parsing():
    assert analysis.collapse_rule(None, "ssim_orig<=0.3") == analysis.CollapseRule("ssim_orig", 0.3, "<=")
    assert analysis.collapse_rule(None, "lpips_prev=0.2").direction == ">="
    assert analysis.collapse_rule(None, "0.4").describe() == "lpips_orig >= 0.4"
    assert analysis.DEFAULT_THRESHOLDS["lpips_orig"] == 0.5
    with pytest.raises(ResultsError, match="cannot read collapse rule"):
        analysis.collapse_rule(None, "lpips > half")
    with pytest.raises(ResultsError, match="none of the metrics"):
        analysis.collapse_rule(pd.DataFrame({"iteration": [0], "halluc_score": [1.0]}))
    with pytest.raises(ResultsError, match="not in the results table"):
        analysis.collapse_events(make_table({"a": [0.0, 0.1]}), "ssim_orig<=0.5")


def test_collapse_thresholds_and_infinity_come_from_the_metric_specs():
    from ripbench.metrics.catalog import LPIPS_SPEC, MSE_SPEC, PSNR_SPEC, SSIM_SPEC

    # the built-ins' values, unchanged, in the order collapse_rule tries them
    assert analysis.DEFAULT_THRESHOLDS == {"lpips_orig": 0.5, "ssim_orig": 0.5, "psnr_orig": 15.0, "mse_orig": 0.03}
    assert [s.collapse_threshold for s in (LPIPS_SPEC, SSIM_SPEC, PSNR_SPEC, MSE_SPEC)] == [0.5, 0.5, 15.0, 0.03]
    assert analysis.PSNR_CAP_DB == PSNR_SPEC.inf_value == 100.0
    assert analysis.collapse_rule(pd.DataFrame({"psnr_orig": [30.0], "mse_orig": [0.01]})).describe() == \
        "psnr_orig <= 15"


@pytest.fixture
def snr_metric():
    from ripbench.metrics.registry import register_metric, unregister_metric
    from ripbench.metrics.spec import MetricSpec

    register_metric(MetricSpec(name="snr", label="SNR", higher_is_better=True, range=(0.0, math.inf),
                               identity=math.inf, compute=lambda a, b: a, collapse_threshold=7.0, inf_value=60.0))
    yield
    unregister_metric("snr")


def test_a_plugin_metric_declares_its_collapse_threshold_and_infinity(snr_metric):
    from ripbench.metrics.spec import MetricSpec

    table = pd.DataFrame({"iteration": [0, 1], "snr_orig": [np.inf, 5.0], "halluc_score": [0.0, 1.0]})
    assert analysis.collapse_rule(table) == analysis.CollapseRule("snr_orig", 7.0, "<=")
    assert analysis.metric_values(table, "snr_orig").tolist() == [60.0, 5.0]
    assert analysis.metric_values(table, "snr_orig", psnr_cap=90.0).tolist() == [90.0, 5.0]
    # an infinite identity has no fixed starting value: no drift (as for PSNR), whatever its name
    y = np.array([[60.0, 5.0]])
    assert np.isnan(analysis.drift_values("snr_orig", y, np.array([0.0, 1.0]))).all()
    with pytest.raises(Exception, match="collapse_threshold must be a finite number"):
        MetricSpec(name="bad", label="B", higher_is_better=True, range=(0.0, 1.0), identity=1.0, compute=None,
                   collapse_threshold=math.nan)


# -- survival ---------------------------------------------------------------------------------------

def test_kaplan_meier_with_censoring():
    # a collapses at 2; b's model fails at 4 (censored at 3); c collapses at 5; d never (censored at 6)
    curves = {"a": [0, .2, .6, .6, .6, .6, .6], "b": [0, .1, .1, .1, .1], "c": [0, .1, .2, .3, .4, .5, .6],
              "d": [0, .1, .1, .1, .1, .1, .1]}
    table = make_table(curves)
    table.loc[(table["trajectory_id"] == "b") & (table["iteration"] == 4), "failed"] = True
    surv = analysis.survival_curves(table, 0.5, by=["model"]).set_index("iteration")
    # S(2) = 3/4; b leaves the risk set after 3 without an event; S(5) = 3/4 * (1 - 1/2)
    expected = [1, 1, 0.75, 0.75, 0.75, 0.375, 0.375]
    np.testing.assert_allclose(surv["survival"].to_numpy(), expected)
    assert surv.loc[5, "at_risk"] == 2 and surv.loc[5, "collapsed"] == 1 and surv.loc[4, "at_risk"] == 2
    assert (surv["lo"] <= surv["survival"] + 1e-12).all() and (surv["hi"] >= surv["survival"] - 1e-12).all()
    # Greenwood log-log band, as scipy.stats.ecdf(...).sf.confidence_interval gives it (pinned)
    assert surv.loc[2, "lo"] == pytest.approx(0.12794692, rel=1e-6) and surv.loc[2, "hi"] == pytest.approx(0.96054864)
    assert surv.loc[0, "lo"] == surv.loc[0, "hi"] == 1.0  # undefined at S = 1: the estimate itself
    med = analysis.median_collapse(table, 0.5, by=["model"]).iloc[0]
    assert med["median_collapse"] == 5 and med["collapsed"] == 2 and med["trajectories"] == 4
    # the band's upper edge never reaches 0.5 with 4 trajectories: the interval is open-ended
    assert med["median_collapse_lo"] == 2 and math.isinf(med["median_collapse_hi"])
    assert med["collapsed_share"] == 0.5
    assert (med["collapsed_share_lo"], med["collapsed_share_hi"]) == pytest.approx((0.15003899, 0.84996101))
    # fewer than half collapse -> median not reached (inf)
    few = make_table({"a": [0, .6], "b": [0, .1], "c": [0, .1]})
    assert math.isinf(analysis.median_collapse(few, 0.5, by=["model"]).loc[0, "median_collapse"])


# -- mean curves and bootstrap ---------------------------------------------------------------------

def _noisy(n: int, t: int, rng: np.random.Generator, mean: np.ndarray, sd: float = 0.1) -> pd.DataFrame:
    values = mean[None, :] + rng.normal(0.0, sd, size=(n, t))
    return make_table({f"t{i}": list(row) for i, row in enumerate(values)})


def test_bootstrap_band_contains_true_mean_at_nominal_rate():
    rng = np.random.default_rng(123)
    true = np.array([0.3, 0.5])
    hits, widths = [], []
    for rep in range(120):
        table = _noisy(25, 2, rng, true)
        band = analysis.bootstrap_curves(table, "lpips_orig", by=["model"], n_boot=400, seed=rep)
        hits.append(((band["lo"] <= true) & (true <= band["hi"])).to_numpy())
        widths.append((band["hi"] - band["lo"]).to_numpy())
    coverage = np.mean(hits)
    assert 0.88 <= coverage <= 0.99, coverage
    # the width matches the normal-theory interval 2 * 1.96 * sd / sqrt(n) within 15%
    assert np.mean(widths) == pytest.approx(2 * 1.96 * 0.1 / 5, rel=0.15)


def test_bootstrap_is_seeded_and_groups_separately():
    rng = np.random.default_rng(0)
    table = _noisy(10, 4, rng, np.linspace(0, 0.3, 4))
    table["mask_label"] = np.where(table["trajectory_id"].isin(["t0", "t1", "t2"]), "grid-8", "grid-16")
    a = analysis.bootstrap_curves(table, "lpips_orig", n_boot=300, seed=7)
    b = analysis.bootstrap_curves(table, "lpips_orig", n_boot=300, seed=7)
    c = analysis.bootstrap_curves(table, "lpips_orig", n_boot=300, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["lo"], c["lo"])
    small = a[a["mask_label"] == "grid-8"]
    assert (small["n"] == 3).all()
    expected = table[table["mask_label"] == "grid-8"].groupby("iteration")["lpips_orig"].mean().to_numpy()
    np.testing.assert_allclose(small["mean"], expected)


def test_psnr_infinity_is_capped():
    table = make_table({"a": [np.inf, 30.0, 20.0], "b": [np.inf, np.inf, 10.0]}, "psnr_orig")
    band = analysis.bootstrap_curves(table, "psnr_orig", by=["model"], n_boot=50)
    np.testing.assert_allclose(band["mean"], [analysis.PSNR_CAP_DB, (30 + analysis.PSNR_CAP_DB) / 2, 15.0])
    assert np.isfinite(band[["lo", "hi"]].to_numpy()).all()
    assert math.isnan(analysis.drift_stats(table, "psnr_orig", by=["model"], n_boot=50).loc[0, "exp_k"])


# -- drift rate -----------------------------------------------------------------------------------

def test_slope_and_auc_of_linear_curves():
    t = np.arange(11)
    table = make_table({"a": list(0.03 * t), "b": list(0.03 * t + 0.05 * (t > 0)), "c": list(0.01 * t)})
    table["mask_label"] = table["trajectory_id"].map({"a": "g", "b": "g", "c": "h"})
    stats = analysis.drift_stats(table, "lpips_orig", n_boot=200).set_index("mask_label")
    assert stats.loc["g", "slope"] == pytest.approx(0.03)  # the jump at iteration 1 does not bias it
    assert stats.loc["h", "slope"] == pytest.approx(0.01)
    assert stats.loc["g", "slope_lo"] == pytest.approx(0.03) and stats.loc["g", "slope_hi"] == pytest.approx(0.03)
    assert math.isnan(stats.loc["h", "slope_lo"])  # one trajectory: no interval
    assert stats.loc["h", "auc"] == pytest.approx(0.01 * 10 / 2)  # area 0.5 over 10 iterations
    assert math.isnan(stats.loc["h", "exp_k"])  # no saturation: exponential not identifiable
    np.testing.assert_allclose(analysis.trajectory_slopes(np.array([[1.0, np.nan, 5.0]]), np.arange(3.0)), [2.0])


def test_exponential_fit_recovers_rate():
    t = np.arange(0, 41)
    rng = np.random.default_rng(5)
    curves = {f"t{i}": list(0.6 * (1 - np.exp(-0.15 * t)) + rng.normal(0, 0.02, t.size) * (t > 0))
              for i in range(20)}
    stats = analysis.drift_stats(make_table(curves), "lpips_orig", by=["model"], n_boot=100).iloc[0]
    assert stats["exp_k"] == pytest.approx(0.15, rel=0.05)
    assert stats["exp_a"] == pytest.approx(0.6, rel=0.03)
    assert stats["half_life"] == pytest.approx(math.log(2) / stats["exp_k"])
    # SSIM falls from 1: its drift 1 - y is fitted
    ssim = make_table({"a": list(1 - 0.5 * (1 - np.exp(-0.3 * t)))}, "ssim_orig")
    assert analysis.drift_stats(ssim, "ssim_orig", by=["model"], n_boot=10).loc[0, "exp_k"] == pytest.approx(0.3)


# -- summaries --------------------------------------------------------------------------------------

def test_group_summary_columns_and_values():
    t = np.arange(0, 13)
    curves = {"a": list(0.05 * t), "b": list(0.02 * t), "c": list(0.1 * t)}
    table = make_table(curves, mask_label={"a": "grid-8", "b": "grid-8", "c": "grid-16"})
    table["ssim_orig"] = 1 - table["lpips_orig"]
    table["halluc_score"] = np.where(table["iteration"] > 0, 0.01 * table["iteration"], np.nan)
    summary = analysis.group_summary(table, at=(10, 50, 100), n_boot=100).set_index("mask_label")
    assert summary.attrs["iterations"] == [10, 12] and summary.attrs["rule"] == "lpips_orig >= 0.5"
    assert summary.loc["grid-8", "lpips_orig@10"] == pytest.approx(0.35)
    assert summary.loc["grid-16", "ssim_orig@12"] == pytest.approx(1 - 1.2)
    assert summary.loc["grid-8", "lpips_orig_slope"] == pytest.approx(0.035)
    assert summary.loc["grid-8", "collapsed"] == 1 and summary.loc["grid-8", "trajectories"] == 2
    assert summary.loc["grid-16", "median_collapse"] == 5  # 0.1 * 5 = 0.5
    assert summary.loc["grid-8", "median_collapse"] == 10  # a crosses at 10: S(10) = 1/2
    assert summary.loc["grid-16", "halluc_slope"] == pytest.approx(0.01)
    shown = analysis.format_summary(summary.reset_index()).set_index("mask_label")
    assert shown.loc["grid-16", "median_collapse"] == "5 [5, 5]"
    assert shown.loc["grid-8", "lpips_orig_slope"].startswith("0.035 [")
    late = analysis.group_summary(table[table["iteration"] <= 8], n_boot=50).set_index("mask_label")
    assert math.isinf(late.loc["grid-8", "median_collapse"])  # not reached within 8 iterations
    assert analysis.format_summary(late.reset_index()).loc[1, "median_collapse"] == "not reached"


def test_brief_summary_is_a_view_of_group_summary():
    """The table ``ripbench run`` prints is :func:`group_summary` without bootstrap: same numbers, plus
    ``n@<last>`` (trajectories the key metric's mean rests on); a table without a metric a collapse
    rule can use is summarised without collapse columns, an explicit rule it cannot use is refused."""
    from ripbench.analysis.summary import brief_summary

    t = np.arange(0, 13)
    curves = {"a": list(0.05 * t), "b": list(0.02 * t), "c": list(0.1 * t), "d": list(0.03 * t)}
    table = make_table(curves, mask_label={"a": "grid-8", "b": "grid-8", "c": "grid-16", "d": "grid-16"})
    table["ssim_orig"] = 1 - table["lpips_orig"]
    table["psnr_orig"] = np.where(table["iteration"] == 0, np.inf, 40 - table["iteration"])
    table.loc[(table["trajectory_id"] == "d") & (table["iteration"] >= 9), "failed"] = True
    short = brief_summary(table)
    full = analysis.group_summary(table, at=(), n_boot=20)
    shared = [c for c in short.columns if c in full.columns]
    assert [c for c in short.columns if c not in shared] == ["n@12"]
    pd.testing.assert_frame_equal(short[shared], full[shared])
    assert short["failed"].tolist() == [1, 0] and short["n@12"].tolist() == [1, 2]
    no_rule = pd.DataFrame({"model": "m", "mask_label": "g", "trajectory_id": ["a", "a"], "iteration": [0, 1],
                            "halluc_score": [0.0, 0.5]})
    assert brief_summary(no_rule)["halluc_score@1"].tolist() == [0.5]
    plain = analysis.group_summary(no_rule, n_boot=0)
    assert plain.attrs["rule"] is None and "collapsed" not in plain.columns
    with pytest.raises(ResultsError, match="'lpips_orig' is not in the results table"):
        analysis.group_summary(no_rule, rule="lpips_orig>=0.5")


# -- loading several runs -----------------------------------------------------------------------------

def _write_run(folder, name: str, iterations: int, size: int = 32, metrics=("lpips", "ssim")) -> None:
    t = np.arange(iterations + 1)
    table = make_table({"m__img__grid-8__s0": list(0.04 * t), "m__img__grid-16__s0": list(0.08 * t)},
                       model="m", image_id="img", category="object", mask_policy="grid", seed=0,
                       mask_label={"m__img__grid-8__s0": "grid-8", "m__img__grid-16__s0": "grid-16"})
    for m in metrics:
        table[f"{m}_orig"] = table["lpips_orig"] if m == "lpips" else 1 - table["lpips_orig"]
    store = RunStore(folder)
    store.write_part(table)
    store.write_manifest({"name": name, "config": {"iterations": iterations, "size": size, "fit": "pad",
                                                   "models": [{"name": "m"}]},
                          "metrics": {"lpips": {"net": "alex"}}})


def test_load_runs_combines_and_compares_on_what_runs_share(tmp_path):
    _write_run(tmp_path / "a", "alpha", 6)
    _write_run(tmp_path / "b", "beta", 6)
    table = analysis.load_runs(tmp_path / "a", tmp_path / "b")
    assert sorted(table["run"].unique()) == ["alpha", "beta"]
    assert set(table.attrs["manifests"]) == {"alpha", "beta"} and table.attrs["manifest"]["name"] == "alpha"
    assert table.attrs["run_dirs"]["beta"] == str(tmp_path / "b")
    assert table.attrs["differences"] == [] and table.attrs["pairing"] == {"alpha": 0, "beta": 0}
    # same trajectory ids in both runs stay distinct trajectories
    summary = analysis.group_summary(table, by=["mask_label"], n_boot=50)
    assert summary["trajectories"].tolist() == [2, 2]
    assert analysis.load_runs([tmp_path / "a"])["run"].unique().tolist() == ["alpha"]

    # another size, more iterations, fewer metrics: compared on iterations 0-6, differences stated
    _write_run(tmp_path / "c", "gamma", 9, size=64, metrics=("lpips",))
    both = analysis.load_runs(tmp_path / "a", tmp_path / "c")
    assert both.groupby("run")["iteration"].max().to_dict() == {"alpha": 6, "gamma": 6}
    text = " ".join(both.attrs["differences"])
    for words in ("Iterations differ ('alpha' 0-6, 'gamma' 0-9)", "image size differ ('alpha' 32, 'gamma' 64)",
                  "no trajectory is paired", "metrics differ", "compared on iterations 0-6"):
        assert words in text, words
    assert both.attrs["pairing"] == {"alpha": 0, "gamma": 1}
    with pytest.raises(ResultsError) as err:
        analysis.load_runs(tmp_path / "a", tmp_path / "c", strict=True)
    for word in ("iterations", "'alpha' 6", "'gamma' 9", "image size", "metrics"):
        assert word in str(err.value)
    with pytest.raises(ResultsError, match="not found"):
        analysis.load_runs(tmp_path / "missing")
    # one folder twice was compared with itself (labels 'alpha#1', 'alpha#2', every difference 0)
    with pytest.raises(ResultsError, match=r"results folder '.*b/\.\./a' is given twice \(also as '.*a'\)"):
        analysis.load_runs(tmp_path / "a", tmp_path / "b", tmp_path / "b" / ".." / "a")
    with pytest.raises(ResultsError, match=r"a' is given twice; give each run once"):
        analysis.load_runs(tmp_path / "a", tmp_path / "a")


def test_load_runs_keeps_only_shared_images_and_masks(tmp_path):
    _write_run(tmp_path / "a", "alpha", 4)
    table = RunStore(tmp_path / "a").load_table()
    other = table[table["mask_label"] == "grid-8"].copy()
    extra = other.assign(image_id="other", trajectory_id=lambda f: f["trajectory_id"].str.replace("img", "other"))
    store = RunStore(tmp_path / "b")
    store.write_part(pd.concat([other, extra], ignore_index=True))
    store.write_manifest({"name": "beta", "config": {"iterations": 4, "size": 32, "fit": "pad"}})
    both = analysis.load_runs(tmp_path / "a", tmp_path / "b")
    assert set(zip(both["run"], both["image_id"], both["mask_label"])) == {("alpha", "img", "grid-8"),
                                                                          ("beta", "img", "grid-8")}
    text = " ".join(both.attrs["differences"])
    assert "Left out of run 'alpha': 1 trajectories" in text and "Left out of run 'beta': 1 trajectories" in text


# -- exponential fit, log-rank, regions, failures ----------------------------------------------------

def test_exponential_fit_is_refused_where_it_does_not_fit():
    t = np.arange(0, 21.0)
    rng = np.random.default_rng(1)
    saturating = 0.5 * (1 - np.exp(-0.3 * t)) + rng.normal(0, 0.01, (12, t.size)) * (t > 0)
    fit = analysis.exponential_approach("lpips_orig", saturating, t, n_boot=200)
    assert fit["fit"] == "ok" and fit["exp_r2"] > 0.99
    assert fit["half_life_lo"] <= fit["half_life"] <= fit["half_life_hi"]
    assert fit["half_life"] == pytest.approx(math.log(2) / 0.3, rel=0.05)
    # a slow curve whose fitted half-life lies far beyond the run (the "1023 iterations from 20" case)
    slow = 0.9 * (1 - np.exp(-0.0007 * t)) + 0.0 * saturating
    assert analysis.exponential_approach("lpips_orig", slow, t, n_boot=20)["fit"].startswith("no saturation")
    short = analysis.exponential_approach("lpips_orig", saturating[:, :6], t[:6], n_boot=20)
    assert short["fit"] == "too few iterations (5 < 8)" and math.isnan(short["half_life"])
    noisy = rng.normal(0.2, 0.1, (3, t.size)) * (t > 0)
    assert analysis.exponential_approach("lpips_orig", noisy, t, n_boot=20)["fit"].startswith(("poor fit", "no sat"))
    assert analysis.exponential_approach("psnr_orig", 30 - t + 0 * saturating, t)["fit"] == "no fixed starting value"


def test_logrank_between_models():
    fast = {f"f{i}": [0, .6, .7] for i in range(6)}
    slow = {f"s{i}": [0, .1, .2] for i in range(6)}
    table = make_table({**fast, **slow}, model={**{k: "fast" for k in fast}, **{k: "slow" for k in slow}})
    tests = analysis.logrank_tests(table, 0.5)
    row = tests.iloc[0]
    assert (row["a"], row["b"], row["collapsed_a"], row["collapsed_b"]) == ("fast", "slow", 6, 0)
    assert row["pvalue"] < 0.01
    same = analysis.logrank_tests(make_table(slow, model={k: ("x" if k < "s3" else "y") for k in slow}), 0.5)
    assert math.isnan(same.loc[0, "pvalue"])  # no collapse anywhere: nothing to test


def test_region_summary_and_failures():
    table = make_table({"a": [0, .2, .4], "b": [0, .4, .6]})
    table["lpips_orig_never"] = [0, 0.1, np.nan, 0, 0.2, 0.3]  # 'a' has no never-masked pixels left at 2
    table["lpips_orig_ever"] = [np.nan, 0.3, 0.5, np.nan, 0.5, 0.7]
    regions = analysis.region_summary(table, "lpips", n_boot=50).set_index("region")
    assert regions.loc["whole", "mean"] == pytest.approx(0.5) and regions.loc["whole", "n"] == 2
    assert regions.loc["never", "n"] == 1 and regions.loc["never", "mean"] == pytest.approx(0.3)
    assert regions.loc["ever", "mean"] == pytest.approx(0.6)
    assert list(analysis.region_columns(table, "lpips_orig")) == ["whole", "ever", "never"]
    table.loc[(table["trajectory_id"] == "b") & (table["iteration"] == 2), "failed"] = True
    table["failure"] = np.where(table["failed"], "nan", None)
    table.loc[(table["trajectory_id"] == "a") & (table["iteration"] == 2), "lpips_orig"] = np.nan
    found = analysis.failures(table, "lpips_orig").set_index("trajectory_id")
    assert found.loc["b", "problem"] == "failed model call" and found.loc["b", "reason"] == "nan"
    assert found.loc["b", "iteration"] == 2 and found.loc["b", "last_good"] == 1
    assert found.loc["a", "problem"] == "metric missing"
    assert analysis.failures(make_table({"x": [0, 1]}), "lpips_orig").empty


def test_one_public_way_to_load_runs():
    import ripbench

    assert ripbench.load is analysis.load_runs
    for gone in ("load_table", "load_runs"):
        assert gone not in ripbench.__all__ and not hasattr(ripbench, gone)
    assert not hasattr(analysis, "load")


def test_collapse_facts_of_a_plugin_metric_survive_its_manifest() -> None:
    """A plug-in metric known only from a run's manifest keeps its collapse threshold and +inf value."""
    from ripbench.metrics.registry import adopt_recorded_specs, unregister_metric
    from ripbench.metrics.spec import MetricSpec
    from ripbench.run.experiment import _check_same

    spec = MetricSpec(name="mydist", label="My distance", higher_is_better=False, range=(0.0, math.inf),
                      identity=math.inf, compute=lambda a, b: a, collapse_threshold=12.0, inf_value=60.0)
    record = {"metrics": ["mydist"], "mydist": {"spec": spec.describe()}}
    try:
        assert adopt_recorded_specs(record) == ["mydist"]
        table = pd.DataFrame({"trajectory_id": ["a", "a"], "iteration": [0, 1], "mydist_orig": [math.inf, 20.0]})
        rule = analysis.collapse_rule(table)
        assert rule.metric == "mydist_orig" and rule.threshold == 12.0
        from ripbench.metrics.registry import get_metric_spec

        assert get_metric_spec("mydist").inf_value == 60.0
    finally:
        unregister_metric("mydist")
    # the analysis facts do not block resuming a run recorded before they were written
    old = {"metrics": ["mydist"], "mydist": {"spec": {k: v for k, v in spec.describe().items() if k not in ("collapse_threshold",
                                                                                        "inf_value")}}}
    _check_same(old, record, "metrics", resuming=True)
    with pytest.raises(ResultsError):
        _check_same(old, {**record, "mydist": {"spec": {**spec.describe(), "label": "other"}}}, "metrics",
                    resuming=True)
