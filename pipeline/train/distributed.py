"""Data-parallel training under ``torchrun``: who this process is, and the few collectives the
trainer needs. Plain torch; nothing here runs unless torchrun's variables say so.

``torchrun --nproc_per_node=N -m pipeline train <model>`` sets RANK, WORLD_SIZE and LOCAL_RANK; with
WORLD_SIZE > 1 the process group starts on gloo (CPU) or nccl (CUDA, one GPU per local rank).
Choices the trainer makes with this (pipeline/train/loop.py):

- ``batch_size`` is per process, as in torchrun's own examples: N processes train on N x batch_size
  images per step. Each epoch's permutation is the same on every rank and each rank takes its own
  contiguous shard of it, so no image is seen twice in an epoch.
- G and D are wrapped in DistributedDataParallel: gradients are averaged, so every rank takes the
  same optimiser step. BatchNorm stays per rank (no SyncBatchNorm), deliberately: each rank
  normalises its own batch of ``batch_size``, the batch statistics the model was tuned at whatever N
  is, without a collective in every BatchNorm layer of every forward; the running statistics (used
  only in eval mode) are broadcast from rank 0 at each forward, so every rank's weights and buffers,
  and so the checkpoint, are the same.
- Loss-threshold skips decide on the loss averaged over ranks (what the averaged gradient
  descends), so every rank skips or steps together.
- Initial weights are the same on every rank (one seed); what must differ does: each rank takes
  its own slice of z and of the DRAGAN perturbations drawn for all ranks from the one training
  generator, and the global generator (dropout) is seeded per rank, its state saved per rank.
- Rank 0 alone writes samples, checkpoints, losses.csv, MLflow and train.json; every rank reads the
  checkpoint to resume.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; the defaults are a plain single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def device(self, dev: torch.device) -> torch.device:
        """One GPU per local rank; CPU stays CPU."""
        if self.active and dev.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return dev

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        if self.active:
            torch.distributed.all_reduce(t)
        return t

    def mean_(self, t: torch.Tensor) -> torch.Tensor:
        """Average ``t`` over ranks, in place (sum then divide: gloo has no AVG)."""
        return self.sum_(t).div_(self.world) if self.active else t

    def gather(self, t: torch.Tensor, dev: torch.device) -> list[torch.Tensor]:
        """Every rank's ``t`` (one shape on all ranks), on the CPU, in rank order; nccl moves CUDA tensors only."""
        if not self.active:
            return [t]
        x = t.to(dev) if dev.type == "cuda" else t
        parts = [torch.empty_like(x) for _ in range(self.world)]
        torch.distributed.all_gather(parts, x)
        return [p.cpu() for p in parts]

    def wrap(self, net: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
        """DDP around ``net`` (the bare module stays what checkpoints and sampling use)."""
        if not self.active:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = [dev.index] if dev.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids)  # buffers synced from rank 0 at each forward (the default)

    def sync_buffers(self, *nets: torch.nn.Module) -> None:
        """Rank 0's buffers to every rank. DDP syncs them at the start of each forward, so after the
        last step each rank holds the running statistics of its own last batch; this makes every
        rank's nets equal to the checkpoint rank 0 writes."""
        if self.active:
            for net in nets:
                for b in net.buffers():
                    torch.distributed.broadcast(b, src=0)


def from_env() -> Dist:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them (absent: one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(rank=int(os.environ["RANK"]), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[Dist]:
    """Start the process group when torchrun asked for more than one process (gloo on CPU, nccl
    on CUDA), and end it afterwards; a single process gets ``Dist()`` and no group."""
    d = from_env()
    if not d.active or torch.distributed.is_initialized():
        yield d
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(d.local_rank)
    torch.distributed.init_process_group(backend=backend)
    log.info("DDP: rank %d of %d (%s)", d.rank, d.world, backend)
    try:
        yield d
    finally:
        torch.distributed.destroy_process_group()
