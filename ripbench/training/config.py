"""What determines a Simple Shapes DDPM training run: :class:`ShapesTrainingConfig` (torch-free).

The dataclass is the one home of the training defaults (the bundled weights were made with them)
and of which fields ``ripbench train shapes`` exposes: a field whose metadata names a ``flag``
is a command-line option, with that help line; :func:`cli_options` lists them for the CLI,
which builds its options from it, and :meth:`ShapesTrainingConfig.command` writes the flags back.
Importing this module imports no torch, so ``ripbench --help`` stays fast.

>>> [o.flag for o in cli_options()][:3]
['--size', '--steps', '--batch-size']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["LABELLED_SIZES", "SIZES", "CliOption", "ShapesTrainingConfig", "cli_options"]

#: The image sides a model can be trained at: the authors' 64 px images, or their 2x/4x block averages.
SIZES: tuple[int, ...] = (64, 32, 16)
#: The sizes the Simple Shapes labeller reads (:func:`ripbench.datasets.shapes.label_shapes`): the ones
#: ``ripbench train shapes`` offers, since it labels samples of the trained model afterwards.
LABELLED_SIZES: tuple[int, ...] = (64, 32)


def _flag(flag: str, help: str = "", choices: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Field metadata that makes a field an option of ``ripbench train shapes``."""
    return {"flag": flag, "help": help, "choices": choices}


