"""The README's measured numbers are the committed example outputs' numbers.

Two README tables quote ``results/examples/``: "paper vs measured" (its "now" column; each row names
its file, "same" repeats the row above's) and the quick preset's example table (its "now" columns,
from ``results/examples/quick/summary.md``). Every value with an interval (``0.97 [0.94, 0.99]``)
there must appear verbatim in the file, and every other number must appear in it too, so that
regenerating the examples without updating the README (or the reverse) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICK_SUMMARY = ROOT / "results" / "examples" / "quick" / "summary.md"
INTERVAL = re.compile(r"[-+]?\d+(?:\.\d+)?%? \[[-+]?\d+(?:\.\d+)?%?, [-+]?\d+(?:\.\d+)?%?\]")
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*%?")


def _table(marker: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the first Markdown table after ``marker`` in the README."""
    text = (ROOT / "README.md").read_text()
    lines = text[text.index(marker):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    header = [c.strip() for c in lines[start].strip().strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return header, rows


def quoted_numbers() -> list[tuple[str, str, Path]]:
    """(what, README cell, source file) of every cell the README quotes from an example file."""
    out = []
    _, rows = _table("**Paper vs measured**")
    source = None
    for cells in rows:
        found = re.search(r"\(`(results/[^`]+)`\)", cells[-1])
        if found:
            source = ROOT / found.group(1)
        assert source is not None, f"paper-vs-measured row without a source file: {cells}"
        out.append((cells[0], cells[2], source))
    header, rows = _table("### Example outputs")
    for cells in rows:
        out += [(f"{cells[0]} {header[i - 1]}", cells[i], QUICK_SUMMARY) for i, h in enumerate(header) if h == "now"]
    return out


CELLS = quoted_numbers()


def test_tables_have_rows() -> None:
    assert len(CELLS) >= 10 and all(path.exists() for _, _, path in CELLS)
    assert sum(path == QUICK_SUMMARY for _, _, path in CELLS) >= 6


@pytest.mark.parametrize(("what", "cell", "source"), CELLS, ids=[c[0][:60] for c in CELLS])
def test_readme_number_is_in_the_committed_file(what: str, cell: str, source: Path) -> None:
    text = source.read_text().replace("\\[", "[").replace("\\]", "]")  # Markdown escapes in summaries
    for interval in INTERVAL.findall(cell):
        assert interval in text, f"{what}: {interval!r} is not in {source.relative_to(ROOT)}"
    for number in NUMBER.findall(INTERVAL.sub(" ", cell)):
        assert number.lstrip("+") in text, f"{what}: {number!r} is not in {source.relative_to(ROOT)}"


def test_readme_import_times_are_the_committed_benchmark() -> None:
    """The re-measured import-time table is ``results/benchmarks/imports-cpu-2026-12-03.json``, rounded."""
    import json

    rows = json.loads((ROOT / "results" / "benchmarks" / "imports-cpu-2026-12-03.json").read_text())["rows"]
    measured = {r["command"]: (f"{r['wall_s']:.2f}", f"{r['peak_rss_mib']:.0f}") for r in rows}
    _, table = _table("**Re-measured after issues 19-22**")
    assert [cells[0] for cells in table] == list(measured)
    for cells in table:
        assert (cells[1], cells[2]) == measured[cells[0]], cells
        assert not any(r["heavy_imported"] for r in rows)
