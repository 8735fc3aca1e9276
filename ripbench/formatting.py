"""Numbers, intervals and tables written for people: the one home of ripbench's text formatters.

The report (:mod:`ripbench.report`), the findings (:mod:`ripbench.findings`), the paired
comparisons (:mod:`ripbench.compare`) and the reproductions (:mod:`ripbench.repro`) format with
these, so that a number reads the same everywhere:

* :func:`fmt` - a number for a sentence; :func:`fmt_interval` - a value and its interval with the
  same decimals (:func:`decimals_for`); :func:`interval_text` - ``"v [lo, hi]"`` for a table cell;
* :func:`pct` - a share as a percentage; :func:`fmt_p` - a p-value;
* :func:`auroc_cell` - an AUROC (or a difference of two) with its interval, two decimals;
* :func:`md_escape`, :func:`markdown_table` - Markdown without an extra dependency;
* :func:`count` - a number with its noun in agreement (``"1 duplicate"``, ``"2 duplicates"``).

Example
-------
>>> interval_text(0.1234, 0.1, 0.15), interval_text(0.1234, float("nan"), 0.2)
('0.123 [0.100, 0.150]', '0.123')
>>> print(markdown_table(pd.DataFrame({"model": ["a|b"], "AUROC": [auroc_cell({"value": 0.8, "lo": 0.7, "hi": 0.9})]})))
| model | AUROC |
|---|---|
| a\\|b | 0.80 \\[0.70, 0.90\\] |
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["auroc_cell", "command_line", "count", "decimals_for", "fmt", "fmt_interval", "fmt_p", "interval_text", "markdown_table",
           "md_escape", "pct"]


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, as a user retypes it: ``ripbench ARGS`` (whether it was started as the
    ``ripbench`` script, ``python -m ripbench`` or under torchrun), arguments shell-quoted.

    >>> command_line(["/x/ripbench/__main__.py", "run", "--set", "inputs.names=[a, b]"])
    "ripbench run --set 'inputs.names=[a, b]'"
    """
    import shlex
    import sys

    return shlex.join(["ripbench", *(sys.argv if argv is None else argv)[1:]])


def count(n: Any, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` in agreement: the singular for exactly 1, else ``plural`` (default ``noun + "s"``).

    >>> count(1, "duplicate"), count(83.0, "duplicate"), count(0, "way"), count(1, "way"), count(2, "copy", "copies")
    ('1 duplicate', '83 duplicates', '0 ways', '1 way', '2 copies')
    """
    shown = int(n) if isinstance(n, (float, np.floating)) and float(n).is_integer() else n
    return f"{shown} {noun if n == 1 else (plural or noun + 's')}"


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a sentence: ``digits`` decimals, one more below 0.01, scientific below 0.001, 'n/a' for NaN.

    >>> fmt(0.12345), fmt(-0.0075), fmt(2.5e-05), fmt(float("nan")), fmt(21.0), fmt(0.046, 2)
    ('0.123', '-0.0075', '2.5e-05', 'n/a', '21.000', '0.05')
    """
    if value is None or pd.isna(value):
        return "n/a"
    value = float(value)
    if math.isinf(value):
        return "infinity" if value > 0 else "-infinity"
    size = abs(value)
    if size != 0 and size < 1e-3:
        return f"{value:.1e}"
    if size != 0 and size < 0.01 and digits >= 3:
        return f"{value:.{digits + 1}f}"
    return f"{value:.{digits}f}"


def decimals_for(*values: Any, digits: int = 3) -> int | None:
    """Decimals that show the largest of ``values`` with ``digits`` significant digits; ``None`` when all
    are below 0.001 (then scientific notation reads better).

    >>> decimals_for(-0.014, 0.00048), decimals_for(0.85, 0.9), decimals_for(24.2), decimals_for(2e-05, 3e-05)
    (4, 3, 1, None)
    """
    sizes = [abs(float(v)) for v in values if v is not None and not pd.isna(v) and math.isfinite(float(v))]
    largest = max(sizes, default=0.0)
    if largest == 0:
        return digits
    if largest < 1e-3:
        return None
    return max(digits - 1 - math.floor(math.log10(largest)), 0)


def fmt_interval(value: Any, lo: Any, hi: Any, digits: int = 3) -> tuple[str, str, str]:
    """``value``, ``lo`` and ``hi`` formatted alike (same decimals, chosen by :func:`decimals_for`).

    >>> fmt_interval(-0.0065, -0.014, 0.00048)
    ('-0.0065', '-0.0140', '0.0005')
    """
    places = decimals_for(value, lo, hi, digits=digits)

    def one(v: Any) -> str:
        if v is None or pd.isna(v):
            return "n/a"
        if math.isinf(float(v)):
            return "infinity" if float(v) > 0 else "-infinity"
        return f"{float(v):.1e}" if places is None else f"{float(v):.{places}f}"

    return one(value), one(lo), one(hi)


def pct(share: Any, decimals: int = 0) -> str:
    """A share as a percentage for text and tables; ``"n/a"`` for a missing or infinite value.

    >>> pct(0.8667), pct(0.8667, 1), pct(float("nan"))
    ('87%', '86.7%', 'n/a')
    """
    if share is None or pd.isna(share) or not math.isfinite(float(share)):
        return "n/a"
    return f"{100 * float(share):.{decimals}f}%"


def fmt_p(value: Any) -> str:
    """A p-value for tables: three decimals, ``"< 0.001"`` below that.

    >>> fmt_p(0.0312), fmt_p(2e-5)
    ('0.031', '< 0.001')
    """
    if value is None or pd.isna(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def interval_text(value: Any, lo: Any, hi: Any, digits: int = 3) -> str:
    """``"v [lo, hi]"`` for a table cell (:func:`fmt_interval`); just :func:`fmt` of the value without an interval.

    >>> interval_text(-0.0065, -0.014, 0.00048), interval_text(2.0, None, None)
    ('-0.0065 [-0.0140, 0.0005]', '2.000')
    """
    if pd.isna(lo) or pd.isna(hi):
        return fmt(value, digits)
    v, a, b = fmt_interval(value, lo, hi, digits)
    return f"{v} [{a}, {b}]"


def auroc_cell(d: Mapping[str, float] | None, signed: bool = False) -> str:
    """An AUROC (``signed``: a difference of two, with its sign) from ``{value, lo, hi}``, two decimals:
    ``"0.81 [0.74, 0.88]"``, the value alone without a finite interval, ``"n/a"`` without a finite value.

    >>> auroc_cell({"value": 0.05, "lo": -0.01, "hi": 0.1}, signed=True), auroc_cell(None)
    ('+0.05 [-0.01, +0.10]', 'n/a')
    """
    if not d or not np.isfinite(d.get("value", np.nan)):
        return "n/a"
    f = "{:+.2f}" if signed else "{:.2f}"
    if not (np.isfinite(d["lo"]) and np.isfinite(d["hi"])):
        return f.format(d["value"])
    return f"{f.format(d['value'])} [{f.format(d['lo'])}, {f.format(d['hi'])}]"


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]|$"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"})


def md_escape(text: Any) -> str:
    """Text shown literally in Markdown: labels from the data can hold ``|``, ``$``, ``<b>``, ``*``...

    >>> print(md_escape("m$1 | <b>x</b>"))
    m\\$1 \\| &lt;b&gt;x&lt;/b&gt;
    """
    return str(text).translate(_MD_SPECIAL).replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    """A pandas frame as a GitHub-flavoured Markdown table (no extra dependency); cells escaped."""
    lines = ["| " + " | ".join(md_escape(c) for c in frame.columns) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
