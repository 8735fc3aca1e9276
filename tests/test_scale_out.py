"""Several processes on one run (issue 12): sharding, one table whatever the process count, resume across counts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ripbench.run import TIMING_COLUMNS
from ripbench.run.distributed import Ranks, shard_of
from ripbench.store import RunStore

REPO = Path(__file__).resolve().parents[1]
ARGS = ["run", "--model", "biharmonic", "--size", "32", "-n", "3", "--mask", "grid:8", "--mask", "grid:16",
        "--seeds", "0,1", "--set", "inputs.names=[astronaut,coffee,chelsea]", "--set", "metrics.names=[ssim,mse]",
        "--batch-size", "2", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _launch(processes: int, out: Path, *extra: str, timeout: int = 240) -> subprocess.CompletedProcess:
    bindir = Path(sys.executable).parent
    if processes == 1:
        cmd = [sys.executable, "-m", "ripbench", *ARGS]
    else:  # accelerate's --cpu launcher starts one process without MPI; --multi_gpu spawns N, on CPU too
        cmd = [str(bindir / "accelerate"), "launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "ripbench", *ARGS]
    cmd += ["--output-dir", str(out), "--name", "dist", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=out.parent)


def test_shards_cover_every_trajectory_once() -> None:
    ids = [f"m__img{i}__grid-8__s{s}" for i in range(40) for s in range(3)]
    for world in (1, 2, 3, 8):
        owners = [[r for r in range(world) if Ranks(rank=r, world_size=world).owns(t)] for t in ids]
        assert all(len(o) == 1 for o in owners)
    assert {shard_of(t, 2) for t in ids} == {0, 1}  # both ranks get work


@pytest.mark.slow
def test_two_processes_give_the_one_process_table(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    one = _launch(1, tmp_path / "one")
    assert one.returncode == 0, one.stderr[-2000:]
    two = _launch(2, tmp_path / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    a = RunStore(tmp_path / "one" / "dist").load_table().drop(columns=TIMING_COLUMNS)
    b_store = RunStore(tmp_path / "two" / "dist")
    b = b_store.load_table().drop(columns=TIMING_COLUMNS)
    pd.testing.assert_frame_equal(a, b)  # load_table also refuses duplicated rows
    manifest = b_store.read_manifest()
    assert manifest["world_size"] == 2 and manifest["status"] == "complete"
    assert manifest["models"]["biharmonic"]["name"] == "biharmonic"
    assert two.stdout.count("results table:") == 1  # only rank 0 reports


@pytest.mark.slow
def test_two_process_run_killed_midway_resumes_with_one(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    reference = _launch(1, tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr[-2000:]
    killed = tmp_path / "killed"
    done = _launch(2, killed)
    assert done.returncode == 0, done.stderr[-3000:]
    store = RunStore(killed / "dist")
    parts = store.part_files()
    for part in parts[: len(parts) // 2]:  # as if both ranks had been killed half-way
        part.unlink()
    again = _launch(1, killed)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already finished" in again.stdout
    pd.testing.assert_frame_equal(RunStore(tmp_path / "ref" / "dist").load_table().drop(columns=TIMING_COLUMNS),
                                  store.load_table().drop(columns=TIMING_COLUMNS))
    assert [launch["world_size"] for launch in store.read_manifest()["launches"]] == [2, 1]
