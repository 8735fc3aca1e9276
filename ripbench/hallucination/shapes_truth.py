"""Simple Shapes ground truth of a RIP table: what each generation (one inpainting of a trajectory)
made in the region it repainted (:func:`generation_table`).

The labels (:data:`GENERATION_LABELS`):

* ``duplicate``: a repainted column now holds two or more copies of its own shape, which it did
  not hold before (or the whole column was repainted): a hallucination (mode interpolation);
* ``valid``: the repainted columns hold at most one copy of their own shape, well formed, and the
  image is not empty;
* ``carried``: a duplicate that was already there and was only partly repainted (box masks); the
  generation did not make it, so it counts on neither side;
* ``wrong_shape``, ``malformed``, ``empty``: invalid images that are not hallucinations.

The hallucination evaluation
(:func:`ripbench.hallucination.stats.ground_truth`) and the shapes-rip reproduction read these labels;
the data set (:mod:`ripbench.datasets.shapes`) only draws and labels images.

Needs no torch: it reads the labeller's columns (``shapes_layout``, ``shapes_label``, ``shapes_boxes``)
and the mask boxes of the table.
"""

from __future__ import annotations

import pandas as pd

from ..datasets.shapes import SHAPE_NAMES, column_bounds, parse_shape_boxes

__all__ = ["GENERATION_LABELS", "REGION_COUNTS", "generation_labels", "generation_table"]

#: Labels of one generation (one inpainting of a shapes RIP trajectory), in the order reports list them.
GENERATION_LABELS = ("duplicate", "valid", "carried", "wrong_shape", "malformed", "empty")


def _own_and_other(layout: str) -> tuple[list[int], list[int], list[int]]:
    """Per column: copies of its own shape, of other shapes, and unreadable blobs, from a layout string."""
    own, other, unknown = [], [], []
    for k, column in enumerate((layout if isinstance(layout, str) and layout else "||").split("|")):
        letter = SHAPE_NAMES[k][0].upper()
        own.append(column.count(letter))
        unknown.append(column.count("?"))
        other.append(len(column) - own[-1] - unknown[-1])
    return own, other, unknown


#: How :func:`generation_table` counts ``region_shapes``, by whether the table records where shapes are.
REGION_COUNTS = {
    "box": "shapes whose blob touches the mask box (from shapes_boxes)",
    "columns": "shapes of any kind in the columns the mask touches (the table records no shape positions)",
}


def generation_table(table: pd.DataFrame, size: int = 64) -> pd.DataFrame:
    """Label and shape count of every generation (row with ``iteration > 0``) of a shapes RIP table.

    Needs ``shapes_layout``, ``shapes_label`` and the mask box (``mask_x0``, ``mask_x1``,
    ``mask_y0``, ``mask_y1``) of ``size`` px images, and every trajectory's iteration 0 (the
    layout before its first generation). A column is *repainted* when the mask touches it,
    *fully* when the mask covers all of it. Returns ``generation`` (the label, see the module
    docstring) and ``region_shapes``: the number of shapes in the repainted region, counted as
    :data:`REGION_COUNTS` says: inside or touching the mask box when the table has
    ``shapes_boxes`` (the labeller's blob boxes), else in the repainted columns (the same for
    column masks; for box masks it also counts shapes of a touched column outside the box).
    ``attrs["region_shapes"]`` names the rule used (``"box"`` or ``"columns"``, ``"box"`` when any row had boxes).
    """
    table = table.sort_values(["trajectory_id", "iteration"], kind="stable")
    previous = table.groupby("trajectory_id")["shapes_layout"].shift(1)
    rows = table[table["iteration"] > 0]
    bounds = column_bounds(size)
    content = -(-63 * size // 64)  # the 63 native pixels that can hold a shape, rows and columns
    has_boxes = "shapes_boxes" in rows.columns
    labels, counts, by_box = {}, {}, False
    for index, row in rows.iterrows():
        own, other, unknown = _own_and_other(row["shapes_layout"])
        own_before, _, _ = _own_and_other(previous.loc[index])
        x0, x1, y0, y1 = (int(row[c]) for c in ("mask_x0", "mask_x1", "mask_y0", "mask_y1"))
        touched = [k for k, (lo, hi) in enumerate(bounds) if x0 < hi and x1 > lo]
        full = {k: x0 <= bounds[k][0] and x1 >= min(bounds[k][1], content) and y0 == 0 and y1 >= content
                for k in touched}
        if any(own[k] >= 2 and (full[k] or own_before[k] < 2) for k in touched):
            label = "duplicate"
        elif any(own[k] >= 2 for k in touched):
            label = "carried"
        elif any(other[k] for k in touched):
            label = "wrong_shape"
        elif any(unknown[k] for k in touched):
            label = "malformed"
        elif row["shapes_label"] == "empty":
            label = "empty"
        else:
            label = "valid"
        labels[index] = label
        boxes = row["shapes_boxes"] if has_boxes else None
        if isinstance(boxes, str):
            by_box = True
            counts[index] = sum(b[0] < y1 and b[2] > y0 and b[1] < x1 and b[3] > x0
                                for _, b in parse_shape_boxes(boxes))
        else:
            counts[index] = sum(own[k] + other[k] + unknown[k] for k in touched)
    out = pd.DataFrame({"generation": pd.Series(labels, dtype=object),
                        "region_shapes": pd.Series(counts, dtype=int)}, index=rows.index)
    out.attrs["region_shapes"] = "box" if by_box else "columns"
    return out


def generation_labels(table: pd.DataFrame, size: int = 64) -> pd.Series:
    """The label of every generation of a shapes RIP table (``generation`` of :func:`generation_table`).

    >>> t = pd.DataFrame({"trajectory_id": ["a"] * 3, "iteration": [0, 1, 2],
    ...     "shapes_layout": ["T|S|", "T|SS|", "T|SS|"], "shapes_label": ["valid", "duplicate", "duplicate"],
    ...     "mask_x0": [None, 21, 0], "mask_x1": [None, 42, 21], "mask_y0": [None, 0, 0], "mask_y1": [None, 64, 64]})
    >>> generation_labels(t).tolist()
    ['duplicate', 'valid']
    """
    return generation_table(table, size)["generation"]
