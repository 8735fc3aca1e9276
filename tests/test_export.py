"""``ripbench export``: a run's saved chains as a dataset ``datasets`` loads, with provenance; ``save_every``."""

from __future__ import annotations

import json
from pathlib import Path

import datasets  # in the dev extra: without it these tests fail, clearly
import numpy as np
import pytest
from click.testing import CliRunner

import ripbench
from ripbench.cli import main
from ripbench.config import validate_config

ITERATIONS = 3


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick preset, small: one photo (biharmonic) and two shapes images (the bundled DDPM, with a
    hallucination score), every iteration saved."""
    out = tmp_path_factory.mktemp("export")
    res = CliRunner().invoke(main, [
        "run", "--preset", "quick", "-n", str(ITERATIONS), "--mask", "grid:32", "--save-every", "1", "--name", "quick",
        "--set", "inputs.names=[coffee]", "--set", "models.1.inputs.count=2", "--set", "models.1.options.steps=10",
        "--set", "hallucination.band=[0, 1.0]", "--set", "metrics.names=[ssim,mse,psnr]", "--no-progress",
        "--output-dir", str(out)])
    assert res.exit_code == 0, res.output
    return out / "quick"


def _load(kind: str, folder: Path) -> datasets.Dataset:
    where = folder / "data" if kind == "parquet" else folder
    return datasets.load_dataset(kind, data_dir=str(where), split="train")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["parquet", "imagefolder"])
def test_export_loads_with_datasets_and_carries_provenance(quick_run: Path, fmt: str, tmp_path: Path) -> None:
    # parquet: exactly `ripbench export results/quick --format parquet` (the default folder RUN/export/parquet)
    out = quick_run / "export" / "parquet" if fmt == "parquet" else tmp_path / fmt
    where = [] if fmt == "parquet" else ["--out", str(out)]
    res = CliRunner().invoke(main, ["export", str(quick_run), "--format", fmt, *where])
    assert res.exit_code == 0, res.output
    ds = _load(fmt, out)
    table = ripbench.load(quick_run)
    trajectories = table["trajectory_id"].nunique()
    assert len(ds) == trajectories * (ITERATIONS + 1)  # save_every 1: the whole chain, the original included
    rows = ds.remove_columns(["image", "mask"]).to_pandas()
    assert set(rows["run"]) == {"quick"} and set(rows["model"]) == {"biharmonic", "shapes-ddpm"}
    for column in ("image_id", "mask_policy", "seed", "iteration", "mask_y0", "mask_x1", "mse_orig", "ssim_orig",
                   "halluc_score", "halluc_score_current", "det_x0_variance"):
        assert column in rows.columns, column
    merged = rows.merge(table, on=["trajectory_id", "iteration"], suffixes=("", "_table"))
    assert len(merged) == len(rows)
    for column in ("mse_orig", "psnr_orig", "halluc_score", "mask_y0", "mask_x1"):
        a, b = merged[column].astype(float).to_numpy(), merged[f"{column}_table"].astype(float).to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), column  # missing stays missing, nothing more
        assert np.allclose(a, b, equal_nan=True), column
    # PSNR of identical pixels is +inf (the original, unchanged regions): exported as inf, not as missing
    assert np.isinf(rows.loc[rows["iteration"] == 0, "psnr_orig"].astype(float)).all()
    later = rows[(rows["model"] == "shapes-ddpm") & (rows["iteration"] > 0)]
    assert later["halluc_score"].gt(0).all()
    assert rows.loc[rows["iteration"] == 0, "mask_y0"].isna().all()
    # the pixels: the saved PNG of that iteration, and its mask box holds the mask
    item = ds[int(np.flatnonzero((rows["iteration"] == 2).to_numpy())[0])]
    saved = quick_run / "images" / item["trajectory_id"] / "iter_0002.png"
    from PIL import Image

    assert np.array_equal(np.asarray(item["image"]), np.asarray(Image.open(saved)))
    mask = np.asarray(item["mask"]) > 127
    ys, xs = np.nonzero(mask)
    assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == \
        (item["mask_y0"], item["mask_x0"], item["mask_y1"], item["mask_x1"])
    card = (out / "README.md").read_text()
    manifest = json.loads((quick_run / "manifest.json").read_text())
    assert f"exported with: `ripbench export {quick_run} --format {fmt}{''.join(' ' + w for w in where)}`" in card
    assert manifest["command"] in card and "save_every: 1" in card


def test_export_refuses_an_existing_folder_and_a_run_without_images(quick_run: Path, tmp_path: Path) -> None:
    from ripbench.errors import ResultsError
    from ripbench.export import export_run

    (tmp_path / "taken").mkdir()
    with pytest.raises(ResultsError, match="exists; pass --overwrite"):
        export_run(quick_run, "imagefolder", tmp_path / "taken")
    with pytest.raises(ResultsError, match="not found"):
        export_run(tmp_path / "nothing", "parquet")


def test_push_to_hub_offline_is_one_line_and_keeps_the_export(quick_run: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(main, ["export", str(quick_run), "--format", "imagefolder", "--out", str(tmp_path / "x"),
                                    "--push-to-hub", "someone/rip-chains"])
    assert res.exit_code == 2
    errors = [line for line in res.output.splitlines() if line.startswith("ripbench: error:")]
    assert len(errors) == 1 and "cannot push to the Hub" in errors[0] and "HF_HUB_OFFLINE" in errors[0]
    assert (tmp_path / "x" / "metadata.jsonl").is_file()


def test_save_every_adds_dense_snapshots_and_changes_no_result() -> None:
    base = {"iterations": 10, "snapshots": [5]}
    assert validate_config(base).snapshot_iterations() == [0, 5, 10]
    dense = validate_config({**base, "save_every": 3})
    assert dense.snapshot_iterations() == [0, 3, 5, 6, 9, 10]
    assert dense.fingerprint() == validate_config(base).fingerprint()
    assert validate_config({"iterations": 4, "save_every": 1}).snapshot_iterations() == [0, 1, 2, 3, 4]


def test_two_exports_loaded_by_their_folders_are_two_datasets(quick_run: Path, tmp_path: Path) -> None:
    """`load_dataset("RUN/export/parquet")`: with a `configs:` block in the card, every export folder shared one
    cache entry in `datasets`, so a second run's export silently loaded the first one's rows."""
    from ripbench.export import export_run

    other = CliRunner().invoke(main, ["run", "--model", "biharmonic", "-n", "1", "--size", "32", "--mask", "grid:16",
                                      "--set", "inputs.names=[coffee]", "--set", "metrics.names=[mse]",
                                      "--save-every", "1", "--no-progress", "--name", "other",
                                      "--output-dir", str(tmp_path / "res")])
    assert other.exit_code == 0, other.output
    cache = str(tmp_path / "hf-cache")
    sizes = []
    for run in (quick_run, tmp_path / "res" / "other"):
        folder = export_run(run, "parquet", tmp_path / run.name / "export" / "parquet")
        sizes.append(len(datasets.load_dataset(str(folder), split="train", cache_dir=cache)))
    assert sizes == [len(ripbench.load(quick_run)), 2]  # the quick run's rows, then the other's 2 images
    assert "configs:" not in (folder / "README.md").read_text()


def test_exporting_an_unfinished_run_says_so(quick_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "quick"
    shutil.copytree(quick_run, run, ignore=shutil.ignore_patterns("export"))
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "interrupted"}))
    res = CliRunner().invoke(main, ["export", str(run), "--format", "imagefolder"])
    assert res.exit_code == 0, res.output
    assert f"ripbench: note: run {str(run)!r} is 'interrupted', not complete" in res.output
    assert "status `interrupted`" in (run / "export" / "imagefolder" / "README.md").read_text()
    done = CliRunner().invoke(main, ["export", str(quick_run), "--format", "imagefolder", "--out",
                                     str(tmp_path / "done")])
    assert done.exit_code == 0 and "note" not in done.output, done.output
