"""The plug-in interface every inpainting model implements.

A model receives a *batch* of images, masks and per-item seeds and returns the
inpainted images (and, if it is a diffusion model and was asked for it, its
predicted clean image x0 at the denoising steps of a low-noise band, each with the
step's noise level: the "x0 trajectory" that the hallucination detector scores).

Conventions (shared by every model, the harness and the metrics):

* ``images``: float tensor ``B x 3 x H x W`` with values in ``[0, 1]``.
* ``masks``: float tensor ``B x 1 x H x W`` with values in ``{0, 1}``; **1 = regenerate**,
  0 = keep. (Stable Diffusion's convention; RePaint's opposite convention is handled
  inside the model that needs it.)
* ``seeds``: one integer per item (63-bit, derived by :mod:`ripbench.run.keys`). A model must
  make its output for item ``i`` depend only on ``images[i]``, ``masks[i]`` and ``seeds[i]``,
  never on the other items of the batch, so that results do not depend on the batch size.
* A model must not modify ``images`` or ``masks`` in place, must return finite values in
  ``[0, 1]`` of the input's shape, and must keep the pixels where ``masks == 0`` (or say in
  its docs why not, like a latent model without paste-back).
* noise levels: in the unit of the band the model is asked for (``x0_band.unit``, see
  :class:`ripbench.hallucination.NoiseBand`). ``"sigma"`` (the default):
  ``sigma/sqrt(alpha_bar) = sqrt((1 - abar_t) / abar_t)`` of the step on the model's own
  schedule (``s / (1 - s)`` for a flow-matching sigma ``s``; 0 = clean image), computed with
  :func:`ripbench.hallucination.sigma_levels` / :func:`~ripbench.hallucination.flow_sigma_levels`;
  ``"t/T"``: the position of the step on the training schedule, ``timestep / num_train_timesteps``
  (for flow matching the sigma of the step), the only unit before bands had units.
  A model says which unit its levels are in with ``InpaintResult.x0_noise_unit``. A model
  written for the old ``t/T`` contract (no ``x0_noise_unit``) is scored only under a ``t/T``
  band; under a sigma band the harness stops with a one-line error instead of scoring its t/T
  levels as sigmas, and :func:`ripbench.testing.check_inpainter` flags it.

What a model declares, once, as class attributes (the harness reads them; nothing is inferred):

* :attr:`Inpainter.option_specs` -- the options its constructor takes (name, type, default,
  one-line help; old spellings as aliases). ``ripbench models -v`` lists them, and options a
  user gives are validated against them by pydantic (strict, as config fields are) before
  anything is written or the model is built.
* :attr:`Inpainter.returns_x0_trajectory` -- whether :meth:`~Inpainter.inpaint` accepts the
  keyword ``x0_band`` and then returns the predicted clean image of its denoising timesteps in
  that noise band with their noise levels (then the hallucination score is computed; the
  harness passes ``x0_band`` only to such models, so others need not accept it), and
  :attr:`Inpainter.x0_steps` -- how many denoising steps one call runs (manifest only).

:func:`ripbench.testing.check_inpainter` checks all of these rules on small inputs.

Example
-------
>>> import torch
>>> from ripbench.models.base import Inpainter, InpaintResult
>>> class MeanFill(Inpainter):
...     name = "mean-fill"
...     def inpaint(self, images, masks, seeds):
...         mean = images.mean(dim=(2, 3), keepdim=True)
...         return InpaintResult(images=images * (1 - masks) + mean * masks)
>>> model = MeanFill()
>>> out = model.inpaint(torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8), [0, 1])
>>> tuple(out.images.shape)
(2, 3, 8, 8)
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import inspect
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Optional, TypeVar, Union

import torch
from pydantic import ConfigDict, TypeAdapter, ValidationError

from ..errors import ConfigError

#: dtype names accepted by models' ``dtype`` option.
_DTYPES = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else as given."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} requested but CUDA is not available on this machine")
    return dev


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"`` -> float16 on CUDA, float32 elsewhere; names like ``"bf16"`` -> torch dtypes."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use 'auto', 'fp16', 'bf16' or 'fp32'")
    return _DTYPES[dtype]


def jsonable_config(config: Any) -> dict[str, Any]:
    """The JSON-friendly entries of a diffusers config (a scheduler's, a UNet's) for ``identity()``.

    Private keys (``_diffusers_version``, ...) are left out, except ``_class_name``.

    >>> jsonable_config({"num_train_timesteps": 1000, "betas": (0.1, 0.2), "_diffusers_version": "0.30"})
    {'num_train_timesteps': 1000, 'betas': [0.1, 0.2]}
    """
    out: dict[str, Any] = {}
    for key, value in dict(config).items():
        if key.startswith("_") and key != "_class_name":
            continue
        if isinstance(value, (str, int, float, bool, type(None))):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
            out[key] = list(value)
    return out


_MISSING: Any = object()


@dataclass(frozen=True)
class ModelOption:
    """One constructor option of a model, as ``ripbench models -v`` shows it.

    Attributes:
        name: the option's name (the keyword the constructor takes).
        default: its default value (``None`` = "the model's own choice").
        help: one line saying what it does.
        type: accepted type(s); ``None`` = derived from ``default`` (any type when the default is ``None``).
        choices: allowed values, if only some are.
        aliases: older spellings, still accepted with a warning.

    >>> ModelOption("steps", 50, "denoising steps per call", aliases=("num_inference_steps",)).type_name
    'int'
    """

    name: str
    default: Any
    help: str
    type: type | tuple[type, ...] | None = None
    choices: tuple[Any, ...] | None = None
    aliases: tuple[str, ...] = ()

    @property
    def types(self) -> tuple[builtins.type, ...] | None:  # `type` is a field here
        """The accepted types (ints count as floats), or ``None`` for any."""
        declared = self.type if self.type is not None else (None if self.default is None else type(self.default))
        if declared is None:
            return None
        types = declared if isinstance(declared, tuple) else (declared,)
        return (*types, int) if float in types and int not in types else types

    @property
    def type_name(self) -> str:
        declared = self.type if self.type is not None else (None if self.default is None else type(self.default))
        if declared is None:
            return "any"
        return " | ".join(t.__name__ for t in (declared if isinstance(declared, tuple) else (declared,)))

    @functools.cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        """The option's pydantic validator (strict, as config fields are: no ``"3"`` for 3, no ``True`` for 1)."""
        types = self.types
        annotation: Any = Any if types is None else (types[0] if len(types) == 1 else Union[types])  # noqa: UP007
        if self.choices is not None:
            annotation = Literal[self.choices]
        if self.default is None:
            annotation = Optional[annotation]  # noqa: UP045
        return TypeAdapter(annotation, config=None if _is_model(annotation) else ConfigDict(strict=True))

    def check(self, value: Any, model: str) -> Any:
        """``value`` if it fits this option, else :class:`ConfigError` naming model, option and what fits.

        Validated by pydantic, like every config field (strict: the value must already have the type).

        >>> ModelOption("steps", 50, "denoising steps").check(True, "m")
        Traceback (most recent call last):
        ...
        ripbench.errors.ConfigError: model 'm': option 'steps' must be int, got True
        """
        try:
            self._adapter.validate_python(value)
        except ValidationError:
            if self.choices is not None and (self.types is None or isinstance(value, self.types)):
                raise ConfigError(f"model {model!r}: option {self.name!r} must be one of "
                                  f"{', '.join(map(str, self.choices))}; got {value!r}") from None
            raise ConfigError(f"model {model!r}: option {self.name!r} must be {self.type_name}, got {value!r}") from None
        return value


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and hasattr(annotation, "model_config")


