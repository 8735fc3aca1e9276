"""Finding inpainting models by name.

Three ways to make a model known to ripbench:

1. built-ins, registered in this package with :func:`register_inpainter`;
2. third-party packages, through the ``ripbench.inpainters`` entry-point group
   (``[project.entry-points."ripbench.inpainters"] my-model = "my_pkg.models:make_model"``);
3. a ``"package.module:factory"`` string on the CLI or in a config.

A *factory* is a callable that accepts keyword options and returns an
:class:`~ripbench.models.base.Inpainter` (a subclass itself is a valid factory). A reference
from a config or the command line must name an ``Inpainter`` subclass or a function declared
with :func:`~ripbench.references.model_factory` (``@ripbench.model_factory``), checked before
anything is called (see :mod:`ripbench.references`): a shared config cannot make ripbench call
``subprocess:getoutput``. Code that registers a factory (1 and 2) declares it by doing so.

Example
-------
>>> from ripbench.models import create_inpainter
>>> model = create_inpainter("biharmonic")
>>> model.name
'biharmonic'
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ModelNotFoundError, RipbenchError, add_note
from ..references import Expected, plugin_references, resolve_reference

if TYPE_CHECKING:  # the registry holds names and references; torch (via .base) loads when a model is built
    from .base import Inpainter, ModelOption

ENTRY_POINT_GROUP = "ripbench.inpainters"

Factory = Callable[..., "Inpainter"]

# name -> (factory or "module:attr" string for lazy import, one-line description)
_BUILTINS: dict[str, tuple[Factory | str, str]] = {}


def register_inpainter(
    name: str, factory: Factory | str | None = None, *, description: str = ""
) -> Any:
    """Register a model factory under ``name``.

    Use as a decorator (``@register_inpainter("my-model")``) or call directly with a
    factory or a lazy ``"module:attr"`` string (imported only when the model is used,
    so heavy dependencies cost nothing until then).
    """

    def _register(f: Factory | str) -> Factory | str:
        desc = description
        if not desc and not isinstance(f, str):
            desc = (inspect.getdoc(f) or "").split("\n", 1)[0]
        _BUILTINS[name] = (f, desc)
        return f

    if factory is None:
        return _register
    return _register(factory)


def config_reference() -> Expected:
    """What a ``module:attr`` model reference from a config or the command line may name (built on
    first use: the ``Inpainter`` base class imports torch)."""
    from .base import Inpainter

    return Expected("a ripbench Inpainter subclass or a function declared with @ripbench.model_factory",
                    subclass_of=(Inpainter,), factory="model")


#: What code that registers a model (``register_inpainter``, an entry point) may name: any callable.
CODE_REFERENCE = Expected("a callable model factory", any_callable=True)


def _load_reference(ref: str, expected: Expected | None = None) -> Factory:
    """The factory a ``module:attr`` reference names, checked to be ``expected`` (default:
    :func:`config_reference`) before anything is called."""
    expected = expected or config_reference()
    factory: Factory = resolve_reference(ref, expected, "model", error=ModelNotFoundError,
                                         form="package.module:factory")
    return factory


#: A Hugging Face id ``owner/name``.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Strings that start like a path.
PATH_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")


def looks_like_diffusers_model(spec: str) -> bool:
    """Whether a model string names a diffusers pipeline (Hub id or local directory).

    True for an existing directory, a path-like string (``./x``, ``/x``, ``~/x``) and a
    Hugging Face id ``owner/name``; False for registered names (``"biharmonic"``) and
    ``package.module:factory`` references.

    >>> looks_like_diffusers_model("stabilityai/stable-diffusion-2-inpainting")
    True
    >>> looks_like_diffusers_model("biharmonic"), looks_like_diffusers_model("pkg.mod:make")
    (False, False)
    """
    if os.path.isdir(os.path.expanduser(spec)):
        return True
    if spec.endswith(".py"):  # a plug-in file without ':ClassName', never a pipeline
        return False
    if ":" in spec and not re.match(r"^[A-Za-z]:[\\/]", spec):
        return False
    return spec.startswith(PATH_PREFIXES) or bool(HUB_ID.match(spec))


def _describe(factory: Any) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def _plugin_refs() -> dict[str, str]:
    """Name -> ``module:attr`` of every installed plug-in model (one named like a built-in is ignored
    with a warning, as for metrics and detectors)."""
    return plugin_references(ENTRY_POINT_GROUP, _BUILTINS, "model")


def available_inpainters() -> dict[str, str]:
    """Return ``{name: description}`` of every built-in and entry-point model."""
    found = {name: desc for name, (_, desc) in _BUILTINS.items()}
    found.update({name: f"plug-in from {ref}" for name, ref in _plugin_refs().items()})
    return dict(sorted(found.items()))


def resolve_factory(spec: str) -> Factory:
    """Return the factory for a model name or ``module:factory`` reference."""
    if spec in _BUILTINS:
        factory, _ = _BUILTINS[spec]
        return _load_reference(factory, CODE_REFERENCE) if isinstance(factory, str) else factory
    plugin = _plugin_refs().get(spec)
    if plugin is not None:  # a broken plug-in is named in one line
        loaded: Factory = resolve_reference(plugin, CODE_REFERENCE, f"plug-in model {spec!r}", error=ModelNotFoundError,
                                            form="package.module:factory")
        return loaded
    if ":" in spec:
        return _load_reference(spec)
    known = ", ".join(available_inpainters()) or "(none)"
    raise ModelNotFoundError(f"unknown model {spec!r}; known models: {known}; or use 'package.module:factory'")


def declared_name(spec: str) -> str | None:
    """The ``name`` a ``module:attr`` model declares (a class attribute, or a factory's ``name``
    attribute), or ``None`` when it declares none or cannot be loaded (the run reports that later).

    It labels the model's rows, so that ``--model my_models:MedianFill`` reads as ``median-fill``.
    """
    from .base import Inpainter

    try:
        factory = resolve_factory(spec)
    except RipbenchError:
        return None
    name = inspect.getattr_static(factory, "name", None)
    if not isinstance(name, str) or not name or name == Inpainter.name:
        return None
    return name


def declared_options(factory: Factory) -> tuple[ModelOption, ...] | None:
    """The options a factory declares (``option_specs``), or ``None`` when it declares none.

    A class inherits the declaration of its base; a factory function may carry an
    ``option_specs`` attribute (see :func:`ripbench.models.pixel_ddpm.shapes_ddpm`).
    """
    from .base import Inpainter

    specs = getattr(factory, "option_specs", None)
    if specs is None or (specs is Inpainter.option_specs and factory is not Inpainter):
        return None
    return tuple(specs)


def check_model_options(spec: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against what model ``spec`` declares (old spellings renamed with a warning).

    Undeclared factories are checked against their call signature only. Raises
    :class:`~ripbench.errors.ConfigError` naming the model and the option.
    """
    from .base import check_options

    factory = resolve_factory(spec)
    declared = declared_options(factory)
    if declared is not None:
        return check_options(declared, options, spec)
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise ConfigError(f"model {spec!r} does not take the option(s) {', '.join(sorted(options))}: {exc}") from None
    except ValueError:  # no signature to check (builtin callables)
        pass
    return dict(options)


def create_inpainter(spec: str, **options: Any) -> Inpainter:
    """Build a model from its name (or ``module:factory``) and keyword options.

    Options are checked first (:func:`check_model_options`); an exception raised by the
    model's own code then surfaces as itself, with a note naming the model.
    """
    from .base import Inpainter

    factory = resolve_factory(spec)
    options = check_model_options(spec, options)
    try:
        model = factory(**options)
    except Exception as exc:
        add_note(exc, f"(raised while building model {spec!r} from {_describe(factory)})")
        raise
    if not isinstance(model, Inpainter):
        raise ModelNotFoundError(
            f"factory for model {spec!r} returned {type(model).__name__}, not a ripbench Inpainter"
        )
    return model
