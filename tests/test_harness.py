"""The recursive loop: schema, determinism, batching, resume, failure handling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ripbench.config import validate_config
from ripbench.errors import ResultsError
from ripbench.models import Inpainter, InpaintResult
from ripbench.run import TIMING_COLUMNS, run_experiment
from ripbench.store import RunStore, load_table


def _run(data: dict, **kw):
    return run_experiment(validate_config(data), progress=False, **kw)


def test_table_schema_and_shape(tiny_config_data):
    result = _run(tiny_config_data)
    t = result.table
    # 2 images x 2 masks x 2 seeds trajectories, iterations 0..3
    assert t["trajectory_id"].nunique() == 8
    assert len(t) == 8 * 4
    for col in ["trajectory_id", "model", "image_id", "category", "mask_policy", "mask_label", "seed",
                "iteration", "mask_area", "mask_y0", "mask_x0", "mask_y1", "mask_x1", "cum_mask_area",
                "ssim_orig", "ssim_orig_current", "ssim_orig_outside", "ssim_prev", "ssim_prev_current", "ssim_prev_outside",
                "psnr_orig", "mse_orig", "mse_prev_outside", "failed", *TIMING_COLUMNS]:
        assert col in t.columns, col
    assert set(t["mask_label"]) == {"grid-8", "grid-16"}
    assert set(t["category"]) == {"portrait", "object"}
    first = t[t["iteration"] == 0]
    assert (first["mse_orig"] == 0).all() and (first["ssim_orig"] == 1).all()
    later = t[t["iteration"] > 0]
    # grid squares: area exactly s^2 / 32^2, box consistent with area
    g8 = later[later["mask_label"] == "grid-8"]
    assert np.allclose(g8["mask_area"], 64 / 1024)
    assert ((g8["mask_y1"] - g8["mask_y0"]) == 8).all() and ((g8["mask_x1"] - g8["mask_x0"]) == 8).all()
    assert first[["mask_y0", "mask_x0", "mask_y1", "mask_x1"]].isna().all().all()
    assert str(t["mask_y0"].dtype) == "Int64"
    # biharmonic only touches the mask: outside it nothing changes from the previous iteration
    assert np.allclose(later["mse_prev_outside"], 0.0, atol=1e-12)
    # the fill differs from the original (the previous image can match it when a square repeats)
    assert (later["mse_orig_current"] > 0).all()
    # drift to the original accumulates
    mean = t.groupby("iteration")["mse_orig"].mean()
    assert mean.iloc[-1] >= mean.iloc[1] > 0
    assert not t["failed"].any()
    # files
    assert (result.run_dir / "manifest.json").is_file()
    assert result.manifest["status"] == "complete"
    assert result.manifest["models"]["biharmonic"]["name"] == "biharmonic"
    snaps = sorted(p.name for p in (result.run_dir / "images").iterdir())
    assert len(snaps) == 8
    one = result.run_dir / "images" / snaps[0]
    assert (one / "iter_0000.png").is_file() and (one / "iter_0003.png").is_file()
    assert (one / "mask_0003.png").is_file()


def test_same_config_same_table(tiny_config_data, tmp_path):
    a = _run(tiny_config_data).table.drop(columns=TIMING_COLUMNS)
    tiny_config_data["output_dir"] = str(tmp_path / "other")
    tiny_config_data["batch_size"] = 5  # batching must not change results
    b = _run(tiny_config_data).table.drop(columns=TIMING_COLUMNS)
    pd.testing.assert_frame_equal(a, b)


def test_resume_skips_finished_and_refuses_other_config(tiny_config_data):
    first = _run(tiny_config_data)
    store = RunStore(first.run_dir)
    parts = store.part_files()
    parts[0].unlink()  # as if the run had been killed before writing this batch
    lost = 8 - len(store.finished_trajectories())
    assert lost > 0
    again = _run(tiny_config_data)
    assert again.skipped == 8 - lost
    pd.testing.assert_frame_equal(again.table.drop(columns=TIMING_COLUMNS),
                                  first.table.drop(columns=TIMING_COLUMNS))
    assert again.manifest["resumed"]
    tiny_config_data["iterations"] = 4
    with pytest.raises(ResultsError, match="different config"):
        _run(tiny_config_data)
    assert len(_run(tiny_config_data, overwrite=True).table) == 8 * 5


class _Interrupting(Inpainter):
    """Raises KeyboardInterrupt at its n-th call (simulates Ctrl-C mid-run)."""

    name = "interrupting"
    calls = 0
    stop_at = 0

    def inpaint(self, images, masks, seeds):
        type(self).calls += 1
        if type(self).calls == type(self).stop_at:
            raise KeyboardInterrupt
        return InpaintResult(images=images * (1 - masks) + 0.5 * masks)


def test_ctrl_c_keeps_finished_batches(tiny_config_data):
    tiny_config_data["models"] = [{"name": f"{__name__}:_Interrupting"}]
    tiny_config_data["batch_size"] = 2
    _Interrupting.calls, _Interrupting.stop_at = 0, 3 * 2 + 2  # during the third batch
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_config_data)
    run_dir = validate_config(tiny_config_data).output_dir / "tiny"
    assert RunStore(run_dir).read_manifest()["status"] == "interrupted"
    assert len(RunStore(run_dir).finished_trajectories()) == 4
    assert not list(run_dir.rglob("*.tmp*"))
    result = _run(tiny_config_data)
    assert result.skipped == 4 and result.table["trajectory_id"].nunique() == 8


class _FailsOnSecondItem(Inpainter):
    name = "nan-maker"

    def inpaint(self, images, masks, seeds):
        out = images * (1 - masks) + 0.25 * masks
        failed = torch.zeros(len(seeds), dtype=torch.bool)
        failed[1] = True
        out[1] = float("nan")
        return InpaintResult(images=out, failed=failed, extras={"reason": ["", "nan"] + [""] * (len(seeds) - 2)})


def test_failed_trajectory_stops_and_is_recorded(tiny_config_data):
    tiny_config_data["models"] = [{"name": f"{__name__}:_FailsOnSecondItem"}]
    tiny_config_data["batch_size"] = 8
    t = _run(tiny_config_data).table
    per = t.groupby("trajectory_id")["iteration"].max()
    assert (per == 1).sum() == 1 and (per == 3).sum() == 7
    bad = t[t["failed"]]
    assert len(bad) == 1 and bad["reason"].iloc[0] == "nan"


def test_load_table_attaches_manifest(tiny_config_data):
    run_dir = _run(tiny_config_data).run_dir
    t = load_table(run_dir)
    assert t.attrs["manifest"]["fingerprint"] == validate_config(tiny_config_data).fingerprint()
    with pytest.raises(ResultsError):
        load_table(run_dir / "nope")


def test_same_mask_twice_is_refused_before_writing(tiny_config_data):
    from ripbench.errors import ConfigError

    tiny_config_data["masks"] = [{"policy": "grid", "size": 8}, {"policy": "grid", "size": 8}]
    with pytest.raises(ConfigError, match="share the id"):
        _run(tiny_config_data)
    assert not (validate_config(tiny_config_data).output_dir / "tiny").exists()


def test_images_too_small_for_lpips_are_refused(tiny_config_data):
    from ripbench.errors import ConfigError

    tiny_config_data["size"] = 24
    tiny_config_data["metrics"] = {"names": ["lpips"], "lpips_net": "alex"}
    with pytest.raises(ConfigError, match="too small for LPIPS-alex"):
        _run(tiny_config_data)


def test_corrupt_part_is_a_clear_error(tiny_config_data):
    run = _run(tiny_config_data)
    RunStore(run.run_dir).part_files()[0].write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="corrupt results part"):
        _run(tiny_config_data)


def test_resume_refuses_rows_made_with_other_model_settings():
    from ripbench.run.experiment import _check_same

    before = {"name": "m", "dtype": "float16", "device": "cuda:0"}
    _check_same(before, {"name": "m", "dtype": "float16", "device": "cpu"}, "model 'm'", True)  # device only
    _check_same(before, {"name": "m", "dtype": "float32"}, "model 'm'", False)  # nothing finished yet
    with pytest.raises(ResultsError, match=r"model 'm' differs .*\(dtype\)"):
        _check_same(before, {"name": "m", "dtype": "float32", "device": "cpu"}, "model 'm'", True)


def test_background_writer_raises_a_failed_write_in_the_callers_thread(tmp_path):
    from ripbench.io import BackgroundWriter, atomic_write_text

    def broken(path):
        raise OSError(f"disk full while writing {path}")

    writer = BackgroundWriter(max_pending=2)
    writer.submit(atomic_write_text, tmp_path / "first.txt", "ok")
    writer.submit(broken, tmp_path / "second.txt")
    writer.submit(atomic_write_text, tmp_path / "third.txt", "skipped")  # may still be queued
    with pytest.raises(ResultsError, match=r"cannot write .*second\.txt: disk full"):
        writer.flush()
    with pytest.raises(ResultsError, match="second.txt"):  # once failed, the writer stays failed
        writer.close()
    assert (tmp_path / "first.txt").read_text() == "ok" and not (tmp_path / "third.txt").exists()
    # leaving a block on an exception waits for the queue and keeps the original exception
    with pytest.raises(KeyError) as info:
        with BackgroundWriter() as writer:
            writer.submit(broken, tmp_path / "fourth.txt")
            raise KeyError("the loop's own error")
    assert any("disk full" in note for note in info.value.__notes__)


class _BadOutput(Inpainter):
    """Its third item's output is in 0..255: flagged out of range, but never stops the loop on the host."""

    name = "bad-range"

    def inpaint(self, images, masks, seeds):
        out = images * (1 - masks) + 0.5 * masks
        out[2] = out[2] * 255
        return InpaintResult(images=out, extras={"note": torch.arange(len(seeds))})


def test_device_extras_and_out_of_range_outputs_reach_the_table(tiny_config_data):
    tiny_config_data["models"] = [{"name": f"{__name__}:_BadOutput"}]
    tiny_config_data["batch_size"] = 4
    table = _run(tiny_config_data).table
    first = table[table["iteration"] == 1].sort_values("trajectory_id")
    assert first["failure"].str.startswith("out-of-range").sum() == 2  # item 2 of both batches
    assert set(table.loc[table["iteration"] > 0, "note"]) == {0, 1, 2, 3}  # a tensor extra, read at the end
