"""The command line: a real run, bad input gives one clear line and no result files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ripbench.cli import main, parse_mask_option

FAST = ["--model", "biharmonic", "--iterations", "2", "--size", "32", "--mask", "grid:16",
        "--set", "metrics.names=[ssim,mse]", "--no-progress"]


def _invoke(args, tmp_path):
    return CliRunner().invoke(main, ["run", *args, "--output-dir", str(tmp_path / "res")])


def test_parse_mask_option():
    assert parse_mask_option("box:0.1") == {"policy": "box", "area": 0.1}
    assert parse_mask_option("folder:masks/") == {"policy": "folder", "path": "masks/"}
    assert parse_mask_option("box:area=0.2,aspect=2") == {"policy": "box", "area": 0.2, "aspect": 2}


def test_train_shapes_options_are_the_training_config_fields(monkeypatch, tmp_path):
    import dataclasses
    import shlex
    from types import SimpleNamespace

    import ripbench.training.shapes as training
    from ripbench.training.config import ShapesTrainingConfig, cli_options

    calls = []

    def fake_train(out_dir, progress, eval_samples, **fields):
        calls.append(fields)
        return SimpleNamespace(steps=1, wall_time_s=0.0, final_loss=0.0, num_parameters=1, out_dir=out_dir,
                               evaluation={})

    monkeypatch.setattr(training, "train_shapes", fake_train)
    defaults = ShapesTrainingConfig()
    exposed = [o.name for o in cli_options()]
    assert set(exposed) == {"size", "steps", "seed", "batch_size", "learning_rate", "warmup_steps", "num_threads",
                            "time_limit_s", "block_out_channels"}
    res = CliRunner().invoke(main, ["train", "shapes", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert calls[-1] == {name: getattr(defaults, name) for name in exposed}  # the defaults made the bundled weights
    changed = dataclasses.replace(defaults, size=32, steps=7, learning_rate=0.01, block_out_channels=(8, 16),
                                  num_threads=2, time_limit_s=5.0)
    command = changed.command("w")  # written to training_config.json: it must rerun the same config
    assert command.startswith("ripbench train shapes --out w --size 32 --steps 7 ")
    res = CliRunner().invoke(main, shlex.split(command)[1:])
    assert res.exit_code == 0, res.output
    assert ShapesTrainingConfig(**calls[-1]) == changed
    assert isinstance(calls[-1]["size"], int) and calls[-1]["block_out_channels"] == (8, 16)


def test_each_mask_policy_declares_its_main_parameter():
    import dataclasses

    from ripbench.masks import MASK_POLICIES, build_mask_policy

    short = {"grid": "64", "box": "0.1", "center": "0.25", "strokes": "thick", "folder": "masks/", "columns": "3"}
    assert set(short) == set(MASK_POLICIES)
    for name, cls in MASK_POLICIES.items():
        spec = parse_mask_option(f"{name}:{short[name]}")
        assert list(spec) == ["policy", cls.main_param]
        assert cls.main_param in {f.name for f in dataclasses.fields(cls)}
        if name != "folder":
            build_mask_policy(spec)  # the main parameter is one of the policy's fields, with a valid value
    assert parse_mask_option("grid:64") == {"policy": "grid", "size": 64}
    assert parse_mask_option("columns:3") == {"policy": "columns", "count": 3}
    assert parse_mask_option("strokes:thin") == {"policy": "strokes", "width": "thin"}


def test_run_prints_where_results_are(tmp_path):
    res = _invoke([*FAST, "--set", "inputs.names=[coffee]", "--name", "t"], tmp_path)
    assert res.exit_code == 0, res.output
    assert "collapse curves:" in res.output and "results table:" in res.output
    assert (tmp_path / "res" / "t" / "figures" / "collapse_curves.png").is_file()
    assert "biharmonic" in res.output  # summary table
    res = CliRunner().invoke(main, ["report", str(tmp_path / "res" / "t"), "--threshold", "0.3"])
    assert res.exit_code == 0, res.output
    html = tmp_path / "res" / "t" / "report" / "report.html"
    assert f"report: {html}" in res.output and html.stat().st_size > 10_000


def test_models_lists_builtins():
    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0
    for name in ("biharmonic", "telea", "navier-stokes"):
        assert name in res.output


def _folder_of(tmp_path, images: dict[str, np.ndarray]) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir(exist_ok=True)
    for name, arr in images.items():
        Image.fromarray(arr).save(folder / name)
    return folder


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("unreadable", "cannot read image"),
        ("iterations", "iterations"),
        ("model", "unknown model 'nope'; known models:"),
        ("square", "larger than"),
        ("config", "itrations: unknown field"),
        ("mask-size", "mask.png"),
        ("mask-empty", "empty"),
        ("mask-full", "covers the whole"),
    ],
)
def test_bad_input_one_line_no_files(case, fragment, tmp_path):
    args = list(FAST)
    good = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    if case == "unreadable":
        folder = _folder_of(tmp_path, {"ok.png": good})
        (folder / "bad.png").write_bytes(b"garbage")
        args += ["--images", str(folder)]
    elif case == "iterations":
        args[args.index("--iterations") + 1] = "0"
    elif case == "model":
        args += ["--model", "nope"]
    elif case == "square":
        args += ["--mask", "grid:64"]
    elif case == "config":
        cfg = tmp_path / "c.yaml"
        cfg.write_text("itrations: 3\n")
        args = [str(cfg)]
    else:
        masks = tmp_path / "masks"
        masks.mkdir()
        shape = (16, 16) if case == "mask-size" else (32, 32)
        value = 0 if case == "mask-empty" else 255
        arr = np.full(shape, value, np.uint8)
        if case == "mask-size":
            arr[:4, :4] = 255
        Image.fromarray(arr).save(masks / "mask.png")
        args += ["--mask", f"folder:{masks}"]
    res = _invoke(args, tmp_path)
    assert res.exit_code == 2, res.output
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ripbench: error:"), res.stderr
    assert fragment in err[0], err[0]
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").rglob("*"))


@pytest.mark.slow
def test_kill_and_rerun_resumes(tmp_path):
    """A real SIGKILL mid-run; the same command then skips the finished trajectories."""
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "ripbench", "run", "--model", "biharmonic", "--iterations", "40", "--size", "48", "--mask", "grid:8",
           "--seeds", "0,1,2", "--batch-size", "1", "--set", "metrics.names=[mse]", "--no-progress",
           "--set", "inputs.names=[astronaut,coffee]", "--output-dir", str(out), "--name", "k"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    parts = out / "k" / "metrics"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("part-*.parquet")))
    assert 2 <= done < 6, "the run finished before it could be killed"
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed: {done} finished trajectories were skipped" in rerun.stdout
    assert len(list(parts.glob("part-*.parquet"))) == 6


def test_masks_generate_and_config_show(tmp_path):
    res = CliRunner().invoke(main, ["masks", "generate", "strokes:thick", "--count", "3", "--size", "64",
                                    "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "m").glob("*.png"))
    assert len(files) == 3
    arr = np.asarray(Image.open(files[0]))
    assert arr.shape == (64, 64) and 0.2 < (arr > 127).mean() < 0.5
    res = CliRunner().invoke(main, ["config", "--preset", "rip-paper"])
    assert res.exit_code == 0 and "size: 512" in res.output
    res = CliRunner().invoke(main, ["masks", "generate", "grid:128", "--size", "64", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "larger than" in res.stderr


@pytest.mark.parametrize("preset, kept", [
    ("rip-paper", {"paste_back": False, "prompt": "", "negative_prompt": "", "steps": 2}),
    ("rip-paper-pasteback", {"paste_back": True, "prompt": "", "steps": 2}),
    ("rip-paper-vae", {}),
])
def test_model_checkpoint_given_to_a_checkpoint_preset_keeps_its_protocol(tmp_path, preset, kept):
    """``--preset rip-paper --model FOLDER`` (the README's offline form) swaps the checkpoint only: the
    preset's paste_back / prompt stay (they used to be dropped, so rip-paper silently ran with paste-back),
    and rip-paper-vae stays the VAE control (it used to run the whole inpainting pipeline)."""
    import yaml

    folder = tmp_path / "my-sd"
    folder.mkdir()
    opts = [] if preset == "rip-paper-vae" else ["--model-opt", "steps=2"]
    res = CliRunner().invoke(main, ["config", "--preset", preset, "--model", str(folder), *opts])
    assert res.exit_code == 0, res.output
    (model,) = yaml.safe_load(res.stdout)["models"]
    assert model["name"] == ("vae-roundtrip" if preset == "rip-paper-vae" else "diffusers")
    assert model["options"]["model"] == str(folder) and kept.items() <= model["options"].items()
    assert model["label"] in (None, "my-sd")
    res = CliRunner().invoke(main, ["config", "--preset", preset, "--model", "biharmonic"])  # not a checkpoint
    assert res.exit_code == 0 and yaml.safe_load(res.output)["models"][0] == {
        "name": "biharmonic", "options": {}, "label": None, "inputs": None, "masks": None, "size": None}


@pytest.mark.slow
def test_quick_preset_runs_photos_and_the_bundled_diffusion_model(tmp_path):
    res = _invoke(["--iterations", "2", "--set", "models.1.options.steps=10", "--set", "hallucination.band=[0, 1.0]",
                   "--set", "metrics.names=[ssim,mse]", "--no-progress"], tmp_path)
    assert res.exit_code == 0, res.output
    import ripbench

    # the preset changed (-n 2, ...) and no --name: named after what it runs, never "quick"
    runs = [p for p in (tmp_path / "res").iterdir() if p.is_dir()]
    assert len(runs) == 1 and re.fullmatch(r"biharmonic\+shapes-ddpm_grid-16\+grid-32\+grid-64\+columns-3-[0-9a-f]{8}",
                                           runs[0].name), runs
    table = ripbench.load(runs[0])
    assert set(table["model"]) == {"biharmonic", "shapes-ddpm"}
    shapes = table[table["model"] == "shapes-ddpm"]
    later = shapes[shapes["iteration"] > 0]  # 10 steps: t = 200, 100, 0 lie in sigma [0, 1] (0.72, 0.34, 0.01)
    assert later["halluc_score"].gt(0).all() and (later["halluc_status"] == "ok").all()
    assert shapes["shapes_valid"].notna().all()


@pytest.mark.parametrize("args, name", [
    ([], "quick"),                                           # the preset as it is keeps its name
    (["--batch-size", "2", "--device", "cpu"], "quick"),     # settings that change no result too
    (["--model", "biharmonic"], "biharmonic_grid-16+grid-32+grid-64"),
    (["--model", "shapes-ddpm"], "shapes-ddpm_columns-3"),
    (["--mask", "box:0.1", "-n", "3"], "biharmonic+shapes-ddpm_box-0.10+columns-3"),
    (["--preset", "rip-paper", "--model", "biharmonic"], "biharmonic_grid-64+grid-128+grid-256"),
    (["--preset", "rip-paper"], "rip-paper"),
    (["--model", "biharmonic", "--name", "quick"], "quick"),  # asked for: given (collisions are refused)
    (["--model", "biharmonic", "--set", "name=mine"], "mine"),
])
def test_a_changed_preset_is_named_after_what_it_runs(monkeypatch, args, name):
    import ripbench.cli

    seen = []
    monkeypatch.setattr(ripbench.cli, "_run_and_report", lambda config, **kw: seen.append(config.name))
    res = CliRunner().invoke(main, ["run", *args])
    assert res.exit_code == 0, res.output
    assert len(seen) == 1 and (seen[0] == name or re.fullmatch(re.escape(name) + "-[0-9a-f]{8}", seen[0])), seen
    assert ("_" in name) == (seen[0] != name)  # derived names (model_masks) end in the config's fingerprint


def test_derived_names_differ_with_the_config_and_repeat_with_the_command(monkeypatch):
    import ripbench.cli

    seen = []
    monkeypatch.setattr(ripbench.cli, "_run_and_report", lambda config, **kw: seen.append(config.name))
    shapes = ["--model", "shapes-ddpm", "--model-opt"]
    for args in (["-n", "3"], ["-n", "4"], ["-n", "3"], ["--seeds", "0,1"], [*shapes, "steps=10"], [*shapes, "steps=50"]):
        res = CliRunner().invoke(main, ["run", *args])
        assert res.exit_code == 0, res.output
    assert seen[0] == seen[2] and len(set(seen)) == 5, seen  # -n 3 twice: one name; every other config its own


def test_a_config_file_keeps_its_own_name(tmp_path, monkeypatch):
    import ripbench.cli

    seen = []
    monkeypatch.setattr(ripbench.cli, "_run_and_report", lambda config, **kw: seen.append(config.name))
    (tmp_path / "named.yaml").write_text("name: quick\nmodels: [biharmonic]\n")
    (tmp_path / "unnamed.yaml").write_text("models: [biharmonic]\n")
    for file in ("named.yaml", "unnamed.yaml"):
        assert CliRunner().invoke(main, ["run", str(tmp_path / file), "--preset", "quick"]).exit_code == 0
    assert seen[0] == "quick" and re.fullmatch(r"biharmonic_grid-16\+grid-32\+grid-64-[0-9a-f]{8}", seen[1]), seen


def test_model_run_does_not_take_the_presets_folder_and_collisions_are_still_refused(tmp_path):
    args = ["--model", "biharmonic", "--size", "32", "--mask", "grid:8", "--set", "inputs.names=[coffee]",
            "--seeds", "0", "--set", "metrics.names=[mse]", "--no-progress"]
    first = _invoke([*args, "-n", "1"], tmp_path)
    assert first.exit_code == 0, first.output
    runs = sorted(p.name for p in (tmp_path / "res").iterdir() if p.is_dir())
    assert len(runs) == 1 and re.fullmatch(r"biharmonic_grid-8-[0-9a-f]{8}", runs[0]), runs
    again = _invoke([*args, "-n", "1"], tmp_path)  # the same command: the same name, resumed
    assert again.exit_code == 0 and "resumed: 1 finished trajectory was skipped" in again.output, again.output
    other = _invoke([*args, "-n", "2"], tmp_path)  # another config: its own folder, the first run kept
    assert other.exit_code == 0, other.output
    assert len([p for p in (tmp_path / "res").iterdir() if p.is_dir()]) == 2
    other = _invoke([*args, "-n", "3", "--name", runs[0]], tmp_path)  # asked for the taken name: refused, one line
    assert other.exit_code == 2, other.output
    lines = [line for line in other.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "holds a run made with a different config (iterations: 1 -> 3)" in lines[0]
    assert "pass --name NEW_NAME to write this run elsewhere; to replace it, pass --overwrite" in lines[0]
