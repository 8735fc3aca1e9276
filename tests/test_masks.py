"""Tests for ripbench.masks: determinism, geometry, coverage, folder loading, errors, stats, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.measure import label as label_components

from ripbench.errors import ConfigError, InputError
from ripbench.masks import (
    MASK_POLICIES,
    BoxMask,
    CenterMask,
    ColumnsMask,
    FolderMask,
    GridMask,
    MaskPolicy,
    StrokesMask,
    build_mask_policy,
    check_mask_spec,
    generate_mask_set,
    load_mask_png,
    mask_spec_models,
    mask_stats_batch,
    masks_for,
)

REPO_MASKS = Path(__file__).resolve().parents[1] / "masks"


def mask_stats(mask: np.ndarray) -> dict[str, float | int]:
    """Area and bounding box of one ``H x W`` mask (:func:`mask_stats_batch` of a batch of one)."""
    return {k: v.item() for k, v in mask_stats_batch(torch.from_numpy(np.asarray(mask))[None]).items()}


def _write_mask(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def _square(size: int, y0: int, x0: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


@pytest.fixture()
def mask_folder(tmp_path: Path) -> Path:
    """Three distinct 32x32 masks, named so that sorting gives a, b, c."""
    for i, name in enumerate("abc"):
        _write_mask(tmp_path / f"{name}.png", _square(32, 4 * i, 4 * i, 8))
    return tmp_path


RANDOM_POLICIES = [
    GridMask(16),
    BoxMask(0.1),
    StrokesMask("thin"),
    StrokesMask("medium"),
    StrokesMask("thick"),
    ColumnsMask(4),
]


# ----------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("policy", RANDOM_POLICIES, ids=lambda p: p.label)
def test_random_policies_are_deterministic_and_vary(policy) -> None:
    mask = policy(96, 128, 5, 11)
    assert mask.dtype == np.bool_ and mask.shape == (96, 128)
    assert np.array_equal(mask, policy(96, 128, 5, 11))
    assert np.array_equal(mask, build_mask_policy(policy.spec())(96, 128, 5, 11))
    # over several seeds / iterations at least one mask differs (a single pair may coincide for grid/columns)
    assert any(not np.array_equal(mask, policy(96, 128, 5, s)) for s in range(12, 18))
    assert any(not np.array_equal(mask, policy(96, 128, k, 11)) for k in range(6, 12))


@pytest.mark.parametrize("policy", RANDOM_POLICIES, ids=lambda p: p.label)
def test_masks_are_pure_in_iteration(policy) -> None:
    direct = policy(64, 64, 7, 3)
    for k in range(7):
        policy(64, 64, k, 3)
        policy(64, 64, k, 99)
    assert np.array_equal(direct, policy(64, 64, 7, 3))


def test_policy_streams_differ_between_policies() -> None:
    # grid and columns use different generator streams: their choices are not locked together
    grid = [int(np.argmax(GridMask(32)(32, 96, k, 0).any(axis=0))) // 32 for k in range(40)]
    cols = [int(np.argmax(ColumnsMask(3)(32, 96, k, 0).any(axis=0))) // 32 for k in range(40)]
    assert grid != cols


# ----------------------------------------------------------------------------------------- geometry


def test_grid_squares_are_aligned_and_cover_all_cells() -> None:
    policy = GridMask(64)
    seen = set()
    for k in range(200):
        stats = mask_stats(policy(200, 256, k, 0))
        assert stats["y1"] - stats["y0"] == 64 and stats["x1"] - stats["x0"] == 64
        assert stats["y0"] % 64 == 0 and stats["x0"] % 64 == 0
        assert stats["area"] == pytest.approx(64 * 64 / (200 * 256))
        assert stats["y1"] <= 192  # the 8-row remainder strip at the bottom is never masked
        seen.add((stats["y0"], stats["x0"]))
    assert len(seen) == 3 * 4


@pytest.mark.parametrize("area", [0.05, 0.1, 0.3])
def test_box_area_and_placement(area: float) -> None:
    policy = BoxMask(area, aspect=(0.25, 4.0))
    for k in range(30):
        mask = policy(256, 192, k, 1)
        stats = mask_stats(mask)
        assert stats["area"] == pytest.approx(area, rel=0.02)
        height, width = stats["y1"] - stats["y0"], stats["x1"] - stats["x0"]
        assert height * width == mask.sum()  # a solid rectangle
        assert 0.25 * 0.9 <= width / height <= 4.0 * 1.1 or width == 192 or height == 256


def test_box_fixed_aspect_and_large_area_fit_inside() -> None:
    mask = BoxMask(0.9, aspect=4.0)(64, 64, 0, 0)  # a 4:1 box of 90% cannot keep its aspect: it clips
    stats = mask_stats(mask)
    assert stats["area"] == pytest.approx(0.9, abs=0.02) and not mask.all()


def test_center_is_centred_and_constant() -> None:
    policy = CenterMask(0.25)
    mask = policy(256, 256, 0, 0)
    assert mask_stats(mask) == {"area": 0.25, "y0": 64, "x0": 64, "y1": 192, "x1": 192}
    assert np.array_equal(mask, policy(256, 256, 9, 123))
    wide = mask_stats(CenterMask(0.125, aspect=2.0)(128, 128, 0, 0))
    assert (wide["y1"] - wide["y0"], wide["x1"] - wide["x0"]) == (32, 64)
    assert (wide["y0"], wide["x0"]) == (48, 32)


def test_columns_simple_shapes_layout() -> None:
    policy = ColumnsMask()
    seen = set()
    for k in range(40):
        stats = mask_stats(policy(64, 64, k, 0))
        assert (stats["y0"], stats["y1"]) == (0, 64) and stats["x1"] - stats["x0"] == 21
        seen.add(stats["x0"])
    assert seen == {0, 21, 42}


@pytest.mark.parametrize(
    ("width", "low", "high"), [("thin", 0.05, 0.15), ("medium", 0.15, 0.30), ("thick", 0.25, 0.45)]
)
def test_strokes_coverage_and_shape(width: str, low: float, high: float) -> None:
    policy = StrokesMask(width)
    coverages = []
    for k in range(25):
        mask = policy(128, 128, k, 4)
        coverages.append(mask.mean())
        labels, count = label_components(mask, return_num=True)
        sizes = np.bincount(labels.ravel())[1:]
        assert 1 <= count <= 20  # a handful of strokes, not speckle
        assert sizes.min() >= 3  # every piece is at least a brush dab
    coverages = np.array(coverages)
    assert coverages.max() <= high + 1e-9 and coverages.min() >= low - 1e-9
    assert coverages.std() > 0.01  # coverage varies between masks


def test_strokes_scale_with_image_size() -> None:
    # brush and segment sizes scale with the image, so the coverage does not depend on the resolution
    small = np.mean([StrokesMask("medium")(64, 64, k, 0).mean() for k in range(20)])
    large = np.mean([StrokesMask("medium")(256, 256, k, 0).mean() for k in range(20)])
    assert abs(small - large) < 0.05


# ----------------------------------------------------------------------------------------- folder


def test_folder_cycle_order(mask_folder: Path) -> None:
    policy = FolderMask(str(mask_folder))
    expected = [_square(32, 4 * i, 4 * i, 8) for i in range(3)]
    for k in range(7):
        assert np.array_equal(policy(32, 32, k, seed=k * 13), expected[k % 3])


def test_folder_random_order(mask_folder: Path) -> None:
    policy = FolderMask(str(mask_folder), order="random")
    picks = [int(mask_stats(policy(32, 32, k, 5))["y0"]) // 4 for k in range(30)]
    assert set(picks) == {0, 1, 2}
    assert picks != [k % 3 for k in range(30)]
    assert picks == [int(mask_stats(policy(32, 32, k, 5))["y0"]) // 4 for k in range(30)]
    assert policy.label == f"folder-{mask_folder.name}-random"


def test_folder_size_mismatch_and_resize(mask_folder: Path) -> None:
    with pytest.raises(InputError, match=r"a\.png is 32x32 but the image is 64x64"):
        FolderMask(str(mask_folder))(64, 64, 0, 0)
    resized = FolderMask(str(mask_folder), resize=True)(64, 64, 1, 0)
    assert np.array_equal(resized, _square(64, 8, 8, 16))


def test_folder_empty_and_full_masks_are_named(tmp_path: Path) -> None:
    _write_mask(tmp_path / "ok.png", _square(16, 0, 0, 4))
    _write_mask(tmp_path / "zero.png", np.zeros((16, 16), dtype=bool))
    with pytest.raises(InputError, match=r"zero\.png is empty"):
        FolderMask(str(tmp_path)).validate(16, 16)
    (tmp_path / "zero.png").unlink()
    _write_mask(tmp_path / "whole.png", np.ones((16, 16), dtype=bool))
    with pytest.raises(InputError, match=r"whole\.png covers the whole 16x16 image"):
        FolderMask(str(tmp_path)).validate(16, 16)


def test_folder_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="contains no .png masks"):
        FolderMask(str(tmp_path)).validate(8, 8)
    with pytest.raises(ConfigError, match="is not a folder"):
        FolderMask(str(tmp_path / "nope")).validate(8, 8)


def test_repo_example_masks_load() -> None:
    policy = build_mask_policy({"policy": "folder", "path": str(REPO_MASKS)})
    masks = policy.masks(256, 256)
    assert len(masks) == 8 and policy.label == "folder-masks"
    coverages = [m.mean() for m in masks]
    assert 0.05 <= min(coverages) and max(coverages) <= 0.45


def test_load_mask_png_binarises_grey_colour_and_16bit(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 127, 128, 255]], dtype=np.uint8)).save(tmp_path / "g.png")
    assert load_mask_png(tmp_path / "g.png").tolist() == [[False, False, True, True]]
    rgb = np.zeros((1, 2, 3), dtype=np.uint8)
    rgb[0, 1] = 255
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert load_mask_png(tmp_path / "c.png").tolist() == [[False, True]]
    Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(tmp_path / "w.png")
    assert load_mask_png(tmp_path / "w.png").tolist() == [[False, True]]
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"bad\.png"):
        load_mask_png(tmp_path / "bad.png")


# ----------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("policy", "size", "message"),
    [
        (GridMask(128), (100, 256), "square size 128 is larger than the 100x256 image"),
        (GridMask(64), (64, 64), "would cover the whole 64x64 image"),
        (ColumnsMask(5), (8, 4), "5 columns do not fit in an image 4 px wide"),
        (StrokesMask("thin"), (4, 64), "at least 8x8"),
    ],
)
def test_impossible_sizes(policy, size, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        policy.validate(*size)
    with pytest.raises(ConfigError, match=message):
        policy(*size, 0, 0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"policy": "gird", "size": 64},
            "^invalid mask spec: policy: must be one of grid, box, center, strokes, folder, columns; got 'gird'$",
        ),
        ({"size": 64}, r"policy: must be one of .* \(missing\)"),
        ({"policy": "grid", "sise": 64}, "sise: unknown field; allowed: size"),
        ({"policy": "grid", "size": 0}, "size: Input should be greater than or equal to 1"),
        ({"policy": "grid", "size": 6.4}, "size: Input should be a valid integer"),
        ({"policy": "grid", "size": True}, "size: Input should be a valid integer"),
        ({"policy": "box", "area": 1.0}, "area: Input should be less than 1"),
        ({"policy": "box", "area": 0.0}, "area: Input should be greater than 0"),
        ({"policy": "box", "aspect": [2, 1]}, "aspect: low 2.0 is greater than high 1.0"),
        ({"policy": "box", "aspect": [1, 2, 3]}, "aspect: Tuple should have at most 2 items"),
        ({"policy": "center", "area": "big"}, "area: Input should be a valid number"),
        ({"policy": "center", "aspect": -1}, "aspect: Input should be greater than 0"),
        ({"policy": "center", "aspect": float("inf")}, "aspect: Input should be a finite number"),
        ({"policy": "strokes", "width": "huge"}, "width: must be 'thin', 'medium' or 'thick'"),
        ({"policy": "folder", "order": "sorted"}, "order: must be 'cycle' or 'random'"),
        ({"policy": "folder", "resize": "yes"}, "resize: Input should be a valid boolean"),
        ({"policy": "folder", "path": ""}, "path: String should have at least 1 character"),
        ({"policy": "columns", "count": 1}, "count: Input should be greater than or equal to 2"),
        ("grid:64", r"must be a mapping like \{'policy': 'grid', 'size': 64\}, got 'grid:64'"),
    ],
)
def test_build_mask_policy_errors(spec: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_mask_policy(spec)


def test_policy_dataclasses_check_through_the_spec_model() -> None:
    """The dataclasses validate (and normalise) through the same pydantic model as the spec dicts."""
    with pytest.raises(ConfigError, match="^invalid mask spec: size: Input should be greater than or equal to 1$"):
        GridMask(0)
    with pytest.raises(ConfigError, match="width: must be 'thin', 'medium' or 'thick'"):
        StrokesMask("huge")
    assert GridMask(np.int64(8)) == GridMask(8) and type(GridMask(np.int64(8)).size) is int
    assert BoxMask(0.2, 2) == BoxMask(0.2, (2.0, 2.0))
    assert FolderMask(Path("a/b")).path == "a/b"
    assert set(mask_spec_models()) == set(MASK_POLICIES)
    assert check_mask_spec({"policy": "box"}).aspect == (0.5, 2.0)


def test_a_policy_written_outside_ripbench_still_works() -> None:
    """A user's MaskPolicy dataclass is checked against a spec model made from its own fields."""
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass(frozen=True)
    class Rows(MaskPolicy):
        rows: int = 2
        name: ClassVar[str] = "rows"
        main_param: ClassVar[str] = "rows"

        @property
        def label(self) -> str:
            return f"rows-{self.rows}"

        def validate(self, height: int, width: int) -> None:
            pass

        def _draw(self, height: int, width: int, iteration: int, rng: np.random.Generator) -> np.ndarray:
            mask = np.zeros((height, width), dtype=bool)
            mask[: self.rows] = True
            return mask

    assert int(Rows(3)(8, 8, 0, 0).sum()) == 24
    with pytest.raises(ConfigError, match="rows: Input should be a valid integer"):
        Rows("x")  # type: ignore[arg-type]


