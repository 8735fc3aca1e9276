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


def synthetic_run(folder: Path, iterations: int = 6, snapshots: tuple[int, ...] = (0, 2, 6)) -> pd.DataFrame:
    """A run folder with a table, manifest and snapshot PNGs (2 models x 2 images x 3 masks x 2 seeds)."""
    rng = np.random.default_rng(0)
    rows = []
    for model in MODELS:
        for image in ("cat", "dog"):
            base = rng.random((SIZE, SIZE, 3))
            for label, cell in MASKS.items():
                for seed in (0, 1):
                    tid = f"{model}__{image}__{label}__s{seed}"
                    rate = 0.02 * (1 + MASKS[label] / 16) * (1.5 if model == "beta" else 1.0)
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
                                     "mask_area": 0.0 if it == 0 else cell_px**2 / SIZE**2, "failed": False})
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
    assert_image(plots.survival_curves(table, tmp_path / "surv.png", 0.2, formats=["svg"], n_boot=100))
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
