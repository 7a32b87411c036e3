import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from timbre_transfer.training.distributed import average_gradients

REPO = Path(__file__).resolve().parents[2]


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


def _nan_on_one_rank(rank, world, port, store, run, out):
    import datetime
    import warnings

    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.trainer import Trainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    # a short timeout: ranks out of step would otherwise wait in the all-reduce for 30 minutes
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    config = load_run_config(REPO / "config" / "debug.yaml", ["train.max_steps=4"])
    t = Trainer(config, store, run, progress=False)
    real_losses = t.losses

    def nan_on_rank_1_at_step_0(x, step, *rest):
        g = real_losses(x, step, *rest)
        if rank == 1 and step == 0:
            g.terms["recon"] = g.terms["recon"] * float("nan")
        return g

    t.losses = nan_on_rank_1_at_step_0
    batches = t.batches()
    initial = torch.cat([p.detach().flatten() for p in t.model.parameters()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        skipped = t.train_step(next(batches))
    after_skip = torch.cat([p.detach().flatten() for p in t.model.parameters()])
    taken = [bool(t.train_step(next(batches))) for _ in range(2)]
    out[rank] = {
        "skipped": skipped == {},
        "unchanged": torch.equal(initial, after_skip),
        "taken": taken,
        "params": torch.cat([p.detach().flatten() for p in t.model.parameters()]),
        "centroids": t.centroids.centroids.clone(),
        "step": t.step,
    }
    dist.destroy_process_group()


def test_a_nan_on_one_rank_skips_the_step_on_every_rank(synth_store, tmp_path):
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_nan_on_one_rank, args=(2, 29547, synth_store / "store", tmp_path / "run", out),
             nprocs=2, join=True)
    for rank in (0, 1):
        assert out[rank]["skipped"] and out[rank]["unchanged"], rank
        assert out[rank]["taken"] == [True, True] and out[rank]["step"] == 3
    # after the agreed skip both ranks stepped together: identical weights and centroids
    assert torch.equal(out[0]["params"], out[1]["params"])
    assert torch.equal(out[0]["centroids"], out[1]["centroids"])
