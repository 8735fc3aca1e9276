"""Ground truth computed from the images themselves, stored as extra result columns.

An *annotator* maps a batch of images (``B x 3 x H x W`` in ``[0, 1]``) to named columns of
``B`` values each. Input sources that know what a valid image looks like provide one:
Simple Shapes images are labelled by :func:`ripbench.datasets.shapes.label_shapes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..config import InputsConfig

__all__ = ["Annotator", "annotator_for", "shapes_annotations"]

#: Computes ground-truth columns from a batch of images (``B x 3 x H x W``): name -> B values.
Annotator = Callable[[torch.Tensor], dict[str, Sequence[Any]]]


def shapes_annotations(images: torch.Tensor) -> dict[str, Sequence[Any]]:
    """Ground truth for Simple Shapes images: the labeller's verdict per image.

    ``shapes_label`` is the image's kind (:data:`~ripbench.datasets.shapes.KINDS`):
    ``"duplicate"`` is the paper's hallucination (a column holding two or more copies of its
    shape); ``"empty"``, ``"wrong_shape"`` and ``"malformed"`` are other invalid images, not
    hallucinations; ``"valid"`` could come from the data set. ``shapes_valid`` is
    ``shapes_label == "valid"``; ``shapes_reason`` lists every problem found (``"ok"`` if none);
    ``shapes_layout`` says what each column holds (:attr:`~ripbench.datasets.shapes.ShapeLabel.layout`,
    e.g. ``"T|SS|"``), so a reader can tell which column a duplicate is in; ``shapes_boxes`` says where
    each shape's blob is (:attr:`~ripbench.datasets.shapes.ShapeLabel.box_text`), so the shapes inside a
    mask box can be counted (:func:`~ripbench.hallucination.shapes_truth.generation_table`).
    """
    from ..datasets.shapes import label_shapes

    labels = label_shapes(images.float().mean(dim=1).cpu().numpy())
    return {"shapes_label": [lab.kind for lab in labels], "shapes_valid": [lab.is_valid for lab in labels],
            "shapes_reason": [lab.reason for lab in labels], "shapes_layout": [lab.layout for lab in labels],
            "shapes_boxes": [lab.box_text for lab in labels]}


def annotator_for(inputs: InputsConfig) -> Annotator | None:
    """The ground-truth annotator of an input source, if it has one (Simple Shapes has)."""
    return shapes_annotations if inputs.source == "shapes" else None
