"""``"package.module:attr"`` references to plug-in code (models, metrics, detectors), resolved safely.

A reference in a config or on the command line names code that ripbench will run, and a results
config shared by a colleague must not be able to run arbitrary callables
(``models: [{name: "subprocess:getoutput"}]``). Every reference is therefore resolved here, in
three steps, and nothing it names is called before the third has passed:

1. import ``package.module`` (as any plug-in needs; looked for on ``sys.path`` and then in the
   current folder, as ``python -m`` does), or load the file of ``path/to/file.py:attr``;
2. get ``attr`` from it (dots reach nested attributes: ``module:Class.make``);
3. check that it is the kind of thing expected (:class:`Expected`): an instance of a spec class
   (a ``MetricSpec``, a ``DetectorSpec``), a subclass of a base class (an ``Inpainter``), or a
   function declared a factory of that kind with :func:`declare_factory` (for models:
   :func:`model_factory`).

Step 1 runs the module's top-level code, as any import does (only modules on ``sys.path``, in the
current folder or a named file can be reached; the standard library's define names and do nothing
else, with curiosities like ``antigravity`` as the exception); what the reference names is never called unless step 3 passed.

Code that registers a plug-in itself (``register_inpainter(name, "module:attr")``, an installed
package's entry point, a spec's own ``compute="module:function"``) has declared what it names by
that registration; such references accept any callable (:attr:`Expected.any_callable`).

Example
-------
>>> class Base: pass
>>> expected = Expected("a Base subclass", subclass_of=(Base,))
>>> resolve_reference("subprocess:getoutput", expected, what="model")
Traceback (most recent call last):
...
ripbench.errors.ConfigError: model 'subprocess:getoutput' is the function subprocess.getoutput, not a Base subclass; refused without calling it
>>> resolve_reference("collections:OrderedDict", Expected("a dict subclass", subclass_of=(dict,))).__name__
'OrderedDict'
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, RipbenchError

__all__ = ["FACTORY_ATTRIBUTE", "Expected", "check_kind", "declare_factory", "declared_factory_kind",
           "is_file_reference", "model_factory", "resolve_reference", "split_reference"]

#: The attribute :func:`declare_factory` sets on a factory: the kind of plug-in it builds.
FACTORY_ATTRIBUTE = "__ripbench_factory__"

F = TypeVar("F", bound=Callable[..., Any])


def declare_factory(kind: str) -> Callable[[F], F]:
    """A decorator declaring a function a factory of plug-ins of ``kind`` (e.g. ``"model"``).

    >>> @declare_factory("model")
    ... def make(**options): ...
    >>> declared_factory_kind(make)
    'model'
    """

    def mark(factory: F) -> F:
        setattr(factory, FACTORY_ATTRIBUTE, kind)
        return factory

    return mark


def model_factory(factory: F) -> F:
    """Declare a function a model factory, so that a ``"package.module:function"`` reference may name it.

    A factory takes the model's options as keywords and returns a
    :class:`ripbench.models.Inpainter`; an ``Inpainter`` subclass needs no declaration.

    >>> from ripbench.models import Inpainter, model_factory
    >>> @model_factory
    ... def make_model(**options) -> Inpainter: ...
    """
    return declare_factory("model")(factory)


def declared_factory_kind(obj: Any) -> str | None:
    """The kind :func:`declare_factory` declared ``obj`` a factory of, or ``None``."""
    if isinstance(obj, types.MethodType):  # a classmethod factory, bound by _step
        obj = obj.__func__
    kind = inspect.getattr_static(obj, FACTORY_ATTRIBUTE, None)
    return kind if isinstance(kind, str) else None


@dataclass(frozen=True)
class Expected:
    """What a reference may name.

    Attributes:
        description: the accepted kinds in words, for the error (``"a ripbench MetricSpec"``).
        subclass_of: classes whose subclasses are accepted (the class itself is called later).
        instance_of: classes whose instances are accepted (spec objects; nothing is called).
        factory: a kind name: functions declared with ``declare_factory(factory)`` are accepted.
        any_callable: accept any callable (references written by a plug-in's own code, never by a config).
    """

    description: str
    subclass_of: tuple[type, ...] = ()
    instance_of: tuple[type, ...] = ()
    factory: str | None = None
    any_callable: bool = False

    def accepts(self, obj: Any) -> bool:
        """Whether ``obj`` is of an accepted kind (nothing is called)."""
        if self.instance_of and isinstance(obj, self.instance_of):
            return True
        if self.subclass_of and isinstance(obj, type) and issubclass(obj, self.subclass_of):
            return True
        if self.factory is not None and callable(obj) and declared_factory_kind(obj) == self.factory:
            return True
        return self.any_callable and callable(obj)


def describe(obj: Any) -> str:
    """``obj`` in a few words for an error message (``"the function subprocess.getoutput"``)."""
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"the function {getattr(obj, '__module__', '?')}.{obj.__qualname__}"
    return f"a {type(obj).__name__}"


def _label(ref: str, what: str) -> str:
    """``what`` naming ``ref``: ``model 'pkg:make'``, ``metric 'mae' ('pkg:MAE')``."""
    if repr(ref) in what:
        return what
    return f"{what} ({ref!r})" if "'" in what else f"{what} {ref!r}"


def split_reference(ref: str, what: str = "reference", *, error: type[RipbenchError] = ConfigError,
                    form: str = "package.module:attr") -> tuple[str, str]:
    """``"package.module:attr"`` -> ``("package.module", "attr")``; ``error`` for any other shape."""
    if isinstance(ref, str) and is_file_reference(ref):
        module, sep, attr = ref.rpartition(":")
    else:
        module, sep, attr = ref.partition(":") if isinstance(ref, str) else ("", "", "")
    if not sep or not module or not attr or ":" in attr:
        raise error(f"{_label(str(ref), what)} is not of the form '{form}'")
    return module, attr


def check_kind(obj: Any, expected: Expected, ref: str, what: str = "reference", *,
               error: type[RipbenchError] = ConfigError) -> Any:
    """``obj`` if ``expected`` accepts it, else ``error`` saying what it is and what was expected."""
    if not expected.accepts(obj):
        refused = "; refused without calling it" if callable(obj) else ""
        raise error(f"{_label(ref, what)} is {describe(obj)}, not {expected.description}{refused}")
    return obj


def is_file_reference(ref: str) -> bool:
    """Whether ``ref`` names a Python file (``path/to/file.py:attr``) rather than a module.

    >>> is_file_reference("./my_models.py:MedianFill"), is_file_reference("my_models:MedianFill")
    (True, False)
    """
    head = ref.rpartition(":")[0] if ":" in ref else ref
    return head.endswith(".py") or "/" in head or "\\" in head


def resolve_reference(ref: str, expected: Expected, what: str = "reference", *,
                      error: type[RipbenchError] = ConfigError, form: str = "package.module:attr") -> Any:
    """Import the module of ``"package.module:attr"`` (or load ``"path/to/file.py:attr"``), get the
    attribute, check its kind; return it.

    A module is looked for as ``python -m`` does: on ``sys.path`` and in the current folder. A file
    path is read relative to the current folder. Nothing the reference names is called. ``what``
    names the reference in errors (``"model"``, ``"metric 'mae'"``); every failure (no such module
    or file, a module that fails to import, no such attribute, the wrong kind) is one ``error``
    naming the reference and saying how to fix it.
    """
    module_name, attr = split_reference(ref, what, error=error, form=form)
    where = f"{what} could not be loaded from {ref!r}"
    obj: Any = (_load_file(module_name, attr, where, error) if is_file_reference(ref)
                else _import_module(module_name, attr, where, error))
    for part in attr.split("."):
        obj = _step(obj, part, f"{where}: {_module_words(obj, module_name)} has no attribute {attr!r}"
                    f"{_defined_names(obj, expected)}", error)
    return check_kind(obj, expected, ref, what, error=error)


def _module_words(obj: Any, module_name: str) -> str:
    return f"file {module_name!r}" if module_name.endswith(".py") else f"module {module_name!r}"


def _defined_names(obj: Any, expected: Expected | None = None) -> str:
    """``" (it defines: A, B)"``: the public classes, functions and objects of a module, for a misspelt
    attribute; only those ``expected`` accepts when there are any (a file's ``MetricSpec`` objects, whose
    class lives in ripbench, are listed; an imported class or function is not)."""
    if not isinstance(obj, types.ModuleType):
        return ""
    public = {n: v for n, v in vars(obj).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)
              and (not isinstance(v, type | types.FunctionType) or getattr(v, "__module__", None) == obj.__name__)}
    fitting = [n for n, v in public.items() if expected is not None and expected.accepts(v)]
    names = sorted(fitting or public)
    return f" (it defines: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})" if names else ""


def _import_module(module_name: str, attr: str, where: str, error: type[RipbenchError]) -> types.ModuleType:
    """``module_name`` imported as ``python -m`` would: the current folder is searched too (after
    ``sys.path``, so that a file there never hides an installed package)."""
    cwd = os.getcwd()
    if not any(os.path.abspath(p or os.curdir) == cwd for p in sys.path):
        sys.path.append(cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            file = os.path.join(*module_name.split(".")) + ".py"
            raise error(f"{where}: no module named {exc.name!r} on the Python path or in the current folder "
                        f"({cwd}); run from the folder that holds {top!r}, or give the file's path: "
                        f"'path/to/{file}:{attr}'") from None
        raise error(f"{where}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # a broken plug-in is named, not hidden
        raise error(f"{where}: cannot import module {module_name!r}: "
                    f"{type(exc).__name__}: {exc}") from exc


#: Plug-in files loaded by path, by resolved path: each is loaded once per process.
_FILE_MODULES: dict[Path, types.ModuleType] = {}


def _load_file(path_text: str, attr: str, where: str, error: type[RipbenchError]) -> types.ModuleType:
    """The module of the Python file ``path_text`` (relative to the current folder), loaded once per
    file and kept in ``sys.modules`` under its stem (so that its classes pickle across processes)."""
    path = Path(path_text).expanduser()
    if path.suffix != ".py":
        raise error(f"{where}: {path_text!r} is not a Python file; give 'path/to/file.py:{attr}' or "
                    f"'package.module:{attr}'")
    if not path.is_file():
        raise error(f"{where}: no file {path_text!r} (looked in {Path.cwd()}); check the path, or run "
                    "from the folder it is relative to")
    resolved = path.resolve()
    loaded = _FILE_MODULES.get(resolved)
    if loaded is not None:
        return loaded
    for module in list(sys.modules.values()):  # imported already as a module (``my_models:X`` beside it)
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and Path(file).name == resolved.name and Path(file).resolve() == resolved:
            _FILE_MODULES[resolved] = module
            return module
    name = resolved.stem if resolved.stem.isidentifier() and resolved.stem not in sys.modules else (
        "ripbench_plugin_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:12])
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise error(f"{where}: cannot load {path_text!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken plug-in file is named, not hidden
        del sys.modules[name]
        raise error(f"{where}: loading {path_text!r} failed: {type(exc).__name__}: {exc}") from exc
    _FILE_MODULES[resolved] = module
    return module


def _step(obj: Any, part: str, missing: str, error: type[RipbenchError]) -> Any:
    """``obj.part`` without running code that the reference string chooses.

    On a module, plain ``getattr`` (a module's own ``__getattr__`` is import-level code); on a class,
    the attribute as stored (:func:`inspect.getattr_static`: no metaclass ``__getattr__``, no
    property), static and class methods unwrapped; any other object is refused, because its
    ``__getattr__`` could do anything the string asks (``ctypes:cdll.<path>`` would load a library).
    """
    if not part.isidentifier():
        raise error(f"{missing}: {part!r} is not a Python name")
    try:
        if isinstance(obj, types.ModuleType):
            return getattr(obj, part)
        if isinstance(obj, type):
            found = inspect.getattr_static(obj, part)
            if isinstance(found, staticmethod):
                return found.__func__
            if isinstance(found, classmethod):
                return types.MethodType(found.__func__, obj)
            if hasattr(type(found), "__get__") and not isinstance(found, (types.FunctionType, type)):
                raise error(f"{missing}: {part!r} is a {type(found).__name__} (only plain attributes are followed)")
            return found
    except AttributeError:
        raise error(missing) from None
    except RipbenchError:
        raise
    except Exception as exc:  # a module's __getattr__ that fails is one line, not a traceback
        raise error(f"{missing}: {type(exc).__name__}: {exc}") from exc
    raise error(f"{missing}: attributes are followed on modules and classes only, not on {describe(obj)}")


def plugin_references(group: str, builtins: Iterable[str], kind: str) -> dict[str, str]:
    """Name -> ``module:attr`` of every entry point of ``group`` (nothing is imported), without those
    named like a built-in (each ignored with a warning naming it). Read again whenever ``sys.path``
    changes, so that a package installed in this session is seen at once."""
    return _plugin_references(group, frozenset(builtins), kind, tuple(sys.path))


@lru_cache(maxsize=8)
def _plugin_references(group: str, builtins: frozenset[str], kind: str, path: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for ep in entry_points(group=group):
        if ep.name in builtins:
            warnings.warn(f"{kind} plug-in {ep.value!r} ignored: {ep.name!r} is a built-in {kind}", stacklevel=3)
            continue
        found[ep.name] = ep.value
    return found