def test_build_mask_policy_round_trip_and_defaults() -> None:
    assert set(MASK_POLICIES) == {"grid", "box", "center", "strokes", "folder", "columns"}
    box = build_mask_policy({"policy": "box", "area": 0.2, "aspect": [1, 3]})
    assert box == BoxMask(0.2, (1.0, 3.0)) and box.label == "box-0.20-a1-3"
    assert box.params() == {"area": 0.2, "aspect": [1.0, 3.0]}
    labels = [build_mask_policy({"policy": name}).label for name in MASK_POLICIES]
    assert labels == ["grid-64", "box-0.10", "center-0.25", "strokes-medium", "folder-masks", "columns-3"]
    for name in MASK_POLICIES:
        policy = build_mask_policy({"policy": name})
        assert build_mask_policy(policy.spec()) == policy
    assert build_mask_policy(box) is box
    assert CenterMask(0.125).label == "center-0.125"


def test_negative_seed_is_rejected() -> None:
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        GridMask(8)(16, 16, 0, -1)


# ----------------------------------------------------------------------------------------- stats & batches


def test_mask_stats_on_hand_made_masks() -> None:
    mask = np.zeros((10, 20), dtype=np.float32)
    mask[2:5, 3:7] = 1.0
    mask[8, 15] = 1.0
    expected = {"area": 13 / 200, "y0": 2, "x0": 3, "y1": 9, "x1": 16}
    assert mask_stats(mask) == pytest.approx(expected)
    stats = mask_stats_batch(torch.from_numpy(mask)[None, None])  # B x 1 x H x W
    assert {k: v.item() for k, v in stats.items()} == pytest.approx(expected)
    assert mask_stats(np.zeros((4, 4))) == {"area": 0.0, "y0": -1, "x0": -1, "y1": -1, "x1": -1}
    assert mask_stats(np.ones((4, 4), dtype=bool)) == {"area": 1.0, "y0": 0, "x0": 0, "y1": 4, "x1": 4}
    assert stats["y0"].dtype == torch.int64


