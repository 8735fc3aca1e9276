"""``ripbench run --report-to``: TensorBoard for real (event files read back), W&B / MLflow failing to start in one line."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # in the dev extra

import ripbench
from ripbench.cli import main

ARGS = ["run", "--model", "biharmonic", "-n", "3", "--size", "32", "--mask", "grid:16", "--mask", "grid:8",
        "--set", "metrics.names=[ssim,mse]", "--set", "inputs.names=[coffee,astronaut,camera]", "--batch-size", "2",
        "--name", "t", "--no-progress"]


def _events(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_gets_curves_progress_config_and_final_figures(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, [*ARGS, "--output-dir", str(tmp_path), "--report-to", "tensorboard"])
    assert res.exit_code == 0, res.output
    # the command says where the logs went and how to look at them; and "3 iterations", "1 model"
    logs = tmp_path / "tensorboard" / "t"
    assert f"tensorboard logs: {logs} (tensorboard --logdir {logs.parent})" in res.output
    assert "1 model, 6 trajectories, 3 iterations ->" in res.output
    events = _events(logs)
    scalars = set(events.Tags()["scalars"])
    table = ripbench.load(tmp_path / "t")
    for mask in ("grid-16", "grid-8"):
        group = table[(table["mask_label"] == mask) & ~table["failed"]]
        for column in ("mse_orig", "ssim_prev", "mse_orig_never", "ssim_orig_current"):  # every metric column
            logged = {e.step: e.value for e in events.Scalars(f"curve/{column}/biharmonic/{mask}")}
            expected = group.groupby("iteration")[column].mean().dropna()
            assert sorted(logged) == [int(i) for i in expected.index], column
            assert np.allclose([logged[int(i)] for i in expected.index], expected.to_numpy(), atol=1e-6), column
        final = events.Scalars(f"final/mse_orig@3/biharmonic/{mask}")
        assert len(final) == 1 and np.isclose(final[0].value, group[group["iteration"] == 3]["mse_orig"].mean())
        running = events.Scalars(f"running/mse_orig@3/biharmonic/{mask}")  # as the batches finished
        assert [e.step for e in running] == [1, 2, 3] and np.isclose(running[-1].value, final[0].value)
    assert [e.value for e in events.Scalars("progress/trajectories")] == [2, 4, 6]
    assert "figures/collapse_curves" in events.Tags()["images"]
    assert "config/text_summary" in events.Tags()["tensors"]
    assert not any("halluc" in tag for tag in scalars)  # biharmonic has no score: nothing made up


@pytest.mark.slow
def test_tensorboard_logs_the_hallucination_score(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, [
        "run", "--model", "shapes-ddpm", "-n", "2", "--set", "models.0.inputs.count=2",
        "--set", "models.0.options.steps=10", "--set", "hallucination.band=[0, 1.0]", "--set", "metrics.names=[mse]",
        "--name", "s", "--no-progress", "--output-dir", str(tmp_path), "--report-to", "tensorboard"])
    assert res.exit_code == 0, res.output
    events = _events(tmp_path / "tensorboard" / "s")
    table = ripbench.load(tmp_path / "s")
    (mask,) = table["mask_label"].unique()
    logged = {e.step: e.value for e in events.Scalars(f"curve/halluc_score/shapes-ddpm/{mask}")}
    expected = table.groupby("iteration")["halluc_score"].mean().dropna()
    assert sorted(logged) == [1, 2] and np.allclose([logged[1], logged[2]], expected.loc[[1, 2]].to_numpy())
    assert f"curve/halluc_score_current/shapes-ddpm/{mask}" in events.Tags()["scalars"]


def test_nothing_is_logged_without_report_to(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, [*ARGS, "--output-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "tensorboard logs" not in res.output
    assert not (tmp_path / "tensorboard").exists()
    assert not list(tmp_path.rglob("events.out.tfevents*"))


def _one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("ripbench: error:")]
    assert len(errors) == 1, output
    return errors[0]


def test_a_tracker_that_cannot_start_is_one_line_before_the_run(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    res = CliRunner().invoke(main, [*ARGS, "--output-dir", str(tmp_path), "--report-to", "wandb"])
    assert res.exit_code == 2 and "needs the 'wandb' package" in _one_error_line(res.output)
    assert not (tmp_path / "t").exists()  # the run did not start

    from ripbench import trackers

    monkeypatch.setitem(sys.modules, "wandb", types.ModuleType("wandb"))  # installed, but no network, online
    monkeypatch.setattr(trackers, "_reachable", lambda url, timeout=3.0: False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    res = CliRunner().invoke(main, [*ARGS, "--output-dir", str(tmp_path), "--report-to", "tensorboard",
                                    "--report-to", "wandb"])
    line = _one_error_line(res.output)
    assert res.exit_code == 2 and "cannot reach" in line and "WANDB_MODE=offline" in line
    assert not (tmp_path / "t").exists() and not list(tmp_path.rglob("events.out.tfevents*"))

    monkeypatch.setitem(sys.modules, "mlflow", None)
    res = CliRunner().invoke(main, [*ARGS, "--output-dir", str(tmp_path), "--report-to", "mlflow"])
    assert res.exit_code == 2 and "needs the 'mlflow' package" in _one_error_line(res.output)


class _FakeRun:
    """What W&B's run object is asked to do (offline mode is W&B's own business)."""

    def __init__(self) -> None:
        self.logged: list[dict] = []
        self.config = types.SimpleNamespace(update=lambda values, **kw: self.logged.append({"config": values}))

    def define_metric(self, name: str, step_metric: str | None = None) -> None:
        pass

    def log(self, values: dict) -> None:
        self.logged.append(values)

    def finish(self) -> None:
        self.logged.append({"finished": True})


def test_wandb_offline_gets_curves_on_its_own_axis_and_only_rank_0_logs(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    run = _FakeRun()
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: run  # type: ignore[attr-defined]
    fake.Image = lambda path: ("image", path)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "offline")
    res = CliRunner().invoke(main, [*ARGS, "--output-dir", str(tmp_path), "--report-to", "wandb"])
    assert res.exit_code == 0, res.output
    assert run.logged[0]["config"]["iterations"] == 3 and run.logged[-1] == {"finished": True}
    curve = [e for e in run.logged if "curve/mse_orig/biharmonic/grid-16" in e]
    assert [e["iteration"] for e in curve] == [0, 1, 2, 3]

    # another rank of a launch: the CLI starts no tracker and passes none to the run
    import ripbench.run

    seen = {}

    def fake_run(config, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(ripbench.run, "run_experiment", fake_run)
    monkeypatch.setenv("RANK", "1")
    run.logged.clear()
    CliRunner().invoke(main, [*ARGS, "--output-dir", str(tmp_path / "r1"), "--report-to", "wandb"])
    assert "tracker" in seen and seen["tracker"] is None and run.logged == []


def test_a_resumed_run_logs_curves_from_the_whole_table(tmp_path: Path) -> None:
    """The second launch sees only the trajectories it computes; its curves still average every trajectory."""
    from ripbench.store import RunStore

    first = CliRunner().invoke(main, [*ARGS, "--output-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    RunStore(tmp_path / "t").part_files()[0].unlink()  # interrupted: one batch to compute again
    res = CliRunner().invoke(main, [*ARGS, "--output-dir", str(tmp_path), "--report-to", "tensorboard"])
    assert res.exit_code == 0 and "already finished" in res.output, res.output
    events = _events(tmp_path / "tensorboard" / "t")
    table = ripbench.load(tmp_path / "t")
    for mask in ("grid-16", "grid-8"):
        logged = {e.step: e.value for e in events.Scalars(f"curve/mse_orig/biharmonic/{mask}")}
        expected = table[table["mask_label"] == mask].groupby("iteration")["mse_orig"].mean()
        assert np.allclose([logged[i] for i in range(4)], expected.loc[list(range(4))].to_numpy())
