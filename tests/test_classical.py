"""The classical baselines: deterministic, touch only the mask, fill plausibly."""

from __future__ import annotations

import pytest
import torch
from skimage.restoration import inpaint_biharmonic

from ripbench.inputs import load_sample
from ripbench.models import create_inpainter


def _batch():
    img = torch.stack([load_sample("astronaut", 48).pixels, load_sample("coffee", 48).pixels])
    mask = torch.zeros(2, 1, 48, 48)
    mask[0, :, 10:20, 10:20] = 1
    mask[1, :, 30:40, 5:25] = 1
    return img, mask


@pytest.mark.parametrize("name", ["biharmonic", "telea", "navier-stokes"])
def test_classical_fill(name):
    pytest.importorskip("cv2") if name != "biharmonic" else None
    model = create_inpainter(name)
    img, mask = _batch()
    out = model.inpaint(img, mask, [0, 1]).images
    assert out.shape == img.shape and out.dtype == img.dtype
    assert torch.equal(out * (1 - mask), img * (1 - mask))  # known pixels untouched
    hole = mask.bool().expand_as(img)
    err = (out[hole] - img[hole]).abs().mean()
    assert err < 0.2  # a real fill, close to the truth on natural images
    assert not torch.equal(out[hole], img[hole])
    again = model.inpaint(img, mask, [5, 6]).images
    assert torch.equal(out, again)  # deterministic, seeds ignored


def test_biharmonic_matches_scikit_image():
    img, mask = _batch()
    out = create_inpainter("biharmonic").inpaint(img, mask, [0, 0]).images
    ref = inpaint_biharmonic(img[0].permute(1, 2, 0).numpy(), mask[0, 0].numpy().astype(bool), channel_axis=-1)
    assert torch.allclose(out[0].permute(1, 2, 0), torch.from_numpy(ref).float().clamp(0, 1), atol=1e-6)
