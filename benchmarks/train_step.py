"""Benchmark the training step against the published one, at equal work, and time to a fixed
reconstruction L1.

Peers, all in one process, on the same layers (``TimbreModel`` built from the same config):

* **published**: the training step of the published code (ebadawy/voice_conversion,
  ``src/train.py``, ``train_local``), re-implemented here term for term. For each target domain
  b of a batch, with a random source a != b: ONE generator update for the pair (encode x_a and
  x_b, reconstruct both, translate both ways, re-encode both translations, cycle both ways; GAN
  10, KL 0.1 of both encodings, recon 100, KL-cycle 0.1, cycle 100, latent 10 as the L1 between
  the two batches' flattened mean latents; the discriminators are not frozen, as there), THEN
  D_a and D_b each updated on the real crops against the same ``fake.detach()``, unweighted,
  each with its own Adam. A pair update makes 2 translations and consumes 2B crops.
* **ours**: :meth:`timbre_transfer.training.trainer.Trainer.train_step`: one generator and one
  discriminator update over all D target domains at once: D translations, B*D crops.

Work is counted in translations (one crop rendered in another domain, with its cycle back) and
in crops consumed; both make the same per-translation work (2 encodes, 3 decodes, 3
discriminator passes per translated crop), so seconds per translation compare the two at equal
work.

``--time-to-l1 SECONDS`` also trains ours and the published step from the same initial weights on
the same paired synthetic store, for the same wall-clock budget each, and reports the held-out
reconstruction L1 (E -> G_own on fixed validation crops) over time and the time each first
reaches ``--l1-target``.

``--profile`` prints the operators that take the most time in our step (``torch.profiler``).

``--compile`` adds a row: the fp32 step with the encoder, the generators and the discriminators
each put through ``torch.compile`` (``nn.Module.compile``, state-dict keys kept); the first
(compiling) step's time is printed apart and left out of the median.

Run alone, from the repository root (another torch process on 2 cores makes the numbers
meaningless)::

    .venv/bin/python benchmarks/train_step.py [--config config/reference.yaml] [--steps 3]
        [--profile] [--time-to-l1 300 --l1-config config/cpu-small.yaml]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from timbre_transfer.data.prepare import PrepareOptions, prepare
from timbre_transfer.data.synthetic import write_paired_dataset
from timbre_transfer.losses import (
    batch_mean_latent_loss,
    discriminator_loss,
    generator_loss,
    kl_divergence,
    l1,
)
from timbre_transfer.training.config import load_run_config
from timbre_transfer.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "reference.yaml",
                    help="model/training config of the throughput table (default: reference)")
    ap.add_argument("--steps", type=int, default=3,
                    help="timed rounds (each: one step of ours, one batch of the published)")
    ap.add_argument("--profile", action="store_true", help="print our step's top operators")
    ap.add_argument("--compile", action="store_true",
                    help="add the fp32 step with its nets put through torch.compile")
    ap.add_argument("--time-to-l1", type=float, default=0.0, metavar="SECONDS",
                    help="also train each method for this many seconds and compare held-out "
                    "reconstruction L1 over time (default: off)")
    ap.add_argument("--l1-config", type=Path, default=ROOT / "config" / "cpu-small.yaml",
                    help="config of the time-to-L1 runs (default: cpu-small)")
    ap.add_argument("--l1-target", type=float, default=0.05,
                    help="held-out reconstruction L1 to reach (default: 0.05)")
    return ap.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PublishedStep:
    """ebadawy/voice_conversion's ``train_local`` per (source, target) pair: G update, then D_a
    and D_b. Uses the trainer's model, so both start from the same weights when asked."""

    def __init__(self, trainer: Trainer, seed: int = 0):
        self.model = trainer.model
        self.domains = list(trainer.domains)
        self.weights = trainer.config.loss
        self.noise = torch.Generator(trainer.device).manual_seed(seed)
        lr, betas = trainer.config.train.lr, trainer.config.train.betas
        self.opt_g = torch.optim.Adam(self.model.generator_parameters(), lr=lr, betas=betas)
        self.opt_d = {d: torch.optim.Adam(self.model.discriminators[d].parameters(), lr=lr,
                                          betas=betas) for d in self.domains}
        self.rng = random.Random(seed)

    def pair_update(self, x1, x2, d1: str, d2: str) -> torch.Tensor:
        m, w = self.model, self.weights
        self.opt_g.zero_grad(set_to_none=True)
        e1, e2 = m.encode(x1), m.encode(x2)
        z1, z2 = m.sample(e1, self.noise), m.sample(e2, self.noise)
        recon_1, recon_2 = m.decode(z1, d1), m.decode(z2, d2)
        fake_1, fake_2 = m.decode(z2, d1), m.decode(z1, d2)  # fake_1: x2 rendered in d1
        e1_, e2_ = m.encode(fake_1), m.encode(fake_2)
        cycle_1 = m.decode(m.sample(e2_, self.noise), d1)  # x1 -> d2 -> d1
        cycle_2 = m.decode(m.sample(e1_, self.noise), d2)
        loss_g = (w.gan * (generator_loss(m.discriminate(fake_1, d1))
                           + generator_loss(m.discriminate(fake_2, d2)))
                  + w.kl * (kl_divergence(e1.mu) + kl_divergence(e2.mu))
                  + w.recon * (l1(recon_1, x1) + l1(recon_2, x2))
                  + w.kl_cycle * (kl_divergence(e1_.mu) + kl_divergence(e2_.mu))
                  + w.cycle * (l1(cycle_1, x1) + l1(cycle_2, x2))
                  + w.latent * batch_mean_latent_loss(e1.mu, e2.mu))  # L1 of flattened batch means
        loss_g.backward()
        self.opt_g.step()
        for x, fake, d in ((x1, fake_1, d1), (x2, fake_2, d2)):
            self.opt_d[d].zero_grad(set_to_none=True)
            loss_d = discriminator_loss(m.discriminate(x, d), m.discriminate(fake.detach(), d))
            loss_d.backward()
            self.opt_d[d].step()
        return loss_g.detach()

    def train_batch(self, batch) -> None:
        """A batch of ``(B, D, 1, F, T)`` crops: each target once, with a random source (as
        published)."""
        specs = batch.specs
        n = len(self.domains)
        for target in range(n):
            source = self.rng.choice([d for d in range(n) if d != target])
            self.pair_update(specs[:, source].contiguous(), specs[:, target].contiguous(),
                             self.domains[source], self.domains[target])


