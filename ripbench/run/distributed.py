"""Several processes, one run: ranks, shards of trajectories, and the few messages ranks exchange.

Under ``accelerate launch --multi_gpu --num_processes N -m ripbench run ...`` or
``torchrun --nproc_per_node N -m ripbench run ...`` every process sees ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``. Each runs the trajectories of its **shard**: a stable
hash of the trajectory id modulo the world size, so any process count can resume any run
(the shard decides only who computes a trajectory, never its result: see
:mod:`ripbench.run.keys`). Ranks talk over ``torch.distributed`` (gloo, CPU tensors, small
Python objects only): they agree on the config before any work and meet at the end.
Rank 0 holds the folder's lock and writes the manifest; every rank writes its own
Parquet parts.

**A lost process** (its node died, it was killed): a meeting with it fails at once when its
connections close (the usual case: the kernel of a live node closes them, a dead node's peers see
them reset), and the others stop with one line (:class:`~ripbench.errors.LaunchError`) instead of
waiting. Ranks finish their shards at different times, so the final meeting cannot have a short
timeout; instead every process says it is alive (:class:`Heartbeat`: a counter in a file beside the
results folder, rewritten every :data:`HEARTBEAT_SECONDS`), and a process waiting at the final
meeting gives up on one that has been silent for :data:`SILENT_AFTER` (a node that vanished without
closing its connections). Finished trajectories are on disk either way; the same command, with any
number of nodes or processes, resumes the run.

Example
-------
>>> single = Ranks()
>>> single.world_size, single.is_main, single.owns("anything")
(1, True, True)
>>> [shard_of(t, 2) for t in ("a", "b", "c", "d")]
[0, 0, 0, 1]
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from ..errors import LaunchError
from ..io import atomic_write_text

__all__ = ["HEARTBEAT_SECONDS", "SILENT_AFTER", "Heartbeat", "Ranks", "ranks_from_env", "shard_of"]

#: How long a rank waits for the others at a meeting point other than the final one (which watches the
#: heartbeats instead): the process group's timeout.
MEETING_TIMEOUT = timedelta(hours=72)
#: Every process of a launch rewrites its heartbeat file this often.
HEARTBEAT_SECONDS = 15.0
#: A process whose heartbeat has not changed for this long is given up at the final meeting.
SILENT_AFTER = timedelta(minutes=10)

_RESUME = ("the trajectories finished so far are saved: run the same command again, with any number of nodes "
           "or processes, to resume")


def _lost(rank: int, where: str, exc: BaseException) -> LaunchError:
    """The one line for a meeting that failed because another process is gone."""
    detail = re.sub(r"^\[[^\]]*\]\s*", "", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    detail = detail.split(". ")[0].rstrip(".")
    return LaunchError(f"rank {rank} lost contact with another process of this launch at {where} (its node died "
                       f"or it was killed: {detail}); {_RESUME}")


def shard_of(trajectory_id: str, world_size: int) -> int:
    """The rank that computes ``trajectory_id`` among ``world_size`` processes (stable everywhere)."""
    digest = hashlib.sha256(trajectory_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % max(1, world_size)


@dataclass(frozen=True)
class Ranks:
    """This process's place in a launch (a single process by default): its rank among ``world_size``
    processes, its rank on its node, and the launch's node count."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    nodes: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: holds the lock, writes the manifest, shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def owns(self, trajectory_id: str) -> bool:
        """Whether this rank computes ``trajectory_id``."""
        return shard_of(trajectory_id, self.world_size) == self.rank

    def device(self, requested: str) -> str:
        """This rank's device: ``cuda:LOCAL_RANK`` for ``auto`` / ``cuda`` on a multi-GPU launch."""
        if self.distributed and requested in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return requested

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (``[obj]`` for a single process)."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        try:
            dist.all_gather_object(out, obj)
        except RuntimeError as exc:
            raise _lost(self.rank, "a meeting", exc) from None
        return out

    def from_main(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        try:
            dist.broadcast_object_list(box, src=0)
        except RuntimeError as exc:
            raise _lost(self.rank, "a meeting", exc) from None
        return box[0]

    def meet(self, heartbeat: Heartbeat | None = None, poll: float = 0.5) -> None:
        """Wait until every rank is here; with a ``heartbeat``, give up on a rank that has fallen silent
        (:data:`SILENT_AFTER`) instead of waiting for the process group's timeout."""
        if not self.distributed:
            return
        import torch.distributed as dist

        try:
            if heartbeat is None:
                dist.barrier()
                return
            work = dist.barrier(async_op=True)
            while not work.is_completed():
                silent = heartbeat.silent()
                if silent:
                    minutes = heartbeat.silent_after / 60
                    raise LaunchError(f"rank {self.rank} gave up waiting for rank(s) {', '.join(map(str, silent))} "
                                      f"at the end of the run: silent for {minutes:g} minutes (a node died or "
                                      f"hangs); {_RESUME}")
                time.sleep(poll)
            work.wait()
        except RuntimeError as exc:
            if isinstance(exc, LaunchError):
                raise
            raise _lost(self.rank, "the end of the run", exc) from None


class Heartbeat:
    """Says that this process is alive, and hears whether the other processes of its launch are.

    A background thread rewrites ``folder/rank-<rank>`` (``"<launch token> <counter>"``) every ``every``
    seconds; :meth:`silent` names the other ranks whose file has not changed for ``silent_after``
    seconds, measured on this process's own clock (no clock is compared across nodes). ``folder`` must be
    on a filesystem every node sees (the results folder's is).

    >>> import tempfile
    >>> now = [0.0]
    >>> folder = Path(tempfile.mkdtemp())
    >>> a = Heartbeat(folder, Ranks(0, 2), "t", silent_after=60, clock=lambda: now[0])
    >>> b = Heartbeat(folder, Ranks(1, 2), "t", silent_after=60, clock=lambda: now[0])
    >>> b.beat(); a.silent()
    []
    >>> now[0] = 61.0; a.silent()     # rank 1 has not beaten for 61 s
    [1]
    >>> b.beat(); a.silent()
    []
    """

    def __init__(self, folder: Path, ranks: Ranks, token: str, *, every: float = HEARTBEAT_SECONDS,
                 silent_after: float = SILENT_AFTER.total_seconds(), clock: Callable[[], float] = time.monotonic) -> None:
        self.folder, self.ranks, self.token = Path(folder), ranks, token
        self.every, self.silent_after, self.clock = every, silent_after, clock
        self._count = 0
        self._seen: dict[int, tuple[str | None, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """Write this rank's file once more."""
        self._count += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / f"rank-{self.ranks.rank}", f"{self.token} {self._count}")

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except OSError:  # a full or flaky disk: the others will call this rank silent in time
                pass

    def start(self) -> Heartbeat:
        """Beat now and then every ``every`` seconds in a daemon thread."""
        self.beat()
        self._thread = threading.Thread(target=self._run, name="ripbench-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def silent(self) -> list[int]:
        """The other ranks whose heartbeat has not changed for ``silent_after`` seconds (first call: none)."""
        now, out = self.clock(), []
        for rank in range(self.ranks.world_size):
            if rank == self.ranks.rank:
                continue
            try:
                text: str | None = (self.folder / f"rank-{rank}").read_text(encoding="utf-8")
            except OSError:
                text = None
            text = text if text is not None and text.split(" ")[0] == self.token else None
            before = self._seen.get(rank)
            if before is None or before[0] != text:
                self._seen[rank] = (text, now)
            elif now - before[1] > self.silent_after:
                out.append(rank)
        return out


def ranks_from_env() -> Ranks:
    """The launch this process belongs to, from ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``.

    With more than one process, joins (or reuses) the ``torch.distributed`` group over gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Ranks()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    # torchrun (and accelerate launch, which uses it) name the node count GROUP_WORLD_SIZE
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    nodes = int(os.environ.get("GROUP_WORLD_SIZE", "0") or 0) or (world // per_node if per_node else 1)
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=MEETING_TIMEOUT)
    return Ranks(rank=rank, world_size=world, local_rank=local, nodes=max(1, nodes))