@dataclass
class ShapesTrainingConfig:
    """Everything that determines a Simple Shapes DDPM training run (the defaults made the bundled weights).

    Attributes:
        size: image side in pixels: 64 (the authors' images), or 32/16 (2x/4x block averages).
        num_images: size of the training set (the paper uses 5,000).
        steps: optimiser steps.
        batch_size: images per step.
        learning_rate: AdamW peak learning rate: linear warm-up over ``warmup_steps``, then
            cosine decay to 10 % at step ``steps``; a function of the step count only.
        warmup_steps: warm-up length, at most a tenth of ``steps`` (:attr:`warmup`: so that a short
            run keeps a warm-up it can finish).
        ema_decay: maximum decay of the weight average that is saved.
        num_train_timesteps: T of the DDPM.
        beta_schedule: diffusers beta schedule name.
        block_out_channels: UNet widths per resolution level.
        layers_per_block: ResNet blocks per level.
        norm_num_groups: GroupNorm groups.
        seed: seeds the data set, the initial weights and the noise.
        num_threads: torch CPU threads (``None`` keeps torch's setting). Part of the recipe: the
            same seed gives the same weights only with the same torch build and thread count.
        time_limit_s: stop early (and save) after this many seconds; ``None`` = no limit. A run
            that stops early is marked ``stopped_early`` and is not reproducible (where it stops
            depends on the machine); the learning-rate schedule never looks at the clock.
        save_every: also save a checkpoint every this many steps (0 = only at the end).

    The fields with a ``flag`` in their metadata are the options of ``ripbench train shapes``.
    """

    size: int = field(default=64, metadata=_flag("--size", "Image side: 64 = the authors' images, 32 = their 2x "
                                                           "block averages (the sizes the labeller reads).",
                                                 choices=LABELLED_SIZES))
    num_images: int = 5000
    steps: int = field(default=3000, metadata=_flag("--steps", "Optimiser steps."))
    batch_size: int = field(default=32, metadata=_flag("--batch-size"))
    learning_rate: float = field(default=2e-3, metadata=_flag("--lr", "Peak learning rate."))
    warmup_steps: int = field(default=100, metadata=_flag("--warmup", "Learning-rate warm-up steps (at most a tenth "
                                                                     "of --steps)."))
    ema_decay: float = 0.999
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    block_out_channels: tuple[int, ...] = field(default=(8, 16, 32, 64),
                                                metadata=_flag("--channels", "UNet widths per level."))
    layers_per_block: int = 1
    norm_num_groups: int = 4
    seed: int = field(default=0, metadata=_flag("--seed"))
    num_threads: int | None = field(default=1, metadata=_flag(
        "--threads", "torch CPU threads (part of the recipe: other counts give slightly different weights)."))
    time_limit_s: float | None = field(default=None, metadata=_flag(
        "--time-limit", "Stop after this many seconds (the run is then marked stopped_early, not reproducible)."))
    save_every: int = 500

    def validate(self) -> None:
        """Raise :class:`~ripbench.errors.ConfigError` for out-of-range values."""
        if self.size not in SIZES or self.size % 2 ** (len(self.block_out_channels) - 1):
            raise ConfigError(
                f"size {self.size} must be 64, 32 or 16 and divisible by {2 ** (len(self.block_out_channels) - 1)}"
            )
        for name in ("num_images", "steps", "batch_size", "num_train_timesteps", "layers_per_block"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ConfigError(
                f"every block_out_channels value {self.block_out_channels} must be divisible by "
                f"norm_num_groups={self.norm_num_groups}"
            )

    @property
    def warmup(self) -> int:
        """The warm-up used: ``warmup_steps``, at most a tenth of ``steps``.

        >>> ShapesTrainingConfig().warmup, ShapesTrainingConfig(steps=40).warmup
        (100, 4)
        """
        return min(self.warmup_steps, self.steps // 10)

    def learning_rate_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based): warm-up, then cosine to 10 % at the last step.

        Example:
            >>> cfg = ShapesTrainingConfig(steps=1000, warmup_steps=100, learning_rate=1e-3)
            >>> [round(cfg.learning_rate_at(s) / 1e-3, 3) for s in (0, 99, 100, 550, 999)]
            [0.01, 1.0, 1.0, 0.549, 0.1]
        """
        warmup = self.warmup
        if step < warmup:
            return self.learning_rate * (step + 1) / warmup
        done = min(1.0, (step - warmup) / max(1, self.steps - 1 - warmup))
        return self.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))

    def command(self, out_dir: str | Path) -> str:
        """The command that reruns this configuration: a ``ripbench train shapes`` line when every
        changed field has a command-line flag, else the :func:`~ripbench.training.shapes.train_shapes` call.

        Example:
            >>> ShapesTrainingConfig(steps=10).command("w")
            'ripbench train shapes --out w --steps 10'
            >>> ShapesTrainingConfig(steps=10, num_images=50).command("w")
            "train_shapes('w', num_images=50, steps=10)"
        """
        defaults = ShapesTrainingConfig()
        flags = {o.name: o.flag for o in cli_options()}
        changed = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(defaults, f.name)}
        if set(changed) <= set(flags):
            parts = ["ripbench", "train", "shapes", "--out", str(out_dir)]
            for name, value in changed.items():
                parts += [flags[name], ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
            return " ".join(parts)
        return f"train_shapes({str(out_dir)!r}, " + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"


@dataclass(frozen=True)
class CliOption:
    """One ``ripbench train shapes`` option, made from a :class:`ShapesTrainingConfig` field.

    ``kind`` is the type the option reads (``int``, ``float``, or ``str`` for a comma-separated
    tuple such as ``--channels 8,16,32,64``); ``choices`` the allowed values (``--size``), as text;
    :meth:`value` turns what the option read into the field's value.
    """

    name: str
    flag: str
    help: str
    default: Any
    kind: type
    choices: tuple[str, ...] | None = None
    #: the field is a tuple of integers, written comma-separated
    sequence: bool = False

    def value(self, given: Any) -> Any:
        """The field's value from the option's (``None`` stays ``None``)."""
        if given is None:
            return None
        if self.sequence:
            return tuple(int(c) for c in str(given).split(","))
        return self.kind(given) if self.choices is None else int(given)


def cli_options() -> list[CliOption]:
    """The options of ``ripbench train shapes`` from the config's fields, in field order."""
    out = []
    for f in fields(ShapesTrainingConfig):
        if "flag" not in f.metadata:
            continue
        default, choices = f.default, f.metadata["choices"]
        if isinstance(default, tuple):
            out.append(CliOption(f.name, f.metadata["flag"], f.metadata["help"], ",".join(map(str, default)), str,
                                 sequence=True))
        elif choices is not None:
            out.append(CliOption(f.name, f.metadata["flag"], f.metadata["help"], default, str,
                                 tuple(str(c) for c in choices)))
        else:
            annotation = str(f.type)
            kind = float if "float" in annotation else int
            out.append(CliOption(f.name, f.metadata["flag"], f.metadata["help"], default, kind))
    return out
