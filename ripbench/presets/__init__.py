"""The built-in presets: every ``*.yaml`` file in this folder is one, named by its file name.

Adding a preset is adding a file here (with ``name:`` equal to the file name and a one-line
``description:``); the CLI's help, :data:`ripbench.config.PRESETS` and ``--preset`` find it.
This module only lists and reads the files (no YAML parsing, no pydantic), so the CLI can name
the presets in its help without importing the config schema.

>>> preset_names()
('quick', 'rip-paper', 'rip-paper-pasteback', 'rip-paper-vae')
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_PRESET", "preset_names", "preset_text"]

#: The preset ``ripbench run`` uses without a config file or ``--preset``.
DEFAULT_PRESET = "quick"
#: This folder (ripbench is installed as files; :mod:`importlib.resources` would cost ``--help`` 5 ms).
_FOLDER = Path(__file__).resolve().parent


def preset_names() -> tuple[str, ...]:
    """The built-in presets' names: the default first, then the others in alphabetical order."""
    found = {p.stem for p in _FOLDER.glob("*.yaml") if p.is_file()}
    return tuple(sorted(found, key=lambda name: (name != DEFAULT_PRESET, name)))


def preset_text(name: str) -> str | None:
    """The YAML text of the preset ``name``; ``None`` when there is no such preset."""
    if name not in preset_names():
        return None
    return (_FOLDER / f"{name}.yaml").read_text(encoding="utf-8")
