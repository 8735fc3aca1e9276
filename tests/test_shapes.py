"""Simple Shapes: the generator against the authors' geometry, the labeller, and the training loop."""

from __future__ import annotations

import csv
import hashlib
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from ripbench.datasets.shapes import (
    KINDS,
    SHAPE_NAMES,
    downsample,
    generate_shapes,
    label_shapes,
    paste_shape,
    shape_specs,
    shapes_images,
    summarise_labels,
)
from ripbench.errors import ConfigError, InputError

# --------------------------------------------------------------------------- the authors' way, redrawn here
# An independent renderer of the released generator's geometry (gen_simple_shapes_dataset.py in
# locuslab/diffusion-model-hallucination), with the numbers written out: every shape is drawn by PIL,
# filled and outlined, on its own 21 x 63 column canvas; the three canvases side by side fill the top
# left 63 x 63 pixels of a 64 x 64 image.


def _authors_polygon(name: str, x: float, y: float) -> list[tuple[float, float]]:
    if name == "triangle":  # side int(sqrt(4 * 60 / sqrt 3)) = 11, flat top, apex down
        return [(x, y), (x + 11, y), (x + 5, y + 9)]
    if name == "square":  # PIL rectangle [x, y, x + 7, y + 7]: 8 x 8 pixels
        return [(x, y), (x + 7, y), (x + 7, y + 7), (x, y + 7)]
    return [(x + 5 * math.cos(math.radians(a)), y - 5 * math.sin(math.radians(a))) for a in (72, 144, 216, 288, 360)]


def _authors_image(columns: list[list[tuple[str, int, int]]]) -> np.ndarray:
    """A 64 x 64 image; ``columns[k]`` lists the ``(shape, x, y)`` drawn on column ``k``'s canvas."""
    canvases = []
    for shapes in columns:
        canvas = Image.new("L", (21, 63), color=0)
        draw = ImageDraw.Draw(canvas)
        for name, x, y in shapes:
            draw.polygon(_authors_polygon(name, x, y), fill=255, outline=255)
        canvases.append(np.asarray(canvas))
    image = np.zeros((64, 64), np.float32)
    image[:63, :63] = np.concatenate(canvases, axis=1) > 0
    return image


#: The released generator's anchor ranges (inclusive): triangle x 0..10, y 0..52; square 1..7, 1..49;
#: pentagon (centre) 5..16, 5..58.
AUTHORS_RANGES = {"triangle": ((0, 10), (0, 52)), "square": ((1, 7), (1, 49)), "pentagon": ((5, 16), (5, 58))}


def test_generator_draws_what_the_authors_generator_draws() -> None:
    data = generate_shapes(400, seed=7)
    for i in range(len(data.images)):
        columns = [[(name, int(data.x[i, k]), int(data.y[i, k]))] if data.present[i, k] else []
                   for k, name in enumerate(SHAPE_NAMES)]
        assert np.array_equal(data.images[i], _authors_image(columns)), i
    for k, name in enumerate(SHAPE_NAMES):
        (x_lo, x_hi), (y_lo, y_hi) = AUTHORS_RANGES[name]
        xs, ys = data.x[data.present[:, k], k], data.y[data.present[:, k], k]
        assert (xs.min(), xs.max(), ys.min(), ys.max()) == (x_lo, x_hi, y_lo, y_hi)
        assert (data.x[~data.present[:, k], k] == -1).all()


def test_shape_sizes_match_the_released_generator() -> None:
    # the released generator asserts 64 px for a square, 65 +- 2 for a triangle and 70 +- 2 for a pentagon
    assert [int(s.stamp.sum()) for s in shape_specs()] == [65, 64, 70]
    assert [s.stamp.shape for s in shape_specs()] == [(10, 12), (8, 8), (10, 11)]
    triangle = shape_specs()[0].stamp
    assert triangle[0].all() and triangle[-1].sum() == 1  # flat edge on top, apex down


def test_generation_is_deterministic_seed_dependent_and_binary() -> None:
    a, b, c = generate_shapes(50, seed=3), generate_shapes(50, seed=3), generate_shapes(50, seed=4)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert set(np.unique(a.images)) == {0.0, 1.0}
    assert not a.images[:, 63, :].any() and not a.images[:, :, 63].any()  # the 64th row and column stay black


