"""The groups of a figure (a model, a mask size, ...): their reading order, legend labels, colours,
line styles and markers, drawing order, and the rows of a frame that belong to one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .layout import _pyplot


def _natural_key(value: Any) -> tuple[Any, ...]:
    parts = re.split(r"(\d+(?:\.\d+)?)", str(value))
    return tuple((0, float(p)) if i % 2 else (1, p) for i, p in enumerate(parts))


def ordered_groups(table: pd.DataFrame, by: Sequence[str]) -> list[tuple[Any, ...]]:
    """Group keys of ``by`` in reading order: mask labels by mask area, the rest naturally sorted."""
    by = list(by)
    if not by:
        return [()]
    area: dict[Any, float] = {}
    if "mask_label" in by and "mask_area" in table.columns:
        area = table[table["iteration"] > 0].groupby("mask_label")["mask_area"].mean().to_dict()
    keys = table[by].drop_duplicates().itertuples(index=False, name=None)

    def sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple((area.get(v, 0.0), _natural_key(v)) if c == "mask_label" else (0.0, _natural_key(v))
                     for c, v in zip(by, key))

    return sorted(keys, key=sort_key)


def _label(key: tuple[Any, ...]) -> str:
    return " / ".join(str(v) for v in key) or "all"


def _colours(n: int) -> list[Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


#: Line styles and markers cycled over the groups of a figure (with the colours), so that lines
#: that coincide, or a figure printed in grey, still tell the groups apart.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def group_styles(keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Matplotlib line properties of each group: its colour, and with two or more groups a line
    style and marker cycling with it (one group: a plain solid line)."""
    styles: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i, (key, colour) in enumerate(zip(keys, _colours(len(keys)))):
        styles[key] = {"color": colour}
        if len(keys) > 1:
            styles[key].update(ls=LINE_STYLES[i % len(LINE_STYLES)], marker=MARKERS[i % len(MARKERS)], ms=3.2)
    return styles


def _markevery(style: dict[str, Any], index: int, points: int) -> dict[str, Any]:
    """``style`` with markers on about six points of the line, shifted per group (markers of
    coinciding lines do not sit on each other)."""
    if "marker" not in style:
        return style
    step = max(1, points // 6)
    return {**style, "markevery": (index % step, step)}


def _zorders(sizes: dict[tuple[Any, ...], int]) -> dict[tuple[Any, ...], float]:
    """Drawing order of the groups' lines: the largest group (n) at the bottom, the smallest on top."""
    ranked = sorted(sizes, key=lambda k: -sizes[k])  # stable: equal n keep their order
    return {key: 2.0 + i / 100 for i, key in enumerate(ranked)}


def select(frame: pd.DataFrame, by: Sequence[str], key: tuple[Any, ...]) -> pd.DataFrame:
    """The rows of ``frame`` whose ``by`` columns equal ``key``."""
    sel = np.ones(len(frame), dtype=bool)
    for col, value in zip(by, key):
        sel &= (frame[col] == value).to_numpy()
    return frame[sel]
