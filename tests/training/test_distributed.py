import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from timbre_transfer.training.distributed import average_gradients


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    a = torch.nn.Parameter(torch.zeros(3))
    b = torch.nn.Parameter(torch.zeros(2, 2))
    a.grad = torch.full((3,), float(rank + 1))
    b.grad = torch.full((2, 2), float(10 * (rank + 1)))
    average_gradients([a, b], world)
    out[rank] = torch.cat([a.grad, b.grad.flatten()])
    dist.destroy_process_group()


def test_average_gradients_over_two_gloo_processes():
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(2, 29541, out), nprocs=2, join=True)
    expected = torch.tensor([1.5, 1.5, 1.5, 15.0, 15.0, 15.0, 15.0])
    assert torch.equal(out[0], expected) and torch.equal(out[1], expected)