def test_presence_and_no_empty_images() -> None:
    data = generate_shapes(5000, seed=0)
    assert data.present.any(axis=1).all()
    # each column is filled with probability 0.5 / (1 - 1/8) = 4/7 given a non-empty image
    assert np.abs(data.present.mean(axis=0) - 4 / 7).max() < 0.03


def test_block_averaged_sizes() -> None:
    native = generate_shapes(20, seed=2)
    small = generate_shapes(20, size=32, seed=2)
    assert small.images.shape == (20, 32, 32)
    assert np.allclose(small.images, native.images.reshape(20, 32, 2, 32, 2).mean(axis=(2, 4)))
    assert np.allclose(small.images.sum(axis=(1, 2)) * 4, native.images.sum(axis=(1, 2)))
    with pytest.raises(InputError):
        generate_shapes(2, size=48)


def test_generator_is_fast() -> None:
    import time

    start = time.perf_counter()
    generate_shapes(5000, seed=1)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize(("size", "count"), [(64, 5000), (32, 2000)])
def test_every_generated_image_is_labelled_valid(size: int, count: int) -> None:
    data = generate_shapes(count, size, seed=0)
    labels = label_shapes(data.images)
    assert all(lbl.is_valid for lbl in labels), [lbl for lbl in labels if not lbl.is_valid][:3]
    assert np.array_equal(np.array([lbl.counts for lbl in labels]), data.present.astype(int))
    for lbl, present in zip(labels, data.present):
        assert lbl.shapes == tuple((name,) if p else () for name, p in zip(SHAPE_NAMES, present))


# --------------------------------------------------------------------------- hallucinations drawn the authors' way

#: Second-copy offsets (dx, dy) from the first copy: apart, touching, overlapping by half a shape.
COPY_LAYOUTS = {
    "apart": {"triangle": (0, 25), "square": (0, 20), "pentagon": (0, 25)},
    "touching_vertically": {"triangle": (0, 10), "square": (0, 8), "pentagon": (0, 10)},
    "side_by_side": {"triangle": (8, 0), "square": (9, 0), "pentagon": (9, 0)},
    "overlap_half_down": {"triangle": (0, 5), "square": (0, 4), "pentagon": (0, 5)},
    "overlap_diagonal": {"triangle": (4, 4), "square": (3, 3), "pentagon": (4, 4)},
}
FIRST_ANCHOR = {"triangle": (0, 10), "square": (1, 10), "pentagon": (5, 10)}


@pytest.mark.parametrize("layout", sorted(COPY_LAYOUTS))
@pytest.mark.parametrize("column", [0, 1, 2])
def test_two_copies_in_a_column_are_a_hallucination(layout: str, column: int) -> None:
    name = SHAPE_NAMES[column]
    (x, y), (dx, dy) = FIRST_ANCHOR[name], COPY_LAYOUTS[layout][name]
    columns: list[list[tuple[str, int, int]]] = [[], [], []]
    columns[column] = [(name, x, y), (name, x + dx, y + dy)]
    other = (column + 1) % 3  # a valid shape elsewhere must not change the verdict
    columns[other] = [(SHAPE_NAMES[other], *FIRST_ANCHOR[SHAPE_NAMES[other]])]
    image = _authors_image(columns)
    # At 32 px two squares 4 native px apart make a 4 x 6 blob, one row more than a square's 4 x 5
    # block-average phase: below what that resolution can tell apart, so only 64 px is checked there.
    sizes = (64,) if (layout, name) == ("overlap_half_down", "square") else (64, 32)
    for size in sizes:
        label = label_shapes(downsample(image[None], size))[0]
        assert label.kind == "duplicate" and label.is_hallucination and not label.is_valid, (size, label)
        assert label.counts[column] == 2 and label.counts[other] == 1, (size, label)


def test_three_copies_and_paste_shape_agree_with_the_authors_drawing() -> None:
    drawn = _authors_image([[], [("square", 2, 3), ("square", 6, 7), ("square", 2, 30)], []])
    pasted = np.zeros((64, 64), np.float32)
    for x, y in ((2, 3), (6, 7), (2, 30)):
        paste_shape(pasted, "square", 1, x, y)
    assert np.array_equal(drawn, pasted)
    label = label_shapes(drawn)[0]
    assert label.counts == (0, 3, 0) and label.kind == "duplicate"


