"""The shared operating points (:mod:`ripbench.defaults`) are the ones every evaluation uses."""

from __future__ import annotations

import inspect

from ripbench import defaults


def _default(function, name):
    return inspect.signature(function).parameters[name].default


def test_keep_and_calibration_shares_have_one_value_everywhere():
    from ripbench import hallucination, hallucination_stats, report
    from ripbench.repro import shapes_rip, toy_gaussians

    assert (defaults.KEEP_SHARE, defaults.CALIBRATION_SHARE) == (0.96, 0.25)
    keeps = {"shapes_rip.KEEP": shapes_rip.KEEP, "toy_gaussians.KEEP": toy_gaussians.KEEP,
             "calibrate_threshold": _default(hallucination.calibrate_threshold, "keep"),
             "threshold_analysis": _default(hallucination_stats.threshold_analysis, "keep"),
             "write_report": _default(report.write_report, "keep")}
    assert keeps == dict.fromkeys(keeps, defaults.KEEP_SHARE)
    shares = {"shapes_rip": shapes_rip.CALIBRATION_SHARE, "toy_gaussians": toy_gaussians.CALIBRATION_SHARE,
              "hallucination_stats": hallucination_stats.CALIBRATION_SHARE,
              "calibration_split": _default(hallucination_stats.calibration_split, "share")}
    assert shares == dict.fromkeys(shares, defaults.CALIBRATION_SHARE)
