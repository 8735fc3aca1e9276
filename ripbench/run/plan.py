"""The plan of a run: a config expanded into trajectories, with every input checked up front.

A trajectory is one image under one mask policy and one seed, run through one model. The
plan loads and checks the images, builds and checks the mask policies for the image size,
checks that every metric accepts that size, and gives each trajectory its id and its
random key (see :mod:`ripbench.run.keys`). Nothing is written and no model is loaded, so a
bad input stops the run before anything exists on disk.

Example
-------
>>> from ripbench.config import validate_config
>>> cfg = validate_config({"size": 32, "iterations": 2, "inputs": {"source": "shapes", "count": 2},
...                        "masks": [{"policy": "grid", "size": 8}], "metrics": {"names": ["mse"]}})
>>> [(m.display_name, [t.id for t in ts]) for m, ts in plan(cfg)]
[('biharmonic', ['biharmonic__shapes32-s0-00000__grid-8__s0', 'biharmonic__shapes32-s0-00001__grid-8__s0'])]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..config import ExperimentConfig, InputsConfig, ModelConfig
from ..errors import ConfigError
from ..inputs import InputImage, load_folder, load_list, load_sample, load_shapes
from ..masks import MaskPolicy, build_mask_policy
from ..metrics import get_metric_spec
from .keys import noise_seed, trajectory_key

__all__ = ["KEY_COLUMNS", "Trajectory", "load_inputs", "plan"]

#: Columns that identify a trajectory (the key of a row together with ``iteration``).
KEY_COLUMNS = ["model", "image_id", "category", "mask_policy", "mask_label", "seed"]


@dataclass(eq=False)
class Trajectory:
    """One image under one mask policy and seed, run through one model."""

    model_label: str
    image: InputImage
    mask_spec: dict[str, Any]
    seed: int
    policy: MaskPolicy = field(repr=False)

    @property
    def id(self) -> str:
        """File-name-safe unique id: ``<model>__<image>__<mask label>__s<seed>``."""
        raw = f"{self.model_label}__{self.image.id}__{self.policy.label}__s{self.seed}"
        return re.sub(r"[^A-Za-z0-9_.=-]+", "-", raw)

    @property
    def key(self) -> int:
        """The random key: the same for every model (paired), different for every image / policy / seed."""
        return trajectory_key(self.seed, self.image.id, self.policy.label)

    def noise_seed(self, iteration: int) -> int:
        """The model's noise seed at ``iteration``."""
        return noise_seed(self.key, iteration)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.image.pixels.shape[-2:])  # type: ignore[return-value]


def load_inputs(spec: InputsConfig, size: int, fit: str, seed: int = 0) -> list[InputImage]:
    """The images of an ``inputs`` config section, fitted to ``size``."""
    if spec.source == "samples":
        from ..inputs import SAMPLE_IMAGES

        images = [load_sample(n, size, fit) for n in (spec.names or list(SAMPLE_IMAGES))]  # type: ignore[arg-type]
    elif spec.source == "folder":
        images = load_folder(spec.path, size, fit)  # type: ignore[arg-type]
    elif spec.source == "list":
        images = load_list(spec.path, size, fit)  # type: ignore[arg-type]
    elif spec.source == "hf":
        from ..hf_inputs import load_hf

        images = load_hf(spec, size, fit)  # type: ignore[arg-type]
    else:
        images = load_shapes(spec.count, size, seed)
    return images[: spec.limit] if spec.limit else images


def check_metric_size(config: ExperimentConfig, size: int) -> None:
    """Refuse an image size a chosen metric cannot take (one line naming the metric and the minimum)."""
    for name in config.metrics.names:
        spec = get_metric_spec(name)
        options = config.metric_options(name)
        minimum = spec.minimum_size(**options)
        if size < minimum:
            detail = f"-{options['net']}" if "net" in options else ""
            raise ConfigError(f"images of {size} px are too small for {spec.label}{detail} (needs at least "
                              f"{minimum} px); raise size or drop {name} from metrics.names")


def plan(config: ExperimentConfig) -> list[tuple[ModelConfig, list[Trajectory]]]:
    """Expand a config into trajectories, grouped by model (loads and checks inputs, masks, sizes)."""
    cache: dict[str, list[InputImage]] = {}
    out = []
    for mcfg in config.models:
        inputs = mcfg.inputs or config.inputs
        size = mcfg.size or config.size
        check_metric_size(config, size)
        key = json.dumps([inputs.model_dump(mode="json"), size, config.fit])
        if key not in cache:
            cache[key] = load_inputs(inputs, size, config.fit)
        policies = []
        for spec in mcfg.masks or config.masks:
            policy = build_mask_policy(spec)
            policy.validate(size, size)
            policies.append((spec, policy))
        trajs = [
            Trajectory(mcfg.display_name, img, spec, seed, policy)
            for img in cache[key]
            for spec, policy in policies
            for seed in config.seeds
        ]
        ids = [t.id for t in trajs]
        if len(set(ids)) != len(ids):
            dupe = next(i for i in ids if ids.count(i) > 1)
            raise ConfigError(f"two trajectories would share the id {dupe!r}: give each mask policy of model "
                              f"{mcfg.display_name!r} different settings (labels: {[p.label for _, p in policies]})")
        out.append((mcfg, trajs))
    # model labels become file-name-safe ids: two labels may collapse to one ("bh+1", "bh-1")
    owner: dict[str, str] = {}
    for mcfg, trajs in out:
        for t in trajs:
            if owner.setdefault(t.id, mcfg.display_name) != mcfg.display_name:
                raise ConfigError(f"models {owner[t.id]!r} and {mcfg.display_name!r} would share trajectory ids "
                                  f"(e.g. {t.id!r}): their labels differ only in characters that ids drop; "
                                  "give them labels made of letters, digits, '_', '.', '=' and '-'")
    return out