def test_copies_one_pixel_apart_are_an_unreadable_blob_not_a_hallucination() -> None:
    image = _authors_image([[], [("square", 2, 10), ("square", 3, 11)], []])  # a 9 x 9 blob
    label = label_shapes(image)[0]
    assert not label.is_hallucination
    assert label.kind in ("valid", "malformed")


def test_shapes_in_the_wrong_column_are_not_hallucinations() -> None:
    label = label_shapes(_authors_image([[("square", 3, 10)], [], [("pentagon", 8, 30)]]))[0]
    assert label.shapes == (("square",), (), ("pentagon",))
    assert label.kind == "wrong_shape" and not label.is_hallucination
    two_squares = label_shapes(_authors_image([[("square", 3, 5), ("square", 3, 40)], [], []]))[0]
    assert two_squares.counts == (2, 0, 0) and two_squares.kind == "wrong_shape"


@pytest.mark.parametrize("size", [64, 32])
def test_every_shape_in_every_column_is_identified(size: int) -> None:
    for column in range(3):
        for name in SHAPE_NAMES:
            for x, y in ((6, 5), (8, 40)):  # one native pixel or more from the column edges
                label = label_shapes(downsample(_authors_image([[(name, x, y)] if k == column else []
                                                                for k in range(3)])[None], size))[0]
                assert label.shapes[column] == (name,), (size, column, name, x, y, label)
                assert label.is_valid == (name == SHAPE_NAMES[column])


def test_empty_malformed_and_noise() -> None:
    blank = np.zeros((64, 64), np.float32)
    assert label_shapes(blank)[0].kind == "empty"
    blob = blank.copy()
    blob[20:24, 22:40] = 1  # 72 px, 4 x 18: no union of squares explains it
    label = label_shapes(blob)[0]
    assert label.kind == "malformed" and label.counts == (0, 1, 0) and label.shapes[1] == ("unknown",)
    half = _authors_image([[], [], [("pentagon", 10, 20)]])
    half[:20 + 1, :] = 0  # the top half of a pentagon only
    assert label_shapes(half)[0].kind == "malformed"
    with_malformed_and_duplicate = blob.copy()
    paste_shape(paste_shape(with_malformed_and_duplicate, "triangle", 0, 0, 2), "triangle", 0, 0, 40)
    label = label_shapes(with_malformed_and_duplicate)[0]
    assert label.kind == "duplicate" and label.reason == "duplicate+malformed"


def test_noise_specks_are_ignored_and_noisy_images_stay_valid() -> None:
    data = generate_shapes(200, seed=5)
    noisy = data.images + np.random.default_rng(0).normal(0, 0.15, data.images.shape).astype(np.float32)
    noisy[:, 62, 62] = 1.0  # an isolated bright pixel in a corner
    labels = label_shapes(noisy)
    assert sum(lbl.is_valid for lbl in labels) >= 190


def test_labeller_accepts_rgb_torch_tensors() -> None:
    images, ids = shapes_images(6, seed=2)
    assert images.shape == (6, 3, 64, 64) and images.dtype == torch.float32
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert ids[0] == "shapes64-s2-00000" and len(set(ids)) == 6
    assert all(lbl.is_valid for lbl in label_shapes(images))


def test_summary_rates() -> None:
    dup = _authors_image([[("triangle", 0, 0), ("triangle", 0, 30)], [], []])
    wrong = _authors_image([[("pentagon", 8, 20)], [], []])
    images = np.stack([dup, np.zeros((64, 64), np.float32), wrong, _authors_image([[], [("square", 1, 3)], []])])
    summary = summarise_labels(label_shapes(images))
    assert summary["n"] == 4 and summary["valid_share"] == 0.25
    assert summary["hallucination_rate"] == summary["duplicate_rate"] == 0.25
    assert summary["empty_rate"] == summary["wrong_shape_rate"] == 0.25
    assert sum(summary[f"{k}_rate"] for k in KINDS if k != "valid") + summary["valid_share"] == 1.0


def test_bad_inputs_raise_input_error() -> None:
    with pytest.raises(InputError):
        label_shapes(np.zeros((2, 64, 32)))
    with pytest.raises(InputError):
        label_shapes(np.zeros((2, 16, 16)))  # too coarse to read
    with pytest.raises(InputError):
        paste_shape(np.zeros((32, 32), np.float32), "square", 0, 1, 1)


# --------------------------------------------------------------------------- training

