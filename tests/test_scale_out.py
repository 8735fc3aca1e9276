"""Several processes on one run (issue 12): sharding, one table whatever the process count, resume across counts;
two nodes simulated on one machine, and one of them dying mid-run (issue 21)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from ripbench.models import Inpainter, InpaintResult
from ripbench.run import TIMING_COLUMNS
from ripbench.run.distributed import Ranks, shard_of
from ripbench.store import RunStore

REPO = Path(__file__).resolve().parents[1]


class PausingFill(Inpainter):
    """Fills the mask with the mean of the rest; sleeps ``RIPBENCH_TEST_PAUSE`` seconds per call (no CPU), so a
    test can stop a node while it is mid-run. The pause is not an option, so it does not change the config."""

    name = "pausing-fill"
    returns_x0_trajectory = False

    def inpaint(self, images: torch.Tensor, masks: torch.Tensor, seeds: object, **_: object) -> InpaintResult:
        time.sleep(float(os.environ.get("RIPBENCH_TEST_PAUSE", "0") or 0))
        keep = 1 - masks
        mean = (images * keep).sum(dim=(2, 3), keepdim=True) / keep.sum(dim=(2, 3), keepdim=True).clamp_min(1)
        return InpaintResult(images=images * keep + mean * masks)


#: PausingFill (below): a fast deterministic model that can be told to take its time.
ARGS = ["run", "--model", "tests.test_scale_out:PausingFill", "--size", "32", "-n", "3", "--mask", "grid:8", "--mask", "grid:16",
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


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The table of one process: what every launch below must give."""
    out = tmp_path_factory.mktemp("one")
    done = _launch(1, out)
    assert done.returncode == 0, done.stderr[-2000:]
    table = RunStore(out / "dist").load_table().drop(columns=TIMING_COLUMNS)
    assert RunStore(out / "dist").read_manifest()["nodes"] == 1
    return table


def test_shards_cover_every_trajectory_once() -> None:
    ids = [f"m__img{i}__grid-8__s{s}" for i in range(40) for s in range(3)]
    for world in (1, 2, 3, 8):
        owners = [[r for r in range(world) if Ranks(rank=r, world_size=world).owns(t)] for t in ids]
        assert all(len(o) == 1 for o in owners)
    assert {shard_of(t, 2) for t in ids} == {0, 1}  # both ranks get work


def test_the_final_meeting_gives_up_on_a_silent_rank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rank whose heartbeat stops (its node vanished without closing its connections) is given up with one line,
    not waited for until the process group's timeout; a rank that keeps beating is waited for."""
    import torch.distributed as dist

    from ripbench.errors import LaunchError
    from ripbench.run.distributed import Heartbeat

    class Pending:  # a barrier the other rank reaches after ``after`` seconds (never: inf)
        def __init__(self, after: float) -> None:
            self.end = time.monotonic() + after

        def is_completed(self) -> bool:
            return time.monotonic() > self.end

        def wait(self) -> bool:
            return True

    me = Ranks(rank=0, world_size=2)
    other = Heartbeat(tmp_path, Ranks(rank=1, world_size=2), "launch", every=0.05).start()
    monkeypatch.setattr(dist, "barrier", lambda async_op=False: Pending(1.0))
    me.meet(Heartbeat(tmp_path, me, "launch", silent_after=0.3), poll=0.05)  # still beating: waited for, 1 s
    other.stop()  # the other node is gone, its connections left open
    monkeypatch.setattr(dist, "barrier", lambda async_op=False: Pending(float("inf")))
    started = time.monotonic()
    with pytest.raises(LaunchError, match=r"rank 0 gave up waiting for rank\(s\) 1 at the end of the run: silent for "
                                          r"0.005 minutes .*run the same command again, with any number of nodes"):
        me.meet(Heartbeat(tmp_path, me, "launch", silent_after=0.3), poll=0.05)
    assert 0.3 < time.monotonic() - started < 5


