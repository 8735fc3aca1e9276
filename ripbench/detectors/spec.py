"""What a detector is: one :class:`DetectorSpec` (its facts and its batched function).

A detector gives every repainted image one number that is meant to be higher (or lower) for
hallucinated content. It is computed once per iteration for a whole batch of trajectories,
from what the loop has at hand then (a :class:`DetectorBatch`): the model's x0 trajectory and
its noise levels, the output image, this iteration's mask and the image the model was given.

Two kinds:

* ``"detector"``: a score that uses the model (e.g. the x0 variance of Aithal et al.);
* ``"baseline"``: a **control** with no model in it (e.g. the number of foreground pixels in the
  repainted region). A detector is only evidence of hallucination detection when it beats
  the baselines; a baseline is never a detector itself.

Writing a detector
------------------
A plain function of a :class:`DetectorBatch` returning ``B`` values on the batch's device::

    def brightness(batch):                           # needs output and mask
        grey = batch.output.mean(dim=1, keepdim=True)
        return region_mean(grey, batch.mask)

    BRIGHTNESS = DetectorSpec(name="brightness", label="mean brightness", kind="baseline",
                              needs=("output", "mask"), compute=brightness)

The loop never calls a detector whose needs the model cannot give (a classical model has no
x0 trajectory): its column is NaN there. Register with
:func:`ripbench.detectors.register_detector` or the ``ripbench.detectors`` entry-point group.

Example
-------
>>> import torch
>>> spec = DetectorSpec(name="brightness", label="mean brightness", kind="baseline",
...                     needs=("output", "mask"), compute=lambda b: b.output.flatten(1).mean(1))
>>> batch = DetectorBatch(output=torch.full((2, 3, 4, 4), 0.25), mask=torch.ones(2, 1, 4, 4))
>>> spec(batch).tolist()
[0.25, 0.25]
>>> spec.column, spec.describe()["needs"]
('det_brightness', ['output', 'mask'])
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ripbench.errors import ConfigError, ModelContractError
from ripbench.references import Expected, resolve_reference

if TYPE_CHECKING:  # torch is imported where a detector runs, not where specs are declared or listed
    import torch

    from ripbench.hallucination import ScoreWindow

__all__ = [
    "DIRECTIONS",
    "KINDS",
    "NEEDS",
    "DetectorBatch",
    "DetectorSpec",
    "detector_column",
    "region_mean",
]

#: What a detector may need from an iteration.
NEEDS: tuple[str, ...] = ("x0_trajectory", "noise_levels", "output", "mask", "input")
#: ``"detector"`` uses the model; ``"baseline"`` is a content control without a model.
KINDS: tuple[str, ...] = ("detector", "baseline")
#: Which way a score points.
DIRECTIONS: tuple[str, ...] = ("higher-is-suspect", "lower-is-suspect")


def detector_column(name: str) -> str:
    """The results-table column of detector ``name``.

    >>> detector_column("x0-variance-current")
    'det_x0_variance_current'
    """
    return "det_" + name.replace("-", "_")


@dataclass
class DetectorBatch:
    """What the loop knows about one iteration of ``B`` trajectories (all on one device).

    Attributes:
        output: ``B x 3 x H x W`` the model's output in ``[0, 1]`` (clamped; the loop's copy).
        mask: ``B x 1 x H x W`` this iteration's mask, 1 = repainted.
        input: ``B x 3 x H x W`` the image the model was given (the previous iteration's output).
        x0_trajectory: ``K x B x C x h x w`` predicted clean samples (oldest first), or ``None``
            (a model without one, or hallucination scoring off). ``h x w`` may differ from ``H x W``
            (a latent model).
        noise_levels: ``K`` noise levels of the recorded steps in the band's unit, or ``None``.
        window: the run's noise band and fewest steps (:class:`~ripbench.hallucination.ScoreWindow`),
            or ``None`` when the model is not asked for x0.
    """

    output: torch.Tensor
    mask: torch.Tensor
    input: torch.Tensor | None = None
    x0_trajectory: torch.Tensor | None = None
    noise_levels: Any = None
    window: ScoreWindow | None = None
    #: Work shared by the detectors of one batch (e.g. the in-band variance map), keyed by name.
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def size(self) -> int:
        """Number of items ``B``."""
        return int(self.output.shape[0])

    @property
    def device(self) -> torch.device:
        """The device every returned value lives on (the output's)."""
        return self.output.device

    def has(self, need: str) -> bool:
        """Whether this batch can give ``need`` (one of :data:`NEEDS`)."""
        value = {"x0_trajectory": self.x0_trajectory, "noise_levels": self.noise_levels, "output": self.output,
                 "mask": self.mask, "input": self.input}[need]
        return value is not None

    def nan(self) -> torch.Tensor:
        """``B`` NaNs (float32, on :attr:`device`): "no score"."""
        import torch

        return torch.full((self.size,), float("nan"), dtype=torch.float32, device=self.device)


def region_mean(values: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean of ``B x C x H x W`` ``values`` over the pixels where ``region`` (``B x 1 x H x W``) > 0.5,
    averaged over channels; NaN for an empty region.

    >>> import torch
    >>> region_mean(torch.arange(4.0).reshape(1, 1, 2, 2), torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])).tolist()
    [1.5]
    """
    import torch

    inside = (region > 0.5).to(values.dtype)
    total = (values * inside).sum(dim=(1, 2, 3))
    count = inside.sum(dim=(1, 2, 3)) * values.shape[1]
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


#: What a ``"module:attr"`` string in :attr:`DetectorSpec.compute` may name (the spec's author wrote it).
COMPUTE_REFERENCE = Expected("a function", any_callable=True)


@dataclass(frozen=True)
class DetectorSpec:
    """Everything ripbench knows about a detector.

    Attributes:
        name: registry key; its column is :func:`detector_column` (``x0-variance`` ->
            ``det_x0_variance``); lower-case letters, digits, ``_`` and ``-``, starting with a letter.
        label: short human name for tables and axes.
        kind: ``"detector"`` (uses the model) or ``"baseline"`` (a content control, no model).
        compute: ``f(batch: DetectorBatch) -> B`` float values on the batch's device (NaN = no
            score); a ``"module:attr"`` string is imported on first use. It is called only when
            the batch has everything in ``needs``.
        needs: a subset of :data:`NEEDS`.
        direction: ``"higher-is-suspect"`` (default) or ``"lower-is-suspect"``.
        description: one line for ``ripbench detectors -v``; say exactly what is computed.
    """

    name: str
    label: str
    kind: str
    compute: Any
    needs: tuple[str, ...] = ("output", "mask")
    direction: str = "higher-is-suspect"
    description: str = ""
    _fn: list[Callable[..., Any]] = field(default_factory=list, repr=False, compare=False, init=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", self.name or ""):
            raise ConfigError(f"detector name {self.name!r} must start with a letter and hold only a-z, 0-9, '_', '-'")
        if self.kind not in KINDS:
            raise ConfigError(f"detector {self.name!r}: kind {self.kind!r} must be one of {', '.join(KINDS)}")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"detector {self.name!r}: direction {self.direction!r} must be one of "
                              f"{', '.join(DIRECTIONS)}")
        needs = (self.needs,) if isinstance(self.needs, str) else tuple(self.needs)
        unknown = [n for n in needs if n not in NEEDS]
        if unknown:
            raise ConfigError(f"detector {self.name!r}: unknown need(s) {unknown}; allowed: {', '.join(NEEDS)}")
        object.__setattr__(self, "needs", needs)

    @property
    def column(self) -> str:
        """The detector's results-table column."""
        return detector_column(self.name)

    @property
    def function(self) -> Callable[..., Any]:
        """The compute function (a ``"module:attr"`` reference is imported now, once)."""
        if not self._fn:
            target = self.compute
            if isinstance(target, str):
                target = resolve_reference(target, COMPUTE_REFERENCE, f"detector {self.name!r}: compute")
            elif not callable(target):
                raise ConfigError(f"detector {self.name!r}: compute {self.compute!r} is not callable")
            self._fn.append(target)
        return self._fn[0]

    def __call__(self, batch: DetectorBatch) -> torch.Tensor:
        """The detector's ``B`` values (float32, on the batch's device); NaN when a need is missing.

        Raises:
            ModelContractError: when the function returns something other than ``B`` values.
        """
        import torch

        if not all(batch.has(n) for n in self.needs):
            return batch.nan()
        out = self.function(batch)
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(out)
        if out.ndim != 1 or out.shape[0] != batch.size:
            raise ModelContractError(f"detector {self.name!r} returned shape {tuple(out.shape)}; expected "
                                     f"({batch.size},): one value per item")
        return out.to(device=batch.device, dtype=torch.float32)

    def describe(self) -> dict[str, Any]:
        """The spec as plain data (the manifest's ``"detectors"`` entries, ``ripbench detectors -v``)."""
        return {"name": self.name, "column": self.column, "label": self.label, "kind": self.kind,
                "direction": self.direction, "needs": list(self.needs), "description": self.description}