def check_options(specs: Sequence[ModelOption], given: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Map old spellings to current names (with a warning), refuse unknown options, check types.

    >>> opts = (ModelOption("steps", 50, "denoising steps", aliases=("num_inference_steps",)),)
    >>> check_options(opts, {"steps": 25}, "m")
    {'steps': 25}
    """
    by_name = {o.name: o for o in specs}
    alias = {a: o.name for o in specs for a in o.aliases}
    out: dict[str, Any] = {}
    for key, value in given.items():
        name = key
        if key in alias:
            name = alias[key]
            warnings.warn(f"model {model!r}: option {key!r} is now called {name!r}; please rename it",
                          FutureWarning, stacklevel=3)
        if name not in by_name:
            allowed = ", ".join(by_name) or "none"
            raise ConfigError(f"model {model!r} has no option {key!r}; its options: {allowed} "
                              "(see `ripbench models -v`)")
        if name in out:
            raise ConfigError(f"model {model!r}: option {name!r} given twice (as {key!r} and {name!r})")
        out[name] = by_name[name].check(value, model)
    return out


def _keyword_parameters(init: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = list(inspect.signature(init).parameters.values())[1:]  # without self
    return {p.name: p for p in params if p.kind in kinds}


def signature_options(init: Callable[..., Any], described: Sequence[ModelOption]) -> tuple[ModelOption, ...]:
    """A constructor's options declared once: its parameters are the names and defaults.

    ``described`` gives each parameter's help (and type, choices, aliases) in display order; an
    option written with default ``...`` takes the constructor's default, any other default must
    equal it. Every parameter must be described and every described option must be a parameter
    (:class:`TypeError` otherwise, when the class is defined).

    >>> def __init__(self, model, *, steps: int = 50, eta: float = 0.0): ...
    >>> [(o.name, o.default) for o in signature_options(__init__, (
    ...     ModelOption("model", None, "the weights", type=str), ModelOption("steps", ..., "denoising steps"),
    ...     ModelOption("eta", ..., "DDIM eta")))]
    [('model', None), ('steps', 50), ('eta', 0.0)]
    """
    params = _keyword_parameters(init)
    names = [o.name for o in described]
    if sorted(names) != sorted(params):
        raise TypeError(f"{init.__qualname__}: options {sorted(set(names) ^ set(params))} are not both parameters "
                        "and described")
    out = []
    for option in described:
        default = params[option.name].default
        if option.default is ...:
            option = dataclasses.replace(option, default=None if default is inspect.Parameter.empty else default)
        elif default is not inspect.Parameter.empty and option.default != default:
            raise TypeError(f"{init.__qualname__}: option {option.name!r} is described with default "
                            f"{option.default!r} but the constructor's is {default!r}")
        out.append(option)
    return tuple(out)


_Init = TypeVar("_Init", bound=Callable[..., None])


def captures_options(init: _Init) -> _Init:
    """Decorate a model's ``__init__`` so that the call's arguments, defaults filled in, are kept as
    ``self.config`` (a dict in signature order; treat it as read-only), as diffusers'
    ``register_to_config`` does: :meth:`Inpainter.identity` and the code read the options from
    there, once. (A plain dict, not a ``MappingProxyType``, so that a model can be deep-copied.)

    >>> class M:
    ...     @captures_options
    ...     def __init__(self, model, *, steps: int = 50): ...
    >>> dict(M("w", steps=3).config), dict(M("w").config)
    ({'model': 'w', 'steps': 3}, {'model': 'w', 'steps': 50})
    """
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)  # a wrong keyword is a TypeError, as without the decorator
        bound.apply_defaults()
        self.config = dict(list(bound.arguments.items())[1:])
        init(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


#: The ``device`` option every device-aware model takes.
DEVICE_OPTION = ModelOption("device", "auto", "torch device: auto (CUDA if available), cpu, cuda, cuda:1, ...",
                            type=str)


class DeviceLabels(Sequence[str]):
    """Per-item labels kept as codes on the device until someone reads them (no device sync before).

    A model that labels items from device values (e.g. "nan" where the output holds NaN)
    returns this in :attr:`InpaintResult.extras`; the run loop reads it once, at the end of the
    batch, instead of waiting for the device every iteration.

    >>> import torch
    >>> labels = DeviceLabels(torch.tensor([0, 2, 1]), ["", "nan", "all-black"])
    >>> len(labels), list(labels), labels == ["", "all-black", "nan"]
    (3, ['', 'all-black', 'nan'], True)
    """

    def __init__(self, codes: torch.Tensor, names: Sequence[str]) -> None:
        self.codes = codes
        self.names = tuple(names)
        self._values: list[str] | None = None

    def _host(self) -> list[str]:
        if self._values is None:
            self._values = [self.names[int(c)] for c in self.codes.tolist()]
        return self._values

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def __getitem__(self, index: Any) -> Any:
        return self._host()[index]

    def __iter__(self) -> Any:
        return iter(self._host())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"DeviceLabels({self._host()!r})"


@dataclass
class InpaintResult:
    """What a model returns for one batch.

    Attributes:
        images: ``B x 3 x H x W`` inpainted images in ``[0, 1]``, on the model's device.
        x0_trajectory: optional ``K x B x C x h x w`` tensor: the model's predicted clean
            sample at ``K`` denoising steps, one per scheduler timestep (oldest = noisiest
            first). ``C, h, w`` may be latent dimensions (see ``x0_space``). Only models that
            declare :attr:`Inpainter.returns_x0_trajectory` may return it.
        x0_noise_levels: the noise level of each of the ``K`` steps (a tensor or a sequence of
            floats) in the unit of the ``x0_band`` asked for; required with ``x0_trajectory``.
        x0_noise_unit: the unit of ``x0_noise_levels`` (``"sigma"`` or ``"t/T"``; set it to
            ``x0_band.unit``). ``None`` means ``t/T`` (models written before units), accepted
            only under a ``t/T`` band.
        x0_space: ``"pixel"`` when the trajectory lives in image space (values
            comparable to ``images``, scaled to ``[-1, 1]`` or ``[0, 1]``), ``"latent"``
            when it lives in a VAE latent space.
        failed: optional ``B`` bool tensor; ``True`` marks an item whose output is
            unusable (NaN, all black, ...). The harness stops that trajectory.
        extras: optional per-item values to store as extra result columns, e.g.
            ``{"nsfw_flagged": [False, True]}``; each value has length ``B``.
    """

    images: torch.Tensor
    x0_trajectory: torch.Tensor | None = None
    x0_noise_levels: torch.Tensor | Sequence[float] | None = None
    x0_space: str = "pixel"
    x0_noise_unit: str | None = None
    failed: torch.Tensor | None = None
    extras: dict[str, Sequence[Any]] = field(default_factory=dict)


class Inpainter(ABC):
    """Base class of inpainting models.

    Subclasses set :attr:`name`, implement :meth:`inpaint`, declare :attr:`option_specs`
    (and, for diffusion models, :attr:`returns_x0_trajectory` and :attr:`x0_steps`), and may
    override :attr:`device` and :meth:`identity`. Register a subclass (or any factory
    returning one) with :func:`ripbench.models.register_inpainter`, the
    ``ripbench.inpainters`` entry-point group, or refer to it as ``"package.module:factory"``
    in a config / on the CLI.
    """

    #: Short name used in result tables and file names.
    name: str = "inpainter"
    #: The options the constructor takes; options a user gives are checked against them.
    option_specs: ClassVar[tuple[ModelOption, ...]] = ()
    #: The constructor's arguments, defaults filled in, for models whose ``__init__`` is decorated
    #: with :func:`captures_options` (empty otherwise).
    config: Mapping[str, Any] = MappingProxyType({})
    #: Whether :meth:`inpaint` accepts ``x0_band`` and then returns an ``x0_trajectory`` with its
    #: ``x0_noise_levels``. The harness passes ``x0_band`` only to models that declare this.
    #: May be set per instance when it depends on the settings (e.g. the scheduler).
    returns_x0_trajectory: bool = False
    #: Denoising model calls one :meth:`inpaint` runs (``None`` for non-iterative models);
    #: recorded in the manifest. The hallucination score does not need it: it picks the
    #: recorded steps by their noise level.
    x0_steps: int | None = None

    @property
    def device(self) -> torch.device:
        """Device on which the model wants its inputs (the harness keeps state there)."""
        return torch.device("cpu")

    @abstractmethod
    def inpaint(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        seeds: Sequence[int],
        *,
        x0_band: tuple[float, float] | None = None,
    ) -> InpaintResult:
        """Inpaint a batch.

        Args:
            images: ``B x 3 x H x W`` float tensor in ``[0, 1]`` on :attr:`device`.
            masks: ``B x 1 x H x W`` float tensor in ``{0, 1}`` (1 = regenerate).
            seeds: ``B`` integer seeds, one per item.
            x0_band: a :class:`~ripbench.hallucination.NoiseBand` ``(lo, hi)`` with a ``unit``
                (``"sigma"`` or ``"t/T"``; read a plain pair with
                :func:`~ripbench.hallucination.as_band`, i.e. in sigma): record the predicted
                clean sample of every denoising timestep whose level, in that unit, lies in
                ``[lo, hi]`` and return them as ``x0_trajectory`` with their ``x0_noise_levels``
                and ``x0_noise_unit = x0_band.unit`` (``None`` = record nothing).
                One x0 per timestep: the prediction at the sampler's state at that timestep,
                not at the extra evaluations of multi-evaluation samplers (Heun, KDPM2).
                Returning steps outside the band is allowed (they are not scored). Only
                passed to models with :attr:`returns_x0_trajectory`; others may omit it.

        Returns:
            An :class:`InpaintResult` whose ``images`` have the input's shape.
        """

    def identity(self) -> dict[str, Any]:
        """Everything that identifies this model and its output-changing settings.

        Stored in the run manifest. Subclasses extend it with their options, weights
        revision, dtype, etc.
        """
        return {"name": self.name, "class": f"{type(self).__module__}.{type(self).__qualname__}"}

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"<{type(self).__name__} name={self.name!r} device={self.device}>"
