"""Data-parallel glue for `torchrun --nproc_per_node K -m vidgan train ...`.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `setup` joins the
process group (NCCL on GPUs, gloo on CPU) and picks this rank's device. Training is data
parallel: every rank holds full copies of G and the Ds, draws its own noise and its own
shard of the data, and gradients are averaged over ranks once per optimiser step (after all
gradient-accumulation rounds) by one flattened all-reduce per model. This is what
DistributedDataParallel does, done by hand so that the lazy R1 penalty (a double backward
through D) and the alternating G/D updates need no special DDP modes.

Only rank 0 writes logs, samples and checkpoints; `barrier` keeps the others in step.
"""
import os
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional

import torch
import torch.distributed as dist

from vidgan.device import resolve_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: Optional[str] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if WORLD_SIZE > 1 (idempotent); return this rank's facts."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistInfo(device=dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                    device=dev, backend=dist.get_backend())


def teardown() -> None:
    """Leave the process group (if this module or torchrun made one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        if info.backend == "nccl":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


@torch.no_grad()
def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not info.enabled:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def all_reduce_grads(params: Iterable[torch.nn.Parameter], info: DistInfo) -> None:
    """Average the gradients of `params` over ranks in one flattened all-reduce (missing grads count as 0)."""
    if not info.enabled:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


@torch.no_grad()
def sync_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Make buffers equal on every rank: floating-point ones become their mean over ranks (running
    statistics such as the generator's w_avg), the others take rank 0's values."""
    if not info.enabled:
        return
    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b.data)
            b.data /= info.world_size
        else:
            dist.broadcast(b.data, src=0)


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over ranks (returns a new tensor; identity without distribution)."""
    if not info.enabled:
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / info.world_size


def gather_objects(obj: Any, info: DistInfo) -> List[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank (in-memory objects made by this program only)."""
    if not info.enabled:
        return [obj]
    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
