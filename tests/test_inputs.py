"""Image loading, conversion and the built-in sample set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ripbench.errors import InputError
from ripbench.inputs import (
    SAMPLE_CATEGORIES,
    SAMPLE_IMAGES,
    fit_image,
    load_folder,
    load_image,
    load_list,
    load_sample,
)


def test_every_sample_loads_offline_with_a_known_category():
    for name, (category, _, _) in SAMPLE_IMAGES.items():
        img = load_sample(name, size=32)
        assert img.pixels.shape == (3, 32, 32) and img.pixels.dtype == torch.float32
        assert 0.0 <= img.pixels.min() and img.pixels.max() <= 1.0
        assert category in SAMPLE_CATEGORIES
    assert {c for c, _, _ in SAMPLE_IMAGES.values()} == set(SAMPLE_CATEGORIES)


@pytest.mark.parametrize("fit", ["center-crop", "resize", "pad"])
def test_fit_modes(fit):
    img = torch.rand(3, 40, 80)
    out, note = fit_image(img, 20, fit)
    assert out.shape == (3, 20, 20) and note
    if fit == "pad":  # long side scaled to 20 -> 10 rows of content, black bars above/below
        assert out[:, :5].abs().sum() == 0 and out[:, 15:].abs().sum() == 0


def test_conversions_are_noted(tmp_path):
    grey = (np.arange(64 * 64) % 256).reshape(64, 64).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(tmp_path / "deep.png")
    g = load_image(tmp_path / "grey.png", size=64)
    assert "greyscale -> RGB" in g.notes and torch.equal(g.pixels[0], g.pixels[2])
    assert g.pixels[0, 0, 5].item() == pytest.approx(5 / 255)
    r = load_image(tmp_path / "rgba.png", size=64)
    assert any("RGBA" in n for n in r.notes) and r.pixels[0].min() == 1.0 and r.pixels[1].max() == 0.0
    d = load_image(tmp_path / "deep.png", size=64)
    assert d.pixels.shape == (3, 64, 64) and d.pixels.max() <= 1.0


def test_folder_categories_and_list(tmp_path):
    for cat in ("animal", "texture"):
        (tmp_path / cat).mkdir()
        Image.fromarray(np.full((20, 30, 3), 100, np.uint8)).save(tmp_path / cat / "a.jpg")
    imgs = load_folder(tmp_path, size=16)
    assert sorted(i.category for i in imgs) == ["animal", "texture"]
    assert len({i.id for i in imgs}) == 2
    lst = tmp_path / "list.txt"
    lst.write_text("# my images\nanimal/a.jpg,cat\ntexture/a.jpg\n")
    imgs = load_list(lst, size=16)
    assert [i.category for i in imgs] == ["cat", "unknown"]


def test_bad_images_are_named(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match="broken.png"):
        load_image(tmp_path / "broken.png")
    with pytest.raises(InputError, match="image not found: .*missing.png"):
        load_image(tmp_path / "missing.png")
    lst = tmp_path / "list.txt"
    lst.write_text("missing.png\n")
    with pytest.raises(InputError, match=r"list.txt:1: image not found"):
        load_list(lst)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        load_folder(tmp_path / "empty")
    with pytest.raises(InputError, match="unknown sample image"):
        load_sample("mona-lisa")
