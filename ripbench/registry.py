"""One registry of named specs, for every kind of plug-in that is plain data (metrics, detectors).

A :class:`SpecRegistry` knows a kind's specs by name from three places, in this order of lookup:

1. specs registered in code (:meth:`SpecRegistry.register`), or from a ``"module:attr"`` reference
   in a config (``register(spec, reference=...)`` after :meth:`SpecRegistry.load_reference`);
2. the built-ins, each a ``"module:attr"`` reference to a plain-data spec (imported when first looked up);
3. the kind's entry-point group (installed plug-ins; one named like a built-in is ignored with a warning).

Every reference is resolved by :func:`ripbench.references.resolve_reference` and checked to be an
instance of the kind's spec class before it is used. A spec recorded in a run's manifest can be
adopted when its plug-in is missing (:meth:`SpecRegistry.adopt`): the run is then analysed with
the recorded label and direction, and computing it is refused in one line.

:mod:`ripbench.metrics.registry` and :mod:`ripbench.detectors.registry` are instances of this class
with their own public functions; this module imports neither torch nor any spec module.

Example
-------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class ToySpec:
...     name: str
...     compute: object = None
>>> toys = SpecRegistry("toy", ToySpec, group="ripbench.toys", builtins={})
>>> toys.register(ToySpec("a")).name, list(toys.available())
('a', ['a'])
>>> toys.lookup("b")
Traceback (most recent call last):
...
ripbench.errors.ConfigError: unknown toy 'b'; available: a (plug-ins register in the entry-point group 'ripbench.toys')
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar

from .errors import ConfigError
from .references import Expected, plugin_references, resolve_reference

__all__ = ["NamedSpec", "SpecRegistry"]


class NamedSpec(Protocol):
    """What a registry holds: a spec with a ``name`` (and a ``compute`` it is built from)."""

    @property
    def name(self) -> str: ...


S = TypeVar("S", bound=NamedSpec)


class SpecRegistry(Generic[S]):
    """Specs of one kind (``"metric"``, ``"detector"``) by name: registered, built-in, plug-in.

    Args:
        kind: the kind in words, as errors name it (``"unknown metric 'x'"``).
        spec_type: the spec class; references must name an instance of it.
        group: the entry-point group of installed plug-ins (``"ripbench.metrics"``).
        builtins: built-in name -> ``"module:attr"`` of its spec, in their default order.
        fixed_builtins: refuse to register a spec under a built-in's name.
        unknown_hint: words put before the entry-point hint of the unknown-name error (say how
            else a spec can be named, e.g. ``"or a 'module:attr' reference; "``).
    """

    def __init__(self, kind: str, spec_type: type[S], *, group: str, builtins: Mapping[str, str],
                 fixed_builtins: bool = False, unknown_hint: str = "") -> None:
        self.kind = kind
        self.spec_type = spec_type
        self.group = group
        self.builtins = builtins
        self.fixed_builtins = fixed_builtins
        self.unknown_hint = unknown_hint
        #: What a ``"module:attr"`` reference (config, built-in, entry point) may name.
        self.expected = Expected(f"a ripbench {spec_type.__name__}", instance_of=(spec_type,))
        self._registered: dict[str, S] = {}
        #: Specs registered from a ``module:attr`` reference: name -> the reference.
        self._referenced: dict[str, str] = {}
        # looked up again whenever sys.path changes (a plug-in installed in this session)
        self._lookup_for = lru_cache(maxsize=64)(self._find)

    def register(self, spec: S, *, reference: str | None = None) -> S:
        """Make ``spec`` available under ``spec.name`` (replacing an earlier registration of that name);
        ``reference``: the ``module:attr`` it was loaded from, shown by :meth:`available`."""
        if not isinstance(spec, self.spec_type):
            raise ConfigError(f"register_{self.kind} expects a {self.spec_type.__name__}, got {type(spec).__name__}")
        if self.fixed_builtins and spec.name in self.builtins:
            raise ConfigError(f"{self.kind} name {spec.name!r} is a built-in; choose another name")
        self._registered[spec.name] = spec
        if reference is not None:
            self._referenced[spec.name] = reference
        self.clear_cache()
        return spec

    def unregister(self, name: str) -> None:
        """Forget a spec registered with :meth:`register` (built-ins and plug-ins stay)."""
        self._registered.pop(name, None)
        self._referenced.pop(name, None)
        self.clear_cache()

    def registered(self, name: str) -> S | None:
        """The spec registered in code (or from a reference) under ``name``, if any."""
        return self._registered.get(name)

    def referenced(self, name: str) -> str | None:
        """The ``module:attr`` reference ``name`` was registered from, if any."""
        return self._referenced.get(name)

    def clear_cache(self) -> None:
        """Forget the specs looked up so far (after a registration changes what a name means)."""
        self._lookup_for.cache_clear()

    def plugin_refs(self) -> dict[str, str]:
        """Name -> ``module:attr`` of every installed plug-in (nothing is imported)."""
        return plugin_references(self.group, self.builtins, self.kind)

    def available(self) -> dict[str, str]:
        """Every known name -> where its spec comes from (built-ins first, then plug-ins, then
        registered ones; a registration shadowing a plug-in is shown as such: it is what lookup finds)."""
        out: dict[str, str] = {name: "built-in" for name in self.builtins}
        out.update({name: f"plug-in {ref}" for name, ref in self.plugin_refs().items()})
        out.update({name: f"reference {self._referenced[name]}" if name in self._referenced else "registered"
                    for name in self._registered if name not in self.builtins})
        return out

    def lookup(self, name: str) -> S:
        """The spec called ``name``; :class:`ConfigError` naming the known ones otherwise."""
        return self._lookup_for(name, tuple(sys.path))

    def _find(self, name: str, path: tuple[str, ...]) -> S:
        if name in self._registered:
            return self._registered[name]
        ref = self.builtins.get(name) or self.plugin_refs().get(name)
        if ref is None:
            raise ConfigError(f"unknown {self.kind} {name!r}; available: {', '.join(self.available())} "
                              f"({self.unknown_hint}plug-ins register in the entry-point group '{self.group}')")
        spec: S = resolve_reference(ref, self.expected, f"{self.kind} {name!r}")
        if spec.name != name:
            raise ConfigError(f"{self.kind} registered as {name!r} ({ref!r}) calls itself {spec.name!r}")
        return spec

    def load_reference(self, ref: str) -> S:
        """The spec a ``"module:attr"`` or ``"path/to/file.py:attr"`` reference names (checked to be a
        spec before anything is called; see :mod:`ripbench.references`), not registered.

        Refused (:class:`ConfigError`) when the spec takes the name of another spec of this kind
        (one not registered from this same reference).
        """
        spec: S = resolve_reference(ref, self.expected, self.kind)
        known = self.available()
        if (spec.name in known and self._referenced.get(spec.name) != ref
                and self._registered.get(spec.name) is not spec and self.lookup(spec.name) is not spec):
            raise ConfigError(f"{self.kind} {ref!r} calls itself {spec.name!r}, the name of another "
                              f"{self.kind} ({known[spec.name]})")
        return spec

    def not_installed(self, name: str) -> Callable[..., Any]:
        """A ``compute`` for a spec known only from a run's manifest: calling it raises one line."""
        kind = self.kind

        def compute(*args: Any, **kwargs: Any) -> Any:
            raise ConfigError(f"{kind} {name!r} is known only from a run's manifest (its plug-in is not installed "
                              "here): it can be analysed but not computed")

        return compute

    def adopt(self, recorded: Iterable[tuple[str | None, Mapping[str, Any] | None]],
              build: Callable[[str, Mapping[str, Any], Callable[..., Any]], S]) -> list[str]:
        """Register the specs recorded in a run's manifest whose name is not known here.

        ``recorded`` gives (name, recorded spec fields) pairs; ``build(name, fields, compute)`` makes
        the spec, with ``compute`` from :meth:`not_installed`. Returns the names adopted.
        """
        adopted = []
        for name, fields in recorded:
            if not name or not fields or name in self.available():
                continue
            self.register(build(name, fields, self.not_installed(name)))
            adopted.append(name)
        return adopted
