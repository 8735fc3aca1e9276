"""Conformance kit for model plug-ins: run a model on small inputs and check every rule of the contract.

The first thing a plug-in author runs (in a test of their own package)::

    from ripbench.testing import check_inpainter
    check_inpainter(MyModel())          # raises ModelContractError listing every broken rule

The rules (see :mod:`ripbench.models.base`), each with the name used in the error:

========================= =========================================================================
rule                      what is checked
========================= =========================================================================
``returns-result``        ``inpaint`` returns an :class:`~ripbench.models.InpaintResult`
``shape-dtype``           ``images`` is a floating ``B x 3 x H x W`` tensor like the input
``finite``                no NaN / Inf in ``images`` (mark bad items with ``failed`` instead)
``range``                 values in ``[0, 1]``
``no-input-edit``         the input images and masks are not modified in place
``keeps-unmasked``        pixels where the mask is 0 are returned unchanged (``preserves_unmasked``;
                          skipped for a control model that declares it ignores the mask)
``fills-mask``            the masked region is actually repainted (it differs from the input there;
                          a control that ignores the mask must still change the image somewhere)
``declared-ignores``      a control model's output really does not depend on what it declares it
                          ignores (:attr:`~ripbench.models.Inpainter.ignores`: ``"mask"``, ``"seeds"``),
                          and :attr:`~ripbench.models.Inpainter.space` is ``"latent"``, ``"pixel"`` or None
``deterministic``         the same inputs and seeds give the same output twice
``batch-independent``     item ``i`` of a batch equals the same item run alone with its seed
``trajectory``            x0 trajectories are returned exactly as declared (``returns_x0_trajectory``):
                          asked with ``x0_band``, ``K x B x ...``, finite, with ``K`` distinct
                          noise levels ``x0_noise_levels`` inside the band, in its unit
                          (``x0_noise_unit == x0_band.unit``; asked for all steps in ``sigma``
                          and in ``t/T``, the same steps with different numbers: a model that
                          ignores the unit fails); none when not asked
``per-item-fields``       ``failed`` is ``B`` booleans; every ``extras`` entry has ``B`` values
``options``               declared options match the constructor (names, defaults)
``identity``              ``identity()`` is a JSON-serialisable dict with the model's name
========================= =========================================================================

Example
-------
>>> import torch
>>> from ripbench.models import Inpainter, InpaintResult
>>> class Sloppy(Inpainter):
...     name = "sloppy"
...     def inpaint(self, images, masks, seeds):
...         images.mul_(0.5)                     # edits its input in place, ignores the mask
...         return InpaintResult(images=images.clone())
>>> try:
...     check_inpainter(Sloppy())
... except ModelContractError as err:
...     print(err.rules)
['no-input-edit', 'keeps-unmasked']
>>> from ripbench.models import create_inpainter
>>> check_inpainter(create_inpainter("biharmonic"))
['no x0 trajectory declared: the hallucination score is not computed for this model']
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence

import torch

from .errors import ModelContractError
from .models.base import Inpainter, InpaintResult
from .noise_band import NoiseBand

__all__ = ["ModelContractError", "check_inpainter", "sample_inputs"]


def sample_inputs(batch: int = 3, size: int | tuple[int, int] = 32, seed: int = 0,
                  device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Smooth random images, masks with one box per item (different per item), and seeds.

    >>> images, masks, seeds = sample_inputs(2, 16)
    >>> tuple(images.shape), tuple(masks.shape), seeds
    ((2, 3, 16, 16), (2, 1, 16, 16), [1001, 1002])
    """
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(2, h // 8), max(2, w // 8), generator=g)
    images = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    masks = torch.zeros(batch, 1, h, w)
    for i in range(batch):
        y0 = int(torch.randint(0, max(1, h // 2), (1,), generator=g))
        x0 = int(torch.randint(0, max(1, w // 2), (1,), generator=g))
        masks[i, :, y0 : y0 + max(1, h // 3), x0 : x0 + max(1, w // 3)] = 1.0
    return images.to(device), masks.to(device), [1001 + i for i in range(batch)]


#: The bands the trajectory rule asks for: every denoising step, in each unit.
_ALL_STEPS = NoiseBand(0.0, math.inf, "sigma")
_ALL_STEPS_T = NoiseBand(0.0, 1.0, "t/T")


def _call(model: Inpainter, images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int],
          band: tuple[float, float] | None = None) -> InpaintResult:
    if band is None:  # the harness passes x0_band only to models that declare returns_x0_trajectory
        return model.inpaint(images, masks, list(seeds))
    return model.inpaint(images, masks, list(seeds), x0_band=band)


def _trajectory_problem(result: InpaintResult, batch: int, band: tuple[float, float]) -> str | None:
    """What is wrong with the x0 trajectory a model returned when asked for ``band`` (None if nothing)."""
    traj = result.x0_trajectory
    if traj is None:
        return f"declares returns_x0_trajectory but returned none when asked for x0_band={band}"
    if not isinstance(traj, torch.Tensor) or traj.dim() < 3 or traj.shape[0] < 1 or traj.shape[1] != batch:
        shape = tuple(traj.shape) if isinstance(traj, torch.Tensor) else type(traj).__name__
        return f"x0_trajectory must be K x {batch} x ... with K >= 1, got {shape}"
    if not torch.isfinite(traj).all():
        return "x0_trajectory holds NaN/Inf"
    if result.x0_noise_levels is None:
        return "x0_trajectory comes without x0_noise_levels (the noise level of each step)"
    unit = getattr(band, "unit", "sigma")
    if result.x0_noise_unit != unit:
        return (f"x0_noise_unit is {result.x0_noise_unit!r} when asked for a band in {unit!r}: report "
                "x0_noise_levels in x0_band.unit and set x0_noise_unit (None = the old t/T contract)")
    levels = torch.as_tensor(result.x0_noise_levels, dtype=torch.float64).reshape(-1)
    if levels.numel() != traj.shape[0]:
        return f"x0_noise_levels holds {levels.numel()} values for {traj.shape[0]} steps"
    if not ((levels >= band[0] - 1e-6) & (levels <= band[1] + 1e-6)).all():
        return f"x0_noise_levels {levels.tolist()} fall outside the band {band}"
    if levels.unique().numel() != levels.numel():
        return f"x0_noise_levels {levels.tolist()} repeat a level: one x0 per timestep"
    return None


def _check_options(model: Inpainter) -> list[str]:
    problems: list[str] = []
    try:
        params = inspect.signature(type(model).__init__).parameters
    except (TypeError, ValueError):
        return problems
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for opt in type(model).option_specs:
        param = params.get(opt.name)
        if param is None:
            if not takes_any:
                problems.append(f"declares option {opt.name!r} but its constructor has no such parameter")
            continue
        if param.default is not inspect.Parameter.empty and param.default != opt.default:
            problems.append(f"option {opt.name!r} is declared with default {opt.default!r} but the constructor's "
                            f"default is {param.default!r}")
    return problems


def _ignores_problem(model: Inpainter, images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int],
                     band: tuple[float, float] | None, atol: float) -> str | None:
    """What is wrong with a model's ``ignores`` / ``space`` declarations (None if nothing)."""
    ignores = set(getattr(model, "ignores", ()))
    unknown = sorted(ignores - {"mask", "seeds"})
    if unknown:
        return f"ignores {unknown}: a model can declare that it ignores only 'mask' and 'seeds'"
    space = getattr(model, "space", None)
    if space not in (None, "latent", "pixel"):
        return f"space must be 'latent', 'pixel' or None, got {space!r}"
    if not ignores:
        return None
    base = _call(model, images.clone(), masks.clone(), seeds, band).images.detach().float()
    other_masks = 1.0 - masks if "mask" in ignores else masks
    other_seeds = [s + 7919 for s in seeds] if "seeds" in ignores else list(seeds)
    changed = _call(model, images.clone(), other_masks.clone(), other_seeds, band).images.detach().float()
    if not torch.allclose(changed.to(base.device), base, atol=atol, rtol=0):
        return (f"declares that it ignores {' and '.join(sorted(ignores))}, but another "
                f"{' and '.join(sorted(ignores))} changed its output")
    return None


def check_inpainter(
    model: Inpainter,
    *,
    size: int | tuple[int, int] | None = None,
    batch: int = 3,
    preserves_unmasked: bool = True,
    atol: float = 1e-5,
) -> list[str]:
    """Run ``model`` on small inputs and check every rule of the plug-in contract.

    Args:
        model: the model to check (built as a user would build it).
        size: image side (default: the model's ``sample_size`` if it has one, else 32).
        batch: batch size of the checks (at least 2).
        preserves_unmasked: whether the model promises to keep the unmasked pixels (a latent
            model without paste-back does not; then ``keeps-unmasked`` is skipped).
        atol: tolerance of the determinism, batch-independence and keeps-unmasked checks.

    Returns:
        The notes of checks that were skipped (e.g. no x0 trajectory declared); empty if none.

    Raises:
        ModelContractError: one line per broken rule; ``err.rules`` lists the rules' names.
    """
    if batch < 2:
        raise ValueError("check_inpainter needs a batch of at least 2")
    if size is None:
        sample = getattr(model, "sample_size", None)
        size = tuple(sample) if isinstance(sample, (tuple, list)) else (int(sample) if sample else 32)
    name = getattr(model, "name", type(model).__name__)
    broken: dict[str, str] = {}
    notes: list[str] = []
    device = model.device
    images, masks, seeds = sample_inputs(batch, size, device=device)
    images_before, masks_before = images.clone(), masks.clone()

    band = _ALL_STEPS if model.returns_x0_trajectory else None
    result = _call(model, images, masks, seeds, band)
    if not isinstance(result, InpaintResult):
        raise ModelContractError(f"check_inpainter({name}): rule 'returns-result' broken: inpaint returned "
                                 f"{type(result).__name__}, not an InpaintResult", rules=["returns-result"])
    out = result.images
    if not torch.equal(images, images_before) or not torch.equal(masks, masks_before):
        broken["no-input-edit"] = "inpaint modified its input images or masks in place"
    expected = tuple(images.shape)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected or not out.is_floating_point():
        got = f"{tuple(out.shape)} {out.dtype}" if isinstance(out, torch.Tensor) else type(out).__name__
        broken["shape-dtype"] = f"images must be a floating tensor of shape {expected}, got {got}"
    else:
        out = out.detach().float().to(images.device)
        finite = torch.isfinite(out)
        if not finite.all():
            broken["finite"] = f"{int((~finite).sum())} NaN/Inf values in the output (mark such items failed)"
        elif out.min() < 0 or out.max() > 1:
            broken["range"] = f"values must lie in [0, 1], got [{out.min().item():.3g}, {out.max().item():.3g}]"
        keep = (masks_before < 0.5).expand_as(out)
        ignores_mask = "mask" in getattr(model, "ignores", ())
        if ignores_mask:
            notes.append("declares that it ignores the mask (a control model): keeps-unmasked is not checked")
            if (out - images_before).abs().max() <= atol:
                broken["fills-mask"] = "the image came back unchanged: a control that ignores the mask changes nothing"
        elif preserves_unmasked and (out - images_before).abs()[keep].max() > atol:
            broken["keeps-unmasked"] = (f"pixels outside the mask changed by up to "
                                        f"{(out - images_before).abs()[keep].max().item():.3g} (the mask says keep)")
        inside = ~keep
        if not ignores_mask and (out - images_before).abs()[inside].max() <= atol:
            broken["fills-mask"] = "the masked region came back unchanged: the mask was ignored"

    if result.failed is not None and tuple(torch.as_tensor(result.failed).shape) != (batch,):
        broken["per-item-fields"] = f"failed must hold {batch} booleans, got shape {tuple(result.failed.shape)}"
    bad_extras = [k for k, v in result.extras.items() if len(v) != batch]
    if bad_extras:
        broken["per-item-fields"] = f"extras {bad_extras} must hold {batch} values each"

    if band is not None:
        problem = _trajectory_problem(result, batch, band)
        if problem is None:
            in_t = _call(model, images_before.clone(), masks_before.clone(), seeds, _ALL_STEPS_T)
            problem = _trajectory_problem(in_t, batch, _ALL_STEPS_T)
            if problem is None:
                sig = torch.as_tensor(result.x0_noise_levels, dtype=torch.float64).reshape(-1)
                pos = torch.as_tensor(in_t.x0_noise_levels, dtype=torch.float64).reshape(-1)
                if sig.numel() != pos.numel():
                    problem = (f"asked for every step, it returned {sig.numel()} steps in sigma and {pos.numel()} "
                               "in t/T")
                elif torch.equal(sig, pos):
                    problem = (f"x0_noise_levels {sig.tolist()} are the same numbers in sigma and in t/T: the "
                               "model ignores x0_band.unit")
        if problem:
            broken["trajectory"] = problem
        elif _call(model, images_before.clone(), masks_before.clone(), seeds).x0_trajectory is not None:
            broken["trajectory"] = "returned an x0_trajectory although no x0_band was given"
    elif not model.returns_x0_trajectory:
        if result.x0_trajectory is not None:
            broken["trajectory"] = "returned an x0_trajectory without declaring returns_x0_trajectory = True"
        notes.append("no x0 trajectory declared: the hallucination score is not computed for this model")

    if "shape-dtype" not in broken and "finite" not in broken:
        again = _call(model, images_before.clone(), masks_before.clone(), seeds, band).images.detach().float()
        if not torch.allclose(again.to(out.device), out, atol=atol, rtol=0):
            broken["deterministic"] = "two calls with the same images, masks and seeds gave different outputs"
        alone = _call(model, images_before[1:2].clone(), masks_before[1:2].clone(), seeds[1:2], band)
        single = alone.images.detach().float().to(out.device)
        if single.shape != out[1:2].shape or not torch.allclose(single, out[1:2], atol=atol, rtol=0):
            broken["batch-independent"] = "item 1 of the batch differs from the same item run alone with its seed"

    ignored = _ignores_problem(model, images_before, masks_before, seeds, band, atol)
    if ignored:
        broken["declared-ignores"] = ignored
    problems = _check_options(model)
    if problems:
        broken["options"] = "; ".join(problems)
    try:
        ident = model.identity()
        json.dumps(ident, default=str)
        if not isinstance(ident, dict) or "name" not in ident:
            broken["identity"] = "identity() must return a dict with the model's 'name'"
    except Exception as exc:  # noqa: BLE001 - any failure is a broken rule
        broken["identity"] = f"identity() failed: {type(exc).__name__}: {exc}"

    if broken:
        lines = "\n".join(f"  rule '{rule}': {why}" for rule, why in broken.items())
        raise ModelContractError(f"check_inpainter({name}): {len(broken)} rule(s) broken:\n{lines}",
                                 rules=list(broken))
    return notes