def test_mask_stats_batch_is_per_item() -> None:
    batch = masks_for(StrokesMask("thin"), 48, 64, 2, [0, 1, 2], device="cpu")
    batch = torch.cat([batch, torch.zeros(1, 1, 48, 64)])
    stats = mask_stats_batch(batch)
    for i in range(4):
        assert {k: v[i].item() for k, v in stats.items()} == mask_stats(batch[i, 0].numpy())


def test_masks_for_one_policy_per_item_as_the_run_loop_does() -> None:
    policies = [GridMask(8), BoxMask(0.2), CenterMask(0.25)]
    batch = masks_for(policies, 32, 40, 3, [5, 6, 7], "cpu", torch.float64)
    assert batch.shape == (3, 1, 32, 40) and batch.dtype == torch.float64
    for i, (policy, seed) in enumerate(zip(policies, [5, 6, 7])):
        assert np.array_equal(batch[i, 0].numpy().astype(bool), policy(32, 40, 3, seed))
    with pytest.raises(ValueError, match="2 policies for 3 seeds"):
        masks_for(policies[:2], 32, 40, 3, [5, 6, 7])
    # a plain callable (not a MaskPolicy subclass) is one policy for every item, as before
    half = masks_for(lambda h, w, it, seed: np.arange(h * w).reshape(h, w) % 2 == 0, 4, 4, 0, [1, 2])
    assert half.shape == (2, 1, 4, 4) and float(half.mean()) == 0.5


