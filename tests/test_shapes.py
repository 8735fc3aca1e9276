"""Simple Shapes generator, labeller and training loop."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from ripbench.datasets.shapes import (
    SHAPE_NAMES,
    generate_shapes,
    label_shapes,
    shapes_geometry,
    shapes_images,
    summarise_labels,
)
from ripbench.errors import ConfigError, InputError


def _blank(size: int = 32) -> np.ndarray:
    return np.zeros((size, size), dtype=np.float32)


def _stamp(image: np.ndarray, shape: str, column: int, top: int) -> np.ndarray:
    """Draw ``shape`` into ``column``'s horizontal slot at row ``top`` (in place)."""
    geo = shapes_geometry(image.shape[0])
    stamp = geo.stamps[SHAPE_NAMES.index(shape)]
    x = geo.column_x(column)
    image[top : top + geo.side, x : x + geo.side] = np.maximum(image[top : top + geo.side, x : x + geo.side], stamp)
    return image


def test_generation_is_deterministic_and_seed_dependent() -> None:
    a, b, c = generate_shapes(50, 32, seed=3), generate_shapes(50, 32, seed=3), generate_shapes(50, 32, seed=4)
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert set(np.unique(a.images)) <= {0.0, 1.0}


@pytest.mark.parametrize(("size", "count"), [(32, 5000), (64, 2000)])
def test_every_generated_image_is_labelled_valid(size: int, count: int) -> None:
    data = generate_shapes(count, size, seed=0)
    labels = label_shapes(data.images)
    assert all(lbl.is_valid for lbl in labels), [lbl for lbl in labels if not lbl.is_valid][:3]
    assert np.array_equal(np.array([lbl.counts for lbl in labels]), data.present.astype(int))
    for lbl, present in zip(labels, data.present):
        assert lbl.shapes == tuple((name,) if p else () for name, p in zip(SHAPE_NAMES, present))
    # no empty images; each column is filled with probability 0.5 / (1 - 1/8) = 4/7 given non-empty
    assert data.present.any(axis=1).all()
    assert abs(data.present.mean() - 4 / 7) < 0.03


def test_generator_is_fast() -> None:
    import time

    start = time.perf_counter()
    generate_shapes(5000, 64, seed=1)
    assert time.perf_counter() - start < 5.0


def test_shapes_fit_their_columns() -> None:
    for size in (32, 64):
        geo = shapes_geometry(size)
        assert geo.col_width == size // 3
        for column in range(3):
            left = geo.offset + column * geo.col_width
            assert left <= geo.column_x(column) and geo.column_x(column) + geo.side <= left + geo.col_width


def test_duplicate_in_a_column_is_a_hallucination() -> None:
    image = _stamp(_stamp(_blank(), "triangle", 0, 2), "triangle", 0, 20)
    label = label_shapes(image)[0]
    assert not label.is_valid and label.is_hallucination
    assert label.counts == (2, 0, 0)
    assert label.reason == "duplicate"


def test_merged_duplicates_count_as_two() -> None:
    image = _stamp(_stamp(_blank(), "square", 1, 4), "square", 1, 12)  # touching: one 16-px-tall blob
    label = label_shapes(image)[0]
    assert label.counts == (0, 2, 0)
    assert "duplicate" in label.reason


def test_shape_in_the_wrong_column() -> None:
    image = _stamp(_stamp(_blank(64), "square", 0, 10), "pentagon", 2, 30)
    label = label_shapes(image)[0]
    assert label.counts == (1, 0, 1)
    assert label.shapes == (("square",), (), ("pentagon",))
    assert label.reason == "wrong_shape"


def test_every_shape_in_every_column_is_identified() -> None:
    for size in (32, 64):
        for column in range(3):
            for name in SHAPE_NAMES:
                label = label_shapes(_stamp(_blank(size), name, column, 5))[0]
                assert label.shapes[column] == (name,)
                assert label.is_valid == (name == SHAPE_NAMES[column])


def test_empty_and_malformed_images() -> None:
    assert label_shapes(_blank())[0].reason == "empty"
    blob = _blank()
    blob[10:13, 13:19] = 1  # 18 px: too squat to be a shape, too big to be noise
    label = label_shapes(blob)[0]
    assert label.reason == "malformed" and label.counts == (0, 1, 0)


def test_noise_specks_are_ignored_and_noisy_images_stay_valid() -> None:
    data = generate_shapes(200, 32, seed=5)
    noisy = data.images + np.random.default_rng(0).normal(0, 0.15, data.images.shape).astype(np.float32)
    noisy[:, 0, 0] = 1.0  # an isolated bright pixel in the corner
    labels = label_shapes(noisy)
    assert sum(lbl.is_valid for lbl in labels) >= 190


def test_labeller_accepts_rgb_torch_tensors() -> None:
    images, ids = shapes_images(6, size=32, seed=2)
    assert images.shape == (6, 3, 32, 32) and images.dtype == torch.float32
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert ids[0] == "shapes32-s2-00000" and len(set(ids)) == 6
    assert all(lbl.is_valid for lbl in label_shapes(images))


def test_summary_rates() -> None:
    dup = _stamp(_stamp(_blank(), "triangle", 0, 0), "triangle", 0, 20)
    images = np.stack([dup, _blank(), _stamp(_blank(), "pentagon", 2, 3), _stamp(_blank(), "square", 1, 3)])
    summary = summarise_labels(label_shapes(images))
    assert summary["valid_share"] == 0.5
    assert summary["hallucination_rate"] == 0.25
    assert summary["empty_rate"] == 0.25


def test_bad_inputs_raise_input_error() -> None:
    with pytest.raises(InputError):
        shapes_geometry(8)
    with pytest.raises(InputError):
        label_shapes(np.zeros((2, 32, 16)))


@pytest.mark.slow
def test_train_shapes_writes_a_loadable_pipeline(tmp_path) -> None:
    from ripbench.models.pixel_ddpm import PixelDDPMInpainter
    from ripbench.training.shapes import train_shapes

    report = train_shapes(
        tmp_path / "ddpm", size=16, steps=3, seed=0, progress=False, batch_size=4, num_images=16,
        block_out_channels=(8, 16), norm_num_groups=4, save_every=0,
    )
    assert report.steps == 3 and report.final_loss > 0
    folder = tmp_path / "ddpm"
    for name in ("model_index.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json",
                 "training_config.json", "loss_curve.csv"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "scheduler/scheduler_config.json").read_text())["clip_sample"] is False
    assert json.loads((folder / "training_config.json").read_text())["config"]["steps"] == 3
    rows = list(csv.DictReader(open(folder / "loss_curve.csv")))
    assert rows[-1]["step"] == "3"
    model = PixelDDPMInpainter(folder, num_inference_steps=2, device="cpu")
    assert model.sample_size == (16, 16) and model.sample([0]).shape == (1, 3, 16, 16)
    with pytest.raises(ConfigError):
        train_shapes(tmp_path / "x", steps=1, progress=False, not_an_option=1)
