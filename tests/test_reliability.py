"""Never silent, never mixed (issue 12): the lock, crash-safe overwrite and resume, SIGTERM, checked model
outputs, bad inputs refused with one line, CUDA out-of-memory handled by smaller batches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ripbench.cli import main
from ripbench.config import validate_config
from ripbench.errors import ConfigError, InputError, ModelContractError, ResultsError
from ripbench.inputs import load_image
from ripbench.models import Inpainter, InpaintResult
from ripbench.run import TIMING_COLUMNS, run_experiment
from ripbench.store import RunLock, RunStore

REPO = Path(__file__).resolve().parents[1]


def _run(data: dict, **kw):
    return run_experiment(validate_config(data), progress=False, **kw)


def _run_dir(data: dict) -> Path:
    return validate_config(data).output_dir / data["name"]


# ----------------------------------------------------------------------------------------- the lock


def test_second_writer_is_refused_naming_the_holder(tiny_config_data: dict) -> None:
    run_dir = _run_dir(tiny_config_data)
    with RunLock(run_dir):
        with pytest.raises(ResultsError, match=rf"in use by another ripbench run \(host .*, pid {os.getpid()}, started"):
            _run(tiny_config_data)
    assert not run_dir.exists()
    assert _run(tiny_config_data).manifest["status"] == "complete"  # released: the next run proceeds


def test_stale_lock_of_a_dead_process_is_taken_over(tiny_config_data: dict) -> None:
    run_dir = _run_dir(tiny_config_data)
    code = ("import sys, time; from ripbench.store import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResultsError, match=f"pid {holder.pid}"):
            _run(tiny_config_data)
    finally:
        holder.kill()  # dies holding the lock
        holder.wait()
    assert _run(tiny_config_data).manifest["status"] == "complete"


def test_duplicated_rows_are_refused(tiny_config_data: dict) -> None:
    store = RunStore(_run(tiny_config_data).run_dir)
    part = store.part_files()[0]
    (part.parent / "part-copy.parquet").write_bytes(part.read_bytes())
    with pytest.raises(ResultsError, match="duplicated .trajectory, iteration. rows"):
        store.load_table()
    with pytest.raises(ResultsError, match="duplicated"):
        _run(tiny_config_data)  # a resume refuses it too


# ---------------------------------------------------------------------------- overwrite and resume


def _consistent(run_dir: Path) -> tuple[int, int]:
    """(iterations in the manifest, iterations in the table): one run, never a mix."""
    store = RunStore(run_dir)
    table = store.load_table()  # refuses duplicated rows
    return store.read_manifest()["config"]["iterations"], int(table["iteration"].max())


def test_overwrite_killed_midway_leaves_a_clean_new_run(tiny_config_data: dict, monkeypatch) -> None:
    import ripbench.run.experiment as experiment

    first = _run(tiny_config_data)
    tiny_config_data["iterations"] = 2  # another config: needs --overwrite
    real, calls = experiment.run_batch, []

    def killed_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment, "run_batch", killed_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_config_data, overwrite=True)
    monkeypatch.undo()
    assert _consistent(first.run_dir) == (2, 2)  # the new run's first batch, not the old rows
    assert RunStore(first.run_dir).read_manifest()["status"] == "interrupted"
    assert not list(first.run_dir.parent.glob(".tiny.discarded-*"))  # the old run is gone once new rows exist
    result = _run(tiny_config_data)  # resumes the new run
    assert result.table["trajectory_id"].nunique() == 8 and _consistent(first.run_dir) == (2, 2)


def test_overwrite_that_fails_before_any_result_keeps_the_old_run(tiny_config_data: dict) -> None:
    first = _run(tiny_config_data)
    before = first.table.drop(columns=TIMING_COLUMNS)
    tiny_config_data["models"] = [{"name": f"{__name__}:_Bad"}]
    _Bad.mode = "shape"  # unusable model: stops at its first call
    with pytest.raises(ModelContractError):
        _run(tiny_config_data, overwrite=True)
    pd.testing.assert_frame_equal(RunStore(first.run_dir).load_table().drop(columns=TIMING_COLUMNS), before)
    assert RunStore(first.run_dir).read_manifest()["status"] == "complete"


def test_kill_while_deleting_the_old_run_is_swept_later(tiny_config_data: dict, monkeypatch) -> None:
    first = _run(tiny_config_data)
    tiny_config_data["iterations"] = 2

    def killed(path, *a, **k):  # the kill lands while the old folder is being deleted
        raise KeyboardInterrupt

    monkeypatch.setattr("ripbench.store.shutil.rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_config_data, overwrite=True)
    monkeypatch.undo()
    assert _consistent(first.run_dir) == (2, 2) and list(first.run_dir.parent.glob(".tiny.discarded-*"))
    _run(tiny_config_data)
    assert not list(first.run_dir.parent.glob(".tiny.discarded-*"))  # swept by the next run


def test_refused_resume_leaves_the_finished_run_as_it_was(tiny_config_data: dict) -> None:
    first = _run(tiny_config_data)
    store = RunStore(first.run_dir)
    manifest = store.read_manifest()
    manifest["models"]["biharmonic"]["class"] = "another.version.Biharmonic"  # made by another ripbench
    store.write_manifest(manifest)
    store.part_files()[0].unlink()  # interrupted earlier; now resumed by this version
    with pytest.raises(ResultsError, match=r"cannot resume: model 'biharmonic' differs .*\(class\)"):
        _run(tiny_config_data)
    assert RunStore(first.run_dir).read_manifest() == manifest  # not marked failed, provenance untouched


def test_trajectory_ids_unique_across_models(tiny_config_data: dict) -> None:
    tiny_config_data["models"] = [{"name": "biharmonic", "label": "bh+1"}, {"name": "biharmonic", "label": "bh-1"}]
    with pytest.raises(ConfigError, match="would share trajectory ids"):
        _run(tiny_config_data)


def test_parts_without_manifest_are_refused(tiny_config_data: dict) -> None:
    run_dir = _run(tiny_config_data).run_dir
    (run_dir / "manifest.json").unlink()
    with pytest.raises(ResultsError, match="result parts but no manifest"):
        _run(tiny_config_data)
    assert _run(tiny_config_data, overwrite=True).manifest["status"] == "complete"


def test_corrupt_manifest_and_empty_part_have_clear_messages(tiny_config_data: dict) -> None:
    run_dir = _run(tiny_config_data).run_dir
    RunStore(run_dir).part_files()[0].write_bytes(b"")
    with pytest.raises(ResultsError, match="empty results part .* delete it and run again"):
        _run(tiny_config_data)
    (run_dir / "manifest.json").write_text("{not json")
    with pytest.raises(ResultsError, match="corrupt manifest .* --overwrite"):
        _run(tiny_config_data)


def test_edited_input_image_refuses_to_resume(tmp_path: Path, tiny_config_data: dict) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / f"{name}.png")
    tiny_config_data["inputs"] = {"source": "folder", "path": str(folder)}
    first = _run(tiny_config_data)
    RunStore(first.run_dir).part_files()[0].unlink()  # interrupted
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / "b.png")  # edited meanwhile
    with pytest.raises(ResultsError, match=r"input image .*b\.png changed"):
        _run(tiny_config_data)
    (folder / "b.png").unlink()
    with pytest.raises(ResultsError, match="no longer among the inputs"):
        _run(tiny_config_data)


def test_changed_mask_file_refuses_to_resume(tmp_path: Path, tiny_config_data: dict) -> None:
    from ripbench.masks import generate_mask_set

    masks = tmp_path / "masks"
    generate_mask_set({"policy": "box", "area": 0.2}, 3, 32, 32, masks)
    tiny_config_data["masks"] = [{"policy": "folder", "path": str(masks)}]
    first = _run(tiny_config_data)
    RunStore(first.run_dir).part_files()[0].unlink()
    generate_mask_set({"policy": "box", "area": 0.3}, 1, 32, 32, tmp_path / "other")
    (tmp_path / "other" / "box-0.30-0000.png").replace(masks / "box-0.20-0001.png")
    with pytest.raises(ResultsError, match="mask file box-0.20-0001.png"):
        _run(tiny_config_data)


def test_sigterm_leaves_a_resumable_interrupted_run(tmp_path: Path) -> None:
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "ripbench", "run", "--model", "biharmonic", "--size", "64", "-n", "40",
           "--mask", "grid:8", "--seeds", "0,1,2,3", "--batch-size", "1", "--set", "metrics.names=[mse]",
           "--set", "inputs.names=[astronaut,coffee]", "--no-progress", "--output-dir", str(out), "--name", "t"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    store = RunStore(out / "t")
    deadline = time.time() + 120
    while not store.part_files() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err, err
    manifest = store.read_manifest()
    assert manifest["status"] == "interrupted"
    finished = store.finished_trajectories()
    assert 0 < len(finished) < 8 and not list((out / "t").rglob("*.tmp*"))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert store.read_manifest()["status"] == "complete" and len(store.finished_trajectories()) == 8


# ----------------------------------------------------------------------------------- model outputs


class _Bad(Inpainter):
    """Item 0 is fine; item 1 comes out as ``mode`` says."""

    name = "bad"
    mode = "nan"

    def inpaint(self, images, masks, seeds):
        out = images * (1 - masks) + 0.5 * masks
        if self.mode == "nan":
            out[1] = float("nan")
        elif self.mode == "255":
            out = out * 255.0
        elif self.mode == "shape":
            out = out[:, :1]
        elif self.mode == "raises":
            raise RuntimeError("the plug-in's own bug")
        elif self.mode == "extras":
            return InpaintResult(images=out, extras={"score": [1.0]})  # one value for a batch of 8
        elif self.mode == "in-place":
            images.mul_(0.0)  # edits its input: must not reach the loop's state
            out = images.clone() + 0.5 * masks
        elif self.mode == "bare-tensor":
            return out  # the images themselves, not wrapped in an InpaintResult
        return InpaintResult(images=out)


def _bad_run(tiny_config_data: dict, mode: str):
    _Bad.mode = mode
    tiny_config_data["models"] = [{"name": f"{__name__}:_Bad"}]
    tiny_config_data["batch_size"] = 8
    return _run(tiny_config_data)


def test_nan_output_is_recorded_as_failed_never_stable(tiny_config_data: dict) -> None:
    t = _bad_run(tiny_config_data, "nan").table
    bad = t[t["failed"]]
    assert bad["trajectory_id"].nunique() == 1 and (bad["failure"].str.startswith("nan")).all()
    assert (t.loc[~t["failed"], "failure"] == "").all()
    from ripbench.analysis import group_summary

    assert group_summary(t, at=(), n_boot=0)["failed"].sum() == 1


def test_out_of_range_output_is_recorded_with_its_range(tiny_config_data: dict) -> None:
    t = _bad_run(tiny_config_data, "255").table
    assert t.groupby("trajectory_id")["iteration"].max().eq(1).all()  # every trajectory stops at its first row
    assert t.loc[t["failed"], "failure"].str.fullmatch(r"out-of-range: output values in \[0, 2\d\d(\.\d+)?\], "
                                                       r"expected \[0, 1\]").all()


def test_wrong_shape_stops_the_run_with_one_line(tiny_config_data: dict) -> None:
    with pytest.raises(ModelContractError, match=r"returned images of \(8, 1, 32, 32\)"):
        _bad_run(tiny_config_data, "shape")


def test_bare_tensor_instead_of_a_result_stops_the_run_with_one_line(tiny_config_data: dict) -> None:
    with pytest.raises(ModelContractError, match=r"model 'bad' \(tests\.test_reliability\._Bad\) returned a bare "
                                                 r"tensor of shape \(8, 3, 32, 32\) from inpaint, not an InpaintResult"):
        _bad_run(tiny_config_data, "bare-tensor")
    import yaml

    config = Path(tiny_config_data["output_dir"]).parent / "bad.yaml"  # the same run from the command line
    config.write_text(yaml.safe_dump({**tiny_config_data, "name": "bare"}))
    res = CliRunner().invoke(main, ["run", str(config), "--no-progress"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "AttributeError" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.strip() and "ripbench: run" not in line]
    assert len(lines) == 1 and "not an InpaintResult" in lines[0], res.output


def test_extras_of_the_wrong_length_stop_the_run_with_one_line(tiny_config_data: dict) -> None:
    with pytest.raises(ModelContractError, match=r"extras\['score'\] must hold 8 values .* got 1"):
        _bad_run(tiny_config_data, "extras")


def test_plugin_exception_surfaces_as_itself(tiny_config_data: dict) -> None:
    with pytest.raises(RuntimeError, match="the plug-in's own bug") as err:
        _bad_run(tiny_config_data, "raises")
    assert any("raised by model 'bad'" in note and "at iteration 1" in note for note in err.value.__notes__)


def test_in_place_edit_does_not_corrupt_the_metrics(tiny_config_data: dict, tmp_path: Path) -> None:
    t = _bad_run(tiny_config_data, "in-place").table
    # the model zeroed its copy of the input: its output is 0 outside the mask, so mse to the original is big
    # there, while the loop's own state (the previous image) was untouched: mse_prev_outside is measured
    # against the true previous image, not against a zeroed one
    later = t[t["iteration"] > 0]
    assert (later["mse_orig_outside"] > 0).all()
    first_step = t[t["iteration"] == 1]
    np.testing.assert_allclose(first_step["mse_prev_outside"], first_step["mse_orig_outside"])


def test_cuda_out_of_memory_halves_the_batch(tiny_config_data: dict) -> None:
    class _Oom(Inpainter):
        name = "oom"

        def inpaint(self, images, masks, seeds):
            if images.shape[0] > 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return InpaintResult(images=images * (1 - masks) + 0.5 * masks)

    import tests.test_reliability as here

    here._Oom = _Oom
    tiny_config_data["models"] = [{"name": f"{__name__}:_Oom"}]
    tiny_config_data["batch_size"] = 8
    with pytest.warns(UserWarning, match="CUDA out of memory with 8 trajectories .* retrying with 4"):
        result = _run(tiny_config_data)
    assert result.manifest["batch_size_run"]["oom"] == 2  # labelled by its declared name
    assert result.table["trajectory_id"].nunique() == 8 and not result.table["failed"].any()


# ------------------------------------------------------------------------------------------ bad inputs


def _write(path: Path, array: np.ndarray, **kw) -> Path:
    Image.fromarray(array, **kw).save(path)
    return path


def test_image_modes_convert_correctly(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    ramp = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    tifffile.imwrite(tmp_path / "float.tif", ramp)
    tifffile.imwrite(tmp_path / "rgb16.tif", (np.stack([ramp] * 3, -1) * 65535).astype(np.uint16))
    Image.fromarray(ramp, mode="F").save(tmp_path / "pil-float.tif")
    gray16 = Image.fromarray((ramp * 65535).astype(np.uint16))
    gray16.save(tmp_path / "gray16.png")
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128
    _write(tmp_path / "rgba.png", rgba)
    Image.fromarray((ramp * 255).astype(np.uint8)).convert("P").save(tmp_path / "palette.png")
    Image.fromarray((np.stack([ramp] * 3, -1) * 255).astype(np.uint8)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    for name in ("float.tif", "rgb16.tif", "pil-float.tif", "gray16.png", "palette.png", "cmyk.jpg"):
        img = load_image(tmp_path / name, size=32, fit="resize")
        mean = img.pixels.mean().item()
        assert 0.4 < mean < 0.6, (name, mean, img.notes)  # a ramp from 0 to 1: mean 0.5, never black
    # an opaque palette image is noted as what happened to it, not as composited on white
    assert load_image(tmp_path / "palette.png", size=32).notes[0] == "palette -> RGB"
    red_on_white = load_image(tmp_path / "rgba.png", size=32).pixels[:, 16, 16]
    assert red_on_white[0] > 0.99 and 0.45 < red_on_white[1] < 0.55  # composited on white


def test_transparent_pixels_are_composited_on_white_in_every_mode(tmp_path: Path) -> None:
    """LA (grey + alpha) like RGBA; palette images with a transparent index too (PNG and GIF)."""
    la = np.zeros((32, 32, 2), np.uint8)   # black...
    la[..., 1] = 255
    la[:16, :, 1] = 0                      # top half fully transparent
    la[16:, :16, 1] = 128                  # bottom-left half transparent
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    img = load_image(tmp_path / "la.png", size=32)
    assert "greyscale+alpha -> RGB (composited on white)" in img.notes
    px = img.pixels
    assert torch.all(px[:, :16] == 1.0) and torch.all(px[:, 16:, 16:] == 0.0)
    assert torch.allclose(px[:, 16:, :16], torch.full_like(px[:, 16:, :16], 127 / 255), atol=0.01)
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 16, 32, 32))      # bottom half red, top half index 0 = transparent black
    palette.save(tmp_path / "p.png", transparency=0)
    palette.save(tmp_path / "p.gif", transparency=0)
    for name in ("p.png", "p.gif"):
        px = load_image(tmp_path / name, size=32).pixels
        assert torch.all(px[:, :16] == 1.0), name  # transparent -> white, not black
        assert torch.all(px[0, 16:] == 1.0) and torch.all(px[1:, 16:] == 0.0), name


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # white left half of a landscape image
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    loaded = load_image(tmp_path / "rot.jpg", size=40, fit="pad")
    assert "EXIF orientation 6 applied" in loaded.notes
    assert loaded.pixels.shape[1:] == (40, 40)
    top, bottom = loaded.pixels[:, 2:18, 20].mean(), loaded.pixels[:, 22:38, 20].mean()
    assert top > 0.9 and bottom < 0.1  # displayed upright: the white half is on top
    img.save(tmp_path / "plain.jpg")  # no EXIF at all
    exif[0x0112] = 1  # EXIF saying "as stored": nothing to undo
    img.save(tmp_path / "upright.jpg", exif=exif.tobytes())
    for name in ("plain.jpg", "upright.jpg"):
        notes = load_image(tmp_path / name, size=40, fit="pad").notes
        assert not any("EXIF" in note for note in notes), (name, notes)


@pytest.mark.parametrize("kind", ["truncated", "bomb", "not-an-image"])
def test_unreadable_images_are_one_line_naming_the_file(tmp_path: Path, kind: str, monkeypatch) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    good = _write(folder / "good.png", np.zeros((32, 32, 3), np.uint8))
    path = folder / "bad.png"
    if kind == "truncated":
        data = good.read_bytes()
        _write(path, (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
        path.write_bytes(path.read_bytes()[: len(data) // 2 + 200])
    elif kind == "bomb":
        _write(path, np.zeros((200, 200, 3), np.uint8))
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    else:
        path.write_text("hello")
    with pytest.raises(InputError, match=r"bad\.png"):
        load_image(path, size=32)
    out = tmp_path / "res"
    res = CliRunner().invoke(main, ["run", "--model", "biharmonic", "--images", str(folder), "--size", "32", "-n", "1",
                                    "--set", "metrics.names=[mse]", "--output-dir", str(out), "--no-progress"])
    assert res.exit_code == 2 and "bad.png" in res.output and "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1
    assert not out.exists() or not any(out.iterdir())


def _png_bomb(path: Path, side: int = 20_000) -> Path:
    """A 1-bit PNG of side x side pixels (4e8, over twice Pillow's limit) in about 50 kB: a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(bytes(side * (1 + side // 8)), 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("kind", ["bomb", "warning-size", "not-an-image"])
def test_unreadable_mask_files_are_one_line_naming_the_file(tmp_path: Path, kind: str, monkeypatch) -> None:
    from ripbench.masks import load_mask_png

    folder = tmp_path / "masks"
    folder.mkdir()
    good = np.zeros((32, 32), np.uint8)
    good[8:16, 8:16] = 255
    _write(folder / "a.png", good)
    path = folder / "bad.png"
    if kind == "bomb":
        _png_bomb(path)
    elif kind == "warning-size":  # over the limit but under twice it: Pillow only warns; refused all the same
        _write(path, np.zeros((48, 48), np.uint8))
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    else:
        path.write_text("hello")
    with pytest.raises(InputError, match=r"mask file .*bad\.png" if kind != "not-an-image" else r"bad\.png"):
        load_mask_png(path)
    images = tmp_path / "imgs"
    images.mkdir()
    _write(images / "img.png", np.zeros((32, 32, 3), np.uint8))
    out = tmp_path / "res"
    res = CliRunner().invoke(main, ["run", "--model", "biharmonic", "--mask", f"folder:{folder}", "--size", "32",
                                    "--images", str(images), "-n", "1", "--set", "metrics.names=[mse]",
                                    "--output-dir", str(out), "--no-progress"])
    assert res.exit_code == 2 and "bad.png" in res.output and "Traceback" not in res.output, res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1
    if kind != "not-an-image":
        assert "too large to decode safely" in res.output


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", ".hidden", ".."])
def test_run_names_stay_inside_the_output_folder(tmp_path: Path, name: str) -> None:
    res = CliRunner().invoke(main, ["run", "--model", "biharmonic", "--name", name, "--output-dir",
                                    str(tmp_path / "res"), "--no-progress"])
    assert res.exit_code == 2 and "plain folder name" in res.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "res").exists()


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    bomb = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"]
                     + [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
                        for p, c in zip("abcdefgh", "bcdefghi")]) + "\nname: bomb\n"
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    start = time.perf_counter()
    res = CliRunner().invoke(main, ["config", str(path)])
    assert res.exit_code == 2 and "expands to more than" in res.output
    assert time.perf_counter() - start < 10
    with pytest.raises(ConfigError, match="expands to more than"):
        from ripbench.config import apply_overrides, load_preset

        apply_overrides(load_preset("quick"), ["description=" + "{a: &a [1,1,1,1,1,1,1,1,1,1], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]}"])


def test_unknown_config_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nitrations: 3\n")
    res = CliRunner().invoke(main, ["config", str(path)])
    assert res.exit_code == 2 and "itrations: unknown field" in res.output


def test_resumed_table_equals_uninterrupted(tiny_config_data: dict, tmp_path: Path) -> None:
    whole = _run(tiny_config_data).table.drop(columns=TIMING_COLUMNS)
    tiny_config_data["output_dir"] = str(tmp_path / "again")
    part = _run(tiny_config_data)
    RunStore(part.run_dir).part_files()[-1].unlink()
    pd.testing.assert_frame_equal(whole, _run(tiny_config_data).table.drop(columns=TIMING_COLUMNS))


def test_report_says_when_a_run_is_not_complete(tiny_config_data: dict, tmp_path: Path) -> None:
    from ripbench.report import write_report

    run_dir = _run(tiny_config_data).run_dir
    store = RunStore(run_dir)
    manifest = store.read_manifest()
    manifest["status"] = "interrupted"
    store.write_manifest(manifest)
    html = write_report(run_dir, tmp_path / "report", n_boot=20)["html"].read_text()
    assert "is interrupted, not complete" in html
