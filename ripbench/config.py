"""The experiment schema: validated configs, presets and command-line overrides.

A config is a YAML (or JSON) file; every field can be overridden from the CLI with
``--set dotted.field=value``. Unknown or malformed fields raise :class:`ConfigError`
naming the field and the allowed values, before any work starts.

One responsibility, though long: the schema of an experiment (one pydantic model per section),
its fingerprint and the differences between two configs. What a field *does* lives with the code
that reads it (masks, inputs, models, metrics, the run loop).

Example
-------
>>> from ripbench.config import load_preset, apply_overrides
>>> cfg = apply_overrides(load_preset("quick"), ["iterations=3"])
>>> cfg.iterations
3
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from .errors import ConfigError, describe_validation_error
from .inputs import Fit
from .metrics.catalog import LpipsNet
from .presets import DEFAULT_PRESET, preset_names, preset_text

#: The built-in presets (the files ``ripbench/presets/*.yaml``), the default (``quick``) first.
PRESETS: tuple[str, ...] = preset_names()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class InputsConfig(_Strict):
    """Which images to use.

    ``source``: ``samples`` (built-in set; ``names`` picks some, default all), ``folder``
    (``path``), ``list`` (``path`` to a list file), ``shapes`` (``count`` images) or ``hf``
    (a Hugging Face dataset, :mod:`ripbench.hf_inputs`: ``dataset`` a Hub id or a local
    ``save_to_disk`` / Parquet / image folder, ``split`` (default ``train``), ``column`` (default
    ``image``), ``category`` (a column naming each image's category), ``sample`` rows drawn by
    ``seed`` (default 0; default: every row), ``revision``, ``streaming`` (read rows in order,
    nothing else decoded; ``rows`` gives the split's row count when the dataset does not say).
    ``limit`` keeps only the first n images.
    """

    source: Literal["samples", "folder", "list", "shapes", "hf"] = "samples"
    names: list[str] | None = None
    path: Path | None = None
    count: int = Field(default=8, ge=1)
    limit: int | None = Field(default=None, ge=1)
    dataset: str | None = None
    split: str | None = None
    column: str | None = None
    category: str | None = None
    sample: int | None = Field(default=None, ge=1)
    seed: NonNegativeInt | None = None
    revision: str | None = None
    streaming: bool | None = None
    rows: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> InputsConfig:
        if self.source in ("folder", "list") and self.path is None:
            raise ValueError(f"inputs.path is required when inputs.source is {self.source!r}")
        given = [f for f in HF_INPUT_FIELDS if getattr(self, f) is not None]
        if self.source == "hf" and self.dataset is None:
            raise ValueError("inputs.dataset (a Hub id such as huggan/wikiart, or a local dataset folder) is required "
                             "when inputs.source is 'hf'")
        if self.source != "hf" and given:
            raise ValueError(f"inputs.{given[0]} applies to inputs.source 'hf' only (source is {self.source!r})")
        if self.source == "samples" and self.names:
            from .inputs import SAMPLE_IMAGES

            unknown = [n for n in self.names if n not in SAMPLE_IMAGES]
            if unknown:
                raise ValueError(f"unknown sample image(s) {unknown}; available: {', '.join(SAMPLE_IMAGES)}")
        return self


#: The fields of ``inputs`` for ``source: hf``; ``None`` (unset) is left out of the fingerprint, so configs
#: written before they existed keep their fingerprints (and their run names and resumes).
HF_INPUT_FIELDS = ("dataset", "split", "column", "category", "sample", "seed", "revision", "streaming", "rows")


def _check_mask_spec(spec: Any, handler: ValidatorFunctionWrapHandler) -> dict[str, Any]:
    """Validate a mask spec with its policy's pydantic model (:func:`ripbench.masks.check_mask_spec`);
    errors name the field (``masks.0.size``). The spec is kept as written (the fingerprint hashes it)."""
    from .masks import check_mask_spec

    check_mask_spec(spec)
    return handler(spec)


#: A mask spec such as ``{"policy": "grid", "size": 64}``, checked by the discriminated union of policy models.
MaskSpecDict = Annotated[dict[str, Any], WrapValidator(_check_mask_spec)]


class ModelConfig(_Strict):
    """One model of the experiment.

    ``name`` is a registered model name (see ``ripbench models``), a
    ``package.module:factory`` reference, a Hugging Face id (``org/name``) or a local
    diffusers directory; ``options`` go to the model's factory. ``label`` names the
    model in tables (default: derived from name). ``inputs``, ``masks`` and ``size``
    override the experiment's for this model only (e.g. shapes images for the shapes
    diffusion model beside photos for a classical baseline).
    """

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    inputs: InputsConfig | None = None
    masks: list[MaskSpecDict] | None = None
    size: int | None = Field(default=None, ge=8)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"name": data}
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            data = dict(data)
            name = data["name"]
            from .models import available_inpainters
            from .models.registry import looks_like_diffusers_model

            if name not in available_inpainters() and looks_like_diffusers_model(name):
                data["options"] = {"model": name, **dict(data.get("options") or {})}
                data["name"] = "diffusers"
                data.setdefault("label", name.rstrip("/").split("/")[-1])
        return data

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from .models import available_inpainters

        if name in available_inpainters() or ":" in name:
            return name
        if name.endswith(".py"):
            raise ValueError(f"model {name!r} is a Python file: name the Inpainter class in it, {name + ':ClassName'!r}")
        raise ValueError(
            f"unknown model {name!r}; known models: {', '.join(available_inpainters())}; "
            "or give 'package.module:factory', a Hugging Face id 'org/name' or a local diffusers folder"
        )

    @property
    def display_name(self) -> str:
        """The label used in result tables."""
        if self.label:
            return self.label
        if ":" in self.name:  # a plug-in by reference: the name it declares, else its attribute name
            from .models.registry import declared_name

            return declared_name(self.name) or self.name.rpartition(":")[2]
        return self.name


class MetricsConfig(_Strict):
    """Which metrics to compute each iteration and how to get LPIPS weights.

    ``lpips_weights``: a features-only backbone state_dict file (or a folder holding
    ``alexnet_features.pth`` / ``squeezenet1_1_features.pth`` / ``vgg16_features.pth``);
    also settable with ``--lpips-weights`` or ``RIPBENCH_LPIPS_WEIGHTS``. Default: the
    torchvision download cache. ``lpips_required``: when false and no weights can be
    had, LPIPS is dropped with a warning instead of failing the run (quick preset only).
    ``options``: per-metric options, e.g. ``{my-metric: {scale: 2}}`` (see ``ripbench metrics -v``).
    """

    names: list[str] = Field(default_factory=lambda: ["lpips", "ssim", "psnr", "mse"])
    lpips_net: LpipsNet = "alex"
    lpips_weights: Path | None = None
    lpips_required: bool = True
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("names")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        from .metrics import validate_metric_names

        return list(validate_metric_names(names))

    @model_validator(mode="after")
    def _options(self) -> MetricsConfig:
        from .metrics import get_metric_spec

        for name, opts in self.options.items():
            if name not in self.names:
                raise ValueError(f"options given for metric {name!r}, which is not in metrics.names")
            get_metric_spec(name).check_options(opts)
        return self


def _builtin_detectors() -> list[str]:
    from .detectors import BUILTIN_DETECTORS

    return list(BUILTIN_DETECTORS)


class HallucinationConfig(_Strict):
    """Trajectory-variance hallucination score for models that return x0 trajectories.

    ``band``: the band of noise levels whose denoising steps are scored (see
    :func:`ripbench.hallucination.parse_band`): a name, ``default`` (:data:`~ripbench.hallucination.DEFAULT_BAND`)
    or ``paper`` (the authors' last 10 of 1000 steps, :func:`~ripbench.hallucination.paper_band`),
    a number ``hi`` for ``[0, hi]`` or a pair ``[lo, hi]``; stored as the pair. ``unit``: ``sigma``
    (default; ``sigma/sqrt(alpha_bar)`` on each model's own schedule, ``s/(1-s)`` for flow
    matching) or ``t/T`` (position on the training schedule, the unit before bands had units).
    **A bare number or pair is read in ``unit``**, so an old config's ``window: [0, 0.2]`` (which
    meant ``t/T``) needs ``unit: t/T`` to mean what it meant; with it, old runs are reproduced
    exactly (``band: default`` in ``t/T`` is the old default ``[0, 0.2]``). ``window`` is accepted
    as the old spelling of ``band``. ``min_steps`` (>= 2, default 3): a row whose band holds fewer
    recorded steps gets no score (``halluc_status = "too-few-steps"``).

    ``detectors``: the detectors and content baselines whose columns (``det_<name>``) the run
    writes, by name or ``"module:attr"`` (see ``ripbench detectors -v``); default every built-in.
    ``enabled: false`` turns them all off.
    """

    enabled: bool = True
    unit: Literal["sigma", "t/T"] = "sigma"
    band: tuple[float, float] = (0.0, 0.0)
    min_steps: int = Field(default=3, ge=2)
    detectors: list[str] = Field(default_factory=lambda: _builtin_detectors())

    @field_validator("detectors")
    @classmethod
    def _detectors(cls, names: list[str]) -> list[str]:
        from .detectors import resolve_detectors

        try:
            resolve_detectors(names)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return list(names)

    @model_validator(mode="before")
    @classmethod
    def _old_window(cls, data: Any) -> Any:
        if isinstance(data, dict) and "window" in data:  # the old spelling (a dump never holds it)
            data = dict(data)
            data["band"] = data.pop("window")
        if isinstance(data, dict) and data.get("band") is None:
            data = {**data, "band": "default"}
        return data

    @field_validator("band", mode="before")
    @classmethod
    def _band(cls, value: Any, info: ValidationInfo) -> tuple[float, float]:
        from .noise_band import parse_band

        unit = info.data.get("unit", "sigma")
        try:
            return tuple(parse_band(value, unit))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @property
    def window(self) -> tuple[float, float]:
        """The band's ``(lo, hi)`` (old name of :attr:`band`)."""
        return self.band

    @property
    def noise_band(self) -> Any:
        """The band with its unit, a :class:`ripbench.hallucination.NoiseBand`."""
        from .noise_band import NoiseBand

        return NoiseBand(self.band[0], self.band[1], self.unit)


#: Device strings ``torch.device`` accepts that are checked without importing torch (others are asked of torch).
_COMMON_DEVICE = re.compile(r"(cpu|cuda|mps)(:(0|[1-9][0-9]{0,2}))?")


class ExperimentConfig(_Strict):
    """A complete, validated RIP experiment. See ``ripbench/presets/*.yaml`` for examples."""

    name: str = "run"
    description: str = ""
    iterations: int = Field(default=20, ge=1)
    size: int = Field(default=512, ge=8)
    fit: Fit = "center-crop"
    seeds: list[NonNegativeInt] = Field(default_factory=lambda: [0])
    inputs: InputsConfig = Field(default_factory=InputsConfig)
    masks: list[MaskSpecDict] = Field(default_factory=lambda: [{"policy": "grid", "size": 64}])
    models: list[ModelConfig] = Field(default_factory=lambda: [ModelConfig(name="biharmonic")])
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    hallucination: HallucinationConfig = Field(default_factory=HallucinationConfig)
    snapshots: list[int] | None = None
    save_every: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=8, ge=1)
    device: str = "auto"
    output_dir: Path = Path("results")
    #: what the next iteration receives: float, uint8, png or jpeg:<quality> (see :mod:`ripbench.handoff`)
    handoff: str = "float"

    @field_validator("handoff", mode="before")
    @classmethod
    def _handoff(cls, value: Any) -> str:
        from .handoff import Handoff

        if isinstance(value, dict) and len(value) == 1:  # YAML read `jpeg:` / `jpeg: 90` as a mapping
            ((key, quality),) = value.items()
            value = f"{key}:{'' if quality is None else quality}"
        try:
            return str(Handoff.parse(str(value)))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.+=@,-]{0,127}", name) or name.strip() != name:
            raise ValueError(f"run name {name!r} must be a plain folder name (letters, digits, ' _.+=@,-'; "
                             "no '/', '..' or leading '.'), at most 128 characters")
        return name

    @field_validator("masks")
    @classmethod
    def _masks(cls, masks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not masks:
            raise ValueError("at least one mask policy is needed")
        return masks

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if not seeds:
            raise ValueError("at least one seed is needed")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return seeds

    @field_validator("models")
    @classmethod
    def _models(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        if not models:
            raise ValueError("at least one model is needed")
        labels = [m.display_name for m in models]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"model labels must be distinct, {dupes} repeat; set 'label' on each")
        return models

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if device == "auto" or _COMMON_DEVICE.fullmatch(device):
            return device  # what torch.device accepts, known without importing torch
        import torch

        try:
            torch.device(device)
        except (RuntimeError, ValueError):
            raise ValueError(f"invalid device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
        return device

    @field_validator("snapshots")
    @classmethod
    def _snapshots(cls, snaps: list[int] | None) -> list[int] | None:
        if snaps is not None and any(s < 0 for s in snaps):
            raise ValueError("snapshot iterations must be >= 0")
        return snaps

    def metric_options(self, name: str) -> dict[str, Any]:
        """The options of metric ``name``: ``metrics.options[name]``, plus LPIPS's net and weights fields."""
        options = dict(self.metrics.options.get(name, {}))
        if name == "lpips":
            options.setdefault("net", self.metrics.lpips_net)
            if self.metrics.lpips_weights is not None:
                options.setdefault("weights", str(self.metrics.lpips_weights))
        return options

    def snapshot_iterations(self) -> list[int]:
        """Iterations saved as PNG: the configured list (default 0, 1, N/4, N/2, 3N/4), always with 0 and N,
        and every ``save_every``-th iteration when set (``save_every: 1`` saves the whole chain)."""
        n = self.iterations
        snaps = self.snapshots if self.snapshots is not None else [1, n // 4, n // 2, 3 * n // 4]
        dense = set(range(0, n + 1, self.save_every)) if self.save_every else set()
        return sorted({s for s in snaps if 0 <= s <= n} | dense | {0, n})

    def fingerprint(self) -> str:
        """Hash of every field that changes results.

        Left out: name, description, output_dir, batch_size, device, snapshots, save_every, where the
        LPIPS weights file lies (a resume checks the weights' sha256 instead) and unset ``hf`` input fields.
        The hand-off counts when it is not ``float`` (the only hand-off before it was a setting, so runs
        made then keep their fingerprint).
        """
        return hashlib.sha256(json.dumps(self.result_fields(), sort_keys=True).encode()).hexdigest()[:16]

    def result_fields(self) -> dict[str, Any]:
        """The fields :meth:`fingerprint` hashes (JSON values): every field that changes results."""
        exclude: dict[str, Any] = {key: True for key in PLUMBING_FIELDS}
        if self.handoff == "float":
            exclude["handoff"] = True
        exclude["metrics"] = {"lpips_weights": True}
        data = self.model_dump(mode="json", exclude=exclude)
        for inputs in [data.get("inputs"), *(m.get("inputs") for m in data.get("models", []))]:
            for key in HF_INPUT_FIELDS:
                if isinstance(inputs, dict) and inputs.get(key) is None:
                    inputs.pop(key, None)
        return data


#: Config fields that do not change results (left out of :meth:`ExperimentConfig.fingerprint`).
PLUMBING_FIELDS = ("name", "description", "output_dir", "batch_size", "device", "snapshots", "save_every")


def flatten_fields(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted field names: ``{"metrics": {"names": [...]}}`` -> ``{"metrics.names": [...]}``.

    >>> flatten_fields({"iterations": 30, "metrics": {"names": ["ssim"]}})
    {'iterations': 30, 'metrics.names': ['ssim']}
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten_fields(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def config_changes(before: dict[str, Any], after: ExperimentConfig, limit: int = 8) -> list[str]:
    """The result-changing fields in which ``after`` differs from a recorded config, as
    ``"field: old -> new"`` (at most ``limit``, then how many more).

    >>> old = ExperimentConfig(iterations=30).model_dump(mode="json")
    >>> config_changes(old, ExperimentConfig(iterations=31, batch_size=3))
    ['iterations: 30 -> 31']
    >>> config_changes(old, ExperimentConfig(iterations=30, handoff="uint8"))
    ['handoff: "float" -> "uint8"']
    """
    new = flatten_fields(after.result_fields())
    shown_new = flatten_fields(after.model_dump(mode="json"))  # values as set, defaults included
    try:  # the recorded config read as today's, so fields that count only when set compare alike
        as_today = ExperimentConfig.model_validate(before)
        recorded, shown_old = as_today.result_fields(), flatten_fields(as_today.model_dump(mode="json"))
    except (ValidationError, ValueError, TypeError):
        recorded, shown_old = before, flatten_fields(before)
    old = {k: v for k, v in flatten_fields(recorded).items()
           if k.split(".")[0] not in PLUMBING_FIELDS and k != "metrics.lpips_weights"}

    def text(value: Any) -> str:
        shown = json.dumps(value, default=str)
        return shown if len(shown) <= 80 else shown[:77] + "..."

    def value(k: str, counted: dict[str, Any], shown: dict[str, Any]) -> str:
        # a field left out of the fingerprint at its default (handoff: float) shows that default
        return text(counted[k]) if k in counted else text(shown[k]) if k in shown else "(not set)"

    changed = [f"{k}: {value(k, old, shown_old)} -> {value(k, new, shown_new)}"
               for k in sorted(set(old) | set(new), key=lambda k: (k not in new, list(new).index(k) if k in new else 0))
               if json.dumps(old.get(k), sort_keys=True, default=str) != json.dumps(new.get(k), sort_keys=True, default=str)]
    return changed[:limit] + ([f"and {len(changed) - limit} more"] if len(changed) > limit else [])


def _format_validation_error(exc: ValidationError, source: str) -> str:
    return f"invalid config{source}: {describe_validation_error(exc)}"


def validate_config(data: dict[str, Any], source: str = "") -> ExperimentConfig:
    """Validate a plain dict into an :class:`ExperimentConfig` or raise :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config{source}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    except ConfigError as exc:
        raise ConfigError(f"invalid config{source}: {exc}") from None


#: Most values a config may expand to. YAML aliases can make a short text expand exponentially
#: ("billion laughs"); real configs hold a few hundred values.
MAX_CONFIG_VALUES = 100_000


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """Values ``node`` holds once every alias is expanded (shared sub-trees counted each time)."""
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, dict):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.items())
    elif isinstance(node, (list, tuple)):
        size = 1 + sum(_expanded_size(v, memo) for v in node)
    else:
        size = 1
    memo[id(node)] = size
    return size


def read_yaml(text: str, where: str) -> Any:
    """Parse YAML safely: no Python objects, and no alias expansion beyond :data:`MAX_CONFIG_VALUES`.

    Any YAML value: a config is a mapping (the caller checks), an override or option value may be a scalar.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse config {where}: {exc}".replace("\n", " ")) from None
    except RecursionError:
        raise ConfigError(f"cannot parse config {where}: nested too deeply") from None
    try:
        size = _expanded_size(data, {})
    except RecursionError:
        raise ConfigError(f"config {where} is recursive (a YAML alias refers to itself)") from None
    if size > MAX_CONFIG_VALUES:
        raise ConfigError(f"config {where} expands to more than {MAX_CONFIG_VALUES:,} values (YAML aliases / "
                          "anchors used as a 'billion laughs' bomb?); write the values out")
    return data


def preset_data(name: str) -> dict[str, Any]:
    """The raw dict of a built-in preset."""
    text = preset_text(name)
    if text is None:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(preset_names())}")
    return read_yaml(text, f"preset {name}") or {}


def preset_descriptions() -> dict[str, str]:
    """Each built-in preset's one-line ``description:``, by name (the default first)."""
    return {name: str(preset_data(name).get("description", "")) for name in preset_names()}


def load_preset(name: str) -> ExperimentConfig:
    """Load a built-in preset (``quick``, ``rip-paper``)."""
    return validate_config(preset_data(name), f" (preset {name})")


def load_config(path: str | Path | None = None, preset: str | None = None) -> ExperimentConfig:
    """Load a YAML/JSON config file, optionally on top of a preset's values.

    With neither argument this is the ``quick`` preset (:data:`~ripbench.presets.DEFAULT_PRESET`).
    """
    base = preset_data(preset or DEFAULT_PRESET) if (preset or path is None) else {}
    if path is None:
        return validate_config(base, f" (preset {preset or DEFAULT_PRESET})")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data = read_yaml(path.read_text(), str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {path}: expected a mapping of fields")
    return validate_config(_deep_merge(base, data), f" {path}")


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        nxt = keys[i + 1]
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {dotted!r}: {'.'.join(keys[:i])} is a value, not a section")
        if isinstance(node, list):
            try:
                node = node[int(key)]
            except (ValueError, IndexError):
                raise ConfigError(f"override {dotted!r}: no list item {key!r}") from None
            continue
        if key not in node or node[key] is None:
            node[key] = [] if nxt.isdigit() else {}
        node = node[key]
    last = keys[-1]
    if not isinstance(node, (dict, list)):
        raise ConfigError(f"override {dotted!r}: {'.'.join(keys[:-1])} is a value, not a section")
    if isinstance(node, list):
        try:
            node[int(last)] = value
        except (ValueError, IndexError):
            raise ConfigError(f"override {dotted!r}: no list item {last!r}") from None
    else:
        node[last] = value


def apply_overrides(config: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Apply ``field.sub=value`` overrides (values parsed as YAML) and re-validate.

    >>> from ripbench.config import ExperimentConfig
    >>> apply_overrides(ExperimentConfig(), ["metrics.lpips_net=vgg"]).metrics.lpips_net
    'vgg'
    """
    data = config.model_dump(mode="json")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form field=value")
        try:
            value = read_yaml(text, f"override {key.strip()!r}") if text.strip() else None
        except ConfigError as exc:
            if "expands to more than" in str(exc) or "recursive" in str(exc):
                raise
            value = text
        _set_dotted(data, key.strip(), value)
    return validate_config(data, " (after overrides)")
