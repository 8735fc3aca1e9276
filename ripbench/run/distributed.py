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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

__all__ = ["Ranks", "ranks_from_env", "shard_of"]

#: How long a rank waits for the others at a meeting point (ranks finish their shards at different times).
MEETING_TIMEOUT = timedelta(hours=72)


def shard_of(trajectory_id: str, world_size: int) -> int:
    """The rank that computes ``trajectory_id`` among ``world_size`` processes (stable everywhere)."""
    digest = hashlib.sha256(trajectory_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % max(1, world_size)


@dataclass(frozen=True)
class Ranks:
    """This process's place in a launch (a single process by default)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

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
        dist.all_gather_object(out, obj)
        return out

    def from_main(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def meet(self) -> None:
        """Wait until every rank is here."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


def ranks_from_env() -> Ranks:
    """The launch this process belongs to, from ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``.

    With more than one process, joins (or reuses) the ``torch.distributed`` group over gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Ranks()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=MEETING_TIMEOUT)
    return Ranks(rank=rank, world_size=world, local_rank=local)
