"""The ``ripbench`` command line: parse, build a config, call the library.

Run ``ripbench --help`` or ``ripbench COMMAND --help`` for the commands.

One responsibility, though long: the click commands and their options, turning what a user typed
into library calls and one-line errors. No computation lives here; each command calls the module
that does the work (``run``, ``report``, ``analysis``, ``export``, ``training``, ``repro``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import click

from .errors import InputError, LaunchError, RipbenchError
from .presets import DEFAULT_PRESET, preset_names

#: The built-in presets for the help texts, from the files in ``ripbench/presets/``.
_PRESET_LIST = ", ".join(f"{n} (default)" if n == DEFAULT_PRESET else n for n in preset_names())

class _LazyChoice(click.Choice):
    """A :class:`click.Choice` whose values are read when first needed (help, parsing), so that the
    module that holds them is not imported when the CLI starts (``ripbench --help`` stays fast)."""

    def __init__(self, load: Any, case_sensitive: bool = True) -> None:
        self._load = load
        self.case_sensitive = case_sensitive

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._load())

    @choices.setter
    def choices(self, values: Any) -> None:
        self._load = lambda: values


def _lpips_nets() -> tuple[str, ...]:
    from .metrics.catalog import LPIPS_NETS

    return LPIPS_NETS


def _trackers() -> tuple[str, ...]:
    from .trackers import TRACKERS

    return TRACKERS


def _export_formats() -> tuple[str, ...]:
    from .export import EXPORT_FORMATS

    return EXPORT_FORMATS


def parse_mask_option(text: str) -> dict[str, Any]:
    """``grid:64`` -> ``{"policy": "grid", "size": 64}``; ``box:area=0.1,aspect=2`` also works.

    A bare value sets the policy's ``main_param`` (declared on its class in :mod:`ripbench.masks`).

    >>> parse_mask_option("grid:64")
    {'policy': 'grid', 'size': 64}
    >>> parse_mask_option("strokes:width=thick")
    {'policy': 'strokes', 'width': 'thick'}
    """
    import yaml

    from .masks import MASK_POLICIES

    policy, _, rest = text.partition(":")
    spec: dict[str, Any] = {"policy": policy.strip()}
    if not rest:
        return spec
    for part in rest.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            cls = MASK_POLICIES.get(spec["policy"])
            key, value = (cls.main_param if cls is not None else "value"), part
        try:
            spec[key.strip()] = yaml.safe_load(value) if spec["policy"] != "folder" or key != "path" else value
        except yaml.YAMLError:
            spec[key.strip()] = value
    return spec


def _numbers(text: str, kind: type, option: str) -> tuple[Any, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``; a bad item is a usage error naming the option."""
    try:
        return tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of {kind.__name__}s",
                                 param_hint=option) from None


def _not_printed_already(record: logging.LogRecord) -> bool:
    """A root-handler filter: drop records of loggers that print through handlers of their own
    (``huggingface_hub``'s retries), so that no line is printed twice."""
    name = record.name
    while name:
        logger = logging.Logger.manager.loggerDict.get(name)
        if isinstance(logger, logging.Logger) and logger.handlers:
            return False
        name = name.rpartition(".")[0]
    return True


_PACKAGE_DIR = Path(__file__).resolve().parent


def warning_line(message: Warning | str, category: type[Warning], filename: str) -> str:
    """One warning for the terminal: ripbench's own as ``ripbench: warning: ...``; a third party's
    keeps its name and kind (``FutureWarning from diffusers: ...``), never relabelled as ripbench's.

    >>> warning_line("old", FutureWarning, "/x/site-packages/diffusers/utils/deprecation_utils.py")
    'FutureWarning from diffusers: old'
    """
    path = Path(filename or "")
    if path.is_absolute() and _PACKAGE_DIR in path.resolve().parents:
        return f"ripbench: warning: {message}"
    parts = path.parts
    marks = [i for i, part in enumerate(parts) if part in ("site-packages", "dist-packages")]
    origin = parts[marks[-1] + 1].removesuffix(".py") if marks and len(parts) > marks[-1] + 1 else (
        path.stem or "unknown code")
    return f"{category.__name__} from {origin}: {message}"


