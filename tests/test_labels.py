"""Free-text labels (model labels, image categories) are safe everywhere they are shown (issue 12)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ripbench.config import validate_config
from ripbench.report import write_report
from ripbench.run import run_experiment

LABEL = "m$1 | <b>bold</b> $x"
CATEGORY = "cats $5 | <i>"


def test_odd_labels_are_escaped_in_markdown_html_and_plots(tmp_path: Path, tiny_config_data: dict) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for name in ("a", "b"):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(folder / f"{name}.png")
        lines.append(f"{name}.png,{CATEGORY}")
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    tiny_config_data["inputs"] = {"source": "list", "path": str(folder / "list.txt")}
    tiny_config_data["models"] = [{"name": "biharmonic", "label": LABEL}, {"name": "telea", "label": "plain"}]
    result = run_experiment(validate_config(tiny_config_data), progress=False)
    assert set(result.table["model"]) == {LABEL, "plain"}
    paths = write_report(result.run_dir, tmp_path / "report", n_boot=50)  # plots with '$' must not crash
    markdown = paths["markdown"].read_text()
    assert "<b>" not in markdown and "<i>" not in markdown
    assert "m\\$1 \\| &lt;b&gt;bold&lt;/b&gt; \\$x" in markdown
    html = paths["html"].read_text()
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
