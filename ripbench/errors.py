"""Exceptions that ripbench raises for problems the user can fix.

Every error a user can cause (bad config, unreadable image, unknown model, missing
weights, ...) is a :class:`RipbenchError`. The CLI prints such errors as a single line
and exits with status 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``, also on Python 3.10 (no ``add_note`` there; the note is kept in ``__notes__``).

    >>> err = ValueError("x"); add_note(err, "(while reading y)"); err.__notes__
    ['(while reading y)']
    """
    method = getattr(exc, "add_note", None)
    if method is not None:
        method(note)
    else:  # pragma: no cover - Python 3.10
        setattr(exc, "__notes__", [*getattr(exc, "__notes__", []), note])  # noqa: B010


def describe_validation_error(exc: ValidationError) -> str:
    """A pydantic error as one line, ``field.sub: message; ...`` (the words of every config error).

    Used for the experiment config and for mask specs, so both read the same way.
    """
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "literal_error":
            msg = msg.replace("Input should be", "must be")
        parts.append(f"{loc or '(top level)'}: {msg}")
    return "; ".join(parts)


class RipbenchError(Exception):
    """Base class of all user-facing ripbench errors."""


class ConfigError(RipbenchError, ValueError):
    """An experiment configuration field is missing, malformed or out of range."""


class InputError(RipbenchError, ValueError):
    """An input image or mask cannot be read or does not fit the experiment."""


class ModelNotFoundError(RipbenchError, LookupError):
    """A model name or ``module:factory`` reference cannot be resolved."""


class WeightsError(RipbenchError, RuntimeError):
    """Pretrained weights (LPIPS backbone, model checkpoint) cannot be obtained."""


class ResultsError(RipbenchError, RuntimeError):
    """A results folder is missing, corrupt or incompatible with the requested run."""


class ModelContractError(RipbenchError, RuntimeError):
    """A model broke the plug-in contract (see :mod:`ripbench.models.base`): wrong output shape,
    undeclared x0 trajectory, values out of range, inputs edited in place, ...

    ``rules`` names the broken rules (see :mod:`ripbench.testing`).
    """

    def __init__(self, message: str, rules: list[str] | None = None) -> None:
        super().__init__(message)
        self.rules = list(rules or [])


class LaunchError(RipbenchError, RuntimeError):
    """Another process of a multi-process launch was lost (its node died, it was killed, or it fell silent)."""