def _fail(exc: BaseException | str) -> None:
    click.echo(f"ripbench: error: {exc}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """Turns user-caused errors into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LaunchError as exc:  # another process of the launch was lost: not the user's input, status 1
            click.echo(f"ripbench: error: {exc}", err=True)
            sys.exit(1)
        except RipbenchError as exc:
            _fail(exc)
        except OSError as exc:  # an unwritable output folder, a full disk: the user's to fix, one line
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            _fail(f"{exc.strerror or exc}{where}")


@click.group(cls=_Group)
@click.version_option(package_name="ripbench")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.option("--threads", type=int, help="CPU threads for torch (default: torch's choice; 1 is often fastest "
                                          "for small models on a busy machine).")
def main(verbose: bool, threads: int | None) -> None:
    """ripbench: Recursive InPainting benchmark.

    Mask part of an image, let a model fill it, mask another part of the result, fill it
    again - and measure how far the image drifts from the original.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_not_printed_already)
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))


#: The options that build an experiment's config, shared by ``ripbench run`` and ``ripbench config``.
_CONFIG_OPTIONS = [
    click.argument("config_file", required=False, type=click.Path(path_type=Path)),
    click.option("--preset", help=f"Start from a built-in preset: {_PRESET_LIST}."),
    click.option("--model", "models", multiple=True,
                 help="Model name (see `ripbench models`), package.module:factory, Hugging Face id or local "
                      "diffusers folder. Repeatable; replaces the config's models."),
    click.option("--model-opt", "model_opts", multiple=True, metavar="KEY=VALUE",
                 help="Option for the models given with --model (e.g. steps=25). Repeatable."),
    click.option("--mask", "masks", multiple=True, metavar="POLICY:VALUE",
                 help="Mask policy, e.g. grid:64, box:0.1, center:0.25, strokes:thick, folder:masks/, columns:3. "
                      "Repeatable; replaces the config's masks."),
    click.option("--images", type=click.Path(path_type=Path),
                 help="A folder of images or a list file (one path[,category] per line)."),
    click.option("--iterations", "-n", type=int, help="Number of recursive inpainting iterations."),
    click.option("--size", type=int, help="Image size in pixels (square)."),
    click.option("--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
    click.option("--batch-size", type=int, help="Trajectories per model call."),
    click.option("--device", help="auto, cpu, cuda, cuda:1, ..."),
    click.option("--lpips-net", type=_LazyChoice(_lpips_nets), help="LPIPS backbone."),
    click.option("--lpips-weights", type=click.Path(path_type=Path),
                 help="Local LPIPS backbone weights (file or folder); also RIPBENCH_LPIPS_WEIGHTS."),
    click.option("--name", help="Run name (results go to OUTPUT_DIR/NAME)."),
    click.option("--output-dir", type=click.Path(path_type=Path), help="Parent folder of run folders."),
    click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
                 help="Override any config field, e.g. --set metrics.names=[ssim,psnr]. Repeatable."),
    click.option("--save-every", type=click.IntRange(min=1), metavar="K",
                 help="Also save every K-th iteration's image and mask (1: whole chains, for `ripbench export`)."),
]


def _config_options(command: Any) -> Any:
    """Add the config-building options (:data:`_CONFIG_OPTIONS`) to ``command``, in order."""
    for option in reversed(_CONFIG_OPTIONS):
        command = option(command)
    return command


def _checkpoint_swap(base: Any, model: str, opts: dict[str, Any]) -> dict[str, Any] | None:
    """The model entry for ``--model CHECKPOINT`` given to a config with one model that wraps a checkpoint.

    Such a preset (``rip-paper``: a diffusers pipeline; ``rip-paper-vae``: the ``vae-roundtrip`` control) is
    a protocol around a checkpoint, so ``--model`` swaps the checkpoint and keeps the protocol: the preset's
    options (prompt, steps, ``paste_back``) and its model (the VAE control stays the VAE control), with
    ``--model-opt`` on top. ``None`` when ``model`` is no checkpoint or the config's model wraps none.
    """
    from .models.registry import looks_like_diffusers_model

    wrapped = base.options.get("model")
    if not (isinstance(wrapped, str) and looks_like_diffusers_model(wrapped) and looks_like_diffusers_model(model)):
        return None
    entry = base.model_dump(mode="json", exclude_none=True)
    if entry["name"] == "diffusers":  # named by the checkpoint again (its label too)
        entry.pop("label", None)
        options = {k: v for k, v in base.options.items() if k != "model"}
        return {**entry, "name": model, "options": {**options, **opts}}
    return {**entry, "options": {**base.options, "model": model, **opts}}


def build_config(config_file: Path | None, preset: str | None, models: tuple[str, ...], model_opts: tuple[str, ...],
                 masks: tuple[str, ...], images: Path | None, iterations: int | None, size: int | None,
                 seeds: str | None, batch_size: int | None, device: str | None, lpips_net: str | None,
                 lpips_weights: Path | None, name: str | None, output_dir: Path | None,
                 overrides: tuple[str, ...], save_every: int | None = None) -> Any:
    """The validated config that ``ripbench run`` with these options runs (``ripbench config`` prints it)."""
    import yaml

    from .config import apply_overrides, load_config, read_yaml

    config = load_config(config_file, preset)
    sets: list[str] = []
    if models:
        opts = {}
        for item in model_opts:
            key, sep, value = item.partition("=")
            if not sep:
                raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--model-opt")
            opts[key.strip()] = read_yaml(value, f"--model-opt {key.strip()}") if value.strip() else None
        base = {m.name: m for m in config.models}
        entries = []
        for m in models:
            entry: dict[str, Any] = {"name": m, "options": dict(opts)}
            swapped = _checkpoint_swap(config.models[0], m, opts) if len(config.models) == 1 and ":" not in m else None
            if swapped is not None:
                # a checkpoint (Hub id or folder) in place of a preset's one checkpoint: the preset's protocol
                # options stay (rip-paper's paste_back: false, prompt, steps; the VAE control stays the VAE
                # alone, not the whole pipeline under the control's name); --model-opt still changes them
                kept = config.models[0]
                what = ("the VAE control's checkpoint (vae-roundtrip: no denoiser runs; for the whole pipeline "
                        "use --preset rip-paper)" if kept.name == "vae-roundtrip" else
                        "the checkpoint; the preset's model options stay: " +
                        ", ".join(f"{k}={json.dumps(v)}" for k, v in kept.options.items() if k != "model" and k not in opts))
                click.echo(f"ripbench: note: --model {m} is {what}", err=True)
                entry = swapped
            elif m in base:  # keep the preset's options/inputs for that model
                entry = {**base[m].model_dump(mode="json", exclude_none=True), "options": {**base[m].options, **opts}}
            entries.append(entry)
        sets.append("models=" + yaml.safe_dump(entries, default_flow_style=True).strip())
    elif model_opts:
        raise click.UsageError("--model-opt needs --model")
    if masks:
        specs = [parse_mask_option(m) for m in masks]
        sets.append("masks=" + yaml.safe_dump(specs, default_flow_style=True).strip())
    if images:
        if not images.exists():
            raise InputError(f"--images: {images} not found (give a folder of images or a list file)")
        source = "folder" if images.is_dir() else "list"
        sets.append("inputs=" + yaml.safe_dump({"source": source, "path": str(images)}, default_flow_style=True).strip())
    for field, number in (("iterations", iterations), ("size", size), ("batch_size", batch_size),
                          ("save_every", save_every)):
        if number is not None:
            sets.append(f"{field}={number}")
    # strings are quoted so that YAML keeps them strings (--name 2024, paths with '#')
    for field, text in (("device", device), ("metrics.lpips_net", lpips_net), ("name", name),
                        ("metrics.lpips_weights", lpips_weights), ("output_dir", output_dir)):
        if text is not None:
            sets.append(f"{field}={json.dumps(str(text))}")
    if seeds:
        sets.append(f"seeds=[{seeds}]")
    config = apply_overrides(config, sets + list(overrides))
    preset_name = preset or (DEFAULT_PRESET if config_file is None else None)
    named = name is not None or any(o.partition("=")[0].strip() == "name" for o in overrides) or (
        config_file is not None and "name" in (read_yaml(config_file.read_text(), str(config_file)) or {}))
    if preset_name is not None and not named and config.name == preset_name:
        from .config import load_preset

        if config.fingerprint() != load_preset(preset_name).fingerprint():  # not the preset: not its name
            config = apply_overrides(config, [f"name={json.dumps(run_name_for(config))}"])
    return config


@main.command()
@_config_options
@click.option("--overwrite", is_flag=True, help="Replace an existing run of a different config.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--report-to", "report_to", multiple=True, type=_LazyChoice(_trackers),
              help="Log curves, config and final numbers to an experiment tracker while the run goes (rank 0; "
                   "TensorBoard logs to OUTPUT_DIR/tensorboard/NAME). Repeatable.")
def run(overwrite: bool, no_progress: bool, report_to: tuple[str, ...], **options: Any) -> None:
    """Run (or resume) a RIP experiment. Without CONFIG_FILE: the quick preset.

    Re-running the same command after an interruption skips finished trajectories.
    """
    _run_and_report(build_config(**options), overwrite=overwrite, progress=not no_progress, report_to=report_to)


def run_name_for(config: Any) -> str:
    """A run name derived from what a config runs: its models and mask policies, then the first 8 hex
    digits of the config's fingerprint (``biharmonic_grid-32-1a2b3c4d``).

    ``ripbench run`` gives it to a run that changes a preset (``--model``, ``--mask``, ``-n``, ...)
    without ``--name``, so that the run never takes the preset's name (and the next plain run of
    the preset never collides with it). The same command gets the same name, so it resumes; two
    configs that differ in anything that changes results (iterations, seeds, options, ...) get
    different names, so neither is refused for the other's folder.

    >>> from ripbench.config import validate_config
    >>> run_name_for(validate_config({"models": ["biharmonic", {"name": "shapes-ddpm", "masks": [{"policy": "columns", "count": 3}]}],
    ...                               "masks": [{"policy": "grid", "size": 32}]}))  # doctest: +ELLIPSIS
    'biharmonic+shapes-ddpm_grid-32+columns-3-...'
    """
    from .masks import build_mask_policy

    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.+=@,-]+", "-", text).strip("-._+=@,") or "model"

    models = "+".join(slug(m.display_name) for m in config.models)
    labels: list[str] = []
    for m in config.models:
        for spec in m.masks if m.masks is not None else config.masks:
            label = slug(build_mask_policy(spec).label)
            if label not in labels:
                labels.append(label)
    name = f"{models}_{'+'.join(labels)}"
    if len(name) > 110:
        name = name[:101].rstrip("-._+=@,") + "+" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name}-{config.fingerprint()[:8]}"


def _run_and_report(config: Any, *, overwrite: bool, progress: bool, report_to: tuple[str, ...] = ()) -> None:
    from .analysis.summary import brief_summary
    from .formatting import count
    from .plots import collapse_curves
    from .run import run_experiment

    def announce(run_dir: Path, trajectories: int, finished: int) -> None:
        done = f", {finished} already finished" if finished else ""
        click.echo(f"ripbench: run {config.name!r}: {count(len(config.models), 'model')}, "
                   f"{count(trajectories, 'trajectory', 'trajectories')}"
                   f"{done}, {count(config.iterations, 'iteration')} -> {run_dir}")

    if os.environ.get("ACCELERATE_USE_CPU") and int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        click.echo("ripbench: note: running as one process: `accelerate launch --cpu` starts a single process "
                   "unless MPI is set up; for several CPU processes use `accelerate launch --multi_gpu "
                   "--num_processes N -m ripbench run ...` or `torchrun --nproc_per_node N -m ripbench run ...`",
                   err=True)
    tracker = None
    if report_to and int(os.environ.get("RANK", "0") or 0) == 0:  # only rank 0 logs
        from .trackers import start_trackers

        tracker = start_trackers(report_to, config, distributed=int(os.environ.get("WORLD_SIZE", "1") or 1) > 1)
    tensorboard_logs = [folder for t in (tracker.trackers if tracker is not None else [])
                        if t.name == "tensorboard" and isinstance(folder := getattr(t, "folder", None), Path)]
    if not progress:  # --no-progress hides the `datasets` library's bars too (read when it is imported)
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    start = time.perf_counter()
    shown: set[str] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, *rest: Any, **kw: Any) -> None:
        line = warning_line(message, category, filename)
        if line not in shown:  # a warning repeated in a loop is printed once
            shown.add(line)
            click.echo(line, err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        try:
            result = run_experiment(config, overwrite=overwrite, progress=progress, on_start=announce,
                                    tracker=tracker)
        except KeyboardInterrupt:
            if tracker is not None:
                tracker.close()
            click.echo("\nripbench: interrupted; finished trajectories are saved. Run the same command to "
                       "resume.", err=True)
            sys.exit(130)
        except BaseException:
            if tracker is not None:
                tracker.close()
            raise
    wall = time.perf_counter() - start
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return  # rank 0 of a multi-process launch reports for all
    table = result.table
    failed = table[table["failed"]] if "failed" in table.columns else table.iloc[:0]
    if len(failed):
        reasons = failed["failure"].value_counts() if "failure" in failed.columns else {}
        detail = "; ".join(f"{n} x {reason}" for reason, n in list(reasons.items())[:3])
        total = count(table["trajectory_id"].nunique(), "trajectory", "trajectories")
        click.echo(f"ripbench: warning: {failed['trajectory_id'].nunique()} of {total} ended with a failed output "
                   f"({detail}); they count as failed, not stable", err=True)
    figure = collapse_curves(table, result.run_dir / "figures" / "collapse_curves.png")
    import pandas as pd

    summary = brief_summary(table)
    if tracker is not None:
        tracker.run_done(table, summary, figure)
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
        click.echo("\n" + summary.to_string(index=False))
    timing = result.manifest.get("timing", {})
    if result.skipped:
        click.echo(f"\nresumed: {count(result.skipped, 'finished trajectory was', 'finished trajectories were')} "
                   "skipped")
    if timing.get("model_seconds"):
        click.echo(f"\nwall time {wall:.1f} s; model {timing['model_seconds']:.1f} s, harness overhead "
                   f"{timing['overhead_seconds']:.1f} s ({100 * timing['overhead_share']:.1f}% of model time)")
    click.echo(f"results table: {result.run_dir / 'metrics'} (load with ripbench.load({str(result.run_dir)!r}))")
    click.echo(f"collapse curves: {figure}")
    click.echo(f"manifest: {result.run_dir / 'manifest.json'}")
    for folder in tensorboard_logs:
        click.echo(f"tensorboard logs: {folder} (tensorboard --logdir {folder.parent})")


@main.command()
@click.option("-v", "--verbose", "verbose", is_flag=True, help="Show each model's options: type, default, help.")
def models(verbose: bool) -> None:
    """List the available models (built-ins and plug-ins)."""
    from .models import ENTRY_POINT_GROUP, available_inpainters
    from .models.registry import declared_options, resolve_factory

    found = available_inpainters()
    width = max(len(n) for n in found)
    for name, desc in found.items():
        click.echo(f"{name:<{width}}  {desc}")
        if not verbose:
            continue
        try:
            declared = declared_options(resolve_factory(name))
        except RipbenchError as exc:
            click.echo(f"    (cannot load: {exc})")
            continue
        if declared is None:
            click.echo("    (options not declared by this model)")
            continue
        for opt in declared:
            aliases = f"; formerly {', '.join(opt.aliases)}" if opt.aliases else ""
            choices = f" [{' | '.join(map(str, opt.choices))}]" if opt.choices else ""
            click.echo(f"    {opt.name} ({opt.type_name}{choices}, default {opt.default!r}): {opt.help}{aliases}")
    click.echo(f"\nAlso: any 'package.module:factory', a Hugging Face id (org/name) or a local diffusers folder; "
               f"plug-ins register in the entry-point group '{ENTRY_POINT_GROUP}'. Options: --model-opt KEY=VALUE.")


@main.command()
@click.option("-v", "--verbose", "verbose", is_flag=True, help="Show direction, range, identity, regions, options.")
def metrics(verbose: bool) -> None:
    """List the available metrics (built-ins and plug-ins)."""
    from .metrics import ENTRY_POINT_GROUP, available_metrics, get_metric_spec

    found = available_metrics()
    width = max(len(n) for n in found)
    for name, origin in found.items():
        try:
            spec = get_metric_spec(name)
        except RipbenchError as exc:
            click.echo(f"{name:<{width}}  (cannot load: {exc})")
            continue
        about = spec.description or f"{spec.direction_word}, range [{spec.range[0]:g}, {spec.range[1]:g}]"
        click.echo(f"{name:<{width}}  {spec.label}: {about} ({origin})")
        if not verbose:
            continue
        low, high = spec.range
        units = f" {spec.units}" if spec.units else ""
        click.echo(f"    direction: {spec.direction_word}; range [{low:g}, {high:g}]{units}; "
                   f"image vs itself = {spec.identity:g}; minimum image side {spec.minimum_size()} px")
        click.echo(f"    regions: {', '.join(spec.regions) or 'whole image only'} ({spec.region_note})")
        for key, (default, help_text) in spec.options.items():
            click.echo(f"    option {key} (default {default!r}): {help_text}")
    if verbose:
        from .population import POPULATION_METRICS

        click.echo("\nPopulation metrics (per group and iteration in `ripbench report`, from the features the run "
                   "stored; no network is rerun):")
        for facts in POPULATION_METRICS.values():
            click.echo(f"    {facts['label']}: on the {facts['features']} metric's features "
                       f"(backbone: its option model); {facts['direction']}")
    click.echo(f"\nChoose with --set metrics.names=[...]; plug-ins register in the entry-point group "
               f"'{ENTRY_POINT_GROUP}'.")


@main.command()
@click.option("-v", "--verbose", "verbose", is_flag=True, help="Show kind, direction, needs and column.")
def detectors(verbose: bool) -> None:
    """List the hallucination detectors and content baselines (built-ins and plug-ins)."""
    from .detectors import ENTRY_POINT_GROUP, available_detectors, get_detector

    found = available_detectors()
    width = max(len(n) for n in found)
    for name, origin in found.items():
        try:
            spec = get_detector(name)
        except RipbenchError as exc:
            click.echo(f"{name:<{width}}  (cannot load: {exc})")
            continue
        kind = "baseline, a control with no model" if spec.kind == "baseline" else spec.kind
        click.echo(f"{name:<{width}}  {spec.label} [{kind}] ({origin})")
        if not verbose:
            continue
        click.echo(f"    {spec.description or '-'}")
        click.echo(f"    column {spec.column}; {spec.direction}; needs {', '.join(spec.needs)}")
    click.echo(f"\nChoose with --set hallucination.detectors=[...] (names or 'module:attr'); plug-ins register in "
               f"the entry-point group '{ENTRY_POINT_GROUP}'.")


@main.command("config")
@_config_options
def show_config(**options: Any) -> None:
    """Validate a config and print it fully resolved (YAML), after the same options as `ripbench run`
    (--preset, --model, --mask, --set, -n, ...): what that run would run."""
    import yaml

    config = build_config(**options)
    click.echo(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Output folder (default RUN_DIR/report, or report-a+b beside several runs).")
@click.option("--threshold", help="Collapse rule: a number for the default metric (LPIPS to original >= 0.5) "
                                  "or a rule such as 'ssim_orig<=0.4'.")
@click.option("--ci", default=0.95, show_default=True, type=click.FloatRange(0.5, 0.999),
              help="Confidence level of every interval.")
@click.option("--n-boot", default=1000, show_default=True, type=click.IntRange(100, 100_000),
              help="Bootstrap resamples per interval.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the resampling.")
def report(run_dirs: tuple[Path, ...], out_dir: Path | None, threshold: str | None, ci: float, n_boot: int,
           seed: int) -> None:
    """Write a self-contained HTML report (and Markdown, CSV and LaTeX tables) of one or more runs.

    Several runs are compared on the iterations, images and masks they share; what differs is stated.
    """
    from .report import write_report

    value: str | float | None = threshold
    if threshold is not None:
        try:
            value = float(threshold)
        except ValueError:
            value = threshold
    paths = write_report(list(run_dirs), out_dir, threshold=value, ci=ci, n_boot=n_boot, seed=seed)
    click.echo(f"report: {paths['html']}\nsummary: {paths['markdown']}")
    if "comparisons_tex" in paths:
        click.echo(f"paired comparisons: {paths['comparisons_csv']}, {paths['comparisons_tex']}")


@main.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=_LazyChoice(_export_formats), default="parquet", show_default=True,
              help="imagefolder (PNG files + metadata.jsonl) or parquet (image bytes and provenance in Parquet).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Dataset folder (default RUN_DIR/export/FORMAT).")
@click.option("--overwrite", is_flag=True, help="Replace an existing export in the folder.")
@click.option("--push-to-hub", "repo", metavar="REPO", help="Also upload the folder to this Hub dataset repository.")
@click.option("--private", is_flag=True, help="With --push-to-hub: create the repository private.")
def export(run_dir: Path, fmt: str, out_dir: Path | None, overwrite: bool, repo: str | None, private: bool) -> None:
    """Export a run's saved images with their provenance as a Hugging Face dataset (imagefolder or Parquet).

    Each row: run, model, image id, mask policy, seed, iteration, mask box, metric values and
    hallucination scores; a dataset card (README.md) is written beside the data. Save whole chains
    with `ripbench run --save-every 1`.
    """
    import shlex

    from .export import export_run, push_to_hub

    words = ["ripbench", "export", str(run_dir), "--format", fmt, *(["--out", str(out_dir)] if out_dir else []),
             *(["--push-to-hub", repo] if repo else [])]
    folder = export_run(run_dir, fmt, out_dir, overwrite=overwrite, command=shlex.join(words))  # type: ignore[arg-type]
    click.echo(f"dataset ({fmt}): {folder}\ndataset card: {folder / 'README.md'}")
    from .store import RunStore

    status = (RunStore(run_dir).read_manifest() or {}).get("status")
    if status != "complete":  # interrupted or still running: say so, the card alone is easy to miss
        click.echo(f"ripbench: note: run {str(run_dir)!r} is {status!r}, not complete: the export holds the "
                   "trajectories finished so far; finish the run (the same `ripbench run` command) and export "
                   "again with --overwrite for all of them", err=True)
    if repo:
        click.echo(f"pushed: {push_to_hub(folder, repo, private=private)}")


@main.group(cls=_Group)
def repro() -> None:
    """Reproductions of published results."""


#: Where ``ripbench repro hallucination-toy`` writes by default (``-fast`` appended for a smoke run).
TOY_OUT = "results/repro-hallucination-toy"


@repro.command("hallucination-toy")
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help=f"Output folder [default: {TOY_OUT}, or {TOY_OUT}-fast with --fast].")
@click.option("--fast", is_flag=True, help="A ~30 s smoke version (tiny training; numbers not meaningful, marked "
                                           "as such and written apart from the full run's folder).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--train", is_flag=True, help="Retrain the 2D model on the authors' recipe (hours on a CPU; "
              "resumable: run the same command again) instead of evaluating the shipped weights.")
@click.option("--samples", type=click.IntRange(min=1000), default=None,
              help="Samples drawn to evaluate the 2D model [default: 100000].")
def hallucination_toy(out_dir: Path | None, fast: bool, seed: int, train: bool, samples: int | None) -> None:
    """Aithal et al. (NeurIPS 2024) toy experiments: 1D and 2D Gaussian mixtures, variance detector."""
    from .repro import run_toy_repro

    out_dir = out_dir or Path(TOY_OUT + ("-fast" if fast else ""))  # a smoke run never replaces the full one

    start = time.perf_counter()
    report = run_toy_repro(out_dir, fast=fast, seed=seed, progress=True, train=train, samples=samples)
    click.echo((out_dir / "report.md").read_text() if (out_dir / "report.md").is_file() else report)
    click.echo(f"wall time {time.perf_counter() - start:.0f} s; report: {out_dir / 'report.md'}")


def _shapes_rip_help() -> str:
    from .repro import SHAPES_HALLUCINATION

    return ("Bundled shapes DDPM under RIP: ground-truth hallucinations and detector quality per band of "
            "iterations.\n\n" + SHAPES_HALLUCINATION + "\n\nReports, per noise band and score variant, on the "
            "held-out trajectories: the AUROC of duplicates vs valid generations (95% bootstrap CI over "
            "trajectories, n), the same for the content baselines (foreground and edge pixels in the repainted "
            "region: controls with no model in them), the paired difference to the best baseline (chosen on the "
            "calibration trajectories), the AUROC against valid generations with the same number of shapes in "
            "the region, and one sentence: the score beats, matches or loses to the baseline. Also a threshold "
            "calibrated on a quarter of the trajectories (keeps 96% of their valid generations) and the "
            "kept/removed rates on the other trajectories (Wilson CIs).")


def _noise_bands(text: str) -> list[Any]:
    """``"default,paper,0.1,0.02:0.2"`` -> ``["default", "paper", 0.1, [0.02, 0.2]]``."""
    out: list[Any] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            out.append([float(v) for v in item.split(":")] if ":" in item else float(item))
        except ValueError:
            out.append(item)
    if not out:
        raise click.BadParameter("give at least one noise band", param_hint="--noise-bands")
    return out


@repro.command("shapes-rip", help=_shapes_rip_help())
@click.option("--out", "out_dir", default="results/shapes-rip", show_default=True, type=click.Path(path_type=Path))
@click.option("--images", default=32, show_default=True,
              help="Simple Shapes images (raise it, or --seeds, until each mask mode has 100 held-out duplicates).")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds (one trajectory per image and seed).")
@click.option("--iterations", "-n", default=12, show_default=True)
@click.option("--steps", default=100, show_default=True,
              help="Denoising steps per inpainting (100 gives the paper's noise band enough steps).")
@click.option("--mask", type=click.Choice(["columns", "box"]), default="columns", show_default=True)
@click.option("--bands", default=3, show_default=True, help="Bands of iterations the detector is evaluated in.")
@click.option("--noise-bands", "noise_bands", default="default", show_default=True,
              help="Noise bands of the score, one run each: 'default', 'paper', a number hi or lo:hi, comma-separated (the paper's band is also scored inside every run that contains it: x0-variance-current-paper).")
@click.option("--min-duplicates", default=100, show_default=True,
              help="Held-out duplicates the report checks the run reached (it states the n and any shortfall).")
@click.option("--n-boot", default=1000, show_default=True, type=click.IntRange(10, 100_000),
              help="Bootstrap resamples per interval.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run with other settings.")
def shapes_rip(out_dir: Path, images: int, seeds: str, iterations: int, steps: int, mask: str, bands: int,
               noise_bands: str, min_duplicates: int, n_boot: int, overwrite: bool) -> None:
    from .repro import run_shapes_rip

    start = time.perf_counter()
    seed_list = _numbers(seeds, int, "--seeds")
    out = run_shapes_rip(out_dir, images=images, seeds=seed_list, iterations=iterations, steps=steps, mask=mask,
                         iteration_bands=bands, bands=_noise_bands(noise_bands), min_duplicates=min_duplicates,
                         n_boot=n_boot, overwrite=overwrite)
    click.echo(out["paths"]["report"].read_text())
    click.echo(f"wall time {time.perf_counter() - start:.0f} s; tables: {out['paths']['detection']}, "
               f"{out['paths']['comparison']}, {out['paths']['kinds']}; figure: {out['paths']['figure']}")


@main.group(cls=_Group)
def train() -> None:
    """Train the models that ship with ripbench."""


def _training_options(command: Any) -> Any:
    """Add one option per exposed :class:`~ripbench.training.config.ShapesTrainingConfig` field (its flag,
    default and help come from the field), in field order."""
    from .training.config import cli_options

    for option in reversed(cli_options()):
        kind = click.Choice(list(option.choices)) if option.choices else option.kind
        command = click.option(option.flag, option.name, default=option.default, type=kind,
                               show_default=option.default is not None, help=option.help or None)(command)
    return command


@train.command("shapes")
@click.option("--out", "out_dir", default="results/shapes-ddpm", show_default=True, type=click.Path(path_type=Path))
@_training_options
@click.option("--eval-samples", default=500, show_default=True, help="Unconditional samples to label afterwards.")
def train_shapes_command(out_dir: Path, eval_samples: int, **options: Any) -> None:
    """Train the Simple Shapes DDPM on the CPU (the shipped weights came from the defaults).

    Reproducible: the same options, torch build and thread count give the same weights.
    """
    from .training.config import cli_options
    from .training.shapes import train_shapes

    fields = {o.name: o.value(options[o.name]) for o in cli_options()}
    report = train_shapes(out_dir, progress=True, eval_samples=eval_samples, **fields)
    click.echo(f"trained {report.steps} steps in {report.wall_time_s:.0f} s, final loss {report.final_loss:.4f}, "
               f"{report.num_parameters:,} parameters -> {report.out_dir}")
    if report.evaluation:
        click.echo(f"samples: {json.dumps(report.evaluation)}")
    click.echo(f"use it: {use_trained_shapes_command(report.out_dir, fields['size'])}")


def use_trained_shapes_command(out_dir: Path, size: int) -> str:
    """The ``ripbench run`` line that runs a freshly trained shapes model as it was trained: Simple
    Shapes inputs at its image size, one of the three shape columns repainted per iteration.

    >>> use_trained_shapes_command(Path("w d"), 32)
    "ripbench run --model pixel-ddpm --model-opt 'model=w d' --size 32 --mask columns:3 --set 'inputs={source: shapes, count: 8}' -n 10 --model-opt steps=25 --name shapes-ddpm-w-d"
    """
    import shlex

    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(out_dir).name).strip("-.") or "trained"
    return (f"ripbench run --model pixel-ddpm --model-opt {shlex.quote(f'model={out_dir}')} --size {size} "
            f"--mask columns:3 --set {shlex.quote('inputs={source: shapes, count: 8}')} -n 10 --model-opt steps=25 "
            f"--name shapes-ddpm-{name}")


@train.command("shapes-eval")
@click.argument("model", default="shapes")
@click.option("--samples", default=500, show_default=True, help="Unconditional samples to draw and label.")
@click.option("--steps", default=50, show_default=True, help="Denoising steps per sample.")
@click.option("--seed", default=0, show_default=True, help="First sample seed.")
def train_shapes_eval(model: str, samples: int, steps: int, seed: int) -> None:
    """Label unconditional samples of a Simple Shapes DDPM (MODEL: "shapes" or a folder); writes evaluation.json."""
    from .training.shapes import evaluate_shapes_model

    summary = evaluate_shapes_model(model, samples, seed=seed, save=True, steps=steps)
    click.echo(json.dumps(summary, indent=2))


@main.group(cls=_Group)
def masks() -> None:
    """Mask policies: generate mask sets."""


@masks.command("generate")
@click.argument("policy")
@click.option("--count", default=8, show_default=True, help="Number of masks.")
@click.option("--size", default=512, show_default=True, help="Mask size in pixels (square).")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder.")
def masks_generate(policy: str, count: int, size: int, seed: int, out_dir: Path) -> None:
    """Write COUNT masks of POLICY (e.g. strokes:thick, box:0.2, grid:64) as PNGs (white = repaint)."""
    from .masks import build_mask_policy, generate_mask_set

    spec = parse_mask_option(policy)
    paths = generate_mask_set(build_mask_policy(spec), count, size, size, out_dir, seed=seed)
    click.echo(f"wrote {len(paths)} masks to {out_dir}")


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="ripbench")
