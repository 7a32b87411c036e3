"""Devices and data parallelism across processes (``torchrun``): rank discovery, gradient
averaging, and whether a device computes bf16 natively.

Gradients are averaged with one all-reduce per optimiser over a flattened buffer, rather than by
wrapping the model in DistributedDataParallel: the training step calls the encoder several times
per backward pass, which DDP's hooks do not expect, and the saved model stays a bare module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); NCCL on CUDA,
    gloo on CPU. A single process returns rank 0 of 1 and starts nothing."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend)
    return info


def average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """Average ``.grad`` over all processes (one flattened all-reduce)."""
    if world_size <= 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_ranks_true(flag: torch.Tensor, world_size: int) -> bool:
    """Whether a 0-d 0./1. tensor is 1 on every process (one all-reduce, MIN). Ranks that
    decide alone whether to step fall out of step in the gradient all-reduce."""
    if world_size > 1:
        flag = flag.clone()
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag)


def mean_over_ranks(tensor: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean of a (detached) tensor over all processes; the tensor itself for one."""
    if world_size <= 1:
        return tensor
    out = tensor.clone()
    dist.all_reduce(out)
    return out / world_size


def shutdown(info: DistInfo) -> None:
    if info.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (elsewhere bf16 autocast is emulated, slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:  # oneDNN's own check: AVX512-BF16 or AMX
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False