def test_masks_for_shape_values_and_batch_independence() -> None:
    policy = BoxMask(0.2)
    batch = masks_for(policy, 32, 40, 3, [5, 6, 7], torch.device("cpu"))
    assert batch.shape == (3, 1, 32, 40) and batch.dtype == torch.float32
    assert set(batch.unique().tolist()) == {0.0, 1.0}
    alone = masks_for(policy, 32, 40, 3, [6])
    assert torch.equal(batch[1], alone[0])
    assert np.array_equal(batch[2, 0].numpy().astype(bool), policy(32, 40, 3, 7))


# ----------------------------------------------------------------------------------------- files


def test_generate_mask_set_round_trip(tmp_path: Path) -> None:
    policy = GridMask(16)
    paths = generate_mask_set(policy, 4, 48, 64, tmp_path / "set", seed=9)
    assert [p.name for p in paths] == [f"grid-16-{i:04d}.png" for i in range(4)]
    assert sorted((tmp_path / "set").iterdir()) == paths  # no temp files left behind
    for i, path in enumerate(paths):
        with Image.open(path) as img:
            assert img.mode == "L" and img.size == (64, 48)
        assert np.array_equal(load_mask_png(path), policy(48, 64, i, 9))
    # the written set is a valid folder policy reproducing the same sequence
    folder = FolderMask(str(tmp_path / "set"))
    assert all(np.array_equal(folder(48, 64, i, 0), policy(48, 64, i, 9)) for i in range(4))


def test_generate_mask_set_rejects_bad_count(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="count must be a positive integer"):
        generate_mask_set({"policy": "grid", "size": 8}, 0, 16, 16, tmp_path)
