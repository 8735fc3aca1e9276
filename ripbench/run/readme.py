"""``README.md`` in every run folder: what its files hold and what each column of its table means.

A report points its readers here (``ripbench report`` writes "all columns: README.md in the run
folder"), so the explanation travels with the results, wherever they are copied. Metric columns are
described from the metric's spec, detector columns from the detector's spec (plug-ins included);
the other columns from :data:`COLUMN_MEANINGS`, the short form of ``results/README.md`` in the
ripbench repository (a test keeps the two in step).

>>> print(column_meaning("ssim_orig_never"))
SSIM to original, in pixels never masked (higher is better)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..formatting import md_escape
from ..io import atomic_write_text
from ..metrics.registry import column_label

__all__ = ["COLUMN_MEANINGS", "README_NAME", "column_meaning", "run_readme", "write_run_readme"]

#: The file name in the run folder.
README_NAME = "README.md"

#: Short meanings of the results table's non-metric columns (long form: results/README.md).
COLUMN_MEANINGS: dict[str, str] = {
    "trajectory_id": "model__image__mask-label__s<seed>; also the name of its images/ folder",
    "run": "the run's name (tables of several runs)",
    "model": "the model's display name (config label, else its declared name)",
    "image_id": "the input image's id (file stem or sample name)",
    "category": "the image's category (sub-folder, list file or sample-set tag)",
    "mask_policy": "the mask policy (grid, box, center, strokes, folder, columns)",
    "mask_label": "the policy with its parameters, e.g. grid-64",
    "seed": "the trajectory's seed (masks and model noise derive from seed, image id and mask label)",
    "iteration": "0 = the original, 1..N = after that many inpaintings",
    "mask_area": "share of the image's pixels repainted at this iteration",
    "mask_y0": "bounding box of this iteration's mask in pixels (top)",
    "mask_x0": "bounding box of this iteration's mask in pixels (left)",
    "mask_y1": "bounding box of this iteration's mask in pixels (bottom, exclusive)",
    "mask_x1": "bounding box of this iteration's mask in pixels (right, exclusive)",
    "cum_mask_area": "share of pixels repainted at least once so far (the 'ever' region's area)",
    "halluc_score": "hallucination score: variance of the predicted clean image x0 over the steps in the noise band",
    "halluc_score_current": "the hallucination score inside this iteration's mask",
    "halluc_band_lo": "lower edge of the noise band the score uses",
    "halluc_band_hi": "upper edge of the noise band the score uses",
    "halluc_steps": "recorded denoising steps whose noise level lies in the band",
    "halluc_status": "ok, too-few-steps (no score) or no-trajectory (the model returned no x0)",
    "failed": "the output was unusable (reported by the model, NaN/Inf, or out of range); the trajectory ends there",
    "failure": "why the output failed (empty when fine)",
    "model_seconds": "model time for this step, per trajectory",
    "overhead_seconds": "harness time (masks, metrics, snapshots) for this step, per trajectory",
    "shapes_label": "(Simple Shapes) the labeller's verdict: valid, duplicate (the hallucination), carried, "
                    "wrong_shape, malformed or empty",
    "shapes_valid": "(Simple Shapes) shapes_label == 'valid'",
    "shapes_reason": "(Simple Shapes) every problem found, joined by '+' ('ok' if none)",
    "shapes_layout": "(Simple Shapes) what each column holds, left to right",
    "nsfw_flagged": "(diffusers models) safety-checker flags when it is on",
}

_FILES = """\
- `manifest.json`: what was run, with what, where and how long (config, models and their options,
  metric specs, inputs with their sha256, versions, timing).
- `metrics/part-*.parquet`: the per-iteration table (one row per trajectory and iteration); load it
  with `ripbench.load("{run_dir}")`.
- `images/<trajectory_id>/iter_NNNN.png`, `mask_NNNN.png`: snapshots of the image after iteration N
  and the mask used there (white = repainted).
- `figures/collapse_curves.png`: the first-look plot of `ripbench run`.
- `report/`: written by `ripbench report {run_dir}` (HTML report, Markdown summary, CSV and LaTeX tables).
"""


def column_meaning(column: str) -> str:
    """What a results-table column holds: from the metric's or detector's spec, else :data:`COLUMN_MEANINGS`."""
    label = column_label(column)
    if label is not None:
        return label
    if column.startswith("det_"):
        from ..detectors import available_detectors, get_detector

        for name in available_detectors():
            try:
                spec = get_detector(name)
            except Exception:  # a plug-in that cannot load here: described generically below
                continue
            if spec.column == column:
                return f"detector score: {spec.label}" + (f" ({spec.description})" if spec.description else "")
        return "a hallucination detector's score (see the manifest's 'detectors')"
    return COLUMN_MEANINGS.get(column, "a per-item extra the model returned")


def run_readme(run_dir: str | Path, table: pd.DataFrame, manifest: dict[str, Any]) -> str:
    """The README text of a run folder: its files and the meaning of each column of ``table``."""
    run_dir = Path(run_dir)
    lines = [f"# ripbench run {md_escape(manifest.get('name') or run_dir.name)}", "",
             f"Written by ripbench {manifest.get('versions', {}).get('ripbench', '')}"
             + (f" (`{manifest['command']}`)" if manifest.get("command") else "") + ".", "",
             "## Files", "", _FILES.format(run_dir=run_dir.as_posix()),
             "## Columns of the table", "", "| column | meaning |", "|---|---|"]
    lines += [f"| `{column}` | {md_escape(column_meaning(column))} |" for column in table.columns]
    return "\n".join(lines) + "\n"


def write_run_readme(run_dir: str | Path, table: pd.DataFrame, manifest: dict[str, Any]) -> Path:
    """Write :func:`run_readme` to ``run_dir/README.md`` (atomically) and return its path."""
    path = Path(run_dir) / README_NAME
    atomic_write_text(path, run_readme(run_dir, table, manifest))
    return path
