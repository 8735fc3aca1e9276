"""Generated sentences at small n (issue 22, item 2): a goal is reached only with the interval's lower
bound above it and at least GOAL_MIN_N cases; no sentence compares a group with itself; counted nouns
agree with their numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from ripbench.defaults import GOAL_MIN_N
from ripbench.findings import collapse_sentences, failure_sentences, fastest_drift
from ripbench.formatting import count


def test_count_agrees_with_the_number():
    assert [count(k, "way") for k in (0, 1, 2)] == ["0 ways", "1 way", "2 ways"]
    assert count(1, "trajectory", "trajectories") == "1 trajectory"
    assert count(3, "trajectory", "trajectories") == "3 trajectories"


def _pooled(duplicates, valid, value, lo, hi):
    return pd.Series({"duplicate": duplicates, "valid": valid, "auroc": value, "auroc_lo": lo, "auroc_hi": hi})


def test_one_duplicate_never_reaches_the_goal():
    from ripbench.repro.shapes_rip_report import _verdict

    text = _verdict(_pooled(1, 83, 0.98, 0.94, 1.0))
    assert "1 duplicate," in text and "1 duplicates" not in text
    assert "reaches the goal" not in text and "does not establish the goal of 0.9" in text
    assert f"at least {GOAL_MIN_N} duplicates and {GOAL_MIN_N} valid generations" in text


@pytest.mark.parametrize("pooled, phrase", [
    (_pooled(GOAL_MIN_N, 200, 0.97, 0.93, 0.99), "which reaches the goal of 0.9 (the whole interval lies above it)"),
    (_pooled(200, 200, 0.91, 0.85, 0.95), "which may reach the goal of 0.9 (the interval reaches below it)"),
    (_pooled(200, 200, 0.7, 0.6, 0.8), "which falls short of the goal of 0.9 (the whole interval lies below it)"),
    (_pooled(2, 2, 0.95, float("nan"), float("nan")), "cannot be said to reach the goal of 0.9"),
])
def test_the_goal_sentence_reads_the_interval_and_n(pooled, phrase):
    from ripbench.repro.shapes_rip_report import _verdict

    assert phrase in _verdict(pooled)


def test_too_few_hallucinations_do_not_reproduce_a_claim():
    from ripbench.repro.toy_report import _verdict

    det = {"n_hallucinated": 1, "detection_rate": 1.0, "detection_rate_ci95": (0.96, 1.0), "retention": 0.96}
    text = _verdict({"results": {"toy": {"detection": det}}})
    assert "1 hallucination evaluated" in text and "too few hallucinations" in text
    assert "whole interval lies above it." not in text


def _summary(rows, by=("run", "model", "mask_label")):
    frame = pd.DataFrame(rows)
    frame.attrs["final"] = "ssim_orig@3"
    return frame


def _row(run, value, lo, hi, n=12, model="biharmonic", mask="grid-32"):
    return {"run": run, "model": model, "mask_label": mask, "trajectories": n, "collapsed": 0,
            "ssim_orig@3": value, "ssim_orig@3_lo": lo, "ssim_orig@3_hi": hi}


def test_identical_runs_name_no_fastest_group():
    summary = _summary([_row("run-a", 0.543, 0.488, 0.603), _row("run-b", 0.543, 0.488, 0.603)])
    text = fastest_drift(summary, ["run", "model", "mask_label"])
    assert text.startswith("No group drifts fastest: all 2 groups end at the same final SSIM")
    assert "overlaps that of" not in text and "run-a" not in text


def test_groups_sharing_a_name_across_runs_are_named_with_their_run():
    summary = _summary([_row("run-a", 0.50, 0.45, 0.55), _row("run-b", 0.52, 0.47, 0.57)])
    text = fastest_drift(summary, ["model", "mask_label"])  # grouped without the run: names would repeat
    assert "Fastest drift: run-a / biharmonic / grid-32" in text and "Slowest: run-b / biharmonic / grid-32" in text
    assert "The two intervals overlap" in text and "overlaps that of" not in text


def test_a_third_group_is_named_only_when_it_is_another_group():
    summary = _summary([_row("a", 0.50, 0.45, 0.55), _row("a", 0.52, 0.47, 0.57, mask="grid-16"),
                        _row("a", 0.90, 0.88, 0.92, mask="grid-8")])
    text = fastest_drift(summary, ["model", "mask_label"])
    assert "Fastest drift: biharmonic / grid-32" in text
    assert "The interval of biharmonic / grid-32 overlaps that of biharmonic / grid-16 (0.520)" in text


def test_one_run_and_one_trajectory():
    assert fastest_drift(_summary([_row("a", 0.5, 0.4, 0.6)]), ["model", "mask_label"]) is None  # one group
    summary = _summary([_row("a", 0.5, float("nan"), float("nan"), n=1),
                        _row("a", 0.7, float("nan"), float("nan"), n=1, mask="grid-16")])
    text = fastest_drift(summary, ["model", "mask_label"])
    assert "n = 1 trajectory)" in text and "no 95% CI" in text
    from ripbench.analysis import CollapseRule

    lines = collapse_sentences(summary.assign(median_collapse=float("nan"), failed=1), ["model", "mask_label"],
                               CollapseRule("ssim_orig", 0.5))
    assert "1 of 1 trajectory had a failed model call" in lines[0]


def test_failure_sentence_for_one_trajectory():
    table = pd.DataFrame({"trajectory_id": ["t0"], "model": ["m"], "image_id": ["i"], "mask_label": ["g"],
                          "seed": [0], "iteration": [0]})
    assert failure_sentences(table, pd.DataFrame()) == ["No failed model call and no missing metric value in 1 trajectory."]


@pytest.mark.slow
def test_a_report_of_two_identical_runs_and_one_difference(tmp_path):
    from ripbench.config import validate_config
    from ripbench.report import write_report
    from ripbench.run import run_experiment

    def run(name, **changes):
        data = {"name": name, "iterations": 2, "size": 32, "seeds": [0], "inputs": {"source": "samples",
                "names": ["coffee", "astronaut"]}, "masks": [{"policy": "grid", "size": 16}], "models": ["biharmonic"],
                "metrics": {"names": ["ssim"]}, "output_dir": str(tmp_path), **changes}
        return run_experiment(validate_config(data), progress=False).run_dir

    a, b = run("run-a"), run("run-b", snapshots=[0])  # the same numbers; one setting differs
    text = write_report([a, b], tmp_path / "cmp", n_boot=50, max_strips=1)["markdown"].read_text()
    assert "No group drifts fastest: all 2 groups end at the same final SSIM" in text
    assert "overlaps that of" not in text
    assert "The runs differ in 1 way;" in text
