"""Benchmark one training step: ours (``Trainer.train_step``) against the published step.

Everything runs in one process, on the same batch shape and the same layers:

* **ours**: :meth:`timbre_transfer.training.trainer.Trainer.train_step` with
  ``config/reference.yaml`` (3 synthetic domains, batch 4, 128 mels x 128 frames): ONE generator
  update and ONE discriminator update over all D target domains, the encoder batched over all
  domains (sources, then translations).
* **peer**: a plain re-implementation, written here, of the training step of the published code
  (AlBadawy & Lyu 2020, built on the UNIT trainer). For each target domain b, with a random source
  a != b, it makes a discriminator update for the pair (encode x_a and x_b separately, translate
  both ways, LSGAN loss of D_a and D_b on real vs detached fakes, backward, step) and then a
  generator update for the pair (encode both, reconstruct both, translate both ways, GAN losses on
  both translations, re-encode both, cycle both ways, KL of the four encodings, L1 recon and cycle,
  the batch-mean latent loss; weights GAN 10, KL 0.1, recon 100, KL-cycle 0.1, cycle 100,
  latent 10). As in the UNIT code, the discriminators are not frozen during the generator update
  and the translations of the discriminator update are built with autograd on. Separate Adam
  optimisers (lr 1e-4, betas (0.5, 0.999)). One peer step = all D pairs, so it consumes the same
  B crops per domain as one of ours.

Why it is fair: both build the same ``TimbreModel`` (same ModelConfig, same modules, same kernels,
same dtype and device), see the same number of crops per step and optimise the same loss terms
with the same optimiser; only the update schedule differs (per pair and unfused in the peer,
batched over domains in ours). A "sample" is one 128x128 crop of one domain: samples/s =
batch_size * n_domains / seconds per step, for both.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one full step (forward and
backward; it counts convolutions and matmuls only, not norms, elementwise ops or the optimiser).
The peak is the best fp32 (or, with ``--bf16``, bf16) ``torch.mm`` throughput measured in the same
process. Run from the repository root::

    .venv/bin/python benchmarks/train_step.py [--device cpu|cuda] [--steps 3] [--bf16]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from timbre_transfer.data.prepare import prepare
from timbre_transfer.data.synthetic import write_paired_dataset
from timbre_transfer.losses import (batch_mean_latent_loss, discriminator_loss, generator_loss,
                                    kl_divergence, l1)
from timbre_transfer.models.multidomain import TimbreModel
from timbre_transfer.training.config import load_run_config
from timbre_transfer.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per method (after 1 warm-up)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "reference.yaml")
    ap.add_argument("--mm-size", type=int, default=None,
                    help="matrix size of the peak matmul (default 2048 on CPU, 8192 on CUDA)")
    return ap.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int = 10) -> float:
    """Best-of-``reps`` GFLOP/s of an ``n x n`` by ``n x n`` matmul (after a warm-up)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    inner = 1 if device.type == "cpu" else 10  # amortise the launch on a GPU
    for _ in range(2):
        torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b)
        sync(device)
        best = min(best, (time.perf_counter() - start) / inner)
    return 2 * n**3 / best / 1e9


class PeerStep:
    """The published per-pair update order (UNIT's ``dis_update`` then ``gen_update``), unfused."""

    def __init__(self, config, domains, device: torch.device, bf16: bool, seed: int = 0):
        torch.manual_seed(seed)
        self.model = TimbreModel(config.model, domains).to(device)
        self.weights, self.kind = config.loss, "lsgan"
        opt = dict(lr=1e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.model.generator_parameters(), **opt)
        self.opt_d = torch.optim.Adam(self.model.discriminator_parameters(), **opt)
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
        self.rng = random.Random(seed)
        self.domains = list(domains)

    def dis_update(self, xa, xb, a: str, b: str) -> None:
        m = self.model
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast:
            za, zb = m.sample(m.encode(xa)), m.sample(m.encode(xb))
            x_ba, x_ab = m.decode(zb, a), m.decode(za, b)
            loss = self.weights.gan * (
                discriminator_loss(m.discriminate(xa, a), m.discriminate(x_ba.detach(), a), self.kind)
                + discriminator_loss(m.discriminate(xb, b), m.discriminate(x_ab.detach(), b), self.kind))
        loss.backward()
        self.opt_d.step()

    def gen_update(self, xa, xb, a: str, b: str) -> None:
        m, w = self.model, self.weights
        self.opt_g.zero_grad(set_to_none=True)
        with self.autocast:
            ea, eb = m.encode(xa), m.encode(xb)
            za, zb = m.sample(ea), m.sample(eb)
            xa_rec, xb_rec = m.decode(za, a), m.decode(zb, b)
            x_ba, x_ab = m.decode(zb, a), m.decode(za, b)
            e_ba, e_ab = m.encode(x_ba), m.encode(x_ab)
            x_bab, x_aba = m.decode(m.sample(e_ba), b), m.decode(m.sample(e_ab), a)
            loss = (w.gan * (generator_loss(m.discriminate(x_ba, a), self.kind)
                             + generator_loss(m.discriminate(x_ab, b), self.kind))
                    + w.recon * (l1(xa_rec, xa) + l1(xb_rec, xb))
                    + w.kl * (kl_divergence(ea.mu, ea.logvar) + kl_divergence(eb.mu, eb.logvar))
                    + w.cycle * (l1(x_aba, xa) + l1(x_bab, xb))
                    + w.kl_cycle * (kl_divergence(e_ab.mu, e_ab.logvar)
                                    + kl_divergence(e_ba.mu, e_ba.logvar))
                    + w.latent * batch_mean_latent_loss(ea.mu, eb.mu))
        loss.backward()
        self.opt_g.step()

    def train_step(self, specs: torch.Tensor) -> None:
        """All D pairs of a ``(B, D, 1, F, T)`` batch: each target once, with a random source."""
        n = len(self.domains)
        for b in range(n):
            a = self.rng.choice([d for d in range(n) if d != b])
            xa, xb = specs[:, a].contiguous(), specs[:, b].contiguous()
            self.dis_update(xa, xb, self.domains[a], self.domains[b])
            self.gen_update(xa, xb, self.domains[a], self.domains[b])