_TINY = dict(batch_size=4, num_images=16, block_out_channels=(8, 16), norm_num_groups=4, save_every=0,
             warmup_steps=1)


def _weights_digest(folder) -> str:
    return hashlib.sha256((folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()


def test_learning_rate_depends_on_the_step_count_only() -> None:
    from ripbench.training.shapes import ShapesTrainingConfig

    cfg = ShapesTrainingConfig(steps=200, warmup_steps=10, learning_rate=1e-3)
    rates = [cfg.learning_rate_at(s) for s in range(200)]
    assert rates[9] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))  # monotone decay after warm-up
    assert ShapesTrainingConfig(steps=200, warmup_steps=10, time_limit_s=1.0).learning_rate_at(150) == pytest.approx(
        ShapesTrainingConfig(steps=200, warmup_steps=10).learning_rate_at(150))


@pytest.mark.slow
def test_retraining_with_the_same_seed_gives_the_same_weights(tmp_path) -> None:
    from ripbench.training.shapes import train_shapes

    for name in ("a", "b"):
        train_shapes(tmp_path / name, size=16, steps=4, seed=0, progress=False, **_TINY)
    train_shapes(tmp_path / "c", size=16, steps=4, seed=1, progress=False, **_TINY)
    train_shapes(tmp_path / "d", size=16, steps=4, seed=0, progress=False, time_limit_s=3600.0, **_TINY)
    assert _weights_digest(tmp_path / "a") == _weights_digest(tmp_path / "b") == _weights_digest(tmp_path / "d")
    assert _weights_digest(tmp_path / "a") != _weights_digest(tmp_path / "c")


@pytest.mark.slow
def test_train_shapes_writes_a_loadable_pipeline(tmp_path) -> None:
    from ripbench.models.pixel_ddpm import PixelDDPMInpainter
    from ripbench.training.shapes import train_shapes

    report = train_shapes(tmp_path / "ddpm", size=16, steps=3, seed=0, progress=False, **_TINY)
    assert report.steps == 3 and report.final_loss > 0
    folder = tmp_path / "ddpm"
    for name in ("model_index.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json",
                 "training_config.json", "loss_curve.csv"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "scheduler/scheduler_config.json").read_text())["clip_sample"] is False
    written = json.loads((folder / "training_config.json").read_text())
    assert written["config"]["steps"] == 3 and written["steps_done"] == 3 and written["stopped_early"] is False
    assert written["written_by"] == "ripbench.training.shapes.train_shapes"
    assert written["command"].startswith(f"train_shapes({str(folder)!r}, ") and "steps=3" in written["command"]
    assert set(written["versions"]) == {"torch", "diffusers"}
    rows = list(csv.DictReader(open(folder / "loss_curve.csv")))
    assert rows[-1]["step"] == "3"
    model = PixelDDPMInpainter(folder, steps=2, device="cpu")
    assert model.sample_size == (16, 16) and model.sample([0]).shape == (1, 3, 16, 16)
    with pytest.raises(ConfigError):
        train_shapes(tmp_path / "x", steps=1, progress=False, not_an_option=1)
    with pytest.raises(ConfigError):
        train_shapes(tmp_path / "x", size=48, steps=1, progress=False)


def test_bundled_training_config_was_written_by_the_training_code() -> None:
    from ripbench.models.pixel_ddpm import BUNDLED_SHAPES_DIR
    from ripbench.training.shapes import ShapesTrainingConfig

    written = json.loads((BUNDLED_SHAPES_DIR / "training_config.json").read_text())
    assert written["written_by"] == "ripbench.training.shapes.train_shapes" and written["finished"] is True
    config = {**written["config"], "block_out_channels": tuple(written["config"]["block_out_channels"])}
    assert ShapesTrainingConfig(**config) == ShapesTrainingConfig()  # the defaults made the bundled weights
    assert written["command"] == "ripbench train shapes --out ripbench/weights/shapes-ddpm"


def test_train_shapes_defaults_are_the_training_config_defaults() -> None:
    import inspect

    from ripbench.training.shapes import ShapesTrainingConfig, train_shapes

    params = inspect.signature(train_shapes).parameters
    assert {n: params[n].default for n in ("size", "steps", "seed")} == {"size": 64, "steps": 3000, "seed": 0}
    assert all(params[n].default == getattr(ShapesTrainingConfig(), n) for n in ("size", "steps", "seed"))
