"""Figures: written atomically as non-empty PNG (and SVG), from synthetic tables and run folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ripbench import analysis, plots
from ripbench.errors import ResultsError
from ripbench.store import RunStore

MODELS = ("alpha", "beta")
MASKS = {"grid-8": 8, "grid-16": 16, "grid-128": 128}  # natural order differs from string order
SIZE = 32


def synthetic_run(folder: Path, iterations: int = 6, snapshots: tuple[int, ...] = (0, 2, 6),
                  models: tuple[str, ...] = MODELS, masks: dict[str, int] = MASKS) -> pd.DataFrame:
    """A run folder with a table, manifest and snapshot PNGs (2 models x 2 images x 3 masks x 2 seeds;
    the second model of ``models`` drifts 1.5 times as fast)."""
    rng = np.random.default_rng(0)
    rows = []
    for model in models:
        for image in ("cat", "dog"):
            base = rng.random((SIZE, SIZE, 3))
            for label, cell in masks.items():
                for seed in (0, 1):
                    tid = f"{model}__{image}__{label}__s{seed}"
                    rate = 0.02 * (1 + cell / 16) * (1.5 if model == models[-1] and len(models) > 1 else 1.0)
                    img = base.copy()
                    for it in range(iterations + 1):
                        cell_px = min(cell, SIZE // 2)
                        y0 = (it * 5 + seed * 3) % (SIZE - cell_px)
                        x0 = (it * 7) % (SIZE - cell_px)
                        if it > 0:
                            img[y0:y0 + cell_px, x0:x0 + cell_px] = rng.random(3)
                        rows.append({"trajectory_id": tid, "model": model, "image_id": image, "category": image,
                                     "mask_policy": "grid", "mask_label": label, "seed": seed, "iteration": it,
                                     "lpips_orig": min(rate * it + rng.normal(0, 0.01) * (it > 0), 1.0),
                                     "ssim_orig": 1 - 0.8 * rate * it, "psnr_orig": np.inf if it == 0 else 30 - it,
                                     "mask_area": 0.0 if it == 0 else cell_px**2 / SIZE**2, "failed": False,
                                     "lpips_orig_never": 0.0 if it == 0 else 0.3 * rate * it,
                                     "lpips_orig_ever": np.nan if it == 0 else min(1.2 * rate * it, 1.0),
                                     "lpips_orig_current": np.nan if it == 0 else 0.5,
                                     "halluc_score": np.nan if it == 0 else rng.gamma(2.0, 1e-4 * (1 + it / 3)),
                                     "shapes_reason": "ok" if it == 0 or rng.random() > 0.3 else "duplicate"})
                        if it in snapshots:
                            out = folder / "images" / tid
                            out.mkdir(parents=True, exist_ok=True)
                            Image.fromarray((img * 255).astype(np.uint8)).save(out / f"iter_{it:04d}.png")
                            if it > 0:
                                mask = np.zeros((SIZE, SIZE), np.uint8)
                                mask[y0:y0 + cell_px, x0:x0 + cell_px] = 255
                                Image.fromarray(mask).save(out / f"mask_{it:04d}.png")
    table = pd.DataFrame(rows)
    store = RunStore(folder)
    store.write_part(table)
    store.write_manifest({"name": folder.name, "config": {"iterations": iterations, "size": SIZE}})
    return analysis.load_runs(folder)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("plots") / "synthetic"
    return folder, synthetic_run(folder)


def assert_image(path: Path, min_size: tuple[int, int] = (200, 150)) -> None:
    assert path.is_file() and path.stat().st_size > 5000
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width >= min_size[0] and img.height >= min_size[1]
        pixels = np.asarray(img.convert("L"))
    assert pixels.std() > 5  # not a blank canvas
    svg = path.with_suffix(".svg")
    assert svg.is_file() and "<svg" in svg.read_text()[:2000]
    assert not list(path.parent.glob(".*.tmp*"))  # atomic writes leave no temporaries


def test_collapse_curves_bands_and_threshold(run, tmp_path):
    _, table = run
    rule = analysis.collapse_rule(table)
    out = plots.collapse_curves(table, tmp_path / "curves.png", rule=rule, formats=["svg"], n_boot=100)
    assert out == tmp_path / "curves.png"
    assert_image(out)
    assert "collapse: lpips_orig" in (tmp_path / "curves.svg").read_text()  # threshold line in the legend
    std = plots.collapse_curves(table, tmp_path / "std.svg", metrics=["ssim_orig"], band="std")
    assert std.suffix == ".svg" and std.stat().st_size > 5000 and not (tmp_path / "std.png").exists()


def test_survival_and_model_comparison(run, tmp_path):
    _, table = run
    assert_image(plots.survival_curves(table, tmp_path / "surv.png", 0.2, formats=["svg"]))
    path = plots.model_comparison(table, tmp_path / "cmp.png", formats=["svg"], n_boot=100)
    assert_image(path, min_size=(700, 200))
    svg = (tmp_path / "cmp.svg").read_text()
    assert svg.index("grid-8") < svg.index("grid-16") < svg.index("grid-128")  # panels by mask size


def test_ordered_groups_sorts_mask_sizes_by_area(run):
    _, table = run
    assert [k[0] for k in plots.ordered_groups(table, ["mask_label"])] == ["grid-8", "grid-16", "grid-128"]
    assert plots.ordered_groups(table, []) == [()]


def test_image_strips_outline_masks(run, tmp_path):
    folder, table = run
    ids = ["alpha__cat__grid-8__s0", "beta__dog__grid-16__s1"]
    assert plots.snapshot_iterations(folder, ids[0]) == [0, 2, 6]
    path = plots.image_strips(folder, ids, tmp_path / "strip.png", table=table, formats=["svg"])
    assert_image(path)
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB")).astype(int)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)
    assert red.sum() > 50  # the mask outlines are drawn
    assert "LPIPS" in (tmp_path / "strip.svg").read_text()
    only = plots.image_strips(folder, ids[0], tmp_path / "one.png", iterations=[0, 6])
    assert only.is_file()
    with pytest.raises(ResultsError, match="no saved snapshots"):
        plots.image_strips(folder, ["nope"], tmp_path / "x.png")


def test_drift_heatmap_written_and_refuses_runs_without_snapshots(run, tmp_path):
    folder, table = run
    path = plots.drift_heatmap(folder, tmp_path / "heat.png", table=table, formats=["svg"])
    assert_image(path, min_size=(400, 200))
    assert plots.drift_heatmap(folder, tmp_path / "heat2.png").is_file()  # loads the table itself
    empty = tmp_path / "empty"
    RunStore(empty).write_part(table[table["trajectory_id"] == "alpha__cat__grid-8__s0"])
    with pytest.raises(ResultsError, match="no trajectory"):
        plots.drift_heatmap(empty, tmp_path / "none.png")


def test_figures_share_one_width_and_come_as_pdf(run, tmp_path):
    _, table = run
    curves = plots.collapse_curves(table, tmp_path / "c.png", formats=["pdf"], n_boot=50)
    regions = plots.region_curves(table, tmp_path / "r.png", "lpips", formats=["pdf"], n_boot=50)
    widths = []
    for path in (curves, regions):
        assert path.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
        with Image.open(path) as img:
            widths.append(img.width)
    # a full-width figure is FULL_WIDTH inches at DPI (tight bounding box: within a few percent)
    for width in widths:
        assert width == pytest.approx(plots.FULL_WIDTH * plots.DPI, rel=0.06)


def test_region_hallucination_and_roc_figures(run, tmp_path):
    from ripbench.hallucination import stats as hallucination_stats

    _, table = run
    assert_image(plots.region_curves(table, tmp_path / "regions.png", "lpips_orig", formats=["svg"], n_boot=50))
    assert "pixels never masked so far" in (tmp_path / "regions.svg").read_text()
    assert_image(plots.hallucination_bands(table, tmp_path / "bands.png", formats=["svg"], n_boot=50))
    assert "hallucination rate" in (tmp_path / "bands.svg").read_text()  # ground truth panel
    computed = hallucination_stats.score_bands(table, n_boot=50)  # the caller's numbers, not computed again
    assert_image(plots.hallucination_bands(table, tmp_path / "given.png", formats=["svg"], computed=computed, n_boot=50))
    roc = hallucination_stats.roc_analysis(table, n_boot=50)
    assert roc["status"] == "ok"
    assert_image(plots.roc_curves([roc], tmp_path / "roc.png", formats=["svg"]))
    assert "AUROC" in (tmp_path / "roc.svg").read_text()
    with pytest.raises(ResultsError, match="no ROC"):
        plots.roc_curves([{"status": "no ground truth"}], tmp_path / "none.png")
    with pytest.raises(ResultsError, match="no region columns"):
        plots.region_curves(table, tmp_path / "x.png", "ssim_orig")


def test_choose_iterations_spreads_over_the_run():
    assert plots.choose_iterations([0, 1, 5, 10, 20], 5) == [0, 1, 5, 10, 20]
    assert plots.choose_iterations(list(range(0, 101)), 4) == [0, 25, 50, 75, 100]
    assert plots.choose_iterations([3, 7], 5) == [3, 7]