def measure(name: str, step, specs, device: torch.device, steps: int) -> dict:
    """Warm-up, FLOP count of one step, then ``steps`` timed steps."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step(specs)  # warm-up (allocates the Adam state)
    sync(device)
    with FlopCounterMode(display=False) as counter:
        step(specs)
    sync(device)
    times = []
    for i in range(steps):
        start = time.perf_counter()
        step(specs)
        sync(device)
        times.append(time.perf_counter() - start)
        print(f"  {name} step {i + 1}/{steps}: {times[-1]:.3f} s", flush=True)
    out = {"name": name, "times": times, "s": statistics.median(times),
           "gflop": counter.get_total_flops() / 1e9}
    if device.type == "cuda":
        out["mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    device = torch.device(args.device)
    bf16 = args.bf16 and device.type == "cuda"
    if args.bf16 and not bf16:
        print("note: --bf16 only applies on CUDA; running fp32")
    mm_size = args.mm_size or (8192 if device.type == "cuda" else 2048)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name(device)}, cudnn tf32 "
             f"{torch.backends.cudnn.allow_tf32}, matmul tf32 "
             f"{torch.backends.cuda.matmul.allow_tf32})" if device.type == "cuda" else "")
          + f", {'bf16 autocast' if bf16 else 'fp32'}", flush=True)
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}", flush=True)
    peak_dtype = torch.bfloat16 if bf16 else torch.float32
    peak_before = matmul_peak(device, peak_dtype, mm_size)

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_train_step_") as tmp:
        tmp = Path(tmp)
        write_paired_dataset(tmp / "audio", n_domains=3, n_clips=4, seconds=2.0)
        prepare(tmp / "audio", tmp / "store", workers=1, progress=False)
        overrides = ["train.bf16=true"] if bf16 else []
        config = load_run_config(args.config, overrides)
        trainer = Trainer(config, tmp / "store", tmp / "run", device=device, progress=False)
        specs = next(trainer.batches()).to(device)
        batch, n_dom = specs.shape[:2]
        domains = list(trainer.domains)
        print(f"batch {tuple(specs.shape)}: B={batch} crops x D={n_dom} domains "
              f"({specs.shape[-2]} mels x {specs.shape[-1]} frames); "
              f"1 sample = 1 crop, {batch * n_dom} samples per step", flush=True)

        results.append(measure("ours", trainer.train_step, specs, device, args.steps))
        del trainer
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        peer = PeerStep(config, domains, device, bf16)
        results.append(measure("peer", peer.train_step, specs, device, args.steps))

    # The CPU may be shared: measure the peak again at the end and keep the better one.
    peak_after = matmul_peak(device, peak_dtype, mm_size)
    peak = max(peak_before, peak_after)
    print(f"\nmatmul peak: {peak:.1f} GFLOP/s ({str(peak_dtype).split('.')[-1]} torch.mm "
          f"{mm_size}x{mm_size}, best of 10; {peak_before:.1f} before the steps, "
          f"{peak_after:.1f} after); load average (1 min) at end: {os.getloadavg()[0]:.2f}")
    samples = batch * n_dom
    cuda = device.type == "cuda"
    head = (f"{'method':<6} | {'s/step':>8} | {'samples/s':>9} | {'GFLOP/step':>10} | "
            f"{'GFLOP/s':>8} | {'% of mm peak':>12}" + (f" | {'peak mem GiB':>12}" if cuda else ""))
    print(head)
    print("-" * len(head))
    for r in results:
        rate = r["gflop"] / r["s"]
        line = (f"{r['name']:<6} | {r['s']:>8.3f} | {samples / r['s']:>9.2f} | "
                f"{r['gflop']:>10.1f} | {rate:>8.1f} | {100 * rate / peak:>11.1f}%")
        print(line + (f" | {r['mem_gib']:>12.2f}" if cuda else ""))
    ours, peer_r = results
    print(f"\ns/step = median of {args.steps} timed steps after 1 warm-up; samples = crops "
          f"(B={batch} x D={n_dom}); peer: {peer_r['s'] / n_dom:.3f} s per pair update "
          f"(D + G update of one pair)")
    print(f"ours/peer samples/s: {peer_r['s'] / ours['s']:.2f}x   "
          f"(GFLOP/step peer/ours: {peer_r['gflop'] / ours['gflop']:.2f}x)")


if __name__ == "__main__":
    main()