def make_store(tmp: Path, clips: int, seconds: float) -> Path:
    write_paired_dataset(tmp / "audio", n_domains=3, n_clips=clips, seconds=seconds)
    prepare(tmp / "audio", tmp / "store", options=PrepareOptions(val_fraction=0.2), workers=1,
            progress=False)
    return tmp / "store"


PUBLISHED = "published (per pair update)"
# Our step in the settings that were tried; the last row is the default (the config as shipped).
OURS = (("ours fp32 (previous default)", ["train.bf16=false", "train.channels_last=false"]),
        ("ours fp32, channels_last", ["train.bf16=false", "train.channels_last=true"]),
        ("ours bf16 autocast, channels_last", ["train.bf16=true", "train.channels_last=true"]),
        ("ours default (bf16 auto)", []))


def compile_nets(trainer: Trainer) -> None:
    """``torch.compile`` each net the step calls (the model's methods call them, not forward)."""
    model = trainer.model
    for net in (model.encoder, *model.generators.values(), *model.discriminators.values()):
        net.compile()


def throughput(args, device, store: Path, tmp: Path) -> None:
    # the published code runs fp32 NCHW, and knows no pitch template: with a config that has one
    # it is left out and the rows compare against our previous default
    config = load_run_config(args.config, OURS[0][1])
    steps = {}
    if not config.model.pitch_template:
        published = PublishedStep(Trainer(config, store, tmp / "pub", device=device,
                                          progress=False))
        steps[PUBLISHED] = published.train_batch
    baseline = PUBLISHED if steps else OURS[0][0]
    trainers = {}
    for i, (name, overrides) in enumerate(OURS):
        trainers[name] = Trainer(load_run_config(args.config, overrides), store, tmp / f"ours{i}",
                                 device=device, progress=False)
        steps[name] = trainers[name].train_step
    if args.compile:  # in fp32: under bf16 autocast the compiled CPU step gave non-finite
        # losses from its second step on (torch 2.13.0+cpu; docs/benchmarks.md)
        name = "ours fp32 + torch.compile"
        trainers[name] = Trainer(load_run_config(args.config, OURS[0][1]), store,
                                 tmp / "ours_compiled", device=device, progress=False)
        compile_nets(trainers[name])
        steps[name] = trainers[name].train_step
    default = trainers[OURS[-1][0]]
    print(f"default resolves to bf16={default.use_bf16}, channels_last={default.channels_last}")
    batch_of_crops = next(default.batches()).to(device)
    specs = batch_of_crops.specs
    batch, n_dom = specs.shape[:2]
    print(f"config {args.config.name}: batch {tuple(specs.shape)} (B={batch} crops x D={n_dom} "
          f"domains, {specs.shape[-2]} mels x {specs.shape[-1]} frames)", flush=True)
    times = {name: [] for name in steps}
    for name, step in steps.items():  # warm-ups: Adam state, allocator, oneDNN kernels, compile
        start = time.perf_counter()
        step(batch_of_crops)
        sync(device)
        print(f"  warm-up of {name}: {time.perf_counter() - start:.1f} s", flush=True)
    for i in range(args.steps):  # interleaved, so that drift in the machine's load hits all
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step(batch_of_crops)
            sync(device)
            times[name].append(time.perf_counter() - start)
        print(f"  round {i + 1}/{args.steps}: " + ", ".join(
            f"{name.split(' (')[0]} {t[-1]:.2f} s" for name, t in times.items()), flush=True)
    print(f"\n{'method':<42} | {'s/update':>8} | {'translations':>12} | {'s/translation':>13} | "
          f"{'crops/s':>7} | {'vs ' + baseline.split(' (')[0]:>12}")
    print("-" * 112)
    per_translation = {}
    for name, t in sorted(times.items(), key=lambda item: item[0] != baseline):
        if name.startswith("published"):  # one batch = D pair updates of 2 translations, 2B crops
            s, translations, crops = statistics.median(t) / n_dom, 2, 2 * batch
        else:  # one update: D translations, B crops of each of the D domains
            s, translations, crops = statistics.median(t), n_dom, batch * n_dom
        per_translation[name] = s / translations
        ratio = per_translation[baseline] / per_translation[name]
        print(f"{name:<42} | {s:>8.3f} | {translations:>12} | {s / translations:>13.3f} | "
              f"{crops / s:>7.2f} | {ratio:>11.2f}x")
    print(f"\nmedian of {args.steps} interleaved rounds; a translation = B={batch} crops rendered "
          f"in another domain and cycled back; 'vs' = translations per second relative to "
          f"{baseline} (equal work)")
    if args.profile:
        for name in (OURS[0][0], OURS[-1][0]):
            profile(name, trainers[name], batch_of_crops)


