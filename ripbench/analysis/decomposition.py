"""Where the drift comes from: the drift decomposition of runs reported together (:func:`drift_decomposition`).

Given runs that differ in one source of drift each, on the same images, masks and seeds (so their
trajectories pair up, see :mod:`ripbench.compare`), the decomposition puts, per mask and iteration:

* **total**: the drift of a latent model whose whole output is fed back (``paste_back: false``, the
  rip-paper run);
* **paste-back run**: the same model with the unmasked pixels pasted back (``rip-paper-pasteback``):
  drift confined to the masks, i.e. what the denoiser does;
* **whole-output feedback** = total - paste-back run, paired per trajectory: what feeding back the
  pixels outside the masks (re-encoded by the VAE every iteration) adds;
* **VAE round trip alone**: the ``vae-roundtrip`` control (``rip-paper-vae``): encode and decode, no
  denoiser; without a paste-back run, **total - VAE alone** (paired) is the rest;
* **hand-off variants**: a run of the same role whose hand-off between iterations differs
  (``--set handoff=...``): its drift minus the first such run's, paired.

Drift is the metric oriented to grow from 0 (:func:`~ripbench.analysis.curves.drift_values`; LPIPS:
itself). Every number is the mean over the trajectories all the arms involved share, with a
percentile bootstrap interval over those trajectories (:func:`ripbench.stats.resample_ci`). Roles
are read from the manifests: the model's recorded ``paste_back`` option (diffusers) or its class
(the VAE control), and the run's ``handoff``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..stats import nanmean_rows, resample_ci
from .curves import drift_values
from .loading import observed, trajectory_keys, trajectory_matrix

__all__ = ["COMPONENTS", "Arm", "decomposition_arms", "dominant_sources", "drift_decomposition"]

#: Component keys of the decomposition, with their labels (hand-off variants add ``handoff:<role>:<form>``).
COMPONENTS = {
    "total": "total drift (whole output fed back)",
    "pasteback": "paste-back run (denoiser drift, masks only)",
    "feedback": "whole-output feedback (total - paste-back)",
    "vae": "VAE round trip alone",
    "rest": "total - VAE alone (denoiser and the rest)",
}
_MATCH = ["image_id", "mask_label", "seed"]


@dataclass(frozen=True)
class Arm:
    """One run / model of the table with its role in the decomposition."""

    run: str
    model: str
    role: str  # "total", "pasteback" or "vae"
    handoff: str
    pairing: int


def decomposition_arms(table: pd.DataFrame) -> list[Arm]:
    """The arms of ``table`` (a :func:`~ripbench.analysis.load_runs` table) that have a role, in run order."""
    manifests = table.attrs.get("manifests") or {}
    pairing = table.attrs.get("pairing") or {}
    arms = []
    present = set(zip(table["run"].astype(str), table["model"].astype(str))) if "run" in table.columns else set()
    for run, manifest in manifests.items():
        handoff = str(((manifest or {}).get("config") or {}).get("handoff") or "float")
        for label, record in ((manifest or {}).get("models") or {}).items():
            if (str(run), str(label)) not in present or not isinstance(record, dict):
                continue
            if str(record.get("class", "")).endswith(".VAERoundTrip"):
                role = "vae"
            elif "paste_back" in record:  # a diffusers pipeline: whole output fed back, or pasted back
                role = "pasteback" if record["paste_back"] else "total"
            else:
                continue
            arms.append(Arm(str(run), str(label), role, handoff, int(pairing.get(run, 0))))
    return arms


def _drift_by_key(table: pd.DataFrame, arm: Arm, metric: str, t: np.ndarray) -> pd.DataFrame:
    """Trajectories x iterations drift of one arm, indexed by (image, mask, seed)."""
    rows = observed(table[(table["run"].astype(str) == arm.run) & (table["model"].astype(str) == arm.model)])
    keys = trajectory_keys(rows)
    info = rows.groupby(keys, sort=True)[_MATCH].first()
    y = drift_values(metric, trajectory_matrix(rows, metric, t), t)
    index = pd.MultiIndex.from_frame(info.reset_index(drop=True).astype(str))
    return pd.DataFrame(y, index=index, columns=t)


def drift_decomposition(table: pd.DataFrame, metric: str, *, n_boot: int = 1000, ci: float = 0.95,
                        seed: int = 0) -> pd.DataFrame:
    """The decomposition's components per mask and iteration (empty when the runs do not allow one).

    Needs a ``total`` arm and at least one of: a paste-back run, a VAE-only run or a hand-off variant,
    all in the total arm's pairing class. Columns: ``mask_label``, ``iteration``, ``component`` (see
    :data:`COMPONENTS`), ``label``, ``n`` (shared trajectories), ``mean``, ``lo``, ``hi``.
    ``attrs``: ``metric``, ``arms`` (role -> "run / model"), ``handoffs`` (role -> hand-off of its first
    arm), ``ci``.
    """
    columns = ["mask_label", "iteration", "component", "label", "n", "mean", "lo", "hi"]
    empty = pd.DataFrame(columns=columns)
    arms = decomposition_arms(table) if "run" in table.columns else []
    totals = [a for a in arms if a.role == "total"]
    if not totals:
        return empty
    cls = totals[0].pairing
    arms = [a for a in arms if a.pairing == cls]
    by_role: dict[str, list[Arm]] = {}
    for arm in arms:
        by_role.setdefault(arm.role, []).append(arm)
    variants = [(role, a) for role, group in by_role.items() for a in group[1:] if a.handoff != group[0].handoff]
    if not ({"pasteback", "vae"} & set(by_role) or variants):
        return empty
    last = int(table["iteration"].max())
    t = np.arange(last + 1, dtype=float)
    first = {role: group[0] for role, group in by_role.items()}
    used = [*first.values(), *(a for _, a in variants)]
    frames = {a: _drift_by_key(table, a, metric, t) for a in used}
    shared = None
    for frame in frames.values():
        shared = frame.index if shared is None else shared.intersection(frame.index)
    if shared is None or len(shared) == 0:
        return empty
    series: dict[str, tuple[str, np.ndarray]] = {}
    aligned = {a: frames[a].loc[shared].to_numpy(float) for a in used}
    total = aligned[first["total"]]
    series["total"] = (COMPONENTS["total"], total)
    if "pasteback" in first:
        series["pasteback"] = (COMPONENTS["pasteback"], aligned[first["pasteback"]])
        series["feedback"] = (COMPONENTS["feedback"], total - aligned[first["pasteback"]])
    if "vae" in first:
        series["vae"] = (COMPONENTS["vae"], aligned[first["vae"]])
        if "pasteback" not in first:
            series["rest"] = (COMPONENTS["rest"], total - aligned[first["vae"]])
    for role, arm in variants:
        ref = first[role]
        what = {"total": "total", "pasteback": "paste-back run", "vae": "VAE alone"}[role]
        series[f"handoff:{role}:{arm.handoff}"] = (f"hand-off {arm.handoff} instead of {ref.handoff} ({what})",
                                                  aligned[arm] - aligned[ref])
    masks = np.asarray([key[1] for key in shared])
    rows: list[dict[str, Any]] = []
    for mask in dict.fromkeys(masks.tolist()):
        pick = masks == mask
        for key, (label, values) in series.items():
            part = values[pick]
            part = part[~np.isnan(part[:, -1])]  # a trajectory that failed before the end is not compared
            est, lo, hi = resample_ci(nanmean_rows(part), len(part), n_boot=n_boot, ci=ci, seed=seed)
            for j, it in enumerate(t.astype(int)):
                rows.append({"mask_label": mask, "iteration": int(it), "component": key, "label": label,
                             "n": len(part), "mean": float(est[j]) if len(part) else np.nan,
                             "lo": float(lo[j]) if len(part) else np.nan, "hi": float(hi[j]) if len(part) else np.nan})
    out = pd.DataFrame(rows, columns=columns)
    out.attrs = {"metric": metric, "ci": ci, "arms": {role: f"{a.run} / {a.model}" for role, a in first.items()},
                 "handoffs": {role: a.handoff for role, a in first.items()},
                 "variants": [f"{a.run} / {a.model}" for _, a in variants]}
    return out


def dominant_sources(decomposition: pd.DataFrame) -> list[dict[str, Any]]:
    """Per mask, at the last iteration: the sources of drift compared (the paste-back run and the feedback,
    or the VAE alone and the rest, plus any hand-off variant), largest first, with whether the largest's
    interval overlaps the runner-up's."""
    if decomposition.empty:
        return []
    last = int(decomposition["iteration"].max())
    at = decomposition[decomposition["iteration"] == last]
    out = []
    for mask, part in at.groupby("mask_label", sort=False):
        cells = {r["component"]: r for _, r in part.iterrows()}
        keys = ["pasteback", "feedback"] if "feedback" in cells else ["vae", "rest"] if "rest" in cells else []
        keys += [k for k in cells if k.startswith("handoff:")]
        sources = sorted((cells[k] for k in keys if k in cells), key=lambda r: -abs(r["mean"]))
        if not sources:
            continue
        top = sources[0]
        overlap = len(sources) > 1 and not (top["lo"] > sources[1]["hi"] or top["hi"] < sources[1]["lo"])
        out.append({"mask_label": mask, "iteration": last, "sources": sources, "total": cells.get("total"),
                    "vae": cells.get("vae"), "overlap": overlap})
    return out