@pytest.mark.slow
def test_two_processes_give_the_one_process_table(tmp_path: Path, one_process: pd.DataFrame) -> None:
    pytest.importorskip("accelerate")
    two = _launch(2, tmp_path / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    b_store = RunStore(tmp_path / "two" / "dist")
    b = b_store.load_table().drop(columns=TIMING_COLUMNS)
    pd.testing.assert_frame_equal(one_process, b)  # load_table also refuses duplicated rows
    manifest = b_store.read_manifest()
    assert manifest["world_size"] == 2 and manifest["nodes"] == 1 and manifest["status"] == "complete"
    assert list(manifest["models"]) == ["pausing-fill"]  # the declared name labels the model
    assert two.stdout.count("results table:") == 1  # only rank 0 reports


@pytest.mark.slow
def test_two_process_run_killed_midway_resumes_with_one(tmp_path: Path, one_process: pd.DataFrame) -> None:
    pytest.importorskip("accelerate")
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
    pd.testing.assert_frame_equal(one_process, store.load_table().drop(columns=TIMING_COLUMNS))
    assert [launch["world_size"] for launch in store.read_manifest()["launches"]] == [2, 1]


# -- two nodes on one machine -------------------------------------------------------------------------------

def _node(out: Path, port: int, log: Path, **env: str) -> subprocess.Popen:
    """One node of a two-node launch: its own torchrun with one process, meeting the other at localhost:port
    (the c10d rendezvous assigns the ranks; --node_rank is only for the static one)."""
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--nnodes", "2", "--nproc_per_node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{port}", "--max-restarts", "0",
           "-m", "ripbench", *ARGS, "--output-dir", str(out), "--name", "dist"]
    with log.open("w") as sink:  # the child keeps its own copy of the file
        return subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env={**_env(), **env}, cwd=out)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its workers in their own sessions)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _kill_node(proc: subprocess.Popen) -> None:
    """The node is gone: its launcher and every process under it killed at once."""
    for pid in [*_descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(30)


def _wait_for(check: object, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


#: Test stand-ins for SLURM's commands: srun starts its command once per node, side by side, each with its
#: own log (SLURM_NODEID set, srun's own options skipped); scontrol names this machine as every node.
FAKE_SRUN = """#!/bin/bash
while [[ $1 == --* ]]; do shift; done
pids=()
for ((node = 0; node < SLURM_NNODES; node++)); do
    SLURM_NODEID=$node SLURM_PROCID=$node "$@" > "$SRUN_LOGS/node$node.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
"""
FAKE_SCONTROL = "#!/bin/bash\necho localhost\n"


@pytest.mark.slow
def test_two_nodes_from_the_slurm_example_give_the_one_process_table(tmp_path: Path, one_process: pd.DataFrame) -> None:
    """examples/slurm/ripbench.sbatch on two simulated nodes: two torchrun --nnodes 2 launches side by side (c10d
    rendezvous on localhost), one process each, give the one-process table, and the manifest says two nodes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**_env(), "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]),
           "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_JOB_ID": "4242",
           "RDZV_PORT": str(_free_port()), "OUTPUT_DIR": str(tmp_path), "SRUN_LOGS": str(tmp_path)}
    job = subprocess.run(["bash", str(REPO / "examples" / "slurm" / "ripbench.sbatch"), *ARGS[1:], "--name", "dist"],
                         capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    logs = [(tmp_path / f"node{i}.log").read_text() for i in range(2)]
    assert job.returncode == 0, job.stderr[-2000:] + "\n".join(log[-3000:] for log in logs)
    store = RunStore(tmp_path / "dist")
    pd.testing.assert_frame_equal(one_process, store.load_table().drop(columns=TIMING_COLUMNS))
    manifest = store.read_manifest()
    assert (manifest["nodes"], manifest["world_size"], manifest["status"]) == (2, 2, "complete")
    assert [(launch["nodes"], launch["world_size"]) for launch in manifest["launches"]] == [(2, 2)]
    assert sum(log.count("results table:") for log in logs) == 1  # only rank 0 reports
    assert not (tmp_path / ".dist.ranks").exists()  # the heartbeats are cleared away after a complete run


@pytest.mark.slow
def test_a_node_dying_mid_run_stops_the_other_with_one_line_and_the_run_resumes(
        tmp_path: Path, one_process: pd.DataFrame) -> None:
    """Node B (launcher and worker) is killed mid-run: node A stops by itself, at once, with one line saying what
    happened and how to resume (not a hang at the final meeting); one process then finishes the run, and its
    table is the one-process table."""
    port = _free_port()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = _node(tmp_path, port, logs[0], RIPBENCH_TEST_PAUSE="0.3")
    b = None
    try:
        _wait_for(lambda: _listening(port) or a.poll() is not None, "node A's rendezvous store")  # A hosts it
        b = _node(tmp_path, port, logs[1], RIPBENCH_TEST_PAUSE="0.3")
        metrics = tmp_path / "dist" / "metrics"
        _wait_for(lambda: any(metrics.glob("part-*.parquet")) or b.poll() is not None, "the first finished part")
        assert b.poll() is None, logs[1].read_text()[-3000:]
        _kill_node(b)
        started = time.monotonic()
        code = a.wait(120)  # a hang would time out here
        waited = time.monotonic() - started
    finally:
        for node in (a, b):
            if node is not None and node.poll() is None:
                _kill_node(node)
    text = logs[0].read_text()
    assert code != 0 and waited < 60, text[-3000:]
    lines = [line for line in text.splitlines() if line.startswith("ripbench: error:")]
    assert len(lines) == 1 and "lost contact with another process of this launch" in lines[0], text[-3000:]
    assert "run the same command again, with any number of nodes or processes, to resume" in lines[0]
    store = RunStore(tmp_path / "dist")
    finished = len(store.finished_trajectories())
    assert 0 < finished < one_process["trajectory_id"].nunique()  # stopped mid-run, finished work kept

    again = _launch(1, tmp_path)  # one process resumes what two nodes began
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resumed: {finished} finished trajectories were skipped" in again.stdout
    pd.testing.assert_frame_equal(one_process, store.load_table().drop(columns=TIMING_COLUMNS))
    launches = store.read_manifest()["launches"]
    assert [(launch["nodes"], launch["world_size"]) for launch in launches] == [(2, 2), (1, 1)]
