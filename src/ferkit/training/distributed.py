"""Data-parallel training under ``torchrun``: the process group, sharding, reductions and rank-0-only work.

A run is distributed when torchrun's ``WORLD_SIZE`` is above 1; otherwise every helper here is a
no-op and training is exactly the single-process loop. ``train.batch_size`` stays the *global*
batch: each optimiser step, rank ``r`` of ``W`` takes the ``r``-th contiguous ``1/W`` of the same
globally shuffled batch, and DistributedDataParallel averages the gradients, so the step equals a
single process's step on the whole batch (models without batch norm: up to float rounding).
See docs/distributed.md.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import FerkitError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the run: its rank among ``world_size`` processes (rank 0 writes the files)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous part of ``rows`` (all of it in a single process)."""
        return rows.tensor_split(self.world_size)[self.rank] if self.enabled else rows

    def sum(self, *values: float) -> tuple[float, ...]:
        """``values`` summed over all ranks (returned unchanged in a single process)."""
        if not self.enabled:
            return values
        total = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(total)
        return tuple(total.tolist())

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and return its result on every rank; its error is raised on every rank.

        The hand-over is also a barrier: no rank goes on before rank 0 has finished ``fn``.
        """
        if not self.enabled:
            return fn()
        result = None
        if self.is_main:
            try:
                result = fn()
            except BaseException as exc:
                self.broadcast((None, (isinstance(exc, FerkitError), f"{type(exc).__name__}: {exc}", str(exc))))
                raise
        result, error = self.broadcast((result, None))
        if error is not None:
            is_ferkit, described, message = error
            raise FerkitError(message) if is_ferkit else RuntimeError(f"rank 0 failed: {described}")
        return result


SINGLE = DistEnv()


def env_from_torchrun() -> DistEnv:
    """The rank and world size torchrun put in the environment (a single process without them)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise FerkitError(f"bad torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK): {exc}") from None
    return DistEnv(rank, world, local) if world > 1 else SINGLE


@contextlib.contextmanager
def session() -> Iterator[DistEnv]:
    """Join torchrun's process group for the block when ``WORLD_SIZE`` > 1 (gloo on CPU, plus nccl for CUDA
    tensors when CUDA is there). A group that already exists is used and left open. From here on, ranks
    other than 0 log ``ferkit`` warnings only (a torchrun worker's whole remaining life, so the caller's
    own closing lines are not repeated by every rank)."""
    env = env_from_torchrun()
    if not env.enabled:
        yield env
        return
    created = not dist.is_initialized()
    if created:
        backend = "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
            backend = "cpu:gloo,cuda:nccl"
        dist.init_process_group(backend=backend)
    if dist.get_world_size() != env.world_size or dist.get_rank() != env.rank:
        raise FerkitError(f"the process group (rank {dist.get_rank()} of {dist.get_world_size()}) does not match "
                          f"RANK={env.rank} WORLD_SIZE={env.world_size}")
    if not env.is_main:
        logging.getLogger("ferkit").setLevel(logging.WARNING)
    log.info("distributed run: %d processes (backend %s)", env.world_size, dist.get_backend())
    try:
        yield env
    except BaseException:
        if created:
            _leave_group(wait_for_all=False)
        raise
    if created:
        _leave_group(wait_for_all=True)


def _leave_group(*, wait_for_all: bool) -> None:
    """Destroy the process group this process created, after freeing what the block left in reference cycles.

    A run's callbacks hold bound methods of the run, so its DistributedDataParallel wrapper (whose reducer
    holds the group and its pending work) outlives the block until the cyclic collector runs. Left to the
    interpreter's exit, the wrapper is torn down after the group: the likely cause of a rank that aborted once
    in CI (SIGABRT, "terminate called without an active exception") after its run had finished.
    ``wait_for_all``: every rank done with its last collective before any tears the group down.
    """
    gc.collect()
    if wait_for_all:
        dist.barrier()
    dist.destroy_process_group()


def wrap(model: nn.Module, env: DistEnv, *, find_unused_parameters: bool = False) -> nn.Module:
    """``model`` in DistributedDataParallel (which copies rank 0's weights to every rank), or ``model`` itself.

    Batch norm keeps per-rank batch statistics; its running buffers are rank 0's (broadcast each step).
    """
    if not env.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, find_unused_parameters=find_unused_parameters)


def sync_buffers(model: nn.Module, env: DistEnv) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank, e.g. before a sharded evaluation."""
    if env.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def rank_seed(seed: int, epoch: int, rank: int) -> int:
    """A seed for ``rank``'s random draws (augmentation, dropout) in ``epoch``, derived from the run's seed.

    Derived, never stored, so a resumed run draws what the uninterrupted run would have drawn.
    """
    return int(np.random.SeedSequence([seed % 2**64, epoch, rank]).generate_state(1)[0])


def check_batch(batch_size: int, n_train: int, env: DistEnv) -> None:
    """A global batch must split evenly over the ranks, and every rank needs at least one image."""
    if env.enabled and batch_size % env.world_size:
        raise FerkitError(f"train.batch_size = {batch_size} is the global batch and must be divisible by the "
                          f"number of processes ({env.world_size})")
    if env.enabled and n_train < env.world_size:
        raise FerkitError(f"{n_train} training images cannot be shared by {env.world_size} processes")
