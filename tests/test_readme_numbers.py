"""The README's "paper vs measured" numbers are the committed example outputs' numbers.

Every value with an interval (``0.97 [0.94, 0.99]``) in the table's "now" column must appear verbatim
in the file its row names, and every other number must appear in it too, so that regenerating the
examples without updating the README (or the reverse) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = re.compile(r"[-+]?\d+(?:\.\d+)?%? \[[-+]?\d+(?:\.\d+)?%?, [-+]?\d+(?:\.\d+)?%?\]")
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*%?")


def paper_vs_measured_rows() -> list[tuple[str, str, Path]]:
    """(experiment, "now" cell, source file) of each row of the README's table."""
    text = (ROOT / "README.md").read_text()
    start = text.index("**Paper vs measured**")
    lines = text[start:].splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| experiment"))
    rows, source = [], None
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        found = re.search(r"\(`(results/[^`]+)`\)", cells[-1])
        if found:
            source = ROOT / found.group(1)
        assert source is not None, f"row without a source file: {line}"
        rows.append((cells[0], cells[2], source))
    return rows


ROWS = paper_vs_measured_rows()


def test_table_has_rows() -> None:
    assert len(ROWS) >= 4 and all(path.exists() for _, _, path in ROWS)


@pytest.mark.parametrize(("experiment", "now", "source"), ROWS, ids=[r[0][:60] for r in ROWS])
def test_readme_number_is_in_the_committed_file(experiment: str, now: str, source: Path) -> None:
    text = source.read_text()
    for interval in INTERVAL.findall(now):
        assert interval in text, f"{experiment}: {interval!r} is not in {source.relative_to(ROOT)}"
    rest = INTERVAL.sub(" ", now)
    for number in NUMBER.findall(rest):
        assert number.lstrip("+") in text, f"{experiment}: {number!r} is not in {source.relative_to(ROOT)}"
