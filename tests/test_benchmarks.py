"""The benchmark scripts still run (tiny settings): they are what speed claims are regenerated with."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.slow
def test_device_benchmark_cpu_variant_writes_its_table(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("diffusers")
    from ripbench.models import registry

    monkeypatch.setattr(registry, "_BUILTINS", dict(registry._BUILTINS))  # the benchmark registers its model
    bench = _load("bench_device")
    data = bench.main(["--device", "cpu", "--size", "32", "--steps", "2", "--iterations", "1",
                       "--batch-sizes", "1,2", "--naive-images", "1", "--out", str(tmp_path),
                       "--semantic", "on", "--semantic-size", "tiny"])
    written = json.loads(next(tmp_path.glob("cpu-*.json")).read_text())
    assert written["rows"] == data["rows"] and not data["errors"]
    assert [(r["configuration"], r["batch"]) for r in data["rows"]] == [
        ("naive loop", 1), ("harness", 1), ("harness", 2), ("harness + DINOv2 + CLIP", 2)]
    assert all(r["img_per_s"] > 0 for r in data["rows"]) and data["rows"][1]["ratio_to_naive"] > 0
    semantic = data["rows"][-1]
    assert semantic["semantic_ms_per_image"] > 0 and 0 < semantic["population_share_of_run"]
    out = capsys.readouterr().out
    assert "| naive loop | 1 | no |" in out and "semantic: " in out


@pytest.mark.slow
def test_harness_benchmark_prints_the_harness_line(capsys: pytest.CaptureFixture, monkeypatch) -> None:
    bench = _load("bench_harness")
    monkeypatch.setattr(sys, "argv", ["bench_harness.py", "--size", "96", "--iterations", "1", "--metrics", "mse,ssim"])
    bench.main()
    out = capsys.readouterr().out
    assert "biharmonic: 18 inpaints" in out and " ms, harness " in out and "metrics" in out


@pytest.mark.slow
def test_import_benchmark_measures_the_light_commands(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ripbench.config import validate_config
    from ripbench.run import run_experiment

    config = validate_config({
        "name": "tiny", "iterations": 1, "size": 32, "seeds": [0], "inputs": {"source": "samples", "names": ["coffee"]},
        "masks": [{"policy": "grid", "size": 16}], "models": ["biharmonic"], "metrics": {"names": ["mse"]},
        "output_dir": str(tmp_path / "runs")})
    run_experiment(config, progress=False)
    bench = _load("bench_imports")
    data = bench.main(["--run-dir", str(tmp_path / "runs" / "tiny"), "--repeat", "1", "--out", str(tmp_path / "i.json")])
    assert json.loads((tmp_path / "i.json").read_text())["rows"] == data["rows"]
    rows = {r["command"]: r for r in data["rows"]}
    assert set(rows) == {"config", "analysis + load", "--help", "pandas alone", "python alone"}
    assert all(r["wall_s"] > 0 and r["peak_rss_mib"] > 0 for r in rows.values())
    assert all(r["heavy_imported"] == [] for r in rows.values())  # what tests/test_imports.py checks, seen here too
    assert "| config |" in capsys.readouterr().out