def profile(name: str, trainer: Trainer, batch, top: int = 12) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.train_step(batch)
    print(f"\nTop {top} operators of one step of {name} (self CPU time):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top,
                                    max_name_column_width=40))


@torch.no_grad()
def held_out_recon_l1(trainer: Trainer, crops: torch.Tensor) -> float:
    """E -> G_own L1 on fixed validation crops ``(N, D, 1, F, T)``, from ``mu`` (no noise)."""
    model = trainer.model
    model.eval()
    errors = [float(l1(model.decode(model.encode(crops[:, d]).mu, dom), crops[:, d]))
              for d, dom in enumerate(trainer.domains)]
    model.train()
    return sum(errors) / len(errors)


def time_to_l1(args, device, store: Path, tmp: Path) -> None:
    from timbre_transfer.data.dataset import MultiDomainCropDataset

    config = load_run_config(args.l1_config)
    val = MultiDomainCropDataset(store, "val", config.train.crop_frames, seed=123)
    crops = torch.stack([val[i][0] for i in range(8)]).to(device)
    results = {}
    runs = {"published": OURS[0][1], "ours fp32": OURS[0][1], "ours default": OURS[-1][1]}
    for name, overrides in runs.items():
        # same seed: the same initial weights and batches for all
        config = load_run_config(args.l1_config, ["train.max_steps=1000000", *overrides])
        trainer = Trainer(config, store, tmp / f"l1_{name}", device=device, progress=False)
        step = PublishedStep(trainer).train_batch if name == "published" else trainer.train_step
        curve, elapsed, updates, reached = [(0.0, held_out_recon_l1(trainer, crops))], 0.0, 0, None
        next_check = 15.0
        for batch in trainer.batches():
            start = time.perf_counter()
            step(batch.to(device))
            sync(device)
            elapsed += time.perf_counter() - start  # training time only, not the evaluations
            updates += 1
            if elapsed >= next_check or elapsed >= args.time_to_l1:
                value = held_out_recon_l1(trainer, crops)
                curve.append((elapsed, value))
                if reached is None and value <= args.l1_target:
                    reached = elapsed
                next_check += 15.0
                if elapsed >= args.time_to_l1:
                    break
        results[name] = (curve, reached, updates)
        print(f"  {name}: {updates} batches in {elapsed:.0f} s, held-out recon L1 "
              f"{curve[-1][1]:.4f}", flush=True)
    print(f"\nTime to held-out reconstruction L1 <= {args.l1_target} ({args.l1_config.name}, "
          f"{args.time_to_l1:.0f} s of training each, same initial weights and batches):")
    print(f"{'method':<12} | {'batches':>7} | {'time to target s':>16} | {'L1 at end':>9} | "
          "L1 at 60 / 120 / 240 s")
    for name, (curve, reached, updates) in results.items():
        # the last evaluation at or before each mark ('-' past the budget)
        at = [[v for t, v in curve if t <= mark][-1] if mark <= curve[-1][0] else None
              for mark in (60, 120, 240)]
        print(f"{name:<12} | {updates:>7} | "
              f"{('%.0f' % reached) if reached else 'not reached':>16} | "
              f"{curve[-1][1]:>9.4f} | " + " / ".join("-" if a is None else f"{a:.4f}" for a in at))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}; "
          f"load average (1 min) at start: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_train_step_") as tmp:
        tmp = Path(tmp)
        store = make_store(tmp, clips=10, seconds=3.0)
        throughput(args, device, store, tmp)
        if args.time_to_l1 > 0:
            time_to_l1(args, device, store, tmp)
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
