"""Hugging Face datasets as inputs (``inputs.source: hf``), on small datasets built here (no network)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets  # in the dev extra: without it these tests fail, clearly
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ripbench.cli import main
from ripbench.config import validate_config
from ripbench.errors import ConfigError, InputError, ResultsError
from ripbench.hf_inputs import choose_rows
from ripbench.run.plan import load_inputs

STYLES = ["baroque", "cubism", "impressionism"]


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (24 + i, 28, 3), dtype=np.uint8)) for i in range(n)]


def _dataset(images: list[Image.Image]) -> datasets.Dataset:
    features = datasets.Features({"image": datasets.Image(), "style": datasets.ClassLabel(names=STYLES)})
    return datasets.Dataset.from_dict({"image": images, "style": [i % 3 for i in range(len(images))]},
                                      features=features)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A five-row dataset written with ``save_to_disk`` (what ``ds.save_to_disk`` of a Hub download gives)."""
    path = tmp_path / "wikiart-mini"
    _dataset(_images(5)).save_to_disk(str(path))
    return path


def _inputs(dataset: Path, **extra: object) -> list:
    cfg = validate_config({"inputs": {"source": "hf", "dataset": str(dataset), "sample": 3, "seed": 1, **extra}})
    return load_inputs(cfg.inputs, 16, "center-crop")


def test_cli_runs_on_a_saved_dataset_with_its_sample_ids_categories_and_manifest(saved: Path, tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS", raising=False)
    args = ["run", "--model", "biharmonic", "-n", "2", "--size", "32", "--mask", "grid:16", "--no-progress",
            "--set", "metrics.names=[mse]", "--set", "inputs.source=hf", "--set", f"inputs.dataset={saved}",
            "--set", "inputs.sample=2", "--set", "inputs.seed=3", "--set", "inputs.category=style",
            "--name", "hf", "--output-dir", str(tmp_path / "res")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS") == "1"  # --no-progress hides datasets' bars too
    run_dir = tmp_path / "res" / "hf"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    rows = choose_rows(5, 2, 3)
    assert sorted(manifest["inputs"]) == [f"row-{i:06d}" for i in rows]
    assert [manifest["inputs"][f"row-{i:06d}"]["category"] for i in rows] == [STYLES[i % 3] for i in rows]
    (record,) = manifest["datasets"]
    assert record["dataset"] == str(saved) and record["loaded_as"] == "save_to_disk"
    assert (record["rows"], record["sample"], record["seed"], record["split"]) == (5, 2, 3, "train")
    assert record["fingerprint"]
    import ripbench

    table = ripbench.load(run_dir)
    assert sorted(table["image_id"].unique()) == sorted(manifest["inputs"])


def test_the_sample_is_the_same_from_disk_parquet_imagefolder_and_streaming(saved: Path, tmp_path: Path) -> None:
    ds = datasets.load_from_disk(str(saved))
    ds.to_parquet(str(tmp_path / "pq" / "part-0.parquet"))
    for i, image in enumerate(ds.cast_column("image", datasets.Image(decode=False))["image"]):
        folder = tmp_path / "imgs" / STYLES[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.png").write_bytes(image["bytes"])  # imagefolder: rows in file order, 0..4
    expected = [(f"row-{i:06d}", None) for i in choose_rows(5, 3, 1)]
    disk = _inputs(saved)
    assert [(im.id, None) for im in disk] == expected
    digests = [im.sha256 for im in disk]
    for other in (_inputs(tmp_path / "pq"), _inputs(tmp_path / "pq", streaming=True, rows=5),
                  _inputs(tmp_path / "pq" / "part-0.parquet")):
        assert [im.id for im in other] == [im.id for im in disk]
        assert [im.sha256 for im in other] == digests  # the encoded bytes: the same rows
        assert all(bool((a.pixels == b.pixels).all()) for a, b in zip(disk, other))
    # Parquet written without datasets' metadata (pandas): the image column is plain encoded bytes
    import pandas as pd

    raw = [image["bytes"] for image in ds.cast_column("image", datasets.Image(decode=False))["image"]]
    (tmp_path / "raw").mkdir()
    pd.DataFrame({"picture": raw}).to_parquet(tmp_path / "raw" / "a.parquet")
    assert [im.sha256 for im in _inputs(tmp_path / "raw", column="picture")] == digests
    folder = _inputs(tmp_path / "imgs", category="label")
    assert len(folder) == 3 and {im.category for im in folder} <= set(STYLES)
    assert folder[0].dataset is not None and folder[0].dataset["loaded_as"] == "imagefolder"


def test_a_changed_dataset_refuses_to_resume(saved: Path, tmp_path: Path) -> None:
    from ripbench.run import run_experiment
    from ripbench.store import RunStore

    data = {"name": "hf", "iterations": 1, "size": 16, "masks": [{"policy": "grid", "size": 8}],
            "metrics": {"names": ["mse"]}, "output_dir": str(tmp_path / "res"),
            "inputs": {"source": "hf", "dataset": str(saved), "sample": 5}}
    first = run_experiment(validate_config(data), progress=False)
    RunStore(first.run_dir).part_files()[0].unlink()  # interrupted
    images = _images(5)
    images[2] = _images(1, seed=9)[0].resize(images[2].size)  # one row repainted meanwhile
    _dataset(images).save_to_disk(str(tmp_path / "tmp-ds"))
    import shutil

    shutil.rmtree(saved)
    (tmp_path / "tmp-ds").rename(saved)
    with pytest.raises(ResultsError, match=r"input image hf:.*\[2\] changed"):
        run_experiment(validate_config(data), progress=False)


def test_bad_hf_inputs_are_one_line(saved: Path) -> None:
    with pytest.raises(ConfigError, match="inputs.dataset .* is required"):
        validate_config({"inputs": {"source": "hf"}})
    with pytest.raises(ConfigError, match="inputs.sample applies to inputs.source 'hf' only"):
        validate_config({"inputs": {"source": "samples", "sample": 3}})
    with pytest.raises(InputError, match="has no column 'picture'; columns: image, style"):
        _inputs(saved, column="picture")
    with pytest.raises(InputError, match="column 'style' .* not images"):
        _inputs(saved, column="style")
    with pytest.raises(InputError, match="has only 5 rows"):
        _inputs(saved, sample=6)
    with pytest.raises(InputError, match="no split 'test'"):
        datasets.DatasetDict({"train": datasets.load_from_disk(str(saved))}).save_to_disk(str(saved) + "-dict")
        _inputs(Path(str(saved) + "-dict"), split="test")


def test_unset_hf_fields_leave_fingerprints_as_they_were() -> None:
    """Configs written before ``source: hf`` existed keep their fingerprint (run names, resumes)."""
    cfg = validate_config({"inputs": {"source": "samples"}})
    assert cfg.fingerprint() == "f0b265a710b1563f"  # recorded before the hf input fields (and the hand-off) existed


def test_readme_wikiart_command_is_a_valid_rip_paper_config() -> None:
    """The README's command for the paper's 100 random WikiArt images validates (the Hub is not reached)."""
    import re
    import shlex

    from ripbench.config import apply_overrides, load_preset

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    found = re.search(r"ripbench run --preset rip-paper (--set inputs\.source=hf .*?)\n\s*\n", readme.replace("\\\n", " "),
                      re.S)
    assert found, "the README lost its WikiArt command"
    args = shlex.split(found.group(1).split("\n")[0])
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    cfg = apply_overrides(load_preset("rip-paper"), sets)
    assert (cfg.inputs.source, cfg.inputs.dataset, cfg.inputs.sample, cfg.inputs.column or "image") == \
        ("hf", "huggan/wikiart", 100, "image")


def test_parquet_and_image_folders_keep_their_splits_and_a_missing_path_says_so(saved: Path, tmp_path: Path) -> None:
    """A Hub-layout folder (data/train-*.parquet, data/test-*.parquet) gives each split its own rows; an
    unknown split is refused (it once read every file as the split asked for); a path that is not there is
    named as a path, not sent to the Hub with advice about the network."""
    ds = datasets.load_from_disk(str(saved))
    (tmp_path / "pq" / "data").mkdir(parents=True)
    ds.select(range(3)).to_parquet(str(tmp_path / "pq" / "data" / "train-00000-of-00001.parquet"))
    ds.select(range(3, 5)).to_parquet(str(tmp_path / "pq" / "data" / "test-00000-of-00001.parquet"))
    assert len(_inputs(tmp_path / "pq", sample=None)) == 3
    assert len(_inputs(tmp_path / "pq", split="test", sample=None)) == 2
    with pytest.raises(InputError, match="has no split 'validation'; splits: train, test"):
        _inputs(tmp_path / "pq", split="validation")
    with pytest.raises(InputError, match="has no split 'test'; splits: train"):
        _inputs(tmp_path / "pq" / "data" / "train-00000-of-00001.parquet", split="test")
    with pytest.raises(InputError, match=r"no such file or folder \(a Hub id is 'org/name'\)"):
        _inputs(tmp_path / "not-there")
